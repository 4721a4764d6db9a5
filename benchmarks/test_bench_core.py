"""Issue 2: ``nb.vjp`` against ``torch.autograd.functional.vjp`` and the plain numpy forward.

Each workload is one pytest-benchmark group with three members: numbad's vjp,
PyTorch's vjp (2 threads) and numpy evaluating the function once. Beyond the
issue's list, ``stencil`` follows the cost of slicing small arrays.
"""
import numpy as np
import pytest

import numbad as nb
from workloads import WORKLOADS

NAMES = ["seed", "chain", "lorenz", "elementwise_1e6", "elementwise_1e7", "rosenbrock_1e6", "mlp", "stencil"]


def _setup(name):
    make, fnp, ft, _ = WORKLOADS[name]
    args, v = make(np.random.default_rng(0))
    return args, v, fnp, ft


@pytest.mark.parametrize("name", NAMES)
def test_numbad_vjp(benchmark, name):
    args, v, f, _ = _setup(name)
    benchmark.group = name
    nb.vjp(f, args, v)                     # compile (or load) the sweeps outside the timing
    benchmark(nb.vjp, f, args, v)


@pytest.mark.parametrize("name", NAMES)
def test_torch_vjp(benchmark, torch, name):
    args, v, _, ft = _setup(name)
    benchmark.group = name
    targs = tuple(torch.tensor(a) for a in args)
    tv = torch.tensor(np.asarray(v, np.float64))
    # warm up, as for numbad: the very first call initialises PyTorch's autograd and would
    # make pytest-benchmark's calibration settle on a handful of rounds
    torch.autograd.functional.vjp(ft, targs, tv)
    benchmark(torch.autograd.functional.vjp, ft, targs, tv)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_forward(benchmark, name):
    args, v, f, _ = _setup(name)
    benchmark.group = name
    benchmark(f, *args)
