"""``nb.vjp`` against PyTorch's vjp in alternating blocks of calls, for ratios on a noisy machine.

pytest-benchmark times all of one system's rounds, then all of the next one's. On a
shared machine whose speed changes for minutes at a time (one 2-core VM here ran PyTorch's
seed vjp in 35-40 µs for a while, then in 75-85 µs), the two can fall in different
states, and the ratio of their minima says more about the machine than about numbad. This
script alternates blocks of calls of the two in one process and reports each system's
minimum and median block, and the median of the ratios of neighbouring blocks (the
paired ratio), which both systems measured in the same state.

    python benchmarks/interleaved.py seed chain --blocks 60 --calls 1000

Workloads are those of ``workloads.py``; ``--calls`` is per block (fewer for the large ones).
"""
import argparse
import statistics
import time

import numpy as np

import numbad as nb
from workloads import WORKLOADS


def _block(f, calls):
    t = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - t) / calls


def measure(name, blocks, calls):
    """``(numbad block times, PyTorch block times)`` in seconds per call, alternating."""
    import torch
    torch.set_num_threads(2)
    from torch.autograd.functional import vjp as torch_vjp
    make, f, ft, _ = WORKLOADS[name]
    args, v = make(np.random.default_rng(0))
    targs = tuple(torch.tensor(a) for a in args)
    tv = torch.tensor(np.asarray(v, np.float64))
    systems = (lambda: nb.vjp(f, args, v), lambda: torch_vjp(ft, targs, tv))
    for run in systems:                          # warm up (the cache load, PyTorch's autograd)
        _block(run, max(1, calls // 4))
    times = ([], [])
    for _ in range(blocks):
        for run, acc in zip(systems, times):
            acc.append(_block(run, calls))
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", default=["seed"], choices=list(WORKLOADS), metavar="workload")
    p.add_argument("--blocks", type=int, default=60, help="blocks per system (default 60)")
    p.add_argument("--calls", type=int, default=1000, help="calls per block (default 1000)")
    args = p.parse_args()
    for name in args.names:
        ours, theirs = measure(name, args.blocks, args.calls)
        paired = statistics.median(a / b for a, b in zip(ours, theirs))
        print(f"{name}: numbad min {min(ours) * 1e6:.4g} µs, median {statistics.median(ours) * 1e6:.4g} µs; "
              f"PyTorch min {min(theirs) * 1e6:.4g} µs, median {statistics.median(theirs) * 1e6:.4g} µs; "
              f"ratio of minima {min(ours) / min(theirs):.3f}, of medians "
              f"{statistics.median(ours) / statistics.median(theirs):.3f}, paired {paired:.3f}")


if __name__ == "__main__":
    main()
