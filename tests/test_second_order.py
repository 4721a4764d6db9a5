"""Forward over reverse in compiled sweeps (``numbad.sweeps.hvp``) and the Hessian rules behind it.

The rules (``second_order.hessian_rules``) are derived from the registry's first
partials: they must be symmetric and match finite differences of those partials.
The fused ``nb.hvp`` must match the differentiable path (the double-backward
trick on recorded Tensors, which ``create_graph=True`` still takes) and PyTorch
on every elementwise op, on matmul in every layout, and on the linear kinds.
"""
import numpy as np
import pytest
import torch
from torch.autograd import functional as TF

import numbad as nb
from numbad import sweeps
from numbad.functional.hessian import Gradient
from numbad.ops import OPS
from numbad.ops.registry import tensor_rule_namespace
from numbad.sweeps import SECOND_ORDER_KINDS
from numbad.sweeps.second_order import hessian_rules

from helpers import assert_close
from test_ops_elementwise import ELEMENTWISE, PARAMS, case

NS = tensor_rule_namespace()


def _eval(expr, names, values):
    return eval(expr, dict(NS), dict(zip(names, values)))


def _points(op, rng, n=7):
    return [rng.uniform(*dom, size=n) for dom in op.domain]


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda op: op.name)
def test_hessian_rules_are_symmetric_and_match_finite_differences(op):
    rng = np.random.default_rng(op.code)
    names = op.operand_names()
    H = hessian_rules(op)
    xs = _points(op, rng)
    if op.name == "polygamma":
        xs[0] = np.full_like(xs[0], 1.0)
    if op.name == "where":
        xs[0] = (xs[0] > xs[0].mean()).astype(float)

    def partial(i, args):
        y = _eval(op.forward, names, args)
        return np.broadcast_to(_eval(op.partials[i], names + ("y",), list(args) + [y]), args[0].shape)

    for i, fi in enumerate(op.partials):
        for j, fj in enumerate(op.partials):
            if fi is None or fj is None or j in op.nondiff_args or i in op.nondiff_args:
                assert H[i][j] is None or fi is not None and fj is not None
                continue
            y = _eval(op.forward, names, xs)
            h = np.broadcast_to(0.0 if H[i][j] is None else _eval(H[i][j], names + ("y",), xs + [y]),
                                xs[0].shape)
            if H[j][i] is not None or H[i][j] is not None:
                hji = np.broadcast_to(0.0 if H[j][i] is None else _eval(H[j][i], names + ("y",), xs + [y]),
                                      xs[0].shape)
                assert_close(h, hji, rtol=1e-9, atol=1e-9, what=f"{op.name}: H[{i}][{j}] == H[{j}][{i}]")
            step = 1e-6 * np.maximum(1.0, np.abs(xs[j]))
            plus, minus = list(xs), list(xs)
            plus[j] = xs[j] + step
            minus[j] = xs[j] - step
            fd = (partial(i, plus) - partial(i, minus)) / (2 * step)
            if op.name in ("polygamma",) and j == 0:
                continue                      # the order is an integer: no derivative through it
            assert_close(h, fd, rtol=1e-5, atol=1e-5, what=f"{op.name}: H[{i}][{j}] vs finite differences")


def _fused(func, inputs):
    """Is ``nb.hvp(func, inputs, ...)`` computed by the fused sweeps?"""
    return Gradient("hvp", func, inputs, False, False, fused=True).fused


@pytest.mark.parametrize("op, shapes", PARAMS)
def test_fused_hvp_matches_the_differentiable_path_and_torch(op, shapes):
    rng = np.random.default_rng(op.code + 7)
    f, tf, args = case(op, shapes, rng)
    w = rng.standard_normal(np.shape(f(*args)))
    v = tuple(rng.standard_normal(np.shape(a)) for a in args)

    def s(*a):
        return np.sum(w * f(*a))
    assert _fused(s, tuple(args))
    out, hv = nb.hvp(s, tuple(args), v)
    _, ref = nb.hvp(s, tuple(args), v, create_graph=True)      # the double-backward trick
    for k, (h, r) in enumerate(zip(hv, ref)):
        assert h.dtype == np.float64 and h.shape == np.shape(args[k])
        assert_close(h, r.detach(), rtol=1e-10, atol=1e-10, what=f"{op.name} Hv[{k}] vs create_graph path")
    if tf is not None:
        tw = torch.tensor(w)
        targs = tuple(torch.tensor(np.asarray(a, np.float64)) for a in args)
        _, thv = TF.hvp(lambda *a: (tw * tf(*a)).sum(), targs, tuple(torch.tensor(x) for x in v))
        rtol = 1e-8 if op.name in ("gammaln", "polygamma") else 1e-10
        for k, (h, t) in enumerate(zip(hv, thv)):
            assert_close(h, t.numpy(), rtol=rtol, atol=rtol, what=f"{op.name} Hv[{k}] vs PyTorch")


