"""Per-op sweep cost over the whole registry, and first-call latency in a fresh process.

Run as a script (figures for the notes)::

    python benchmarks/bench_ops.py ops          # ns per op, reverse sweep and forward replay
    python benchmarks/bench_ops.py latency      # first call in a fresh process, warm and cold cache
    python benchmarks/bench_ops.py latency --root /path/to/other/checkout

or through pytest-benchmark (``pytest benchmarks/bench_ops.py``) for the
reverse sweep of a few representative ops.

Per-op cost: one instance of the op is recorded on one-element nodes (the
cost scalar-heavy code pays), its op row is repeated ``N`` times, and the njit
interpreter sweeps those rows; the time divided by ``N`` is the cost of one
op: the dispatch to its branch plus its rule on one element.
"""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
N = 20000


def scalar_cases():
    """op name -> (function of one-element Tensors, example inputs): records the op once."""
    from numbad.ops import OPS
    import numbad as nb

    cases = {}
    for op in OPS.values():
        if op.kind in ("elementwise", "nondiff"):
            mids = [np.array([0.5 * (lo + hi)]) for lo, hi in op.domain]
            if op.name == "where":
                cases[op.name] = (lambda a, b: np.where(np.array([True]), a, b), mids[1:])
            elif op.name == "clip":
                cases[op.name] = (lambda a: np.clip(a, -0.5, 0.5), mids[:1])
            elif op.name == "round_decimals":
                cases[op.name] = (lambda a: np.round(a, 1), mids[:1])
            elif op.name == "polygamma":
                cases[op.name] = (lambda a: nb.special.polygamma(1, a), mids[1:])
            elif op.name == "stop_gradient":
                from numbad.tensor.core import stop_gradient
                cases[op.name] = (stop_gradient, mids)
            elif op.name == "sqrt_subgrad":
                from numbad.tensor.linalg import sqrt_subgrad
                cases[op.name] = (sqrt_subgrad, mids)
            elif op.ufunc is not None:
                cases[op.name] = ((lambda uf: lambda *a: uf(*a))(op.ufunc), mids)
            else:
                cases[op.name] = ((lambda f: lambda a: f(a))(getattr(nb.special, op.name)), mids)
    one = [np.array([0.7])]
    two = [np.array([0.7]), np.array([1.3])]
    mat = [np.array([[2.0]])]
    structural = {
        "copy": (lambda a: a.reshape(1, 1), one),
        "gather": (lambda a: a[0], one),
        "scatter": (lambda a: a.sum(), one),
        "take": (lambda a: a[np.array([0])], one),
        "put_add": (lambda a: _put_add(a), one),
        "matmul": (lambda a, b: a.reshape(1, 1) @ b.reshape(1, 1), two),
        "assemble": (lambda a, b: _assemble(a, b), two),
        "amax": (lambda a: np.amax(a, axis=0), one),
        "amin": (lambda a: np.amin(a, axis=0), one),
        "cumsum": (lambda a: np.cumsum(a), one),
        "cumsum_reverse": (lambda a: _reverse_cumsum(a), one),
        "cumprod": (lambda a: np.cumprod(a), one),
        "argmax": (lambda a: np.argmax(a, axis=0), one),
        "argmin": (lambda a: np.argmin(a, axis=0), one),
        "argsort": (lambda a: np.argsort(a), one),
        "take_along": (lambda a: np.sort(a), one),
        "put_along": (lambda a: _put_along(a), one),
        "assign": (lambda a: _assign(a), one),
        "solve": (lambda a, b: np.linalg.solve(a, b), [mat[0], np.array([[1.0]])]),
        "logabsdet": (lambda a: np.linalg.slogdet(a)[1], mat),
        "det_sign": (lambda a: np.linalg.slogdet(a)[0], mat),
        "cholesky": (lambda a: np.linalg.cholesky(a), mat),
        "eigh": (lambda a: np.linalg.eigh(a)[0], mat),
        "svd": (lambda a: np.linalg.svd(a)[1], mat),
    }
    for name, case in structural.items():
        if name in OPS:
            cases[name] = case
    return cases


def _put_add(a):
    from numbad.tensor.backward import put_add_by_index
    t = a[np.array([0])]
    return put_add_by_index(t, t._tape.ops[-1], (1,))


def _assemble(a, b):
    from numbad.tensor import core
    return core.assemble([(a, (1,), 0), (b, (1,), 1)], np.concatenate([a.detach(), b.detach()]))


def _reverse_cumsum(a):
    from numbad.tensor import reductions
    return reductions.cumsum_reverse(a, 0)


def _put_along(a):
    from numbad.tensor.backward import put_along_by_index
    t = np.sort(a)
    return put_along_by_index(t, t._tape.ops[-4], t._tape.ops[-1], (1,))


def _assign(a):
    out = np.zeros_like(a)
    out[0] = a[0]
    return out


