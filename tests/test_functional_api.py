"""The functional family's contract: PyTorch's nesting, shapes, dtypes and errors, and numbad's extras."""
import doctest
import re

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.autograd.functional as TF

import numbad as nb
from numbad import sweeps
from numbad.functional import hessian as hessian_mod, jacobian as jacobian_mod, jvp as jvp_mod
from numbad.functional import optimize as optimize_mod, vjp as vjp_mod

from helpers import assert_close, same_error
from test_functional_vs_torch import same_nesting, tt

T = lambda *s: torch.ones(*s, dtype=torch.float64)  # noqa: E731
O = np.ones  # noqa: E741


# ----------------------------------------------------------------------------- nesting and shapes
def f_aa(x):
    return (x * x).sum(1)


def f_at(x):
    return x * 2.0, (x ** 3).sum()


def f_ta(x, y):
    return (x[:, None] * y).sum(0)


def f_tt(x, y):
    return x * y[:2], (y ** 2).sum(), x.sum() * y


@pytest.mark.parametrize("f, args", [
    (f_aa, (np.arange(6.0).reshape(2, 3),)),
    (f_at, (np.arange(3.0),)),
    (f_ta, (np.arange(2.0), np.arange(6.0).reshape(2, 3))),
    (f_tt, (np.arange(2.0) + 1, np.arange(3.0) - 1)),
])
@pytest.mark.parametrize("as_tuple", [False, True])
@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode", None])
@pytest.mark.parametrize("create_graph", [False, True])
def test_jacobian_nesting_and_shapes(f, args, as_tuple, strategy, create_graph):
    if len(args) == 1 and not as_tuple:
        arg, targ = args[0], tt(args[0])
    else:
        arg, targ = tuple(args), tuple(tt(a) for a in args)
    expected = TF.jacobian(f, targ)
    kw = {} if strategy is None else {"strategy": strategy}
    got = nb.jacobian(f, arg, create_graph=create_graph, **kw)
    same_nesting(got, expected, tensors=create_graph)


def test_jacobian_shapes_are_out_shape_plus_in_shape():
    J = nb.jacobian(lambda x, y: (x[:, :, None] * y).sum(0), (np.ones((2, 3)), np.ones((3, 4))))
    assert J[0].shape == (3, 4, 2, 3) and J[1].shape == (3, 4, 3, 4)
    J = nb.jacobian(lambda s: s * np.ones((2, 2)), np.array(2.0))
    assert J.shape == (2, 2) and np.array_equal(J, np.ones((2, 2)))
    J = nb.jacobian(lambda x: x.sum(), 3.0)
    assert isinstance(J, np.ndarray) and J.shape == () and J == 1.0


def test_jacobian_torch_doc_examples():
    def exp_reducer(x):
        return x.exp().sum(dim=1)
    inputs = np.random.rand(2, 2)
    same_nesting(nb.jacobian(exp_reducer, inputs), TF.jacobian(exp_reducer, tt(inputs)))
    same_nesting(nb.jacobian(exp_reducer, inputs, create_graph=True),
                 TF.jacobian(exp_reducer, tt(inputs), create_graph=True), tensors=True)

    def exp_adder(x, y):
        return 2 * x.exp() + 3 * y
    inputs = (np.random.rand(2), np.random.rand(2))
    same_nesting(nb.jacobian(exp_adder, inputs), TF.jacobian(exp_adder, tuple(tt(i) for i in inputs)))

    def linear_model(x):
        W = np.array([[2.0, -1.0], [0.0, 1.0]])
        b = np.array([1.0, 0.5])
        return x @ W.T + b
    x = np.random.randn(4, 2)
    assert nb.jacobian(linear_model, x, vectorize=True, strategy="forward-mode").shape == (4, 2, 4, 2)


def test_hessian_nesting_and_torch_doc_examples():
    def pow_reducer(x):
        return x.pow(3).sum()
    inputs = np.random.rand(2, 2)
    for kw in ({}, {"create_graph": True}, {"outer_jacobian_strategy": "forward-mode"},
               {"vectorize": True, "outer_jacobian_strategy": "forward-mode"}):
        same_nesting(nb.hessian(pow_reducer, inputs, **kw), TF.hessian(pow_reducer, tt(inputs)),
                     tensors=kw.get("create_graph", False))

    def pow_adder_reducer(x, y):
        return (2 * x.pow(2) + 3 * y.pow(2)).sum()
    inputs = (np.random.rand(2), np.random.rand(2))
    same_nesting(nb.hessian(pow_adder_reducer, inputs),
                 TF.hessian(pow_adder_reducer, tuple(tt(i) for i in inputs)))
    one = (np.random.rand(3),)
    same_nesting(nb.hessian(pow_reducer, one), TF.hessian(pow_reducer, (tt(one[0]),)))


