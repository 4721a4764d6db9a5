"""``jax.jit(jax.vjp)`` of the Lorenz loop written as plain Python (unrolled by tracing).

XLA fuses the unrolled steps into one expression; this prints compile + first
run and steady-state run time for growing step counts, stopping once one
compile takes longer than ``--budget`` seconds (1,000 steps never finishes).
Run: ``python benchmarks/jax_lorenz_jit.py``.
"""
import argparse
import time

import jax
import numpy as np

from workloads import lorenz

jax.config.update("jax_enable_x64", True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=20.0)
    args = p.parse_args()
    x0 = tuple(np.float64(v) for v in (1.0, 1.0, 1.0, 10.0, 28.0, 8 / 3))
    for steps in (1, 2, 4, 6, 8, 10, 11, 12, 13, 14, 15, 16):
        def f(*s):
            return lorenz(*s, steps=steps)
        g = jax.jit(lambda *s: jax.vjp(f, *s)[1](1.0))
        t0 = time.perf_counter()
        jax.block_until_ready(g(*x0))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(10):
            jax.block_until_ready(g(*x0))
        run = (time.perf_counter() - t0) / 10
        print(f"steps {steps:3d}: compile+first {first:8.3f} s   run {run * 1e3:10.3f} ms", flush=True)
        if first > args.budget:
            print(f"stopping: one compile took over {args.budget} s")
            break


if __name__ == "__main__":
    main()
