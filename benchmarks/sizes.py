"""``nb.vjp``, ``tape.vjp`` and PyTorch's vjp across array sizes, for the workloads of one size.

The benchmark suite measures the large elementwise workloads at 10^6 and 10^7 elements;
scientific code also runs them at every size in between. This script times each system
on the Rosenbrock sum and the elementwise sum of ``workloads.py`` from 10 to 10^6
elements, in one process, and prints the ratios to PyTorch (medians of as many calls as
``--seconds`` allows, per size and system).

    python benchmarks/sizes.py [--seconds 0.4] [--sizes 10 1000 100000]
"""
import argparse
import statistics
import time

import numpy as np

import numbad as nb
from workloads import WORKLOADS

SIZES = [10, 100, 1000, 10 ** 4, 3 * 10 ** 4, 10 ** 5, 3 * 10 ** 5, 10 ** 6]


def median_time(f, seconds):
    f()
    f()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=0.4, help="per size and system (default 0.4)")
    p.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    from torch.autograd.functional import vjp as torch_vjp
    for name in ("rosenbrock_1e6", "elementwise_1e6"):
        _, f, ft, _ = WORKLOADS[name]
        print(f"{name.split('_')[0]}: median µs (ratio to PyTorch)")
        for n in args.sizes:
            x = np.random.default_rng(0).uniform(-1.0, 1.0, n)
            xt = torch.tensor(x)
            tape = nb.record(f, x)
            ours = median_time(lambda: nb.vjp(f, x), args.seconds)
            replay = median_time(lambda: tape.vjp(x, 1.0), args.seconds)
            theirs = median_time(lambda: torch_vjp(ft, xt), args.seconds)
            forward = median_time(lambda: f(x), args.seconds)
            print(f"  n = {n:>8}: nb.vjp {ours * 1e6:9.1f} ({ours / theirs:.2f})  "
                  f"tape.vjp {replay * 1e6:9.1f} ({replay / theirs:.2f})  "
                  f"PyTorch {theirs * 1e6:9.1f}  numpy forward {forward * 1e6:9.1f}", flush=True)


if __name__ == "__main__":
    main()
