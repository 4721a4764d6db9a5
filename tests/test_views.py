"""Contiguous reads (``x[1:]``, a row) share their base's storage: views give a gather's derivatives.

A view moves no data; its consumers and its base's add their cotangents into
one region, which the reverse sweep zeroes first only where a view passes a
cotangent on (``prepare_views``). These tests hold views to what a copying
gather gives: PyTorch, finite differences, every sweep, and the numpy-API and
indexing cases rerun with every contiguous read a view.
"""
import numpy as np
import pytest
import torch

import numbad as nb
from numbad.functional._common import Call
from numbad.ops import OPS
from numbad.tensor import core

import test_numpy_api
import test_ops_structural
from check import check_derivatives
from helpers import assert_close

VIEW, GATHER = OPS["view"].code, OPS["gather"].code
N = 260                      # above core.VIEW_MIN_SIZE
RNG = np.random.default_rng(7)
X = RNG.uniform(-1.0, 1.0, N)
M = RNG.standard_normal((20, 16))


def _codes(f, args, replayable=False):
    call = Call(tuple(args), False, replayable=replayable)
    call.run(f)
    return call.tape.arrays()[0][call.begin:, 0].tolist()


def test_contiguous_reads_are_views_and_other_reads_gathers():
    assert core.VIEW_MIN_SIZE <= N - 4
    x = RNG.standard_normal(1000)
    for f in (lambda x: x[1:], lambda x: x[:-1], lambda x: x[2:-2], lambda x: x.reshape(10, 100)[3:8],
              lambda x: x.reshape(2, 500)[1], lambda x: x[1:][5:]):
        assert _codes(f, (x,))[-1] == VIEW, f
    for f in (lambda x: x[::2], lambda x: x.reshape(500, 2)[:, 0], lambda x: x[:10], lambda x: x[::-1]):
        assert _codes(f, (x,))[-1] == GATHER, f
    # reshapes and ravels of large values share their storage too; astype's rounded values do not
    for f in (lambda x: x.reshape(500, 2), lambda x: np.ravel(x.reshape(20, 50)), lambda x: x[None, :]):
        assert set(_codes(f, (x,))) == {VIEW}, f
    assert _codes(lambda x: x.astype(np.float32), (x,)) == [OPS["copy"].code]
    # nb.record's tapes are replayed on ensembles and GPUs, which know no views
    assert _codes(lambda x: x[1:], (X,), replayable=True) == [GATHER]
    # a view of a view reads its base's storage at the summed offset
    call = Call((x,), False)
    y = call.run(lambda x: x[3:][5:])
    tape = call.tape
    assert tape.view_root[y._node] == call.input_nodes[0]
    assert tape.node_off[y._node] == tape.node_off[call.input_nodes[0]] + 8
    assert np.array_equal(tape.value(y._node), x[8:]) and np.array_equal(y.detach(), x[8:])


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_torch(x):
    return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


STENCILS = [
    ("rosenbrock", rosenbrock, rosenbrock_torch, (X,)),
    ("second difference", lambda x: np.sum((x[2:] - 2.0 * x[1:-1] + x[:-2]) ** 2 * x[1:-1]),
     lambda x: torch.sum((x[2:] - 2.0 * x[1:-1] + x[:-2]) ** 2 * x[1:-1]), (X,)),
    ("rows of a matrix", lambda m: np.sum(np.sin(m[1:]) * m[:-1], axis=0) + m[3],
     lambda m: torch.sum(torch.sin(m[1:]) * m[:-1], dim=0) + m[3], (M,)),
    ("views of an intermediate", lambda x: np.exp(0.5 * x)[1:] * np.exp(0.5 * x)[:-1],
     lambda x: torch.exp(0.5 * x)[1:] * torch.exp(0.5 * x)[:-1], (X,)),
    ("a view of a view", lambda x: np.tanh(x[1:][5:]) * x[6:],
     lambda x: torch.tanh(x[1:][5:]) * x[6:], (X,)),
    ("the output is a view", lambda x: (x * x)[3:], lambda x: (x * x)[3:], (X,)),
    ("the output is a view of the input", lambda x: x[3:], lambda x: x[3:], (X,)),
    ("reshapes", lambda x: np.sum(np.tanh(x.reshape(2, 130)) * x.reshape(2, 130)[::-1], axis=0) @ x[:130],
     lambda x: torch.sum(torch.tanh(x.reshape(2, 130)) * x.reshape(2, 130).flip(0), dim=0) @ x[:130], (X,)),
    ("two inputs", lambda x, y: np.sum(x[1:] * y[:-1]) + np.sum(x[:-1] ** 2 * y[1:]),
     lambda x, y: torch.sum(x[1:] * y[:-1]) + torch.sum(x[:-1] ** 2 * y[1:]), (X, X[::-1].copy())),
]


