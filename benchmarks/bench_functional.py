"""pytest-benchmark suite of the functional family against PyTorch and jitted JAX (issue 7).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_functional.py \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

Groups: ``jacobian-100`` (the full Jacobian of ``g(x) = tanh(A @ x) * x`` on
R^100), ``hvp-rosenbrock-1e5`` (Hessian-vector product of the vectorized
Rosenbrock function at n = 1e5), ``jvp-vs-vjp-*`` (forward against reverse
mode on both functions). Peers are skipped when not installed. For one table
of ratios from a single process, run ``benchmarks/functional_report.py``.
"""
import numpy as np
import pytest

import numbad as nb

# the peers as the report imports them (absent ones are None; PyTorch on one thread, JAX in float64)
from functional_report import N_HVP, TF, jacobian_workload, jax, jnp, rosenbrock, torch

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")
needs_jax = pytest.mark.skipif(jax is None, reason="JAX not installed")


@pytest.fixture(scope="module")
def jac_case():
    return jacobian_workload(np.random.default_rng(0))


@pytest.fixture(scope="module")
def hvp_case():
    rng = np.random.default_rng(1)
    return rng.uniform(-1.0, 1.0, N_HVP), rng.standard_normal(N_HVP)


# ----------------------------------------------------------------------------- Jacobian
@pytest.mark.benchmark(group="jacobian-100")
@pytest.mark.parametrize("strategy", ["default", "reverse-mode", "forward-mode"])
def test_numbad_jacobian(benchmark, jac_case, strategy):
    A, x, g = jac_case
    kw = {} if strategy == "default" else {"strategy": strategy}
    J = benchmark(nb.jacobian, g, x, **kw)
    assert np.allclose(J, (1 - np.tanh(A @ x) ** 2)[:, None] * A * x[:, None] + np.diag(np.tanh(A @ x)))


@needs_torch
@pytest.mark.benchmark(group="jacobian-100")
@pytest.mark.parametrize("vectorize", [False, True])
def test_torch_jacobian(benchmark, jac_case, vectorize):
    A, x, _ = jac_case
    At, xt = torch.tensor(A), torch.tensor(x)
    TF.jacobian(lambda x: torch.tanh(At @ x) * x, xt, vectorize=vectorize)      # warm up
    benchmark(TF.jacobian, lambda x: torch.tanh(At @ x) * x, xt, vectorize=vectorize)


@needs_jax
@pytest.mark.benchmark(group="jacobian-100")
def test_jax_jacrev_jit(benchmark, jac_case):
    A, x, _ = jac_case
    Aj, xj = jnp.asarray(A), jnp.asarray(x)
    jac = jax.jit(jax.jacrev(lambda x: jnp.tanh(Aj @ x) * x))
    jac(xj).block_until_ready()                  # compile outside the timing
    benchmark(lambda: jac(xj).block_until_ready())


# ----------------------------------------------------------------------------- Hessian-vector product
@pytest.mark.benchmark(group="hvp-rosenbrock-1e5")
@pytest.mark.parametrize("fn", ["hvp", "vhp"])
def test_numbad_hvp(benchmark, hvp_case, fn):
    x, v = hvp_case
    benchmark(getattr(nb, fn), rosenbrock, x, v)


@needs_torch
@pytest.mark.benchmark(group="hvp-rosenbrock-1e5")
@pytest.mark.parametrize("fn", ["hvp", "vhp"])
def test_torch_hvp(benchmark, hvp_case, fn):
    x, v = hvp_case
    xt, vt = torch.tensor(x), torch.tensor(v)
    getattr(TF, fn)(lambda x: torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), xt, vt)
    benchmark(getattr(TF, fn), lambda x: torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
              xt, vt)


@needs_jax
@pytest.mark.benchmark(group="hvp-rosenbrock-1e5")
def test_jax_hvp_jit(benchmark, hvp_case):
    x, v = hvp_case

    def f(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])
    xj, vj = jnp.asarray(x), jnp.asarray(v)
    hvp(xj, vj).block_until_ready()
    benchmark(lambda: hvp(xj, vj).block_until_ready())


# ----------------------------------------------------------------------------- jvp against vjp
@pytest.mark.benchmark(group="jvp-vs-vjp-g-100")
@pytest.mark.parametrize("fn", ["jvp", "vjp"])
def test_jvp_vs_vjp_small(benchmark, jac_case, fn):
    _, x, g = jac_case
    benchmark(getattr(nb, fn), g, x, np.ones_like(x))


@pytest.mark.benchmark(group="jvp-vs-vjp-rosenbrock-1e5")
@pytest.mark.parametrize("fn", ["jvp", "vjp"])
def test_jvp_vs_vjp_large(benchmark, hvp_case, fn):
    x, v = hvp_case
    if fn == "jvp":
        benchmark(nb.jvp, rosenbrock, x, v)
    else:
        benchmark(nb.vjp, rosenbrock, x)