@pytest.mark.parametrize("tA, tB, batch", [(False, False, ()), (True, False, ()), (False, True, ()),
                                           (True, True, ()), (False, False, (3,)), (True, False, (2,))])
def test_fused_hvp_of_products(tA, tB, batch):
    rng = np.random.default_rng(len(batch) + 2 * tA + tB)
    A = rng.standard_normal(batch + (4, 3))
    B = rng.standard_normal(batch + (3, 5))
    W = rng.standard_normal(batch + (4, 5))
    Ain = np.swapaxes(A, -1, -2).copy() if tA else A
    Bin = np.swapaxes(B, -1, -2).copy() if tB else B

    def f(a, b):
        a = np.swapaxes(a, -1, -2) if tA else a
        b = np.swapaxes(b, -1, -2) if tB else b
        return np.sum(np.tanh(a @ b) * W) + np.sum(a * a * a)

    def ft(a, b):
        a = a.transpose(-1, -2) if tA else a
        b = b.transpose(-1, -2) if tB else b
        return (torch.tanh(a @ b) * torch.tensor(W)).sum() + (a * a * a).sum()
    v = (rng.standard_normal(Ain.shape), rng.standard_normal(Bin.shape))
    assert _fused(f, (Ain, Bin))
    _, hv = nb.hvp(f, (Ain, Bin), v)
    _, thv = TF.hvp(ft, (torch.tensor(Ain), torch.tensor(Bin)), tuple(torch.tensor(x) for x in v))
    for h, t in zip(hv, thv):
        assert_close(h, t.numpy(), rtol=1e-11, atol=1e-11, what="matmul Hv")


def test_fused_hvp_with_a_matrix_broadcast_over_a_batch():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3, 4))
    X = rng.standard_normal((2, 4, 5))
    v = (rng.standard_normal(A.shape), rng.standard_normal(X.shape))
    _, hv = nb.hvp(lambda a, x: np.sum(np.sin(a @ x)), (A, X), v)
    _, thv = TF.hvp(lambda a, x: torch.sin(a @ x).sum(), (torch.tensor(A), torch.tensor(X)),
                    tuple(torch.tensor(t) for t in v))
    for h, t in zip(hv, thv):
        assert_close(h, t.numpy(), rtol=1e-11, atol=1e-11, what="broadcast matmul Hv")