def test_jvp_hvp_vhp_torch_doc_examples():
    def exp_reducer(x):
        return x.exp().sum(dim=1)
    inputs, v = np.random.rand(4, 4), np.ones((4, 4))
    for kw in ({}, {"create_graph": True}):
        out, jv = nb.jvp(exp_reducer, inputs, v, **kw)
        tout, tjv = TF.jvp(exp_reducer, tt(inputs), tt(v), **kw)
        same_nesting(jv, tjv, tensors=bool(kw))

    def adder(x, y):
        return 2 * x + 3 * y
    inputs, v = (np.random.rand(2), np.random.rand(2)), (np.ones(2), np.ones(2))
    assert_close(nb.jvp(adder, inputs, v)[1], [5.0, 5.0])

    def pow_reducer(x):
        return x.pow(3).sum()
    inputs, v = np.random.rand(2, 2), np.ones((2, 2))
    for fn, tfn in ((nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        same_nesting(fn(pow_reducer, inputs, v), tfn(pow_reducer, tt(inputs), tt(v)))
        same_nesting(fn(pow_reducer, inputs, v, create_graph=True)[1],
                     tfn(pow_reducer, tt(inputs), tt(v), create_graph=True)[1], tensors=True)

    def pow_adder_reducer(x, y):
        return (2 * x.pow(2) + 3 * y.pow(2)).sum()
    inputs, v = (np.random.rand(2), np.random.rand(2)), (np.zeros(2), np.ones(2))
    for fn, tfn in ((nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        same_nesting(fn(pow_adder_reducer, inputs, v),
                     tfn(pow_adder_reducer, tuple(tt(i) for i in inputs), tuple(tt(i) for i in v)))


def test_jvp_shapes_follow_outputs_and_v_none():
    out, jv = nb.jvp(lambda x: (x * 2, x.sum()), np.ones(3), np.ones(3))
    assert isinstance(jv, tuple) and jv[0].shape == (3,) and jv[1].shape == ()
    out, jv = nb.jvp(lambda x: (x * 2,), np.ones(3), np.ones(3))
    assert isinstance(out, tuple) and isinstance(jv, tuple) and len(jv) == 1
    out, jv = nb.jvp(lambda x: x * x * np.ones(2), np.array(3.0))        # v=None: one element
    assert_close(jv, [6.0, 6.0])
    out, jv = nb.jvp(lambda x: x * x, (np.ones((1, 1)),))
    assert isinstance(jv, np.ndarray) and jv.shape == (1, 1) and jv[0, 0] == 2.0
    out, hv = nb.hvp(lambda x: x ** 3, 2.0)
    assert hv == 12.0 and isinstance(hv, np.ndarray)
    out, vh = nb.vhp(lambda x: (x ** 3).sum(), (np.array([2.0]),))
    assert isinstance(vh, tuple) and vh[0] == 12.0


def test_v_may_be_a_scalar_for_one_element_inputs():
    for v in (2.0, np.float32(2.0), 2):
        assert_close(nb.jvp(lambda x: x * 3.0, np.array([1.0]), v)[1], [6.0])
        assert_close(nb.hvp(lambda x: (x ** 3).sum(), np.array([1.0]), v)[1], [12.0])
        assert_close(nb.vhp(lambda x: (x ** 3).sum(), np.array([1.0]), v)[1], [12.0])


def test_independent_inputs_and_constant_outputs_give_zeros():
    x, y = np.array([1.0, 2.0]), np.array([3.0], np.float32)
    out, jv = nb.jvp(lambda x, y: (x * 2, np.ones(3)), (x, y), (O(2), O(1)))
    assert_close(jv[0], [2.0, 2.0]) and assert_close(jv[1], np.zeros(3))
    J = nb.jacobian(lambda x, y: (x * 2, np.ones(3)), (x, y))
    assert J[0][1].dtype == np.float32 and J[0][1].shape == (2, 1) and not J[0][1].any()
    assert J[1][0].shape == (3, 2) and not J[1][0].any()
    for strategy in ("reverse-mode", "forward-mode"):
        J = nb.jacobian(lambda x, y: (x * 2, np.ones(3)), (x, y), strategy=strategy, create_graph=True)
        assert all(isinstance(b, nb.Tensor) for r in J for b in r)
        assert_close(J[0][0].detach(), 2 * np.eye(2)) and assert_close(J[1][1].detach(), np.zeros((3, 1)))
    H = nb.hessian(lambda x, y: (x ** 3).sum(), (x, y))
    assert_close(H[0][0], np.diag(6 * x)) and not H[1][1].any() and H[0][1].shape == (2, 1)
    assert_close(nb.hessian(lambda x: 3.0, x), np.zeros((2, 2)))
    for fn in (nb.hvp, nb.vhp):
        out, p = fn(lambda x, y: (x ** 3).sum(), (x, y), (O(2), O(1)))
        assert_close(p[0], 6 * x) and p[1].dtype == np.float32 and not p[1].any()
        out, p = fn(lambda x: (x * 2).sum(), x, O(2))                # linear: zero Hessian
        assert_close(p, [0.0, 0.0])


def test_zero_size_outputs_and_inputs():
    J = nb.jacobian(lambda x: x[:0] * 2, np.ones(3))
    assert J.shape == (0, 3)
    J = nb.jacobian(lambda x, y: x * 2 + y.sum(), (np.ones(2), np.ones(0)), strategy="forward-mode")
    assert J[0].shape == (2, 2) and J[1].shape == (2, 0)


def test_mixed_precision_dtypes_follow_pytorch():
    x32 = np.ones(2, np.float32)
    f = lambda x: x * np.float64(2.0) * np.ones(2)  # noqa: E731  float64 output
    assert nb.jacobian(f, x32).dtype == np.float32
    assert nb.jacobian(f, x32, strategy="forward-mode").dtype == np.float64
    assert nb.jvp(f, x32, x32)[1].dtype == np.float64
    t = torch.ones(2, dtype=torch.float32)
    assert TF.jacobian(lambda x: x.double() * 2, t).dtype == torch.float32
    fwd = TF.jacobian(lambda x: x.double() * 2, t, strategy="forward-mode", vectorize=True)
    assert fwd.dtype == torch.float64


def test_inputs_are_never_modified():
    x, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, -1.0])
    before = x.copy(), v.copy()
    f = lambda x: (x * x * x).sum()  # noqa: E731
    for call in (lambda: nb.jvp(f, x, v), lambda: nb.jacobian(f, x), lambda: nb.hessian(f, x),
                 lambda: nb.hvp(f, x, v), lambda: nb.vhp(f, x, v), lambda: nb.hessp(f)(x, v),
                 lambda: nb.jvp(f, x, v, create_graph=True), lambda: nb.hvp(f, x, v, create_graph=True)):
        call()
        assert np.array_equal(x, before[0]) and np.array_equal(v, before[1])


# ----------------------------------------------------------------------------- strategy and batching
class Spy:
    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("reverse", "tangent"):
            real = getattr(sweeps, name)
            monkeypatch.setattr(sweeps, name, self._wrap(name, real))

    def _wrap(self, name, real):
        def spy(*args, **kwargs):
            self.calls.append((name, kwargs.get("lanes", args[6] if len(args) > 6 else 0)))
            return real(*args, **kwargs)
        return spy


def test_default_strategy_sweeps_the_cheaper_direction(monkeypatch):
    spy = Spy(monkeypatch)
    wide = lambda x: np.sin(x)[:, None] * np.arange(1.0, 4.0)  # noqa: E731  (3n outputs, n inputs)
    x = np.array([0.3, 0.7])
    J = nb.jacobian(wide, x)
    assert spy.calls == [("tangent", 2)]
    assert_close(J, TF.jacobian(lambda t: torch.sin(t)[:, None] * torch.arange(1.0, 4.0), tt(x)).numpy())
    spy.calls.clear()
    nb.jacobian(wide, x, strategy="reverse-mode")                   # explicit: honoured
    assert spy.calls == [("reverse", 6)]
    spy.calls.clear()
    nb.jacobian(lambda x: np.sin(x).sum(), x)
    assert spy.calls == [("reverse", 0)]
    spy.calls.clear()
    nb.jacobian(lambda x: np.sin(x).sum(), x, strategy="forward-mode")
    assert spy.calls == [("tangent", 2)]


def test_default_strategy_falls_back_to_rows_for_non_finite_entries():
    # sqrt at 0 has an infinite derivative: PyTorch's rows put NaN (0 * inf) in that column
    x = np.array([0.0, 1.0])
    wide = lambda x: np.sqrt(x)[:, None] * np.array([1.0, 2.0, 3.0])  # noqa: E731
    expected = TF.jacobian(lambda t: torch.sqrt(t)[:, None] * torch.tensor([1.0, 2.0, 3.0]), tt(x)).numpy()
    np.testing.assert_array_equal(nb.jacobian(wide, x), expected)
    np.testing.assert_array_equal(nb.jacobian(wide, x, strategy="reverse-mode"), expected)
    # forward mode (honoured when asked for) puts the NaNs in the row instead
    assert not np.array_equal(nb.jacobian(wide, x, strategy="forward-mode"), expected, equal_nan=True)


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_blocks_of_lanes_give_the_same_jacobian(monkeypatch, strategy):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 5))

    def f(x, y):
        return np.tanh(A @ x) * y[0], (x * x).sum() * y
    args = (rng.standard_normal(5), rng.standard_normal(3))
    whole = nb.jacobian(f, args, strategy=strategy)
    monkeypatch.setattr(jacobian_mod, "LANE_BUDGET", 1)             # one row/column per sweep
    ones = nb.jacobian(f, args, strategy=strategy)
    monkeypatch.setattr(jacobian_mod, "LANE_BUDGET", 3 * 60 + 1)           # blocks of a few
    some = nb.jacobian(f, args, strategy=strategy)
    for a, b, c in zip(np.concatenate([np.ravel(b) for r in whole for b in r]),
                       np.concatenate([np.ravel(b) for r in ones for b in r]),
                       np.concatenate([np.ravel(b) for r in some for b in r])):
        assert a == pytest.approx(b, rel=1e-13, abs=1e-14) and a == pytest.approx(c, rel=1e-13, abs=1e-14)


