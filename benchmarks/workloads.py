"""The benchmark workloads, each written once per framework's spelling.

``WORKLOADS[name]`` is ``(make_inputs, numpy_fn, torch_fn, jax_fn)``:
``numpy_fn`` is ordinary numpy code (what numbad differentiates unchanged and
what the numpy-forward baseline runs); ``torch_fn``/``jax_fn`` are the same
function for the peers. ``make_inputs(rng)`` returns ``(inputs tuple, v)``.
``AUTOGRAD[name]`` is the HIPS autograd spelling (``autograd.numpy``), and
``JAX_JIT[name]`` the spelling ``jax.jit`` is given where it is not ``jax_fn``.
"""
from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- seed (4x4)
def seed_np(x):
    return np.sum(np.exp(x), axis=1)


def seed_torch(x):
    return x.exp().sum(dim=1)


def seed_jax(x):
    import jax.numpy as jnp
    return jnp.sum(jnp.exp(x), axis=1)


def seed_autograd(x):
    import autograd.numpy as anp
    return anp.sum(anp.exp(x), axis=1)


def seed_inputs(rng):
    return (rng.random((4, 4)),), np.ones(4)


# --------------------------------------------------------------------------- 100-op chain on 16 elements
def _chain(x, sin, exp, tanh):
    y = x
    for i in range(20):
        y = sin(y)
        y = exp(y * 0.5)
        y = y * x
        y = y + 0.1
        y = tanh(y)
    return y


def chain_np(x):
    return np.sum(_chain(x, np.sin, np.exp, np.tanh))


def chain_torch(x):
    import torch
    return torch.sum(_chain(x, torch.sin, torch.exp, torch.tanh))


def chain_jax(x):
    import jax.numpy as jnp
    return jnp.sum(_chain(x, jnp.sin, jnp.exp, jnp.tanh))


def chain_autograd(x):
    import autograd.numpy as anp
    return anp.sum(_chain(x, anp.sin, anp.exp, anp.tanh))


def chain_inputs(rng):
    return (rng.standard_normal(16),), 1.0


# --------------------------------------------------------------------------- Lorenz, 1000 Euler steps of 0-d values
LORENZ_STEPS = 1000


def lorenz(x, y, z, sigma, rho, beta, steps=LORENZ_STEPS, dt=0.01):
    """Euler integration of the Lorenz system written as plain scalar Python (~14 ops a step)."""
    for _ in range(steps):
        dx = sigma * (y - x)
        dy = x * (rho - z) - y
        dz = x * y - beta * z
        x = x + dt * dx
        y = y + dt * dy
        z = z + dt * dz
    return x + y + z


def lorenz_jax_scan(x, y, z, sigma, rho, beta, steps=LORENZ_STEPS, dt=0.01):
    """The same Euler steps as a ``jax.lax.scan``: the spelling ``jax.jit`` needs.

    ``jax.jit`` of the Python loop unrolls it into one expression whose
    compilation time explodes with the step count (``jax_lorenz_jit.py``).
    """
    import jax

    def step(c, _):
        x, y, z = c
        dx = sigma * (y - x)
        dy = x * (rho - z) - y
        dz = x * y - beta * z
        return (x + dt * dx, y + dt * dy, z + dt * dz), None
    (x, y, z), _ = jax.lax.scan(step, (x, y, z), None, length=steps)
    return x + y + z


def lorenz_inputs(rng):
    vals = (1.0, 1.0, 1.0, 10.0, 28.0, 8.0 / 3.0)
    return tuple(np.array(v + 0.01 * rng.standard_normal()) for v in vals), 1.0


# --------------------------------------------------------------------------- large elementwise
def elementwise_np(x):
    return np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2))


def elementwise_torch(x):
    import torch
    return torch.sum(torch.sin(x) * torch.exp(-x ** 2) + torch.log1p(x ** 2))


def elementwise_jax(x):
    import jax.numpy as jnp
    return jnp.sum(jnp.sin(x) * jnp.exp(-x ** 2) + jnp.log1p(x ** 2))


