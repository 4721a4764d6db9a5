"""``numbad.sweeps.deferred``: njit dispatchers made on first use, all of them before a compile."""
import subprocess
import sys
import textwrap
import threading

import numpy as np

from numbad.sweeps import deferred


def _run(code, *args):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_warm_first_call_makes_only_the_dispatchers_it_calls():
    # The first process fills the cache if it is cold (and so makes them all).
    code = """
        import numpy as np, numbad as nb
        from numba.core.dispatcher import Dispatcher
        from numbad.sweeps import deferred
        out, g = nb.vjp(lambda x: np.sum(np.sin(x) * x), np.ones(3))
        assert np.allclose(g, np.sin(1.0) + np.cos(1.0)), g
        from numbad.sweeps import _generated as G
        made = [s.py_func.__name__ for s in deferred._stand_ins if s._dispatcher is not None]
        print(len(deferred._stand_ins), isinstance(G.reverse_inputs, Dispatcher), type(G.tangent).__name__,
              type(G.reverse).__name__, *made)
    """
    _run(code)
    total, reverse_is_dispatcher, tangent_type, plain_reverse_type, *made = _run(code)
    assert int(total) > 100                 # (every interpreter, kernel and scalar function)
    # a small vjp calls reverse_inputs, into whose machine code the reverse sweep is compiled
    assert reverse_is_dispatcher == "True" and tangent_type == plain_reverse_type == "Deferred"
    assert "reverse_inputs" in made and len(made) <= 3, made


def test_deferred_functions_compile_against_each_other_on_a_miss(tmp_path):
    # A cache miss makes every dispatcher before Numba compiles: the caller finds its
    # callee (a stand-in until then) as a dispatcher among its module's globals.
    (tmp_path / "deferred_module.py").write_text(textwrap.dedent("""
        from numbad.sweeps.deferred import njit

        @njit(cache=True)
        def inner(x):
            return 3.0 * x

        @njit(cache=True, inline="always")
        def inlined(x):
            return x + 1.0

        @njit(cache=True)
        def outer(x):
            return inlined(inner(x))
    """))
    code = """
        import sys; sys.path.insert(0, sys.argv[1])
        import deferred_module as m
        from numbad.sweeps import deferred
        kinds = [type(m.inner).__name__, type(m.inlined).__name__]
        assert m.outer(2.0) == 7.0
        print(*kinds, type(m.inner).__name__, type(m.inlined).__name__, type(m.outer).__name__)
    """
    first = _run(code, tmp_path)            # compiles: all three made
    assert first == ["Deferred", "Deferred", "CPUDispatcher", "CPUDispatcher", "CPUDispatcher"]
    again = _run(code, tmp_path)            # loads outer from the cache: its callees stay deferred
    assert again == ["Deferred", "Deferred", "Deferred", "Deferred", "CPUDispatcher"]


def test_without_the_light_loader_every_dispatcher_is_made_at_once(tmp_path):
    # (a Numba lacking the internals numbad's cache loader needs compiles with no warning
    # from numbad: every callee must be a dispatcher from the first one made)
    (tmp_path / "deferred_module_plain.py").write_text(textwrap.dedent("""
        from numbad.sweeps.deferred import njit

        @njit(cache=True)
        def inner(x):
            return 2.0 * x

        @njit(cache=True)
        def outer(x):
            return inner(x) - 1.0
    """))
    code = """
        import sys; sys.path.insert(0, sys.argv[1])
        from numbad.sweeps import deferred
        deferred.on_made = lambda dispatcher: False
        import deferred_module_plain as m
        assert m.outer(2.0) == 3.0
        print(type(m.inner).__name__)
        @deferred.njit(cache=False)
        def later(x):
            return x
        print(type(later).__name__)
    """
    assert _run(code, tmp_path) == ["CPUDispatcher", "CPUDispatcher"]


def test_racing_threads_get_one_dispatcher_and_attributes_reach_it(monkeypatch):
    # (as if numbad's cache loader took it: an uncached dispatcher would make every stand-in)
    monkeypatch.setattr(deferred, "on_made", lambda dispatcher: True)

    def py_func(x):
        return x + 1.0

    stand_in = deferred.Deferred(py_func, {"cache": False})
    assert stand_in.py_func is py_func and "deferred njit" in repr(stand_in)
    got = []
    threads = [threading.Thread(target=lambda: got.append(stand_in.dispatcher())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(d) for d in got}) == 1
    assert stand_in(np.float64(1.5)) == 2.5
    assert stand_in.signatures == got[0].signatures and len(stand_in.signatures) == 1
