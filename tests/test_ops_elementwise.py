"""Every elementwise op of the registry, generated from the registry itself.

For each op and each broadcasting pattern: the value is numpy's, the
derivative matches central finite differences and PyTorch, the fast njit
sweep matches the differentiable (create_graph) path, float32 works, and the
second derivative (a vjp of a vjp) matches finite differences of the first
and PyTorch.
"""
import numpy as np
import pytest
import torch

import numbad as nb
from numbad.ops import OPS

from helpers import assert_close, central_vjp, nb_second, torch_second, torch_vjp

ELEMENTWISE = [op for op in OPS.values() if op.kind == "elementwise"]
NONDIFF = [op for op in OPS.values() if op.kind == "nondiff" and op.dtype_out == "bool"]

SHAPES = {
    1: [((3, 4),), ((),)],
    2: [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (3,)), ((2, 3), ())],
    3: [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (1,))],
}

SPECIAL = {"erf": (nb.special.erf, torch.erf), "erfc": (nb.special.erfc, torch.erfc),
           "gammaln": (nb.special.gammaln, torch.lgamma), "expit": (nb.special.expit, torch.sigmoid),
           "logit": (nb.special.logit, torch.logit),
           "softplus": (nb.special.softplus, torch.nn.functional.softplus)}
NO_TORCH = {"cbrt", "heaviside", "round_decimals", "floor_divide"}   # PyTorch has no (differentiable) one


def case(op, shapes, rng):
    """(numbad function, torch function or None, differentiable args) for ``op`` on ``shapes``."""
    if op.name == "where":
        cond = rng.random(np.broadcast_shapes(*shapes)) > 0.5
        args = [rng.uniform(*op.domain[1], size=shapes[1]), rng.uniform(*op.domain[2], size=shapes[2])]
        return (lambda a, b: np.where(cond, a, b)), (lambda a, b: torch.where(torch.tensor(cond), a, b)), args
    if op.name == "round_decimals":
        return (lambda a: np.round(a, 1)), None, [rng.uniform(*op.domain[0], size=shapes[0])]
    if op.name == "polygamma":
        return ((lambda x: nb.special.polygamma(1, x)), (lambda x: torch.polygamma(1, x)),
                [rng.uniform(*op.domain[1], size=shapes[-1])])
    args = [rng.uniform(*dom, size=shape) for dom, shape in zip(op.domain, shapes)]
    if op.name in SPECIAL:
        return SPECIAL[op.name] + (args,)
    if op.name == "sqrt_subgrad":       # np.linalg.norm's sqrt: PyTorch's sqrt away from 0
        from numbad.tensor.linalg import sqrt_subgrad
        return sqrt_subgrad, torch.sqrt, args
    if op.name == "clip":
        return (lambda a, b, c: np.clip(a, b, c)), (lambda a, b, c: torch.clamp(a, b, c)), args
    if op.name in NO_TORCH:
        return op.ufunc, None, args
    tname = "abs" if op.name == "fabs" else "round" if op.name == "rint" else op.torch_names[0]
    return op.ufunc, getattr(torch, tname), args


def ids(op, shapes):
    return f"{op.name}-" + "x".join(str(s) for s in shapes).replace(" ", "")


PARAMS = [pytest.param(op, shapes, id=ids(op, shapes))
          for op in ELEMENTWISE for shapes in SHAPES[op.arity]
          if not (op.name in ("polygamma", "round_decimals") and shapes != SHAPES[op.arity][0])]


def test_every_op_has_a_test_domain():
    missing = [op.name for op in OPS.values() if op.kind in ("elementwise", "nondiff") and
               (op.domain is None or len(op.domain) != op.arity)]
    assert not missing, f"ops without a test domain (one range per operand): {missing}"


