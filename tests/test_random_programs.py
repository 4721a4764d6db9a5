"""Random programs (``programs.py``): numbad's derivatives against PyTorch's on the same code.

Each seed draws a program mixing elementwise ops, broadcasting, selects, reductions,
products, reshapes, indexing, writes and joins, and holds numbad to numpy's value (to the
bit) and to
PyTorch's vjp (on the njit sweep and on the differentiable ``create_graph`` path), jvp and
Hessian-vector product. The large-value variant makes arrays of a few dozen elements take
the large-value paths (deferred values, recomputation, two-thread tiles); the recorded
variant replays the tape at nearby inputs.
"""
import numpy as np
import pytest
import torch

import numbad as nb
from numbad import sweeps
from numbad.tensor import core
from programs import function, generate

RTOL, ATOL = 1e-9, 1e-11


def _close(actual, expected, what):
    actual = actual.detach() if isinstance(actual, nb.Tensor) else np.asarray(actual)
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert np.shape(actual) == np.shape(expected), f"{what}: shape {np.shape(actual)} != {np.shape(expected)}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def _check(seed, large=False, replay=False):
    rng = np.random.default_rng(seed)
    inputs, program, outputs, weights = generate(rng, large)
    as_tuple = bool(rng.integers(2))
    f = function(program, outputs, weights, torch_side=False, as_tuple=as_tuple)
    ft = function(program, outputs, weights, torch_side=True, as_tuple=as_tuple)
    where = f"seed {seed}: {program}"
    tinputs = tuple(torch.tensor(x) for x in inputs)
    tout = ft(*tinputs)
    v = tuple(rng.uniform(-1, 1, tuple(y.shape)) for y in tout) if as_tuple else None
    tv = tuple(torch.tensor(x) for x in v) if as_tuple else None
    _, tgrads = torch.autograd.functional.vjp(ft, tinputs, tv)

    out, grads = nb.vjp(f, inputs, v)
    expected = f(*inputs)
    for y, e in zip(out if as_tuple else (out,), expected if as_tuple else (expected,)):
        np.testing.assert_array_equal(y, e, err_msg=f"value (numpy's, to the bit), {where}")
    for k, (g, tg) in enumerate(zip(grads, tgrads)):
        _close(g, tg, f"vjp of input {k}, {where}")
    _, grads = nb.vjp(f, inputs, v, create_graph=True)
    for k, (g, tg) in enumerate(zip(grads, tgrads)):
        _close(g, tg, f"create_graph vjp of input {k}, {where}")

    u = tuple(rng.uniform(-1, 1, x.shape) for x in inputs)
    tu = tuple(torch.tensor(x) for x in u)
    _, tjv = torch.autograd.functional.jvp(ft, tinputs, tu)
    if any(torch.isnan(t).any() for t in (tjv if as_tuple else (tjv,))):
        # PyTorch's jvp is the double-backward trick, where a NaN partial times a zero
        # cotangent (std of equal values) is NaN; numbad's is true forward mode (docs), so
        # it is held to PyTorch's forward mode there
        _, tjv = torch.func.jvp(ft, tinputs, tu)
    _, jv = nb.jvp(f, inputs, u)
    for k, (a, b) in enumerate(zip(jv if as_tuple else (jv,), tjv if as_tuple else (tjv,))):
        _close(a, b, f"jvp of output {k}, {where}")
    if not as_tuple:
        _, thv = torch.autograd.functional.hvp(ft, tinputs, tu)
        if any(torch.isnan(t).any() for t in thv):
            # (as for jvp: numbad's hvp is forward over reverse, PyTorch's double backward)
            _, thv = torch.func.jvp(torch.func.grad(ft, argnums=tuple(range(len(tinputs)))), tinputs, tu)
        _, hv = nb.hvp(f, inputs, u)
        for k, (a, b) in enumerate(zip(hv, thv)):
            _close(a, b, f"hvp of input {k}, {where}")

    if replay:
        tape = nb.record(f, inputs)
        moved = tuple(x + rng.uniform(-0.01, 0.01, x.shape) for x in inputs)
        _, tgrads = torch.autograd.functional.vjp(ft, tuple(torch.tensor(x) for x in moved), tv)
        try:
            _, grads = tape.vjp(moved, v) if as_tuple else tape.vjp(moved)
        except nb.BranchChanged:
            return
        for k, (g, tg) in enumerate(zip(grads, tgrads)):
            _close(g, tg, f"replayed vjp of input {k}, {where}")


