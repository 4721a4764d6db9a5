"""``python -m numbad``: the seed examples, a self-check, and the hardware in use."""
from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np


def _seed_examples(nb):
    print("The torch.autograd.functional.vjp examples, on numpy arrays")
    print("-----------------------------------------------------------")
    rng = np.random.default_rng(0)

    def exp_reducer(x):
        return x.exp().sum(dim=1)

    inputs = rng.random((4, 4))
    v = np.ones(4)
    print(">>> def exp_reducer(x):\n...     return x.exp().sum(dim=1)")
    print(">>> inputs = np.random.rand(4, 4)\n>>> v = np.ones(4)")
    print(">>> nb.vjp(exp_reducer, inputs, v)")
    print(nb.vjp(exp_reducer, inputs, v))
    print(">>> nb.vjp(exp_reducer, inputs, v, create_graph=True)")
    print(nb.vjp(exp_reducer, inputs, v, create_graph=True))

    def adder(x, y):
        return 2 * x + 3 * y

    inputs = (rng.random(2), rng.random(2))
    v = np.ones(2)
    print(">>> def adder(x, y):\n...     return 2 * x + 3 * y")
    print(">>> inputs = (np.random.rand(2), np.random.rand(2))\n>>> v = np.ones(2)")
    print(">>> nb.vjp(adder, inputs, v)")
    print(nb.vjp(adder, inputs, v))
    print()


def _self_check(nb):
    """A few derivatives against central finite differences; returns True when all agree."""
    print("Self-check against central finite differences")
    print("---------------------------------------------")
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 5))
    cases = [
        ("elementwise chain", lambda x: np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2)), (5,)),
        ("matmul + tanh", lambda x: np.sum(np.tanh(W @ x) * x), (5,)),
        ("reductions + indexing", lambda x: np.mean(x[1:] * x[:-1]) + np.maximum(x[0], x[2]) ** 2, (5,)),
        ("broadcast + where", lambda x: np.sum(np.where(x > 0, x, 0.1 * x) * x[:, None]), (5,)),
    ]
    ok = True
    for name, f, shape in cases:
        x = rng.standard_normal(shape)
        _, g = nb.vjp(f, x)
        fd = np.zeros_like(x)
        for i in range(x.size):
            h = 1e-6 * max(1.0, abs(x[i]))
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            fd[i] = (f(xp) - f(xm)) / (2 * h)
        err = np.max(np.abs(g - fd)) / max(1.0, np.max(np.abs(fd)))
        good = err < 1e-6
        ok &= good
        print(f"  {name:<24} max relative error {err:.1e}  {'ok' if good else 'FAILED'}")
    print()
    return ok


def _hardware():
    import numba
    print("Hardware and versions")
    print("---------------------")
    print(f"  CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    try:
        from numba import cuda
        gpus = [d.name.decode() if isinstance(d.name, bytes) else d.name for d in cuda.list_devices()] \
            if cuda.is_available() else []
    except Exception:           # no CUDA toolkit at all: the CPU is what runs
        gpus = []
    print(f"  GPU: {', '.join(gpus) if gpus else 'none (sweeps run on the CPU)'}")
    print()


def main():
    t0 = time.perf_counter()
    import numbad as nb
    np.set_printoptions(precision=4, suppress=True)
    _seed_examples(nb)
    ok = _self_check(nb)
    _hardware()
    from numbad import sweeps
    how = (f"{sweeps.compiled} interpreter signatures compiled into Numba's cache first"
           if sweeps.compiled else "interpreters loaded from Numba's cache")
    print(f"numbad {nb.__version__}: {'all checks passed' if ok else 'SELF-CHECK FAILED'} "
          f"in {time.perf_counter() - t0:.2f} s ({how})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
