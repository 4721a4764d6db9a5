"""jvp, jacobian, hessian, hvp and vhp on 25 functions: PyTorch, finite differences, both modes."""
import numpy as np
import pytest
import torch
import torch.autograd.functional as TF

import numbad as nb

from functions import NAMES, case, scalarized
from helpers import assert_close


def tt(a):
    return torch.tensor(np.asarray(a, np.float64))


def tinputs(inputs):
    return tuple(tt(x) for x in inputs)


def same_nesting(nb_res, t_res, rtol=1e-11, atol=1e-12, what="", tensors=False):
    """``nb_res`` has ``t_res``'s nesting of tuples, its shapes, and (allclose) its values.

    (PyTorch's forward-mode jacobian nests lists where its reverse mode nests tuples;
    numbad returns tuples for every strategy.)"""
    if isinstance(t_res, (tuple, list)):
        assert isinstance(nb_res, tuple) and len(nb_res) == len(t_res), (what, type(nb_res))
        for k, (a, b) in enumerate(zip(nb_res, t_res)):
            same_nesting(a, b, rtol, atol, f"{what}[{k}]", tensors)
        return
    assert isinstance(nb_res, nb.Tensor if tensors else np.ndarray), (what, type(nb_res))
    value = nb_res.detach() if tensors else nb_res
    assert_close(value, t_res.detach().numpy(), rtol=rtol, atol=atol, what=what)


def flat(res):
    """A nested Jacobian-like result as one list of arrays."""
    if isinstance(res, tuple):
        return [a for r in res for a in flat(r)]
    return [res.detach() if isinstance(res, nb.Tensor) else res]


def random_like(inputs, seed=5):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(np.shape(x)) for x in inputs)


def pack(xs, is_tuple):
    return tuple(xs) if is_tuple else xs[0]


def n_inputs_is_tuple(inputs):
    return len(inputs) > 1


# ----------------------------------------------------------------------------- first order
@pytest.mark.parametrize("name", NAMES)
def test_jacobian_matches_torch(name):
    f, tf, inputs = case(name)
    arg = pack(inputs, n_inputs_is_tuple(inputs))
    targ = pack(tinputs(inputs), n_inputs_is_tuple(inputs))
    expected = TF.jacobian(tf, targ)
    same_nesting(nb.jacobian(f, arg), expected, what="default")
    same_nesting(nb.jacobian(f, arg, vectorize=True), expected, what="vectorize")
    same_nesting(nb.jacobian(f, arg, strategy="reverse-mode"), expected, what="reverse")
    same_nesting(nb.jacobian(f, arg, strategy="forward-mode"), expected, what="forward")
    same_nesting(nb.jacobian(f, arg, strategy="forward-mode", vectorize=True), expected, what="fwd vec")


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_as_tuples_matches_torch(name):
    f, tf, inputs = case(name)
    expected = TF.jacobian(tf, tinputs(inputs))          # a tuple of inputs, even of one
    same_nesting(nb.jacobian(f, inputs), expected)
    same_nesting(nb.jacobian(f, inputs, strategy="forward-mode"), expected)


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_create_graph_matches(name):
    f, tf, inputs = case(name)
    expected = TF.jacobian(tf, tinputs(inputs), create_graph=True)
    same_nesting(nb.jacobian(f, inputs, create_graph=True), expected, tensors=True)
    same_nesting(nb.jacobian(f, inputs, create_graph=True, strategy="forward-mode"), expected, tensors=True)


@pytest.mark.parametrize("name", NAMES)
def test_jvp_matches_torch(name):
    f, tf, inputs = case(name)
    v = random_like(inputs)
    is_tuple = n_inputs_is_tuple(inputs)
    out, jv = nb.jvp(f, pack(inputs, is_tuple), pack(v, is_tuple))
    tout, tjv = TF.jvp(tf, pack(tinputs(inputs), is_tuple), pack(tinputs(v), is_tuple))
    same_nesting(out, tout, rtol=1e-14, atol=0)
    same_nesting(jv, tjv)
    out, jv = nb.jvp(f, pack(inputs, is_tuple), pack(v, is_tuple), create_graph=True)
    same_nesting(jv, tjv, tensors=True)


@pytest.mark.parametrize("name", NAMES)
def test_forward_mode_against_reverse_mode(name):
    """jvp (tangent sweep) == J v with J from reverse sweeps; vjp == u^T J with J from tangent sweeps."""
    f, _, inputs = case(name)
    v = random_like(inputs)
    _, jv = nb.jvp(f, inputs, v)
    J = nb.jacobian(f, inputs, strategy="reverse-mode")
    for i, jv_i in enumerate(jv if isinstance(jv, tuple) else (jv,)):
        row = J[i] if isinstance(jv, tuple) else J
        total = sum(np.tensordot(row[j], v[j], axes=np.ndim(v[j])) for j in range(len(inputs)))
        assert_close(jv_i, total, rtol=1e-12, atol=1e-12, what=f"jvp output {i}")
    out, _ = nb.jvp(f, inputs, v)
    u = random_like(out if isinstance(out, tuple) else (out,), seed=9)
    _, uJ = nb.vjp(f, inputs, pack(u, isinstance(out, tuple)))
    Jf = nb.jacobian(f, inputs, strategy="forward-mode")
    for j in range(len(inputs)):
        total = 0.0
        for i, ui in enumerate(u):
            block = Jf[i][j] if isinstance(out, tuple) else Jf[j]
            total = total + np.tensordot(ui, block, axes=np.ndim(ui))
        assert_close(uJ[j], total, rtol=1e-12, atol=1e-12, what=f"vjp input {j}")


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_against_finite_differences(name):
    f, _, inputs = case(name)
    J = nb.jacobian(f, inputs)              # inputs as a tuple: J[j] or J[i][j]

    def values(args):
        out = nb.jvp(f, args, random_like(args))[0]
        return out if isinstance(out, tuple) else (out,)
    is_out_tuple = len(values(inputs)) > 1 or isinstance(nb.jvp(f, inputs, random_like(inputs))[0], tuple)
    h = 1e-6
    for j, x in enumerate(inputs):
        for idx in np.ndindex(np.shape(x)):
            plus = [np.array(a, copy=True) for a in inputs]
            minus = [np.array(a, copy=True) for a in inputs]
            plus[j][idx] += h
            minus[j][idx] -= h
            for i, (a, b) in enumerate(zip(values(tuple(plus)), values(tuple(minus)))):
                block = J[i][j] if is_out_tuple else J[j]
                assert_close(block[(Ellipsis,) + idx], (a - b) / (2 * h), rtol=1e-5, atol=1e-6,
                             what=f"d out{i} / d in{j}{idx}")