@pytest.mark.parametrize("op, shapes", PARAMS)
def test_elementwise_derivative(op, shapes):
    rng = np.random.default_rng(op.code)
    f, tf, args = case(op, shapes, rng)
    ref = f(*args)
    v = rng.standard_normal(np.shape(ref))
    args_t = tuple(args)

    out, g = nb.vjp(f, args_t, v)
    assert np.array_equal(out, ref, equal_nan=True), "the value must be numpy's, to the bit"
    fd = central_vjp(f, args, v)
    for k, (gk, fk) in enumerate(zip(g, fd)):
        assert gk.dtype == np.float64
        assert_close(gk, fk, rtol=1e-6, atol=1e-6, what=f"{op.name} d/darg{k} vs finite differences")
    if tf is not None:
        _, tg = torch_vjp(tf, args, v)
        for k, (gk, tk) in enumerate(zip(g, tg)):
            assert_close(gk, tk, rtol=1e-11, atol=1e-12, what=f"{op.name} d/darg{k} vs PyTorch")

    # the differentiable path gives the same numbers as the njit sweep
    out_c, g_c = nb.vjp(f, args_t, v, create_graph=True)
    for k, (gk, gc) in enumerate(zip(g, g_c)):
        assert isinstance(gc, nb.Tensor)
        assert_close(gc.detach(), gk, rtol=1e-13, atol=1e-14, what=f"{op.name} create_graph path")

    # float32 in, float32 out, close to the float64 result
    args32 = tuple(np.asarray(a, np.float32) for a in args)
    out32, g32 = nb.vjp(f, args32, v.astype(np.float32))
    for k, (gk, g64) in enumerate(zip(g32, g)):
        assert gk.dtype == np.float32
        assert_close(gk, g64, rtol=2e-3, atol=2e-3, what=f"{op.name} float32")


@pytest.mark.parametrize("op", [p for p in ELEMENTWISE], ids=lambda op: op.name)
def test_elementwise_second_derivative(op):
    rng = np.random.default_rng(100 + op.code)
    f, tf, args = case(op, SHAPES[op.arity][0] if op.name not in ("polygamma",) else ((5,),), rng)
    v = rng.standard_normal(np.shape(f(*args)))
    u = [rng.standard_normal(np.shape(a)) for a in args]
    second = nb_second(f, tuple(args), v, u)

    def first(*a):
        return np.concatenate([np.ravel(x) for x in nb.vjp(f, a, v)[1]])
    fd = central_vjp(first, args, np.concatenate([np.ravel(x) for x in u]), h=1e-5)
    for k, (sk, fk) in enumerate(zip(second, fd)):
        assert_close(sk, fk, rtol=1e-5, atol=1e-5, what=f"{op.name} second derivative vs FD")
    if tf is not None:
        # PyTorch's trigamma is accurate to ~1e-9 only (numbad's matches scipy's to ~1e-15)
        rtol = 1e-8 if op.name in ("gammaln", "polygamma") else 1e-10
        for k, (sk, tk) in enumerate(zip(second, torch_second(tf, args, v, u))):
            assert_close(sk, tk, rtol=rtol, atol=rtol, what=f"{op.name} second derivative vs PyTorch")


@pytest.mark.parametrize("op", NONDIFF, ids=lambda op: op.name)
def test_nondifferentiable_ops_give_booleans_and_block_derivatives(op):
    rng = np.random.default_rng(op.code)
    x = rng.uniform(-2, 2, size=6)
    logical = op.name.startswith("logical")
    rest = [rng.uniform(*dom, size=6) for dom in op.domain[1:]]
    rest = [a > 0 for a in rest] if logical else rest
    expected = op.ufunc(x > 0 if logical else x, *rest)
    seen = {}

    def f(x):
        r = op.ufunc(x > 0 if logical else x, *rest)
        seen["r"] = r
        return x * np.where(r, 2.0, 3.0)

    out, g = nb.vjp(f, x, np.ones(6))
    r = seen["r"]
    assert isinstance(r, nb.Tensor) and r.dtype == np.bool_
    assert np.array_equal(r.detach(), expected)
    assert_close(g, np.where(expected, 2.0, 3.0), what=f"{op.name}: no derivative through the mask")


# ----------------------------------------------------------------------------- every spelling reaches its op
def _numpy_attr(spelling):
    obj = np
    for part in spelling[3:].split("."):
        obj = getattr(obj, part, None)
    return obj


