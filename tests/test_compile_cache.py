"""``python -m numbad.compile_cache``: every interpreter it reaches compiles (or loads) in both dtypes."""
import os
import re
import subprocess
import sys

import pytest

from numbad import compile_cache, sweeps

#: the class of a library loaded from the cache by numbad (see sweeps._lean_library)
_LIBRARY = "JITCodeLibrary" if sweeps._lean_library() is None else "LeanLibrary"


def test_compile_cache_runs_both_dtypes():
    done = subprocess.run([sys.executable, "-m", "numbad.compile_cache"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for dtype in compile_cache.DTYPES:
        assert f"numbad: {dtype} interpreters compiled or loaded" in done.stdout
    assert "interpreters ready in Numba's cache" in done.stdout


def test_the_split_compile_makes_the_signatures_the_workloads_use():
    # With --jobs above two, each interpreter (and then each entry point) compiles in a process
    # of its own, from signatures made from its parameters' names: they must be the ones the
    # workloads compile, or the workloads would compile the interpreters again, one by one.
    # Every interpreter's signature is in its cache index; the entry points' are the ones
    # Python called in the workloads (from the cache), and Python called no other njit function
    # of numbad's but interpreters, with the signatures made here.
    code = ("import json\n"
            "from numbad import compile_cache as cc\n"
            "from numbad.sweeps import deferred, _generated as G\n"
            "for d in cc.DTYPES: cc._workload(d)\n"
            "called = {s.py_func.__name__: sorted(map(str, s._dispatcher.signatures)) for s in deferred._stand_ins\n"
            "          if s._dispatcher is not None and s._dispatcher.signatures}\n"
            "made = {}\n"
            "for n, lits in cc.SPLIT.items():\n"
            "    keys = {k[0] for k in getattr(G, n)._cache._cache_file._load_index()}\n"
            "    for d in cc.DTYPES:\n"
            "        for lit in lits:\n"
            "            sig = cc.signature(n, d, lit)\n"
            "            made[f'{n} {d} {lit}'] = (sig in keys, str(sig))\n"
            "for n in cc.ENTRY_POINTS:\n"
            "    for d in cc.DTYPES:\n"
            "        made[f'{n} {d}'] = (None, str(cc.signature(n, d)))\n"
            "print(json.dumps([called, made]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import json
    called, made = json.loads(done.stdout)
    assert all(cached for cached, _ in made.values() if cached is not None), made
    assert set(compile_cache.ENTRY_POINTS) <= set(called) <= set(compile_cache.ENTRY_POINTS) | {
        n for n, lits in compile_cache.SPLIT.items() if False in lits}
    for name, sigs in called.items():
        assert sigs == sorted({made[f"{name} {d}" if name in compile_cache.ENTRY_POINTS else f"{name} {d} False"][1]
                               for d in compile_cache.DTYPES}), name       # (a set: mark_varying has one)


def test_more_jobs_than_dtypes_compile_interpreter_by_interpreter(monkeypatch):
    runs = []
    monkeypatch.setattr(compile_cache, "_run", lambda args, what, quiet: runs.append(args))
    compile_cache.compile_all(jobs=3, quiet=True)
    parts = [tuple(a[1:]) for a in runs if a[0] == "--interpreter"]
    assert ("reverse_batch", "float32", "True") in parts and ("reverse", "float64", "False") in parts
    assert len(parts) == len(set(parts)) == 2 * (sum(map(len, compile_cache.SPLIT.values()))
                                                 + len(compile_cache.ENTRY_POINTS))
    first_entry = min(i for i, a in enumerate(runs) if a[1] in compile_cache.ENTRY_POINTS)
    assert all(a[1] in compile_cache.SPLIT for a in runs[:first_entry])      # the interpreters first
    assert sorted(map(tuple, runs[-2:])) == [("--only", "float32"), ("--only", "float64")]
    runs.clear()
    compile_cache.compile_all(jobs=2, quiet=True)
    assert sorted(map(tuple, runs)) == [("--only", "float32"), ("--only", "float64")]


def test_the_default_jobs_are_the_cores_within_the_memory(monkeypatch):
    monkeypatch.setattr(compile_cache.os, "cpu_count", lambda: 16)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": (8 << 30) // 4096}       # 8 GiB
    monkeypatch.setattr(compile_cache.os, "sysconf", lambda name: pages[name])
    assert compile_cache.default_jobs() == 5
    pages["SC_PHYS_PAGES"] = (64 << 30) // 4096
    assert compile_cache.default_jobs() == 16
    pages["SC_PHYS_PAGES"] = 1
    assert compile_cache.default_jobs() == 1


def test_a_failing_workload_names_its_dtype(monkeypatch):
    def fails(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "boom")
    monkeypatch.setattr(compile_cache.subprocess, "run", fails)
    with pytest.raises(RuntimeError, match="compiling numbad's float64 interpreters failed:\nboom"):
        compile_cache.compile_all(jobs=1, quiet=True)


def test_byte_code_is_kept_under_dont_write_bytecode(tmp_path, monkeypatch):
    import importlib.util

    from numbad import sweeps
    source = tmp_path / "generated_like.py"
    source.write_text("X = 1\n")
    cached = importlib.util.cache_from_source(str(source))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    sweeps._keep_bytecode([str(source)])
    assert not (tmp_path / "__pycache__").exists()      # Python writes it itself then
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    sweeps._keep_bytecode([str(source)])
    with open(cached, "rb") as f:
        assert f.read(4) == importlib.util.MAGIC_NUMBER


def test_byte_code_is_kept_for_every_imported_numbad_module_by_default(monkeypatch):
    from numbad import sweeps
    sweeps.interpreters()           # imports the generated module
    compiled = []
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sweeps.os.path, "getmtime", lambda path: 0.0 if path.endswith(".py") else -1.0)
    monkeypatch.setattr(sweeps.py_compile, "compile", lambda source, **kw: compiled.append(source))
    sweeps._keep_bytecode()
    names = {os.path.relpath(p, os.path.dirname(sweeps.__file__)) for p in compiled}
    assert {"_generated.py", "__init__.py", os.path.join("..", "tensor", "core.py")} <= names


def test_cached_interpreters_load_without_refreshing_numbas_context():
    # A warm first call skips Numba's full context refresh (all typing and
    # lowering registries); the cached reverse interpreter still gives the
    # right cotangent (a small vjp: reverse_inputs). The first process fills the
    # cache if it is cold.
    code = ("import numpy as np, numbad as nb, numba.core.cpu as cpu\n"
            "calls = []\n"
            "original = cpu.CPUContext.refresh\n"
            "cpu.CPUContext.refresh = lambda self: (calls.append(1), original(self))[1]\n"
            "out, (g,) = nb.vjp(lambda x: np.sum(np.sin(x) * x), (np.ones(3),))\n"
            "assert np.allclose(g, np.sin(1.0) + np.cos(1.0)), g\n"
            "from numbad import sweeps\n"
            "lib = sweeps._G.reverse_inputs.overloads[sweeps._G.reverse_inputs.signatures[0]].library\n"
            "import sys, numba.core.entrypoints as ep\n"
            "print(len(calls), type(lib).__name__, 'numpy.ma' in sys.modules, ep._already_initialized,\n"
            "      'numba.np.arrayobj' in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    # (nor Numba's generic typeof, which imports numpy.ma, nor its extension entry points,
    # nor, on a lean load, the modules of the environments it unpickles)
    lean = _LIBRARY == "LeanLibrary"
    assert done.stdout.split() == ["0", _LIBRARY, "False", "False", str(not lean)]


def test_a_cached_library_loads_without_its_bitcode_and_still_links(tmp_path):
    # A lean load (sweeps._lean_library) leaves the bitcode unparsed; a function
    # compiled later that calls the loaded one links it in, parsing it then.
    (tmp_path / "lean_module.py").write_text(
        "from numba import njit\n"
        "@njit(cache=True)\n"
        "def f(x):\n"
        "    return 3.0 * x + 1.0\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import lean_module as m\n"
            "from numba import njit\n"
            "from numbad import sweeps\n"
            "sweeps._load_caches_lightly(m)\n"
            "import numpy as np, numba, numba.core.entrypoints as ep\n"
            "assert m.f(2.0) == 7.0 and (m.f(np.ones((2, 3))[:, ::2]) == 4.0).all()\n"
            "print(ep._already_initialized)\n"
            "assert m.f.signatures[1] == (numba.typeof(np.ones((2, 3))[:, ::2]),), m.f.signatures\n"
            "lib = m.f.overloads[m.f.signatures[0]].library\n"
            "print(type(lib).__name__, getattr(lib, '_bitcode', None) is not None, lib._shared_module is None)\n"
            "g = njit(lambda x: m.f(x) - 1.0)\n"
            "assert g(2.0) == 6.0\n"
            "print(lib._shared_module is not None, sweeps.compiled)\n")
    first = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr          # (compiles f and caches it)
    assert first.stdout.split()[0] == "True"            # (a miss: extensions initialised first)
    assert first.stdout.split()[-1] == "2"              # (f's two signatures, counted as compiled)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if _LIBRARY == "LeanLibrary":
        assert done.stdout.split() == ["False", "LeanLibrary", "True", "True", "True", "0"]
    else:                                               # (a Numba it is not checked against)
        assert done.stdout.split() == ["False", "JITCodeLibrary", "False", "False", "True", "0"]


def test_the_nrt_library_loads_from_its_file_and_a_bad_file_is_compiled_again(tmp_path):
    # Numba compiles its NRT functions in every process; a lean load reads them from a
    # file beside the cache instead, and compiles (and rewrites) a file it cannot read.
    (tmp_path / "nrt_module.py").write_text(
        "from numba import njit\n"
        "@njit(cache=True)\n"
        "def f(x):\n"
        "    return (3.0 * x + 1.0).sum()\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import nrt_module as m\n"
            "from numbad import sweeps\n"
            "sweeps._load_caches_lightly(m)\n"
            "import numpy as np\n"
            "from numba.core.runtime import rtsys\n"
            "assert m.f(np.ones(4)) == 16.0\n"
            "lib = rtsys.library\n"
            "print(type(lib).__name__, getattr(lib, '_bitcode', None) is not None,\n"
            "      'numba.np.arrayobj' in sys.modules)\n")

    def run():
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    run()                                               # (compiles f and the NRT; writes both)
    if _LIBRARY != "LeanLibrary":                       # (a Numba it is not checked against)
        assert run()[:2] == ["JITCodeLibrary", "False"]
        return
    files = list((tmp_path / "__pycache__").glob("numbad-nrt.*.nbc"))
    assert len(files) == 1
    # loaded from the file (its bitcode kept unparsed), and no environment imported the
    # array implementation module
    assert run() == ["LeanLibrary", "True", "False"]
    files[0].write_bytes(b"not a pickle")
    assert run() == ["LeanLibrary", "False", "False"]   # compiled, as Numba would
    assert run() == ["LeanLibrary", "True", "False"]    # and the file written again


def test_the_main_job_passes_and_says_whether_it_compiled():
    done = subprocess.run([sys.executable, "-m", "numbad"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"numbad \S+: all checks passed in [0-9.]+ s \((\d+ interpreter signatures "
                        r"compiled into Numba's cache first|interpreters loaded from Numba's cache)\)",
                        last), last
    again = subprocess.run([sys.executable, "-m", "numbad"], capture_output=True, text=True)
    assert again.stdout.strip().endswith("(interpreters loaded from Numba's cache)"), again.stdout[-300:]