STRUCTURAL = {
    "slices and gathers": (lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
                           lambda x: (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()),
    "integer indexing": (lambda x: np.sum(np.exp(x[np.array([0, 2, 2, 5])]) * x[:4]),
                         lambda x: (torch.exp(x[torch.tensor([0, 2, 2, 5])]) * x[:4]).sum()),
    "reductions and reshapes": (
        lambda x: np.sum(np.tanh(x.reshape(2, 3)).sum(axis=0) ** 3) + np.mean(x.reshape(2, 3).T ** 2),
        lambda x: (torch.tanh(x.reshape(2, 3)).sum(0) ** 3).sum() + (x.reshape(2, 3).T ** 2).mean()),
    "cumsum and max": (lambda x: np.sum(np.cumsum(x) ** 2) + np.max(np.sin(x)) ** 2,
                       lambda x: (torch.cumsum(x, 0) ** 2).sum() + torch.sin(x).max() ** 2),
    "concatenate and where": (
        lambda x: np.sum(np.concatenate([x, x ** 2]) ** 3 * np.where(x > 0, x, -x).sum()),
        lambda x: (torch.cat([x, x ** 2]) ** 3).sum() * torch.where(x > 0, x, -x).sum()),
}


@pytest.mark.parametrize("name", STRUCTURAL)
def test_fused_hvp_through_linear_kinds(name):
    f, ft = STRUCTURAL[name]
    rng = np.random.default_rng(len(name))
    x = rng.uniform(0.2, 1.0, 6)
    v = rng.standard_normal(6)
    assert _fused(f, (x,))
    _, hv = nb.hvp(f, x, v)
    _, thv = TF.hvp(ft, torch.tensor(x), torch.tensor(v))
    assert_close(hv, thv.numpy(), rtol=1e-11, atol=1e-11, what=name)


def test_ops_without_second_order_rules_take_the_differentiable_path():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    x = rng.uniform(0.5, 1.0, 3)
    v = rng.standard_normal(3)
    cases = ((lambda x: np.sum(np.linalg.solve(A, x) ** 2),
              lambda x: (torch.linalg.solve(torch.tensor(A), x) ** 2).sum()),
             (lambda x: np.sum(np.cumprod(x) ** 2), lambda x: (torch.cumprod(x, 0) ** 2).sum()))
    for f, ft in cases:
        assert not _fused(f, (x,))
        _, hv = nb.hvp(f, x, v)
        _, thv = TF.hvp(ft, torch.tensor(x), torch.tensor(v))
        assert_close(hv, thv.numpy(), rtol=1e-11, atol=1e-11, what="fallback")
    without = {op.kind for op in OPS.values()} - SECOND_ORDER_KINDS
    assert without == {"cumprod", "solve", "logabsdet", "cholesky", "eigh", "svd"}


def test_fused_hvp_zero_and_independent_blocks():
    x, y = np.array([1.0, 2.0]), np.array([3.0])
    # linear in y, independent of z: zero blocks come back as zeros of the input's shape
    _, hv = nb.hvp(lambda x, y, z: np.sum(x ** 3) + np.sum(y), (x, y, np.ones(2)),
                   (np.ones(2), np.ones(1), np.ones(2)))
    assert_close(hv[0], 6 * x)
    assert np.array_equal(hv[1], [0.0]) and np.array_equal(hv[2], [0.0, 0.0])
    # a constant output
    _, hv = nb.hvp(lambda x: np.float64(2.0), x, np.ones(2))
    assert np.array_equal(hv, [0.0, 0.0])


def test_fused_hvp_in_float32():
    x = np.linspace(0.1, 1.0, 5).astype(np.float32)
    v = np.ones(5, np.float32)
    _, hv = nb.hvp(lambda x: np.sum(np.exp(x) * x), x, v)
    assert hv.dtype == np.float32
    assert_close(hv, (np.exp(x.astype(float)) * (x + 2.0)), rtol=1e-5, atol=1e-5)


def test_fused_hvp_of_large_inputs_matches_torch():
    # arrays above the buffer cache's size: tangent, cotangent and source arenas are reused
    rng = np.random.default_rng(9)
    x, v = rng.uniform(-1, 1, 1 << 17), rng.standard_normal(1 << 17)
    f, ft = STRUCTURAL["slices and gathers"]
    for _ in range(2):
        _, hv = nb.hvp(f, x, v)
        _, thv = TF.hvp(ft, torch.tensor(x), torch.tensor(v))
        assert_close(hv, thv.numpy(), rtol=1e-12, atol=1e-9, what="Rosenbrock Hv")
    assert_close(nb.hessp(f)(x, v), hv, rtol=0, atol=0, what="hessp")


def test_hvp_supported_reads_the_op_kinds():
    from numbad.functional._common import Call
    call = Call((np.ones(3),), False)
    call.run(lambda x: np.sum(np.cumprod(x)))
    assert not sweeps.hvp_supported(call.tape, call.begin, call.tape.n_ops)
    call = Call((np.ones(3),), False)
    call.run(lambda x: np.sum(np.sin(x)))
    assert sweeps.hvp_supported(call.tape, call.begin, call.tape.n_ops)


@pytest.mark.parametrize("name", ["x @ x", "np.dot(x, x)", "np.vdot(x, x)", "X @ X", "x @ reshape(x)"])
def test_fused_hvp_when_both_matmul_operands_are_one_node(name):
    # both shares of the second-order term land on one node: the second must add to the first
    rng = np.random.default_rng(7)
    f, ft, shape = {
        "x @ x": (lambda x: x @ x, lambda x: x @ x, (3,)),
        "np.dot(x, x)": (lambda x: np.dot(x, x), lambda x: torch.dot(x, x), (3,)),
        "np.vdot(x, x)": (lambda x: np.vdot(x, x), lambda x: torch.vdot(x, x), (4,)),
        "X @ X": (lambda x: np.sum(np.tanh(x @ x)), lambda x: torch.tanh(x @ x).sum(), (3, 3)),
        "x @ reshape(x)": (lambda x: x @ np.reshape(x, x.shape), lambda x: x @ x, (3,)),
    }[name]
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    assert _fused(f, (x,))
    _, thv = TF.hvp(ft, torch.tensor(x), torch.tensor(t))
    for fn in (nb.hvp, nb.vhp):
        _, hv = fn(f, x, t)
        assert_close(hv, thv.numpy(), rtol=1e-12, atol=1e-12, what=f"{fn.__name__} of {name}")
    assert_close(nb.hessp(f)(x, t), thv.numpy(), rtol=1e-12, atol=1e-12, what="hessp")
    if len(shape) == 1:
        assert_close(nb.hvp(f, x, t)[1], 2 * t, rtol=1e-14, atol=0, what="H = 2 I")
