"""Large elementwise values computed on two threads (``core._ufunc_into``).

The split must be invisible: numpy's bits for every ufunc, numpy's floating-point
warnings and errors once per op, and no wait on a worker thread that has not started.
"""
import threading
import time
import warnings

import numpy as np
import pytest

import numbad as nb
from helpers import count_worker_requests
from numbad import sweeps
from numbad.tensor import core

RNG = np.random.default_rng(11)
N = 100_003                     # (not a multiple of 64: the last block is short)


class _AlwaysWorth(dict):
    """A timing table that says every op is worth splitting."""

    def get(self, key, default=None):
        return [1.0, 0]


@pytest.fixture
def split(monkeypatch):
    """Every large op split into blocks, with a record of the threads that ran blocks."""
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "_TIMED", 0)
    monkeypatch.setattr(core, "SPLIT_NS", 0)
    monkeypatch.setattr(core, "_ONE_THREAD_NS", _AlwaysWorth())
    monkeypatch.setattr(core, "_blas_spins_until", 0.0)       # (no BLAS threads spinning)
    monkeypatch.setattr(core, "BLAS_SPIN_S", 0.0)
    ran = []
    blocks = core._ufunc_blocks

    def noting(ufunc, todo, taken, errors, watch):
        first = next(taken)         # (this thread's first block: noted, run here, then the rest)
        if first < len(todo):
            ran.append(threading.current_thread().name)
            args, out = todo[first]
            with np.errstate(**watch, call=lambda kind, flag: errors.append(kind)):
                ufunc(*args, out=out)
        return blocks(ufunc, todo, taken, errors, watch)
    monkeypatch.setattr(core, "_ufunc_blocks", noting)
    return ran


def _values(dtype):
    x = RNG.standard_normal(N).astype(dtype) * 3
    for step, v in ((97, np.inf), (89, -np.inf), (83, np.nan), (79, 0.0), (73, -0.0), (71, 1e-310)):
        x[::step] = v
    return x


def _ufuncs():
    for name in sorted(dir(np)):
        u = getattr(np, name)
        if type(u) is np.ufunc and u.nout == 1 and u.nin in (1, 2) and not u.signature:
            yield u


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_numpy_ufunc_gives_its_own_bits(split, dtype):
    x, y = _values(dtype), np.abs(_values(dtype))[::-1].copy()
    checked = 0
    with np.errstate(all="ignore"):
        for u in _ufuncs():
            for args in ([x], [x, y], [x, 1.5], [np.asarray(0.75, dtype), y]):
                if len(args) != u.nin:
                    continue
                try:
                    expected = u(*args)
                except TypeError:
                    continue
                if expected.dtype != dtype:
                    continue
                out = np.empty_like(expected)
                core._ufunc_into(u, args, out)
                assert out.tobytes() == expected.tobytes(), u.__name__
                checked += 1
    assert checked > 100
    out = np.empty_like(x)                      # np.clip: the registry's one non-ufunc
    core._ufunc_into(np.clip, [x, -1.0, y], out)
    assert out.tobytes() == np.clip(x, -1.0, y).tobytes()
    assert "MainThread" in split and any(name.startswith("numbad-worker") for name in split)


def test_a_two_dimensional_result(split):
    x = RNG.standard_normal((300, 257))
    out = np.empty_like(x)
    core._ufunc_into(np.tanh, [x], out)
    assert out.tobytes() == np.tanh(x).tobytes() and split


def test_vjp_gives_numpys_values_and_the_one_thread_gradient(split, monkeypatch):
    x = RNG.uniform(-2.0, 2.0, 70_001)           # (above tape.BIG: values written in place)

    def f(x):
        return np.sum(np.tanh(x) * np.sin(x) + np.exp(-x ** 2) + np.log1p(x ** 2))
    out, g = nb.vjp(f, x)
    assert split
    assert out.tobytes() == f(x).tobytes()
    with monkeypatch.context() as m:
        m.setattr(sweeps, "THREADS", 1)
        del split[:]
        out1, g1 = nb.vjp(f, x)
        assert not split
    assert out1.tobytes() == out.tobytes() and g1.tobytes() == g.tobytes()


