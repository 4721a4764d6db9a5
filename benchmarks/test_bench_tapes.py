"""Issue 6: recorded tapes on the Lorenz workload (1,000 Euler steps, ~14k scalar ops).

Groups: ``lorenz-vjp`` (replayed ``tape.vjp`` against eager ``nb.vjp``, PyTorch's
eager vjp and one numpy forward evaluation), ``lorenz-record`` (recording plus
the first replay), ``lorenz-batch`` (``tape.batch_vjp`` over 1,024 initial
conditions against a Python loop of ``tape.vjp`` and ``jax.vmap``).
JAX's ``jit(vjp)`` of the unrolled loop is measured in ``jax_lorenz_jit.py``:
its compile time explodes with the step count, so it is not a pytest benchmark.
"""
import numpy as np
import pytest

import numbad as nb
from conftest import peer
from workloads import lorenz, lorenz_inputs

ARGS, _ = lorenz_inputs(np.random.default_rng(0))
BATCH = 1024


@pytest.fixture(scope="module")
def tape():
    t = nb.record(lorenz, ARGS)
    t.vjp(ARGS)
    return t


def test_replayed_vjp(benchmark, tape):
    benchmark.group = "lorenz-vjp"
    benchmark(tape.vjp, ARGS)


def test_eager_vjp(benchmark):
    benchmark.group = "lorenz-vjp"
    nb.vjp(lorenz, ARGS)
    benchmark(nb.vjp, lorenz, ARGS)


def test_torch_eager_vjp(benchmark, torch):
    benchmark.group = "lorenz-vjp"
    targs = tuple(torch.tensor(a) for a in ARGS)
    torch.autograd.functional.vjp(lorenz, targs)      # warm up, as the numbad benchmarks do
    benchmark(torch.autograd.functional.vjp, lorenz, targs)


def test_numpy_forward(benchmark):
    benchmark.group = "lorenz-vjp"
    benchmark(lorenz, *ARGS)


def test_record_and_first_replay(benchmark):
    benchmark.group = "lorenz-record"

    def go():
        t = nb.record(lorenz, ARGS)
        return t.vjp(ARGS)
    benchmark(go)


def _batch():
    rng = np.random.default_rng(1)
    X = tuple(np.full(BATCH, float(a)) + (0.1 * rng.standard_normal(BATCH) if i < 3 else 0.0)
              for i, a in enumerate(ARGS))
    return X, np.ones(BATCH)


def test_batch_vjp(benchmark, tape):
    benchmark.group = "lorenz-batch"
    X, V = _batch()
    tape.batch_vjp(X, V)
    benchmark(tape.batch_vjp, X, V)


def test_loop_of_replays(benchmark, tape):
    benchmark.group = "lorenz-batch"
    X, V = _batch()

    def loop():
        for b in range(BATCH):
            tape.vjp(tuple(x[b] for x in X), V[b])
    benchmark.pedantic(loop, rounds=3, iterations=1)


def test_jax_vmap(benchmark):
    jax = peer("jax")
    jax.config.update("jax_enable_x64", True)
    steps = 1000

    def f(s):
        x, y, z, sigma, rho, beta = s

        def step(c, _):
            x, y, z = c
            return (x + 0.01 * sigma * (y - x), y + 0.01 * (x * (rho - z) - y),
                    z + 0.01 * (x * y - beta * z)), None
        (x, y, z), _ = jax.lax.scan(step, (x, y, z), None, length=steps)
        return x + y + z

    grad = jax.jit(jax.vmap(jax.grad(f), in_axes=(0,)))
    X, _ = _batch()
    S = jax.numpy.stack(X, axis=1)
    jax.block_until_ready(grad(S))
    benchmark.group = "lorenz-batch"
    benchmark(lambda: jax.block_until_ready(grad(S)))