def elementwise_autograd(x):
    import autograd.numpy as anp
    return anp.sum(anp.sin(x) * anp.exp(-x ** 2) + anp.log1p(x ** 2))


def elementwise_inputs(n):
    def make(rng):
        return (rng.standard_normal(n),), 1.0
    return make


# --------------------------------------------------------------------------- Rosenbrock
def rosenbrock_np(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_torch(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def rosenbrock_jax(x):
    import jax.numpy as jnp
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_autograd(x):
    import autograd.numpy as anp
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_inputs(n):
    def make(rng):
        return (rng.uniform(-1, 1, n),), 1.0
    return make


# --------------------------------------------------------------------------- 3-layer tanh MLP
MLP_SHAPES = ((512, 512), (512, 512), (512, 10))


def mlp_np(W1, W2, W3, X):
    h = np.tanh(X @ W1)
    h = np.tanh(h @ W2)
    out = h @ W3
    return np.mean(out ** 2)


def mlp_torch(W1, W2, W3, X):
    import torch
    h = torch.tanh(X @ W1)
    h = torch.tanh(h @ W2)
    out = h @ W3
    return torch.mean(out ** 2)


def mlp_jax(W1, W2, W3, X):
    import jax.numpy as jnp
    h = jnp.tanh(X @ W1)
    h = jnp.tanh(h @ W2)
    out = h @ W3
    return jnp.mean(out ** 2)


def mlp_autograd(W1, W2, W3, X):
    import autograd.numpy as anp
    h = anp.tanh(X @ W1)
    h = anp.tanh(h @ W2)
    out = h @ W3
    return anp.mean(out ** 2)


def mlp_inputs(rng):
    Ws = tuple(rng.standard_normal(s) / np.sqrt(s[0]) for s in MLP_SHAPES)
    X = rng.standard_normal((256, 512))
    return Ws + (X,), 1.0


# --------------------------------------------------------------------------- finite differences by slicing
def _stencil(x, total):
    d = x[1:] - x[:-1]
    c = x[2:] - 2.0 * x[1:-1] + x[:-2]
    return total(d * d) + total(c * c) + x[0] * x[-1]


def stencil_np(x):
    return _stencil(x, np.sum)


def stencil_torch(x):
    import torch
    return _stencil(x, torch.sum)


def stencil_jax(x):
    import jax.numpy as jnp
    return _stencil(x, jnp.sum)


def stencil_autograd(x):
    import autograd.numpy as anp
    return _stencil(x, anp.sum)


def stencil_inputs(rng):
    return (rng.standard_normal(32),), 1.0


WORKLOADS = {
    "seed": (seed_inputs, seed_np, seed_torch, seed_jax),
    "chain": (chain_inputs, chain_np, chain_torch, chain_jax),
    "lorenz": (lorenz_inputs, lorenz, lorenz, lorenz),
    "elementwise_1e6": (elementwise_inputs(10 ** 6), elementwise_np, elementwise_torch, elementwise_jax),
    "elementwise_1e7": (elementwise_inputs(10 ** 7), elementwise_np, elementwise_torch, elementwise_jax),
    "rosenbrock_1e6": (rosenbrock_inputs(10 ** 6), rosenbrock_np, rosenbrock_torch, rosenbrock_jax),
    "mlp": (mlp_inputs, mlp_np, mlp_torch, mlp_jax),
    "stencil": (stencil_inputs, stencil_np, stencil_torch, stencil_jax),
}

#: HIPS autograd's spellings (``autograd.numpy``); the Lorenz loop is plain arithmetic in every framework
AUTOGRAD = {
    "seed": seed_autograd,
    "chain": chain_autograd,
    "lorenz": lorenz,
    "elementwise_1e6": elementwise_autograd,
    "elementwise_1e7": elementwise_autograd,
    "rosenbrock_1e6": rosenbrock_autograd,
    "mlp": mlp_autograd,
    "stencil": stencil_autograd,
}

#: what ``jax.jit`` compiles where the eager spelling does not serve (see ``lorenz_jax_scan``)
JAX_JIT = {"lorenz": lorenz_jax_scan}