@pytest.mark.parametrize("op", ELEMENTWISE + NONDIFF, ids=lambda op: op.name)
def test_every_numpy_and_torch_spelling_reaches_the_op(op):
    """``np.xxx`` names of the row are ufuncs or handled functions; PyTorch method names are methods."""
    from numbad.tensor.numpy_api import HANDLED
    x = [np.random.default_rng(0).uniform(*dom, 3) for dom in op.domain]
    for spelling in op.numpy_names:
        if not spelling.startswith("np.") or "(" in spelling:
            continue
        fn = _numpy_attr(spelling)
        assert fn is not None, spelling
        assert fn in HANDLED or getattr(fn, "nin", None) is not None, spelling
        if isinstance(fn, np.ufunc) and op.kind != "nondiff":
            out, _ = nb.vjp(lambda *a: fn(*a), tuple(x), np.ones(3))
            assert np.array_equal(out, fn(*x), equal_nan=True), spelling
    for name in op.torch_names:
        if "." in name:
            continue
        assert callable(getattr(nb.Tensor, name, None)), f"Tensor has no method {name} ({op.name})"


def test_method_spellings_compute_the_ops():
    x = np.array([-1.5, 0.2, 2.5])

    def f(x):
        parts = [x.clamp(min=0.0), x.clamp(max=0.5), x.clamp(-1, 1), x.clamp_min(0.1), x.clamp_max(0.1),
                 x.abs(), x.neg(), x.sigmoid(), x.erf(), x.lgamma() * 0 + x.exp(), x.floor_divide(0.7),
                 np.true_divide(x, 2.0), np.abs(x), np.floor_divide(x, 0.7), x // 0.7, divmod(x, 0.7)[1],
                 np.divmod(x, 0.7)[0], x.pow(2), x.sqrt().nan_to_num(0.0) if hasattr(x, "nan_to_num") else x]
        return np.stack(parts)
    out, g = nb.vjp(f, x, np.ones((19, 3)))
    xt = torch.tensor(x, requires_grad=True)
    tparts = [xt.clamp(min=0.0), xt.clamp(max=0.5), xt.clamp(-1, 1), xt.clamp_min(0.1), xt.clamp_max(0.1),
              xt.abs(), xt.neg(), xt.sigmoid(), xt.erf(), xt.lgamma() * 0 + xt.exp(),
              torch.floor_divide(xt.detach(), 0.7), xt / 2.0, xt.abs(), torch.floor_divide(xt.detach(), 0.7),
              torch.floor_divide(xt.detach(), 0.7), torch.remainder(xt, 0.7), torch.floor_divide(xt.detach(), 0.7),
              xt.pow(2), xt]
    tout = torch.stack(tparts)
    tout.sum().backward()
    assert_close(out, tout.detach().numpy())
    assert_close(g, xt.grad.numpy())


def test_comparison_methods_and_predicates():
    x = np.array([-1.0, 0.0, 2.0])

    def f(x):
        masks = [x.lt(0), x.le(0), x.gt(0), x.ge(0), x.eq(0), x.ne(0), x.isfinite(), x.isnan(), x.isinf(),
                 x.signbit(), x.logical_not(), (x > 0) & (x < 3), (x > 0) | (x < -0.5), (x > 0) ^ (x > 1)]
        return sum(np.where(m, 1.0, 0.0) * (k + 1) for k, m in enumerate(masks)) * x
    out, g = nb.vjp(f, x, np.ones(3))
    xt = torch.tensor(x)
    masks = [xt.lt(0), xt.le(0), xt.gt(0), xt.ge(0), xt.eq(0), xt.ne(0), xt.isfinite(), xt.isnan(), xt.isinf(),
             xt.signbit(), xt.logical_not(), (xt > 0) & (xt < 3), (xt > 0) | (xt < -0.5), (xt > 0) ^ (xt > 1)]
    weights = sum(torch.where(m, 1.0, 0.0) * (k + 1) for k, m in enumerate(masks)).numpy()
    assert_close(out, weights * x)
    assert_close(g, weights)