def test_vectorize_and_strict_are_computed_where_pytorch_refuses():
    f = lambda x, y: (x * y, (x ** 2).sum() * y)  # noqa: E731
    args = (np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    targs = tuple(tt(a) for a in args)
    expected = TF.jacobian(f, targs, strategy="forward-mode", vectorize=True)
    with pytest.raises(NotImplementedError):
        TF.jacobian(f, targs, strategy="forward-mode")
    same_nesting(nb.jacobian(f, args, strategy="forward-mode"), expected)
    with pytest.raises(RuntimeError):
        TF.jacobian(f, targs, strict=True, vectorize=True)
    same_nesting(nb.jacobian(f, args, strict=True, vectorize=True), expected)
    same_nesting(nb.jacobian(f, args, strict=True, strategy="forward-mode"), expected)
    with pytest.raises(NotImplementedError):
        TF.jacobian(f, targs, strategy="forward-mode", vectorize=True, create_graph=True)
    same_nesting(nb.jacobian(f, args, strategy="forward-mode", create_graph=True), expected, tensors=True)
    g = lambda x: (x ** 3).sum()  # noqa: E731
    same_nesting(nb.hessian(g, args[0], outer_jacobian_strategy="forward-mode", create_graph=True),
                 TF.hessian(g, targs[0]), tensors=True)


# ----------------------------------------------------------------------------- higher order by nesting
def test_jvp_create_graph_is_differentiable():
    f = lambda x: np.sin(x) * x  # noqa: E731
    x, v, u = np.array([0.3, -1.1]), np.array([1.0, 2.0]), np.array([0.5, -1.0])
    _, g = nb.vjp(lambda x: nb.jvp(f, x, v, create_graph=True)[1], x, u)
    _, tg = TF.vjp(lambda t: TF.jvp(lambda s: torch.sin(s) * s, t, tt(v), create_graph=True)[1], tt(x), tt(u))
    assert_close(g, tg.numpy(), rtol=1e-13)
    H = nb.jacobian(lambda x: nb.jacobian(f, x, create_graph=True), x)
    tH = TF.jacobian(lambda t: TF.jacobian(lambda s: torch.sin(s) * s, t, create_graph=True), tt(x))
    assert_close(H, tH.numpy(), rtol=1e-13)


def test_third_derivatives_by_nesting_hvp_and_hessian():
    f = lambda x: (x ** 4).sum() + x[0] * x[1] ** 3  # noqa: E731
    tf = lambda x: (x ** 4).sum() + x[0] * x[1] ** 3  # noqa: E731
    x, v = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    for fn, tfn in ((nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        J = nb.jacobian(lambda x: fn(f, x, v, create_graph=True)[1], x)
        tJ = TF.jacobian(lambda t: tfn(tf, t, tt(v), create_graph=True)[1], tt(x))
        assert_close(J, tJ.numpy(), rtol=1e-13)
    d3 = nb.jacobian(lambda x: nb.hessian(f, x, create_graph=True), x)
    td3 = TF.jacobian(lambda t: TF.hessian(tf, t, create_graph=True), tt(x))
    assert_close(d3, td3.numpy(), rtol=1e-13)


def test_results_inside_an_outer_recording_without_create_graph_are_constants():
    def outer(y):
        J = nb.jacobian(lambda x: x * y, np.array([1.0, 2.0]))
        assert isinstance(J, np.ndarray)
        return (y * y).sum() + J.sum()
    _, g = nb.vjp(outer, np.array([3.0, 4.0]))
    assert_close(g, [6.0, 8.0])


# ----------------------------------------------------------------------------- errors, PyTorch's
def test_errors_v():
    for fn, tfn in ((nb.jvp, TF.jvp), (nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        f = (lambda x: x * 2) if fn is nb.jvp else (lambda x: (x ** 3).sum())
        same_error(lambda: fn(f, O(3)), lambda: tfn(f, T(3)))
        same_error(lambda: fn(f, O(4), O(3)), lambda: tfn(f, T(4), T(3)))
        same_error(lambda: fn(f, O(2), (O(2), O(2))), lambda: tfn(f, T(2), (T(2), T(2))))
        g = lambda x, y: (x * y * y).sum()  # noqa: E731
        same_error(lambda: fn(g, (O(2), O(2)), (O(2),)), lambda: tfn(g, (T(2), T(2)), (T(2),)))
        same_error(lambda: fn(g, (O(2), O(2)), (O(2), O(3))), lambda: tfn(g, (T(2), T(2)), (T(2), T(3))))
        same_error(lambda: fn(g, (O(2), O(2))), lambda: tfn(g, (T(2), T(2))))


def test_errors_v_of_the_wrong_type():
    for fn, tfn in ((nb.vjp, TF.vjp), (nb.jvp, TF.jvp), (nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        f = (lambda x: (x ** 3).sum()) if fn in (nb.hvp, nb.vhp) else (lambda x: x * 2)
        for bad, tbad in (([1.0, 2.0], [1.0, 2.0]), ((O(2), [1.0]), (T(2), [1.0])), ("ab", "ab")):
            with pytest.raises(TypeError) as tinfo:
                tfn(f, T(2), tbad)
            with pytest.raises(TypeError) as info:
                fn(f, O(2), bad)
            assert str(info.value) == str(tinfo.value).replace("a Tensor or a tuple of Tensors",
                                                               "an array or a tuple of arrays")


def test_errors_bad_inputs_and_outputs():
    for fn in (nb.jvp, nb.jacobian, nb.hessian, nb.hvp, nb.vhp):
        name = fn.__name__
        with pytest.raises(TypeError, match=f"The inputs given to {name} .* input 0 has integer"):
            fn(lambda x: x, np.ones(2, np.int64))
        with pytest.raises(TypeError, match="index 1|input 1"):
            fn(lambda x, y: x, (O(2), [1.0, 2.0]))
    for fn, tfn in ((nb.jvp, TF.jvp), (nb.jacobian, TF.jacobian), (nb.hvp, TF.hvp), (nb.vhp, TF.vhp),
                    (nb.hessian, TF.hessian)):
        args = (O(1), O(1)) if fn in (nb.jvp, nb.hvp, nb.vhp) else (O(1),)
        targs = (T(1), T(1)) if fn in (nb.jvp, nb.hvp, nb.vhp) else (T(1),)
        same_error(lambda: fn(lambda x: [x], *args), lambda: tfn(lambda x: [x], *targs))
        same_error(lambda: fn(lambda x: (x, "a"), *args), lambda: tfn(lambda x: (x, "a"), *targs))


def test_errors_strict_jvp():
    same_error(lambda: nb.jvp(lambda x, y: x * 2, (O(2), O(2)), (O(2), O(2)), strict=True),
               lambda: TF.jvp(lambda x, y: x * 2, (T(2), T(2)), (T(2), T(2)), strict=True))
    c = np.ones(2)
    same_error(lambda: nb.jvp(lambda x: (x * 2, c), O(2), O(2), strict=True),
               lambda: TF.jvp(lambda x: (x * 2, T(2)), T(2), T(2), strict=True))
    for f in (lambda x: x * 2, lambda x: x + 1, lambda x: x):
        same_error(lambda: nb.jvp(f, O(2), O(2), strict=True, create_graph=True),
                   lambda: TF.jvp(f, T(2), T(2), strict=True, create_graph=True))
    out, jv = nb.jvp(lambda x: x * x, O(2), O(2), strict=True, create_graph=True)
    assert_close(jv.detach(), [2.0, 2.0])
    nb.jvp(lambda x: x * x, O(2), O(2), strict=True)


def test_error_strict_jvp_output_independent_of_the_inputs():
    # an output that requires gradients (it depends on an enclosing call's input) but on no input here
    y0 = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError) as tinfo:
        TF.jvp(lambda x: (x * x, y0 * 3), T(2), T(2), strict=True, create_graph=True)
    assert "independent of entry 1 in the grad_outputs" in str(tinfo.value)

    def outer(y):
        nb.jvp(lambda x: (x * x, y * 3), O(2), O(2), strict=True, create_graph=True)
        return y.sum()
    with pytest.raises(RuntimeError) as info:
        nb.vjp(outer, O(2))
    assert str(info.value) == str(tinfo.value)


def test_errors_strict_jacobian():
    same_error(lambda: nb.jacobian(lambda x, y: x * 2, (O(2), O(2)), strict=True),
               lambda: TF.jacobian(lambda x, y: x * 2, (T(2), T(2)), strict=True))
    same_error(lambda: nb.jacobian(lambda x, y: (x * y, x * 2), (O(2), O(2)), strict=True),
               lambda: TF.jacobian(lambda x, y: (x * y, x * 2), (T(2), T(2)), strict=True))
    c = np.ones(2)
    same_error(lambda: nb.jacobian(lambda x: c, O(2), strict=True),
               lambda: TF.jacobian(lambda x: T(2), T(2), strict=True))
    for kw in ({}, {"strategy": "forward-mode"}):
        same_error(lambda: nb.jacobian(lambda x: x * 2, O(2), strict=True, create_graph=True, **kw),
                   lambda: TF.jacobian(lambda x: x * 2, T(2), strict=True, create_graph=True))
        same_error(lambda: nb.jacobian(lambda x, y: (x * y, x * 2), (O(2), O(2)), strict=True,
                                       create_graph=True, **kw),
                   lambda: TF.jacobian(lambda x, y: (x * y, x * 2), (T(2), T(2)), strict=True,
                                       create_graph=True))
        J = nb.jacobian(lambda x: x * x, O(2), strict=True, create_graph=True, **kw)
        assert_close(J.detach(), 2 * np.eye(2))


def test_errors_strategy_is_a_value_error_listing_the_valid_ones():
    expected = 'Expected strategy to be either "forward-mode" or "reverse-mode", but got '
    for bad in ("forward", "Reverse-mode", None, 3):
        with pytest.raises(ValueError, match=re.escape(expected + repr(bad))):
            nb.jacobian(lambda x: x, O(2), strategy=bad)
        with pytest.raises(ValueError, match=re.escape(expected + repr(bad))):
            nb.hessian(lambda x: x.sum(), O(2), outer_jacobian_strategy=bad)
    with pytest.raises(AssertionError):          # PyTorch's type; SPEC §1 asks for ValueError
        TF.jacobian(lambda x: x, T(2), strategy="forward")


def test_errors_hessian():
    for f in (lambda x: (x, x), lambda x: x * 2):
        same_error(lambda: nb.hessian(f, O(2)), lambda: TF.hessian(f, T(2)))
    for f in (lambda x: (x * 3).sum(), lambda x, y: (x ** 3).sum() + (y ** 3).sum(),
              lambda x, y: (x ** 3).sum()):
        args, targs = ((O(2), O(2)), (T(2), T(2))) if f.__code__.co_argcount == 2 else (O(2), T(2))
        same_error(lambda: nb.hessian(f, args, strict=True), lambda: TF.hessian(f, targs, strict=True))
    same_error(lambda: nb.hessian(lambda x: (x * x).sum(), O(2), strict=True, create_graph=True),
               lambda: TF.hessian(lambda x: (x * x).sum(), T(2), strict=True, create_graph=True))
    c = np.ones(1)
    same_error(lambda: nb.hessian(lambda x: c, O(2), strict=True),
               lambda: TF.hessian(lambda x: T(1), T(2), strict=True))
    H = nb.hessian(lambda x: x.exp().sum(), O(2), strict=True, create_graph=True)
    assert_close(H.detach(), np.e * np.eye(2))


def test_strict_create_graph_judges_numbads_graph():
    # documented difference: numbad records x ** 2 as a square, whose second derivative is a
    # constant; PyTorch's pow keeps x in its double-backward graph and accepts this call
    H = TF.hessian(lambda x: (x ** 2).sum(), T(2), strict=True, create_graph=True)
    assert_close(H.detach().numpy(), 2 * np.eye(2))
    with pytest.raises(RuntimeError, match="The jacobian of the user-provided function is independent of "
                                           "input 0. This is not allowed in strict mode when create_graph"):
        nb.hessian(lambda x: (x ** 2).sum(), O(2), strict=True, create_graph=True)


def test_errors_hvp_vhp():
    for fn, tfn in ((nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        for f in (lambda x: (x, x), lambda x: x * 2, lambda x: (x * 2,)):
            same_error(lambda: fn(f, O(2), O(2)), lambda: tfn(f, T(2), T(2)))
        for f in (lambda x: (x * 3).sum(), lambda x, y: (x ** 3).sum()):
            args = ((O(2), O(2)), (O(2), O(2))) if f.__code__.co_argcount == 2 else (O(2), O(2))
            targs = ((T(2), T(2)), (T(2), T(2))) if f.__code__.co_argcount == 2 else (T(2), T(2))
            same_error(lambda: fn(f, *args, strict=True), lambda: tfn(f, *targs, strict=True))
        same_error(lambda: fn(lambda x: (x * x).sum(), O(2), O(2), strict=True, create_graph=True),
                   lambda: tfn(lambda x: (x * x).sum(), T(2), T(2), strict=True, create_graph=True))
        c = np.ones(1)
        same_error(lambda: fn(lambda x: c, O(2), O(2), strict=True),
                   lambda: tfn(lambda x: T(1), T(2), T(2), strict=True))
        out, p = fn(lambda x: x.exp().sum(), O(2), O(2), strict=True, create_graph=True)
        assert_close(p.detach(), [np.e, np.e])


def test_errors_strict_second_order_independent_of_the_inputs():
    # the gradient depends on an enclosing call's input only: PyTorch's grad_jacobian messages
    y0 = torch.full((2,), 2.0, requires_grad=True)
    for fn, tfn in ((nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        with pytest.raises(RuntimeError) as tinfo:
            tfn(lambda x: (x * y0).sum(), T(2), T(2), strict=True, create_graph=True)

        def outer(y):
            fn(lambda x: (x * y).sum(), O(2), O(2), strict=True, create_graph=True)
            return y.sum()
        with pytest.raises(RuntimeError) as info:
            nb.vjp(outer, np.full(2, 2.0))
        assert str(info.value) == str(tinfo.value)


# ----------------------------------------------------------------------------- scipy.optimize
def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_rosenbrock_trust_ncg_with_value_and_grad_and_hessp():
    x0 = np.array([-1.2, 1.0, -0.5, 0.8, 1.5])
    res = scipy.optimize.minimize(nb.value_and_grad(rosenbrock), x0, jac=True,
                                  hessp=nb.hessp(rosenbrock), method="trust-ncg",
                                  options={"gtol": 1e-10})
    assert res.success, res.message
    assert_close(res.x, np.ones(5), rtol=1e-7, atol=1e-7)
    assert res.fun < 1e-14
    ref = scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der,
                                  hessp=scipy.optimize.rosen_hess_prod, method="trust-ncg",
                                  options={"gtol": 1e-10})
    assert res.nit == ref.nit                     # the same steps: the derivatives agree


def test_grad_value_and_grad_hessp_against_scipy_and_args_pass_through():
    x = np.array([0.3, -1.2, 2.0, 0.7])
    assert_close(nb.grad(rosenbrock)(x), scipy.optimize.rosen_der(x), rtol=1e-14)
    value, g = nb.value_and_grad(rosenbrock)(x)
    assert type(value) is float and value == pytest.approx(scipy.optimize.rosen(x), rel=1e-15)
    assert_close(g, scipy.optimize.rosen_der(x), rtol=1e-14)
    p = np.array([1.0, -2.0, 0.5, 3.0])
    assert_close(nb.hessp(rosenbrock)(x, p), scipy.optimize.rosen_hess_prod(x, p), rtol=1e-13)
    assert_close(nb.hessp(rosenbrock)(x, p), scipy.optimize.rosen_hess(x) @ p, rtol=1e-13)

    def scaled(x, a, b):
        return a * np.sum(x ** 3) + b
    assert_close(nb.grad(scaled)(x, 2.0, 5.0), 6.0 * x ** 2)
    assert nb.value_and_grad(scaled)(x, 2.0, 5.0)[0] == pytest.approx(2.0 * np.sum(x ** 3) + 5.0)
    assert_close(nb.hessp(scaled)(x, p, 2.0, 5.0), 12.0 * x * p)
    res = scipy.optimize.minimize(scaled, np.array([0.5]), args=(1.0, 0.0), jac=nb.grad(scaled),
                                  method="L-BFGS-B", bounds=[(0.1, 1.0)])
    assert res.x == pytest.approx(0.1)
    assert nb.grad(scaled).__name__ == "scaled"


def test_grad_helpers_keep_dtypes_and_accept_floats():
    x32 = np.array([1.0, 2.0], np.float32)
    assert nb.grad(lambda x: (x * x).sum())(x32).dtype == np.float32
    assert nb.hessp(lambda x: (x ** 3).sum())(x32, x32).dtype == np.float32
    value, g = nb.value_and_grad(lambda x: x * x)(3.0)
    assert value == 9.0 and g == 6.0 and g.shape == ()
    # the value as a Python float, from a 0-d value of either dtype and from a one-element array
    for f in (lambda x: np.sum(x * x), lambda x: np.sum(x * x, keepdims=True),
              lambda x: (x * x).sum(dim=0, keepdim=True).reshape(1, 1)):
        for dt in (np.float64, np.float32):
            x = np.array([0.3, -1.2, 2.0], dt)
            value, g = nb.value_and_grad(f)(x)
            assert type(value) is float and value == float(np.sum(x * x))
            assert g.dtype == dt and g.shape == (3,)
            assert_close(g, 2 * x, rtol=1e-6)
    assert nb.grad(lambda x: np.ones(1) * 2.0)(O(2)).tolist() == [0.0, 0.0]       # constant
    with pytest.raises(TypeError, match="must be a float32 or float64 array or a Python float, not a list"):
        nb.grad(lambda x: x.sum())([1.0, 2.0])
    assert nb.hessp(lambda x: x.sum() * 2.0)(O(2), O(2)).tolist() == [0.0, 0.0]   # linear


def test_grad_helpers_errors():
    for make in (nb.grad, nb.value_and_grad):
        with pytest.raises(RuntimeError, match=r"must return a single element \(a scalar\), but it "
                                               r"returned an array of shape \(2,\)"):
            make(lambda x: x * 2)(O(2))
        with pytest.raises(RuntimeError, match="returned a tuple of 2"):
            make(lambda x: (x.sum(), x.sum()))(O(2))
        with pytest.raises(TypeError, match="not a tuple"):
            make(lambda x: x.sum())((O(2), O(2)))
        with pytest.raises(TypeError, match="integer"):
            make(lambda x: x.sum())(np.arange(3))
    with pytest.raises(ValueError, match=r"The p given to the function made by hessp must have x's shape "
                                         r"\(2,\), but it has shape \(3,\)"):
        nb.hessp(lambda x: (x ** 3).sum())(O(2), O(3))
    with pytest.raises(RuntimeError, match="The Tensor returned by the function given to hessp should "
                                           "contain a single element"):
        nb.hessp(lambda x: x ** 3)(O(2), O(2))


# ----------------------------------------------------------------------------- docs
@pytest.mark.parametrize("module", [vjp_mod, jvp_mod, jacobian_mod, hessian_mod, optimize_mod, nb])
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0


def test_public_names_have_examples():
    for name in nb.__all__:
        obj = getattr(nb, name)
        if callable(obj) and not isinstance(obj, type):
            assert ">>> " in (obj.__doc__ or ""), name


# ----------------------------------------------------------------------------- robustness
def test_second_order_float32_keeps_the_inputs_dtype():
    f = lambda x: (np.sin(x) * x ** 3).sum()  # noqa: E731
    x64 = np.array([0.3, -0.8, 1.1])
    x32 = x64.astype(np.float32)
    H32, H64 = nb.hessian(f, x32), nb.hessian(f, x64)
    assert H32.dtype == np.float32 and H32.shape == (3, 3)
    assert_close(H32, H64, rtol=1e-4, atol=1e-4)
    for fn in (nb.hvp, nb.vhp):
        out, p = fn(f, x32, np.ones(3, np.float32))
        assert out.dtype == np.float32 and p.dtype == np.float32
        assert_close(p, H64.sum(1), rtol=1e-4, atol=1e-4)


def test_jvp_create_graph_is_differentiable_in_v():
    # d/dv <u, J v> = J^T u: the tangent itself can be an input of an enclosing call
    A = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
    x, u = np.array([0.2, -0.4]), np.array([1.0, -1.0, 2.0])
    f = lambda x: np.tanh(A @ x)  # noqa: E731

    def pairing(v):
        return (nb.jvp(f, x, v, create_graph=True)[1] * u).sum()
    _, g = nb.vjp(pairing, np.array([0.7, 0.1]))
    assert_close(g, nb.vjp(f, x, u)[1], rtol=1e-14)


def test_exception_inside_func_leaves_numbad_clean():
    from numbad.tape import active_tapes

    def bad(x):
        raise ValueError("boom")
    for call in (lambda: nb.jvp(bad, O(2), O(2)), lambda: nb.jacobian(bad, O(2)),
                 lambda: nb.hessian(bad, O(2)), lambda: nb.hvp(bad, O(2), O(2)),
                 lambda: nb.jacobian(bad, O(2), create_graph=True), lambda: nb.grad(bad)(O(2)),
                 lambda: nb.hessp(bad)(O(2), O(2))):
        with pytest.raises(ValueError, match="boom"):
            call()
        assert active_tapes() == []
    assert_close(nb.jacobian(lambda x: x * 3, O(2)), 3 * np.eye(2))


def test_four_threads_concurrently():
    import threading
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(50):
                x, v = rng.standard_normal(4), rng.standard_normal(4)
                assert np.allclose(nb.jacobian(lambda x: np.sin(x) * x, x), np.diag(np.cos(x) * x + np.sin(x)))
                assert np.allclose(nb.jvp(lambda x: np.sin(x), x, v)[1], np.cos(x) * v)
                assert np.allclose(nb.hvp(lambda x: (x ** 3).sum(), x, v)[1], 6 * x * v)
                assert np.allclose(nb.hessian(lambda x: (x ** 3).sum(), x), np.diag(6 * x))
            for _ in range(5):          # arrays large enough for each thread's arena reuse
                x, v = rng.standard_normal(1 << 17), rng.standard_normal(1 << 17)
                assert np.allclose(nb.hvp(lambda x: (x ** 3).sum(), x, v)[1], 6 * x * v)
                assert np.allclose(nb.vjp(lambda x: np.sin(x) * x, x, v)[1], (np.cos(x) * x + np.sin(x)) * v)
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
