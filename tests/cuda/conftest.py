"""The CUDA tests: every kernel against the CPU sweeps, in their own pytest process.

Run them under Numba's CUDA simulator on any machine::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda

or, on a machine with an NVIDIA GPU, without the variable (real kernels). In
the main test process (no simulator, no GPU) they skip, saying so; the
simulator must be chosen before numba is first imported, which is why they
need a process of their own.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))      # tests/helpers.py


def _cuda_reason():
    from numba.core import config
    if config.ENABLE_CUDASIM:
        return None
    from numba import cuda
    if cuda.is_available():
        return None
    return ("CUDA tests need a GPU or Numba's simulator: run "
            "`NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda` (they run there)")


_REASON = _cuda_reason()


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=_REASON))
