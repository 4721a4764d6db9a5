"""The CUDA page's snippets run, here under Numba's CUDA simulator (or on a GPU).

The simulator interprets every GPU thread in Python, so the page's sizes are
scaled down (each substitution must match the page, so the page cannot drift
away from what runs here).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))      # tests/docs_snippets.py

from docs_snippets import DOCS, run_page  # noqa: E402

SMALLER = {"10_000_000": "2_000", "steps=1000": "steps=4", "B = 100_000": "B = 64"}


def test_cuda_page_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_page(DOCS / "cuda.md", substitutions=SMALLER)