@pytest.mark.parametrize("seed", range(120))
def test_random_program(seed):
    _check(seed)


def test_an_hvp_where_the_double_backward_trick_gives_nan(monkeypatch):
    """As the next test, for the Hessian-vector product (this program on the large-value paths)."""
    monkeypatch.setattr(core, "BIG", 8)
    monkeypatch.setattr(sweeps, "TILE", 4)
    monkeypatch.setattr(sweeps, "TILED_MIN", 8)
    monkeypatch.setattr(sweeps, "EAGER_TILED_MIN", 8)
    monkeypatch.setattr(sweeps, "TWO_THREADS_MIN", 8)
    seed = 91194
    rng = np.random.default_rng(seed)
    inputs, program, outputs, weights = generate(rng, False)
    assert not rng.integers(2)                          # (a sum: hvp is checked)
    ft = function(program, outputs, weights, torch_side=True, as_tuple=False)
    tinputs = tuple(torch.tensor(x) for x in inputs)
    u = tuple(torch.tensor(rng.uniform(-1, 1, x.shape)) for x in inputs)
    assert torch.isnan(torch.autograd.functional.hvp(ft, tinputs, u)[1][0]).all()
    gradient = torch.func.grad(ft, argnums=tuple(range(len(tinputs))))
    _, forward_over_reverse = torch.func.jvp(gradient, tinputs, u)
    assert not torch.isnan(forward_over_reverse[0]).any()
    _check(seed)


@pytest.mark.parametrize("seed", [12113, 20233])
def test_a_jvp_where_the_double_backward_trick_gives_nan(seed):
    """Programs whose ``std`` sees equal values: PyTorch's jvp (double backward) is NaN,
    true forward mode (PyTorch's and numbad's) a number."""
    rng = np.random.default_rng(seed)
    inputs, program, outputs, weights = generate(rng, False)
    as_tuple = bool(rng.integers(2))
    ft = function(program, outputs, weights, torch_side=True, as_tuple=as_tuple)
    tinputs = tuple(torch.tensor(x) for x in inputs)
    u = tuple(torch.tensor(rng.uniform(-1, 1, x.shape)) for x in inputs)
    one = (lambda t: t) if as_tuple else (lambda t: (t,))
    assert all(torch.isnan(t).all() for t in one(torch.autograd.functional.jvp(ft, tinputs, u)[1]))
    assert not any(torch.isnan(t).any() for t in one(torch.func.jvp(ft, tinputs, u)[1]))
    _check(seed)


@pytest.fixture
def small_large_values(monkeypatch):
    """Arrays of more than 8 elements take the large-value paths, in tiles of 4 on two threads."""
    monkeypatch.setattr(core, "BIG", 8)
    monkeypatch.setattr(sweeps, "TILE", 4)
    monkeypatch.setattr(sweeps, "TILED_MIN", 8)
    monkeypatch.setattr(sweeps, "EAGER_TILED_MIN", 8)
    monkeypatch.setattr(sweeps, "TWO_THREADS_MIN", 8)
    monkeypatch.setattr(sweeps, "THREADS", 2)


@pytest.mark.parametrize("seed", range(1000, 1060))
def test_random_program_on_the_large_value_paths(seed, small_large_values):
    _check(seed, replay=True)


@pytest.mark.parametrize("seed", range(2000, 2012))
def test_random_program_on_larger_arrays(seed, small_large_values):
    _check(seed, large=True)
