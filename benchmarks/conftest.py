"""Shared set-up for the pytest-benchmark suites (run: ``python -m pytest benchmarks/``).

Peers (PyTorch, JAX, HIPS autograd) are optional: a benchmark whose peer is
not installed is skipped. PyTorch runs with 2 threads, like this machine's
cores. Compare ratios within one run, not absolute times across runs.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def peer(name):
    """Import an optional peer, skipping the benchmark when it is absent."""
    return pytest.importorskip(name)


@pytest.fixture(scope="session")
def torch():
    t = peer("torch")
    t.set_num_threads(2)
    return t
