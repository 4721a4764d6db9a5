"""Every elementwise op of the registry on the GPU (or the simulator) against the CPU sweeps.

For each op and broadcasting pattern, a recorded tape is replayed on the CPU
and on the device: single replays (one thread per element: ``fw_*``, ``rv_*``,
``tg_*`` kernels and the reductions of broadcast operands) and ensembles (one
thread per sample: ``ens_*_op``), values, cotangents and tangents.
"""
import numpy as np
import pytest

import numbad as nb
from numbad.ops import OPS

from cuda_helpers import assert_matches

EW = [op for op in OPS.values() if op.kind in ("elementwise", "nondiff")]
SHAPES = {1: [((5,),)], 2: [((5,), (5,)), ((5,), ())], 3: [((5,), (5,), (5,)), ((5,), (), (5,))]}
#: Ops whose value and derivative are IEEE arithmetic, selections or roundings: bit for bit.
EXACT = {"add", "subtract", "multiply", "divide", "negative", "positive", "absolute", "fabs", "square",
         "reciprocal", "sqrt", "sqrt_subgrad", "maximum", "minimum", "fmax", "fmin", "where", "clip",
         "copysign", "sign", "floor", "ceil", "trunc", "rint", "heaviside", "round_decimals", "stop_gradient",
         "deg2rad", "rad2deg"}
SPECIAL = {"erf", "erfc", "gammaln", "expit", "logit", "softplus"}


def function(op):
    """A function of the op's operands that reaches the op, differentiably where it can."""
    if op.name == "where":
        return lambda c, a, b: np.where(c > 0.0, a, b)
    if op.name == "round_decimals":
        return lambda a, b: np.round(a, 1) * b
    if op.name == "polygamma":
        return lambda a, b: nb.special.polygamma(1, b) * a
    if op.name in SPECIAL:
        return getattr(nb.special, op.name)
    if op.name == "sqrt_subgrad":        # np.linalg.norm's sqrt
        from numbad.tensor.linalg import sqrt_subgrad
        return sqrt_subgrad
    if op.name == "clip":
        return np.clip
    if op.name == "stop_gradient":       # what a nested vjp inside nb.record returns
        return lambda x: nb.vjp(lambda y: np.sum(np.sin(y)), x)[1] * x
    if op.dtype_out == "bool":           # a comparison or test selects between differentiable values
        if op.arity == 1:
            return lambda x: np.where(op.ufunc(x), x, 2.0 * x)
        return lambda a, b: np.where(op.ufunc(a, b), a * b, a - b)
    return op.ufunc


CASES = [pytest.param(op, shapes, id=f"{op.name}-" + "x".join(str(s) for s in shapes).replace(" ", ""))
         for op in EW for shapes in SHAPES[op.arity]]


def _args(op, shapes, rng):
    return tuple(rng.uniform(*dom, size=shape) for dom, shape in zip(op.domain, shapes))


@pytest.mark.parametrize("op, shapes", CASES)
def test_elementwise_single_replay(op, shapes):
    rng = np.random.default_rng(op.code)
    args = _args(op, shapes, rng)
    tape = nb.record(function(op), args)
    out, g = tape.vjp(args, v := rng.standard_normal(np.shape(tape(args))))
    t = tuple(rng.standard_normal(a.shape) for a in args)
    _, jv = tape.jvp(args, t)
    dev = tape.to("cuda")
    exact = op.name in EXACT and all(s == shapes[0] for s in shapes)   # broadcasts reduce in parallel
    d_out, d_g = dev.vjp(args, v)
    assert_matches(d_out, out, op.name in EXACT, what="value")
    assert_matches(d_g, g, exact, what="vjp")
    d_out2, d_jv = dev.jvp(args, t)
    assert_matches(d_out2, out, op.name in EXACT, what="value (jvp)")
    assert_matches(d_jv, jv, op.name in EXACT, what="jvp")


@pytest.mark.parametrize("op, shapes", CASES)
def test_elementwise_ensemble(op, shapes):
    rng = np.random.default_rng(op.code + 1)
    args = _args(op, shapes, rng)
    tape = nb.record(function(op), args)
    B = 3
    X = tuple(np.stack([_args(op, shapes, rng)[k] for _ in range(B)]) if op.name != "round_decimals"
              else np.stack([a] * B) for k, a in enumerate(args))
    V = rng.standard_normal((B,) + np.shape(tape(args)))
    T = tuple(rng.standard_normal(x.shape) for x in X)
    cpu = tape.batch_vjp(X, V), tape.batch_jvp(X, T)
    dev = tape.batch_vjp(X, V, device="cuda"), tape.batch_jvp(X, T, device="cuda")
    assert_matches(dev[0][0], cpu[0][0], op.name in EXACT, what="values")
    assert_matches(dev[0][1], cpu[0][1], op.name in EXACT, what="batch_vjp")
    assert_matches(dev[1][1], cpu[1][1], op.name in EXACT, what="batch_jvp")


@pytest.mark.parametrize("name", ["multiply", "exp", "logaddexp", "maximum"])
def test_float32(name):
    op = OPS[name]
    rng = np.random.default_rng(3)
    args = tuple(a.astype(np.float32) for a in _args(op, SHAPES[op.arity][-1], rng))
    tape = nb.record(function(op), args)
    v = np.ones(5, np.float32)
    out, g = tape.vjp(args, v)
    d_out, d_g = tape.to("cuda").vjp(args, v)
    assert d_out.dtype == np.float32 and all(x.dtype == np.float32 for x in d_g)
    assert_matches(d_out, out, rtol=1e-6, what="value")
    assert_matches(d_g, g, rtol=1e-6, what="vjp")
