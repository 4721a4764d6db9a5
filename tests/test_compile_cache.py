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
