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