@pytest.mark.parametrize("name, f, tf, args", STENCILS, ids=[s[0] for s in STENCILS])
def test_stencils_against_pytorch_finite_differences_and_every_sweep(name, f, tf, args):
    assert VIEW in _codes(f, args)
    check_derivatives(f, args, tf)


def test_views_as_outputs_beside_their_base():
    """Seeds of overlapping views and of their base add up (nb.vjp, jacobian both ways)."""
    def f(x):
        y = np.sin(x)
        return y[1:], y, y[:-1], x[2:]

    def tf(x):
        y = torch.sin(x)
        return y[1:], y, y[:-1], x[2:]
    v = tuple(RNG.standard_normal(o.shape) for o in f(X))
    out, g = nb.vjp(f, X, v)
    tout, tg = torch.autograd.functional.vjp(tf, torch.tensor(X), tuple(torch.tensor(w) for w in v))
    for a, b in zip(out, f(X)):              # numpy's values
        assert np.array_equal(a, b)
    assert_close(g, tg.numpy(), rtol=1e-13, atol=1e-14)
    x = X[:40].copy()
    with_views = core.VIEW_MIN_SIZE
    core.VIEW_MIN_SIZE = 1
    try:
        for strategy in ("reverse-mode", "forward-mode"):
            J = nb.jacobian(f, x, strategy=strategy)
            TJ = torch.autograd.functional.jacobian(tf, torch.tensor(x))
            for a, b in zip(J, TJ):
                assert_close(a, b.numpy(), rtol=1e-13, atol=1e-14)
    finally:
        core.VIEW_MIN_SIZE = with_views


def test_a_view_that_passes_no_cotangent_leaves_its_base_alone():
    """A view nothing differentiates must not start its base's derivative: here sqrt's, infinite
    at 0, would turn the zero cotangent into NaN."""
    x = X.copy()
    x[5] = 0.0

    def f(x):
        s = np.sqrt(np.abs(x))
        _ = s[1:] * 2.0          # recorded, never used
        return np.sum(x * x)
    _, g = nb.vjp(f, x)
    assert np.array_equal(g, 2.0 * x)
    _, hv = nb.hvp(f, x, np.ones_like(x))
    assert np.array_equal(hv, np.full_like(x, 2.0))
    J = nb.jacobian(lambda x: f(x)[None] * x[:3], x)
    assert np.all(np.isfinite(J))


def test_hvp_vhp_and_hessian_through_views_against_pytorch():
    x = RNG.uniform(-1.0, 1.0, 1000)
    v = RNG.standard_normal(1000)
    tx, tv = torch.tensor(x), torch.tensor(v)
    _, hv = nb.hvp(rosenbrock, x, v)
    _, thv = torch.autograd.functional.hvp(rosenbrock_torch, tx, tv)
    assert_close(hv, thv.numpy(), rtol=1e-12, atol=1e-12)
    _, vh = nb.vhp(rosenbrock, x, v)
    assert_close(vh, thv.numpy(), rtol=1e-12, atol=1e-12)
    assert_close(nb.hessp(rosenbrock)(x, v), thv.numpy(), rtol=1e-12, atol=1e-12)
    H = nb.hessian(rosenbrock, x[:300])
    TH = torch.autograd.functional.hessian(rosenbrock_torch, tx[:300])
    assert_close(H, TH.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- every read a view
@pytest.fixture
def every_contiguous_read_a_view(monkeypatch):
    monkeypatch.setattr(core, "VIEW_MIN_SIZE", 1)


@pytest.mark.parametrize("spelling, f, args, torch_f, second, extra", test_numpy_api.CASES)
def test_numpy_function_cases_with_views(every_contiguous_read_a_view, spelling, f, args, torch_f, second,
                                         extra):
    check_derivatives(f, args, torch_f, second=second)


@pytest.mark.parametrize("name, f", test_ops_structural.INDEXING, ids=[s[0] for s in test_ops_structural.INDEXING])
def test_indexing_cases_with_views(every_contiguous_read_a_view, name, f):
    check_derivatives(f, (test_ops_structural.X3,), None)


def test_a_nested_call_on_one_array_twice_keeps_its_inputs_apart():
    """create_graph inside a recording: the nested call's inputs are copies of the outer
    Tensor, each its own node (never views of one storage), so their cotangents stay apart."""
    def inner(a, b):
        return np.sum(np.sin(a[1:]) * b[:-1] ** 2)

    def outer(x):
        ga, gb = nb.vjp(inner, (x, x), create_graph=True)[1]
        return np.sum(ga * gb)

    def t_inner(a, b):
        return torch.sum(torch.sin(a[1:]) * b[:-1] ** 2)

    def t_outer(x):
        ga, gb = torch.autograd.functional.vjp(t_inner, (x, x), create_graph=True)[1]
        return torch.sum(ga * gb)
    _, g = nb.vjp(outer, X)
    _, tg = torch.autograd.functional.vjp(t_outer, torch.tensor(X))
    assert_close(g, tg.numpy(), rtol=1e-12, atol=1e-13)