def _warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [(w.category, str(w.message)) for w in caught]


def test_floating_point_errors_are_numpys(split):
    x = _values(np.float64)                     # zeros, negatives, infinities, NaNs
    out = np.empty_like(x)
    expected = _warnings(lambda: np.log(x))
    assert len(expected) == 2                   # divide by zero, invalid value
    assert _warnings(lambda: core._ufunc_into(np.log, [x], out)) == expected
    with np.errstate(all="ignore"):
        assert out.tobytes() == np.log(x).tobytes()
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError, match="divide by zero"):
            core._ufunc_into(np.log, [x], out)
    with np.errstate(all="ignore"):
        assert _warnings(lambda: core._ufunc_into(np.log, [x], out)) == []
    called = []
    with np.errstate(all="call", call=lambda kind, flag: called.append(kind)):
        core._ufunc_into(np.log, [x], out)
    assert sorted(called) == ["divide by zero", "invalid value"]

    def f(t):                                   # through vjp: numpy's warnings for the function
        return np.sum(np.log(t))
    expected = _warnings(lambda: f(x))
    assert (RuntimeWarning, "divide by zero encountered in log") in expected
    assert _warnings(lambda: nb.vjp(f, x)) == expected


def test_an_ignored_error_does_not_run_the_op_again(split):
    """Underflow, ignored by default, is not worth a second pass (``exp(-x**2)`` of wide x)."""
    x = np.linspace(-40.0, 40.0, N)
    calls = []

    def exp(*args, out):
        calls.append(out.size)
        return np.exp(*args, out=out)
    out = np.empty_like(x)
    with np.errstate(under="ignore"):
        core._ufunc_into(exp, [-x * x], out)
    assert sum(calls) == N and out.tobytes() == np.exp(-x * x).tobytes()
    del calls[:]
    with np.errstate(under="warn"):
        assert _warnings(lambda: core._ufunc_into(exp, [-x * x], out)) == [
            (RuntimeWarning, "underflow encountered in exp")]
    assert sum(calls) == 2 * N and calls[-1] == N          # (the blocks, then one call)


def test_a_worker_that_has_not_started_is_not_waited_for(split):
    """The caller takes every block and withdraws the worker's job."""
    release = threading.Event()
    busy = sweeps._worker().submit(release.wait, 30)
    rescue = threading.Timer(10, release.set)       # (in case the test fails: no hang)
    rescue.start()
    try:
        x = RNG.standard_normal(N)
        out = np.empty_like(x)
        start = time.perf_counter()
        core._ufunc_into(np.tanh, [x], out)
        assert time.perf_counter() - start < 5
        assert out.tobytes() == np.tanh(x).tobytes()
        assert set(split) == {"MainThread"}
    finally:
        rescue.cancel()
        release.set()
        busy.result()