@pytest.mark.parametrize("name", NAMES)
def test_float32(name):
    """float32 inputs: reverse mode gives the inputs' dtype, forward mode the outputs' (PyTorch's rule)."""
    f, _, inputs = case(name)
    inputs32 = tuple(x.astype(np.float32) for x in inputs)
    v = random_like(inputs)
    out32, jv32 = nb.jvp(f, inputs32, tuple(t.astype(np.float32) for t in v))
    _, jv64 = nb.jvp(f, inputs, v)
    out32 = out32 if isinstance(out32, tuple) else (out32,)
    for a, b, o in zip(flat(jv32), flat(jv64), out32):
        assert a.dtype == o.dtype
        assert_close(a, b, rtol=2e-4, atol=2e-4)
    J64 = flat(nb.jacobian(f, inputs))
    for strategy in ("reverse-mode", "forward-mode"):
        J32 = flat(nb.jacobian(f, inputs32, strategy=strategy))
        for k, (a, b) in enumerate(zip(J32, J64)):
            expected = np.float32 if strategy == "reverse-mode" else out32[k // len(inputs)].dtype
            assert a.dtype == expected
            assert_close(a, b, rtol=2e-4, atol=2e-4)


# ----------------------------------------------------------------------------- second order
@pytest.mark.parametrize("name", NAMES)
def test_hessian_matches_torch(name):
    f, tf, inputs = case(name)
    s, ts = scalarized(f), scalarized(tf)
    is_tuple = n_inputs_is_tuple(inputs)
    expected = TF.hessian(ts, pack(tinputs(inputs), is_tuple))
    for strategy in ("reverse-mode", "forward-mode"):
        same_nesting(nb.hessian(s, pack(inputs, is_tuple), outer_jacobian_strategy=strategy), expected,
                     rtol=1e-10, atol=1e-10, what=strategy)
    same_nesting(nb.hessian(s, pack(inputs, is_tuple)), expected, rtol=1e-10, atol=1e-10)
    same_nesting(nb.hessian(s, tuple(inputs)), TF.hessian(ts, tinputs(inputs)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_hvp_vhp_match_torch(name):
    f, tf, inputs = case(name)
    s, ts = scalarized(f), scalarized(tf)
    v = random_like(inputs)
    is_tuple = n_inputs_is_tuple(inputs)
    args = pack(inputs, is_tuple), pack(v, is_tuple)
    targs = pack(tinputs(inputs), is_tuple), pack(tinputs(v), is_tuple)
    for fn, tfn in ((nb.hvp, TF.hvp), (nb.vhp, TF.vhp)):
        out, prod = fn(s, *args)
        tout, tprod = tfn(ts, *targs)
        same_nesting(out, tout, rtol=1e-13, atol=0)
        same_nesting(prod, tprod, rtol=1e-10, atol=1e-10, what=fn.__name__)
        out, prod = fn(s, *args, create_graph=True)
        same_nesting(prod, tprod, rtol=1e-10, atol=1e-10, tensors=True, what=fn.__name__ + " create_graph")


@pytest.mark.parametrize("name", NAMES)
def test_hvp_against_finite_differences_of_the_gradient(name):
    f, _, inputs = case(name)
    s = scalarized(f)
    v = random_like(inputs)
    _, hv = nb.hvp(s, inputs, v)
    h = 1e-6
    plus = tuple(x + h * t for x, t in zip(inputs, v))
    minus = tuple(x - h * t for x, t in zip(inputs, v))
    gp, gm = nb.vjp(s, plus)[1], nb.vjp(s, minus)[1]
    for k in range(len(inputs)):
        assert_close(hv[k], (gp[k] - gm[k]) / (2 * h), rtol=1e-5, atol=1e-5, what=f"input {k}")


@pytest.mark.parametrize("name", NAMES)
def test_hessian_create_graph(name):
    f, tf, inputs = case(name)
    s, ts = scalarized(f), scalarized(tf)
    expected = TF.hessian(ts, tinputs(inputs))
    for strategy in ("reverse-mode", "forward-mode"):
        same_nesting(nb.hessian(s, inputs, create_graph=True, outer_jacobian_strategy=strategy), expected,
                     rtol=1e-10, atol=1e-10, tensors=True)
