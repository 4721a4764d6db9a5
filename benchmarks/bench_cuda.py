"""Issue 5's GPU benchmark: numbad's CUDA kernels against numbad's own CPU sweeps.

1. ``elementwise``: the vjp of ``sum(sin(x) * exp(-x**2) + log1p(x**2))`` over
   1e7 elements, replayed from a recorded tape: ``tape.vjp(x)`` on the CPU
   against ``tape.to("cuda").vjp(x)``, with the input and gradient crossing
   PCIe (numpy in, numpy out: the headline figure) and device-resident
   (``to_host=False`` on a device input). Target: >= 10x.
2. ``lorenz``: ``tape.batch_vjp`` of the Lorenz tape (1,000 Euler steps) over
   100,000 initial conditions, on the CPU restricted to two cores (the
   development machines' size) against the GPU. Target: >= 50x.

Run ``python benchmarks/bench_cuda.py [--out FILE] [--quick]`` on a machine with
an NVIDIA GPU (``benchmarks/gpu_check.sh`` does, after the CUDA tests). Times
are medians of repeated runs after a warm-up (compilation excluded and
reported apart). ``--quick`` shrinks both workloads (a smoke test, e.g. under
the simulator).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import numbad as nb  # noqa: E402
from workloads import elementwise_np, lorenz, lorenz_inputs  # noqa: E402


def timed(fn, repeat, sync=None):
    """Median wall time of ``repeat`` calls (``sync`` waits for the GPU after each)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def two_cores():
    """Restrict this process (and numbad's ensemble threads) to two cores, as on the dev machines."""
    try:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    except (AttributeError, OSError):
        pass
    os.cpu_count = lambda: 2          # numbad sizes its thread pool with os.cpu_count()


def bench_elementwise(n, repeat):
    from numba import cuda
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n)
    tape = nb.record(elementwise_np, x)
    tape.vjp(x)
    cpu = timed(lambda: tape.vjp(x), repeat)
    out, g = tape.vjp(x)
    dev = tape.to("cuda")
    t0 = time.perf_counter()
    d_out, d_g = dev.vjp(x)
    first = time.perf_counter() - t0
    gpu_host = timed(lambda: dev.vjp(x), repeat, cuda.synchronize)
    dx = cuda.to_device(x)
    dev.vjp(dx, to_host=False)
    gpu_dev = timed(lambda: dev.vjp(dx, to_host=False), repeat, cuda.synchronize)
    eager_cpu = timed(lambda: nb.vjp(elementwise_np, x), max(1, repeat // 2))
    eager_gpu = timed(lambda: nb.vjp(elementwise_np, x, device="cuda"), max(1, repeat // 2), cuda.synchronize)
    return dict(
        workload=f"elementwise vjp, n={n}", cpu_tape_vjp_s=cpu, gpu_tape_vjp_host_s=gpu_host,
        gpu_tape_vjp_device_s=gpu_dev, gpu_first_call_s=first,
        speedup_host=cpu / gpu_host, speedup_device=cpu / gpu_dev, target=10.0,
        met=cpu / gpu_host >= 10.0, rel_err_value=rel_err(d_out, out), rel_err_grad=rel_err(d_g, g),
        eager_nb_vjp_cpu_s=eager_cpu, eager_nb_vjp_cuda_s=eager_gpu)


def bench_lorenz(B, steps, repeat):
    from numba import cuda
    args, _ = lorenz_inputs(np.random.default_rng(0))
    tape = nb.record(lambda *a: lorenz(*a, steps=steps), args)
    rng = np.random.default_rng(1)
    X = tuple(np.full(B, float(a)) + (0.1 * rng.standard_normal(B) if i < 3 else 0.0)
              for i, a in enumerate(args))
    V = np.ones(B)
    small = tuple(x[:256] for x in X)
    tape.batch_vjp(small, V[:256])
    t0 = time.perf_counter()
    cpu_out, cpu_g = tape.batch_vjp(X, V)
    cpu = time.perf_counter() - t0                   # once: it is the long one
    t0 = time.perf_counter()
    tape.batch_vjp(small, V[:256], device="cuda")
    first = time.perf_counter() - t0
    gpu = timed(lambda: tape.batch_vjp(X, V, device="cuda"), repeat, cuda.synchronize)
    out, g = tape.batch_vjp(X, V, device="cuda")
    return dict(
        workload=f"Lorenz batch_vjp, {steps} steps, {tape.branches[0].ops.shape[0]} ops, B={B}",
        cpu_batch_vjp_2_cores_s=cpu, gpu_batch_vjp_s=gpu, gpu_first_call_s=first,
        speedup=cpu / gpu, target=50.0, met=cpu / gpu >= 50.0,
        rel_err_value=rel_err(out, cpu_out), rel_err_grad=max(rel_err(a, b) for a, b in zip(g, cpu_g)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="append the results (JSON lines) to this file")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--repeat", type=int, default=5)
    opts = ap.parse_args()
    two_cores()
    from numba import cuda
    from numba.core import config
    if config.ENABLE_CUDASIM:
        device = "Numba CUDA simulator"
    else:
        d = cuda.get_current_device()
        device = f"{d.name.decode() if isinstance(d.name, bytes) else d.name} (cc {d.compute_capability})"
    from numbad.cuda.runtime import _gemm_backend
    import numba
    info = dict(device=device, python=platform.python_version(), numba=numba.__version__,
                numba_cuda_module=cuda.__file__, gemm=_gemm_backend(), cpu_cores_used=2)
    print(json.dumps(info))
    n, B, steps = (2000, 64, 20) if opts.quick else (10 ** 7, 100_000, 1000)
    results = [info]
    for fn, a in ((bench_elementwise, (n, opts.repeat)), (bench_lorenz, (B, steps, max(1, opts.repeat // 2)))):
        r = fn(*a)
        results.append(r)
        print(json.dumps(r))
    if opts.out:
        with open(opts.out, "a") as fh:
            for r in results:
                fh.write(json.dumps(r) + "\n")
    if not opts.quick:
        summary = " | ".join(f"{r['workload']}: {r.get('speedup', r.get('speedup_host')):.1f}x "
                             f"({'met' if r['met'] else 'NOT met'}, target {r['target']:.0f}x)"
                             for r in results[1:])
        print("SUMMARY", summary)


if __name__ == "__main__":
    main()