def test_one_call_where_a_split_does_not_fit_or_pay(monkeypatch):
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "_ONE_THREAD_NS", {})
    monkeypatch.setattr(core, "_blas_spins_until", 0.0)
    submitted = count_worker_requests(monkeypatch)
    x = RNG.standard_normal((400, 300))
    out = np.empty_like(x)
    for _ in range(core._TIMED):                # the first calls are timed on one thread
        core._ufunc_into(np.exp, [x], out)
    assert submitted == [] and core._ONE_THREAD_NS[(np.exp, out.dtype)][1] == core._TIMED
    core._ONE_THREAD_NS[(np.exp, out.dtype)][0] = 50.0          # (as if on a slow machine)
    core._ufunc_into(np.exp, [x], out)
    assert submitted == [1] and out.tobytes() == np.exp(x).tobytes()
    core._ONE_THREAD_NS[(np.add, out.dtype)] = [50.0, core._TIMED]
    core._ufunc_into(np.add, [x, x[0]], out)                     # a broadcast row: one call
    assert submitted == [1] and out.tobytes() == (x + x[0]).tobytes()
    core._ufunc_into(np.add, [x, 2.5], out)                      # a number: split
    assert submitted == [1, 1] and out.tobytes() == (x + 2.5).tobytes()
    core._ufunc_into(np.add, [x, x.T.copy().T], out)             # not C-contiguous: one call
    assert submitted == [1, 1] and out.tobytes() == (x + x).tobytes()
    core._ONE_THREAD_NS[(np.multiply, out.dtype)] = [1e-3, core._TIMED]   # too cheap to split
    core._ufunc_into(np.multiply, [x, x], out)
    assert len(submitted) == 2 and out.tobytes() == (x * x).tobytes()
    monkeypatch.setattr(sweeps, "THREADS", 1)                   # NUMBAD_THREADS=1
    core._ufunc_into(np.exp, [x], out)
    assert len(submitted) == 2 and out.tobytes() == np.exp(x).tobytes()


def test_a_split_decided_on_slow_first_timings_is_timed_again(monkeypatch):
    # The first calls of a ufunc may write fresh memory (a new tape's arena) and so time its
    # page faults too; every _RETIME-th call is timed again on one thread, and the least
    # time decides: an op that does not pay for a split stops being split.
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "_ONE_THREAD_NS", {})
    monkeypatch.setattr(core, "_blas_spins_until", 0.0)
    monkeypatch.setattr(core, "SPLIT_NS", 10_000_000)     # (10 ms: far above an addition of 120,000)
    submitted = count_worker_requests(monkeypatch)
    x = RNG.standard_normal((400, 300))
    out = np.empty_like(x)
    timed = core._ONE_THREAD_NS[(np.add, out.dtype)] = [1000.0, core._TIMED]     # 1 µs an element
    split_calls = core._RETIME - core._TIMED - 1
    for _ in range(split_calls):
        core._ufunc_into(np.add, [x, x], out)
    assert len(submitted) == split_calls and timed == [1000.0, core._RETIME - 1]
    core._ufunc_into(np.add, [x, x], out)                       # timed on one thread
    assert len(submitted) == split_calls and timed[0] * x.size < core.SPLIT_NS
    for _ in range(3):
        core._ufunc_into(np.add, [x, x], out)
    assert len(submitted) == split_calls and timed[1] == core._RETIME + 3
    assert out.tobytes() == (x + x).tobytes()


def test_one_call_while_blas_threads_spin_after_a_large_matrix_product(monkeypatch):
    # numpy's BLAS threads spin for a while after a product they shared, and a second
    # thread of ours would compete with them for the cores
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "_TIMED", 0)
    monkeypatch.setattr(core, "SPLIT_NS", 0)
    monkeypatch.setattr(core, "_ONE_THREAD_NS", _AlwaysWorth())
    monkeypatch.setattr(core, "_blas_spins_until", 0.0)
    submitted = count_worker_requests(monkeypatch)
    a, w = RNG.standard_normal((300, 300)), RNG.standard_normal((300, 400)) / 20
    small = RNG.standard_normal((4, 4))
    v = RNG.standard_normal((300, 400))

    def f(a, w, s):
        return np.exp(a @ w) * np.sum(s @ s)
    out, g = nb.vjp(f, (a, w, small), v)
    assert submitted == [] and core._blas_spins_until > 0.0
    assert out.tobytes() == (np.exp(a @ w) * np.sum(small @ small)).tobytes()
    core._blas_spins_until = 0.0                  # (the spin is over)
    x, y = RNG.standard_normal((300, 400)), np.empty((300, 400))
    core._ufunc_into(np.exp, [x], y)
    assert submitted == [1] and y.tobytes() == np.exp(x).tobytes()
    nb.vjp(lambda s, x: np.exp(x) * np.sum(s @ s), (small, x), v)     # a small product: no spin
    assert core._blas_spins_until == 0.0 and len(submitted) >= 2
