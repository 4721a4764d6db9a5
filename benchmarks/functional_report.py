"""The functional family against PyTorch and jitted JAX, side by side in one process.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/functional_report.py

Workloads (issue 7): the full Jacobian of ``g(x) = tanh(A @ x) * x`` on R^100;
the Hessian-vector product of the vectorized Rosenbrock function at n = 1e5;
``jvp`` against ``vjp`` on both. Each timing is the median of repeated calls
after warm-up (JAX's after compilation); ratios are taken within the run.
Threads are pinned to one (set the environment as above; PyTorch is set
here) so that a shared machine does not skew the multi-threaded peers.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numbad as nb  # noqa: E402

try:
    import torch
    import torch.autograd.functional as TF
    torch.set_num_threads(1)
except ImportError:         # pragma: no cover
    torch = TF = None
try:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
except ImportError:         # pragma: no cover
    jax = jnp = None

N_JAC = 100
N_HVP = 10 ** 5


def median_ms(fn, min_time=0.5, min_reps=20):
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def jacobian_workload(rng):
    A = rng.standard_normal((N_JAC, N_JAC)) / np.sqrt(N_JAC)
    x = rng.standard_normal(N_JAC)

    def g(x):
        return np.tanh(A @ x) * x
    return A, x, g


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def run():
    rng = np.random.default_rng(0)
    rows = []

    def add(group, name, ms, note=""):
        rows.append((group, name, ms, note))
        print(f"{group:<22} {name:<44} {ms:10.4f} ms  {note}", flush=True)

    # ------------------------------------------------------------------ Jacobian
    A, x, g = jacobian_workload(rng)
    J = nb.jacobian(g, x)
    add("jacobian 100x100", "numbad jacobian (default)", median_ms(lambda: nb.jacobian(g, x)))
    add("jacobian 100x100", "numbad jacobian reverse-mode",
        median_ms(lambda: nb.jacobian(g, x, strategy="reverse-mode")))
    add("jacobian 100x100", "numbad jacobian forward-mode",
        median_ms(lambda: nb.jacobian(g, x, strategy="forward-mode")))
    if torch is not None:
        At, xt = torch.tensor(A), torch.tensor(x)

        def gt(x):
            return torch.tanh(At @ x) * x
        assert np.allclose(TF.jacobian(gt, xt).numpy(), J, rtol=1e-12, atol=1e-14)
        add("jacobian 100x100", "torch jacobian vectorize=False", median_ms(lambda: TF.jacobian(gt, xt)))
        add("jacobian 100x100", "torch jacobian vectorize=True",
            median_ms(lambda: TF.jacobian(gt, xt, vectorize=True)))
    if jax is not None:
        Aj, xj = jnp.asarray(A), jnp.asarray(x)
        jac = jax.jit(jax.jacrev(lambda x: jnp.tanh(Aj @ x) * x))
        assert np.allclose(np.asarray(jac(xj)), J, rtol=1e-12, atol=1e-14)
        add("jacobian 100x100", "jax.jit(jax.jacrev)", median_ms(lambda: jac(xj).block_until_ready()))
        jacf = jax.jit(jax.jacfwd(lambda x: jnp.tanh(Aj @ x) * x))
        add("jacobian 100x100", "jax.jit(jax.jacfwd)", median_ms(lambda: jacf(xj).block_until_ready()))
    v = rng.standard_normal(N_JAC)
    add("jvp vs vjp (g, 100)", "numbad jvp", median_ms(lambda: nb.jvp(g, x, v)))
    add("jvp vs vjp (g, 100)", "numbad vjp", median_ms(lambda: nb.vjp(g, x, v)))

    # ------------------------------------------------------------------ Hessian-vector product
    x = rng.uniform(-1.0, 1.0, N_HVP)
    v = rng.standard_normal(N_HVP)
    hv = nb.hvp(rosenbrock, x, v)[1]
    add("hvp rosenbrock 1e5", "numbad hvp", median_ms(lambda: nb.hvp(rosenbrock, x, v)))
    add("hvp rosenbrock 1e5", "numbad vhp", median_ms(lambda: nb.vhp(rosenbrock, x, v)))
    hp = nb.hessp(rosenbrock)
    add("hvp rosenbrock 1e5", "numbad hessp(f)(x, p)", median_ms(lambda: hp(x, v)))
    if torch is not None:
        xt, vt = torch.tensor(x), torch.tensor(v)

        def rt(x):
            return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        assert np.allclose(TF.hvp(rt, xt, vt)[1].numpy(), hv, rtol=1e-12, atol=1e-9)
        add("hvp rosenbrock 1e5", "torch hvp", median_ms(lambda: TF.hvp(rt, xt, vt)))
        add("hvp rosenbrock 1e5", "torch vhp", median_ms(lambda: TF.vhp(rt, xt, vt)))
    if jax is not None:
        def rj(x):
            return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        xj, vj = jnp.asarray(x), jnp.asarray(v)
        hvp_j = jax.jit(lambda x, v: jax.jvp(jax.grad(rj), (x,), (v,))[1])
        assert np.allclose(np.asarray(hvp_j(xj, vj)), hv, rtol=1e-12, atol=1e-9)
        add("hvp rosenbrock 1e5", "jax.jit(jvp of grad)",
            median_ms(lambda: hvp_j(xj, vj).block_until_ready()))
    add("jvp vs vjp (rosen 1e5)", "numbad jvp", median_ms(lambda: nb.jvp(rosenbrock, x, v)))
    add("jvp vs vjp (rosen 1e5)", "numbad vjp", median_ms(lambda: nb.vjp(rosenbrock, x)))
    return rows


def ratios(rows):
    t = {(g, n): ms for g, n, ms, _ in rows}
    out = []

    def ratio(label, a, b):
        if a in t and b in t:
            out.append((label, t[a] / t[b]))
    jg, hg = "jacobian 100x100", "hvp rosenbrock 1e5"
    ratio("torch jacobian vectorize=False / numbad jacobian (target >= 50)",
          (jg, "torch jacobian vectorize=False"), (jg, "numbad jacobian (default)"))
    ratio("torch jacobian vectorize=True / numbad jacobian",
          (jg, "torch jacobian vectorize=True"), (jg, "numbad jacobian (default)"))
    ratio("numbad jacobian / jax.jit(jax.jacrev) (target <= 1)",
          (jg, "numbad jacobian (default)"), (jg, "jax.jit(jax.jacrev)"))
    ratio("numbad hvp / torch hvp (target <= 0.5)", (hg, "numbad hvp"), (hg, "torch hvp"))
    ratio("numbad hvp / jax jitted hvp", (hg, "numbad hvp"), (hg, "jax.jit(jvp of grad)"))
    ratio("numbad jvp / numbad vjp, g (target <= 1)",
          ("jvp vs vjp (g, 100)", "numbad jvp"), ("jvp vs vjp (g, 100)", "numbad vjp"))
    ratio("numbad jvp / numbad vjp, rosenbrock 1e5 (target <= 1)",
          ("jvp vs vjp (rosen 1e5)", "numbad jvp"), ("jvp vs vjp (rosen 1e5)", "numbad vjp"))
    return out


if __name__ == "__main__":
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    print(f"numpy {np.__version__}, torch {getattr(torch, '__version__', '-')}, "
          f"jax {getattr(jax, '__version__', '-')}; OPENBLAS_NUM_THREADS={threads}")
    rows = run()
    print()
    for label, r in ratios(rows):
        print(f"{label:<60} {r:8.2f}")
