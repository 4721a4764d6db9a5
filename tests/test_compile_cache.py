"""``python -m numbad.compile_cache``: every interpreter it reaches compiles (or loads) in both dtypes."""
import subprocess
import sys

import pytest

from numbad import compile_cache


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


def test_generated_byte_code_is_kept_under_dont_write_bytecode(tmp_path, monkeypatch):
    import importlib.util
    import types

    from numbad import sweeps
    source = tmp_path / "generated_like.py"
    source.write_text("X = 1\n")
    module = types.SimpleNamespace(__file__=str(source))
    cached = importlib.util.cache_from_source(str(source))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    sweeps._keep_bytecode(module)
    assert not (tmp_path / "__pycache__").exists()      # Python writes it itself then
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    sweeps._keep_bytecode(module)
    with open(cached, "rb") as f:
        assert f.read(4) == importlib.util.MAGIC_NUMBER