def repeated_sweeps(name, n=N):
    """``(reverse, forward)``: callables running the njit interpreters over ``n`` copies of the
    op row that ``name``'s scalar case records (reverse is None for non-differentiable ops)."""
    import numbad as nb  # noqa: F401  (fills the registry)
    from numbad import sweeps
    from numbad.functional._common import Call
    from numbad.ops import OPS

    g = sweeps.interpreters()
    ws = sweeps.workspace()
    op = OPS[name]
    f, args = scalar_cases()[name]
    call = Call(tuple(args), False)
    call.run(f)
    ops, off, size, ip, vals = call.tape.arrays()
    rows = [k for k in range(ops.shape[0]) if ops[k, 0] == op.code]
    if not rows:
        raise RuntimeError(f"the scalar case of {name} does not record it")
    row = ops[rows[-1]]
    rep = np.ascontiguousarray(np.repeat(row[None, :], n, axis=0))
    vals = vals.copy()

    def forward():
        g.forward(rep, off, size, ip, vals, 0, n, ws)

    if not op.differentiable:
        return None, forward
    seed = np.zeros(vals.shape[0], vals.dtype)
    seed[off[row[1]]:off[row[1]] + size[row[1]]] = 1.0
    varying = np.ones(off.shape[0], np.bool_)      # every node varies: mark_varying does nothing

    def reverse():
        adj = seed.copy()
        adj_set = np.zeros(off.shape[0], np.bool_)
        adj_set[row[1]] = True
        g.reverse(rep, off, size, ip, vals, adj, adj_set, varying, 0, n, ws)
    return reverse, forward


#: ops whose row cannot be repeated on its own: take_along and put_along read the indices of
#: the argsort row before them, which a repeated row's arena does not hold (the report names them)
NOT_REPEATABLE = ("take_along", "put_along")


def per_op_costs(n=N, repeat=5):
    """``{op name: (reverse ns/op, forward ns/op)}`` for every op with a scalar case."""
    results = {}
    for name in scalar_cases():
        if name in NOT_REPEATABLE:
            continue
        reverse, forward = repeated_sweeps(name, n)
        times = []
        for fn in (reverse, forward):
            best = np.inf
            for _ in range(repeat if fn is not None else 0):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            times.append(best / n * 1e9 if fn is not None else float("nan"))
        results[name] = tuple(times)
    return results


def report_ops():
    from numbad.ops import OPS
    res = per_op_costs()
    missing = sorted(set(OPS) - set(res))
    if missing:
        print(f"ops without a repeatable scalar case (not measured): {missing}")
    diff = {k: v for k, v in res.items() if v[0] == v[0]}
    print(f"{'op':<16} {'reverse ns':>10} {'forward ns':>10}")
    for name, (r, f) in res.items():
        print(f"{name:<16} {r:>10.1f} {f:>10.1f}")
    slow = sorted(diff.items(), key=lambda kv: -kv[1][0])[:5]
    rev = np.array([v[0] for v in diff.values()])
    print(f"\n{len(res)} ops; reverse sweep median {np.median(rev):.1f} ns/op, "
          f"slowest five: " + ", ".join(f"{k} {v[0]:.0f} ns" for k, v in slow))


# ----------------------------------------------------------------------------- first-call latency
SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np, numbad as nb
t1 = time.perf_counter()
nb.vjp(lambda x: (np.sin(x) * x).sum(), np.ones(3))
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def clear_cache(root):
    for pat in ("*.nbi", "*.nbc"):
        for f in glob.glob(str(Path(root) / "numbad" / "**" / "__pycache__" / pat), recursive=True):
            os.remove(f)


def first_call(root, cold):
    """``(process wall s, import s, first vjp s)`` of a fresh process in checkout ``root``."""
    if cold:
        clear_cache(root)
    env = dict(os.environ, PYTHONPATH=str(root))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SNIPPET], cwd=root, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    wall = time.perf_counter() - t0
    return wall, float(out[0]), float(out[1])


def report_latency(root, warm_runs=3):
    cold = first_call(root, cold=True)
    warm = min((first_call(root, cold=False) for _ in range(warm_runs)), key=lambda r: r[0])
    for label, (wall, imp, call) in (("cold cache", cold), ("warm cache", warm)):
        print(f"{label}: process {wall:.2f} s (import numbad {imp:.2f} s, first nb.vjp {call:.2f} s)")


# ----------------------------------------------------------------------------- pytest-benchmark
BENCHMARKED = ("exp", "multiply", "gather", "scatter", "matmul", "amax", "cumsum", "cumprod", "take_along",
               "assign", "solve", "svd")


@pytest.mark.parametrize("name", BENCHMARKED)
def test_reverse_sweep(benchmark, name):
    """Reverse sweep over 20,000 one-element copies of the op (divide by 20,000 for ns/op)."""
    reverse, _ = repeated_sweeps(name)
    benchmark(reverse)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("ops", "latency"))
    p.add_argument("--root", default=str(ROOT), help="checkout to measure (latency)")
    a = p.parse_args()
    if a.what == "ops":
        sys.path.insert(0, str(ROOT))
        report_ops()
    else:
        report_latency(Path(a.root))


if __name__ == "__main__":
    main()
