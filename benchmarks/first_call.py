"""First-call latency of ``nb.vjp`` in a fresh process, with a warm and a cold Numba cache.

Each measurement runs ``python -c "import numbad as nb; nb.vjp(...)"`` as a new
process and reports its wall time (import, cache load or compilation, the
call). The cold runs point ``NUMBA_CACHE_DIR`` at an empty directory; the warm
runs use a directory filled by a first run. PyTorch's ``import torch`` plus
one ``vjp`` is measured the same way for orientation.
Run: ``python benchmarks/first_call.py [--cold-runs 1] [--warm-runs 5]``.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

NUMBAD = ("import numpy as np, numbad as nb; "
          "nb.vjp(lambda x: np.sum(np.sin(x) * x), np.ones(3))")
TORCH = ("import torch; torch.autograd.functional.vjp(lambda x: torch.sum(torch.sin(x) * x), "
         "torch.ones(3))")


def run(code, env):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cold-runs", type=int, default=1)
    p.add_argument("--warm-runs", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as warm_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=warm_dir)
        cold = []
        for _ in range(args.cold_runs):
            with tempfile.TemporaryDirectory() as cold_dir:
                cold.append(run(NUMBAD, dict(os.environ, NUMBA_CACHE_DIR=cold_dir)))
        run(NUMBAD, env)                                   # fill the warm cache
        warm = [run(NUMBAD, env) for _ in range(args.warm_runs)]
    print(f"numbad first call, warm cache: min {min(warm):.3f} s  median {sorted(warm)[len(warm) // 2]:.3f} s")
    if cold:
        print(f"numbad first call, cold cache: {min(cold):.1f} s")
    try:
        import torch  # noqa: F401
        t = [run(TORCH, dict(os.environ)) for _ in range(3)]
        print(f"PyTorch import + first vjp:    min {min(t):.3f} s")
    except ImportError:
        print("PyTorch not installed: skipped")


if __name__ == "__main__":
    main()
