"""numpy functions that numbad builds from other numpy functions, as numpy itself does.

Each is numpy's algorithm written again on Tensors, so its derivative follows from the
ops it records, and a replay recomputes every value-dependent choice (the segments of
``np.interp``, a sort, a mask) from the new inputs. Where numpy computes the value
by other steps (a C loop, a symmetric BLAS product), the result carries numpy's own value
to the bit (:func:`numbad.tensor.products.numpys_value`).

>>> import numpy as np, numbad as nb
>>> nb.vjp(lambda y: np.trapezoid(y, dx=0.5), np.array([1.0, 2.0, 4.0]), 1.0)[1]
array([0.25, 0.5 , 0.25])
"""
from __future__ import annotations

import operator

import numpy as np

from .core import Tensor, pick_tape
from .creation import constant
from .numpy_api import implements, normalize_axes, normalize_axis, reject, tensorize, value_of
from .products import numpys_value


def _array(a):
    """A Tensor stays one; anything else becomes an array, as numpy's ``asanyarray``."""
    return a if type(a) is Tensor else np.asanyarray(a)


def _tensor(a, *others):
    """``a`` as a Tensor on the tape of the Tensors among ``(a, *others)``: a constant array
    becomes a constant node, so that Tensor indices (recorded, recomputed by replays) can
    read it."""
    tape = pick_tape(others)
    if type(a) is Tensor or tape is None:
        return a
    return constant(np.asarray(a), tape)


def _constant(x, name):
    if type(x) is Tensor:
        raise TypeError(f"numbad: {name} must be a constant (numbad does not differentiate with "
                        "respect to it); pass a number or an array")
    return x


# --------------------------------------------------------------------------- integration, polynomials
@implements(np.trapezoid, torch=("torch.trapezoid",),
            ops=("subtract", "add", "multiply", "divide", "scatter"))
def trapezoid(y, x=None, dx=1.0, axis=-1):
    y = _array(y)
    if x is None:
        d = dx
    else:
        x = _array(x)
        if x.ndim == 1:
            d = np.diff(x)
            shape = [1] * y.ndim
            shape[axis] = d.shape[0]
            d = d.reshape(shape)
        else:
            d = np.diff(x, axis=axis)
    lo, hi = [slice(None)] * y.ndim, [slice(None)] * y.ndim
    hi[axis] = slice(1, None)
    lo[axis] = slice(None, -1)
    return (d * (y[tuple(hi)] + y[tuple(lo)]) / 2.0).sum(axis)


@implements(np.polyval, ops=("multiply", "add"), note="Horner's rule, as numpy")
def polyval(p, x):
    if isinstance(p, np.poly1d) or isinstance(x, np.poly1d):
        raise TypeError("numbad: np.polyval of a np.poly1d is not supported; pass coefficient arrays")
    p, x = _array(p), _array(x)
    y = np.zeros_like(value_of(x))          # numpy starts from zeros (0 * inf is NaN there too)
    for pv in p:
        y = y * x + pv
    return y


# --------------------------------------------------------------------------- vectors and grids
@implements(np.cross, torch=("torch.linalg.cross", "torch.cross"),
            ops=("multiply", "subtract", "assemble"), note="3-element vectors")
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    a, b = _array(a), _array(b)
    if a.ndim < 1 or b.ndim < 1:
        raise ValueError("At least one array has zero dimension")
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = np.moveaxis(a, axisa, -1), np.moveaxis(b, axisb, -1)
    if a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ValueError("numbad: np.cross takes vectors of 3 elements here (numpy 2 deprecates "
                         "2-element ones); append a zero component")
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    # numpy's steps: each component is one product minus another
    cp = np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return np.moveaxis(cp, -1, axisc)


@implements(np.meshgrid, torch=("torch.meshgrid",), ops=("gather",))
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    nd = len(xi)
    shapes = [[1] * nd for _ in xi]
    for i, s in enumerate(shapes):
        s[i] = -1
    if indexing == "xy" and nd > 1:
        shapes[0][:2], shapes[1][:2] = [1, -1], [-1, 1]
    output = [_array(x).reshape(s) for x, s in zip(xi, shapes)]
    if not sparse:
        full = np.broadcast_shapes(*(np.shape(value_of(x)) for x in output))
        output = [np.broadcast_to(x, full) for x in output]
    return tuple(x.copy() for x in output) if copy else tuple(output)     # (copies are writable)


@implements(np.rot90, torch=("torch.rot90",), ops=("gather",))
def rot90(m, k=1, axes=(0, 1)):
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    m = tensorize(m)
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == m.ndim:
        raise ValueError("Axes must be different.")
    if any(not -m.ndim <= a < m.ndim for a in axes):
        raise ValueError(f"Axes={axes} out of range for array of ndim={m.ndim}.")
    k %= 4
    if k == 0:
        return m[:]
    if k == 2:
        return np.flip(np.flip(m, axes[0]), axes[1])
    order = list(range(m.ndim))
    order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
    if k == 1:
        return np.transpose(np.flip(m, axes[1]), order)
    return np.flip(np.transpose(m, order), axes[1])


# --------------------------------------------------------------------------- interpolation
@implements(np.interp, ops=("subtract", "add", "divide", "multiply", "less", "greater", "where",
                            "less_equal", "scatter", "clip", "take", "take_along", "copy"),
            note="at a knot, the slope of the segment to its right (numpy's segment); "
                 "0 with respect to x outside [xp[0], xp[-1]]; nb.record tapes find the "
                 "segments by len(x) * len(xp) comparisons (replays recompute them)")
def interp(x, xp, fp, left=None, right=None, period=None):
    if period is not None:
        raise TypeError("numbad: np.interp with period is not supported")
    # numpy validates the arguments, and its value is the result's, to the bit
    value = np.interp(value_of(x), value_of(xp), value_of(fp), value_of(left), value_of(right))
    x = _array(x)
    moves = type(x) is Tensor or type(xp) is Tensor      # (can the segments change in a replay?)
    xp, fp = _tensor(xp, x, fp), _tensor(fp, x, xp)
    lo = fp[0] if left is None else left
    hi = fp[-1] if right is None else right
    n = xp.shape[0]
    if n == 1:
        inside = fp[0] + 0.0 * x
    else:
        # the segment [xp[j], xp[j + 1]] of each x, numpy's: xp[j] <= x < xp[j + 1]. A tape
        # that is replayed (nb.record) recomputes j from new values: there it counts the
        # knots <= x by comparisons (len(x) * len(xp) of them); elsewhere it is fixed
        if moves and pick_tape((x, xp)).replayable:
            j = np.clip(np.sum(xp <= x[..., None], axis=-1) - 1, 0, n - 2)
        else:
            j = np.clip(np.searchsorted(value_of(xp), value_of(x), side="right") - 1, 0, n - 2)
        j = j.reshape(-1)
        shape = np.shape(value_of(x))

        def at(t, k):       # t[k], as an op that reads the indices k anew in every replay
            return np.take_along_axis(t, k, axis=0).reshape(shape)
        x0, y0 = at(xp, j), at(fp, j)
        slope = (at(fp, j + 1) - y0) / (at(xp, j + 1) - x0)
        inside = slope * (x - x0) + y0
    out = np.where(x < xp[0], lo, np.where(x > xp[-1], hi, inside))
    return numpys_value(out, value)


# --------------------------------------------------------------------------- NaN-aware reductions
@implements(np.nansum, torch=("torch.nansum",), ops=("isnan", "where", "scatter"))
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=np._NoValue, where=np._NoValue):
    reject("nansum", out=out, initial=initial, where=where)
    a = tensorize(a)
    return np.sum(np.where(np.isnan(a), 0.0, a), axis=axis, dtype=dtype, keepdims=keepdims)


@implements(np.nanmean, torch=("torch.nanmean",), ops=("isnan", "where", "scatter", "logical_not", "divide"))
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=np._NoValue):
    reject("nanmean", out=out, where=where)
    a = tensorize(a)
    nan = np.isnan(a)
    count = np.sum(~nan, axis=axis, keepdims=keepdims)         # (numpy's intp count)
    total = np.sum(np.where(nan, 0.0, a), axis=axis, dtype=dtype, keepdims=keepdims)
    return total / count                 # (an all-NaN slice: 0 / 0, NaN, as numpy's)


@implements(np.nan_to_num, torch=("torch.nan_to_num",),
            ops=("isnan", "isinf", "signbit", "logical_and", "logical_not", "where"),
            note="derivative 1 at finite values, 0 where a value is replaced")
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    x = tensorize(x)
    info = np.finfo(x.dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    inf = np.isinf(x)
    out = np.where(np.isnan(x), nan, x)
    return np.where(inf & ~np.signbit(x), posinf, np.where(inf & np.signbit(x), neginf, out))


# --------------------------------------------------------------------------- comparisons
@implements(np.isclose, torch=("torch.isclose",), ops=("subtract", "absolute", "multiply", "add",
                                                       "less_equal", "isfinite", "equal", "isnan",
                                                       "logical_and", "logical_or"),
            note="a boolean result: no derivative")
def isclose(a, b, rtol=1.e-5, atol=1.e-8, equal_nan=False):
    x, y = _array(a), _array(b)
    if type(y) is not Tensor and y.dtype.kind in "iub":
        y = y.astype(np.float64)
    with np.errstate(invalid="ignore"):
        result = (np.less_equal(abs(x - y), atol + rtol * abs(y)) & np.isfinite(y)) | (x == y)
        if equal_nan:
            result = result | (np.isnan(x) & np.isnan(y))
    return result


@implements(np.allclose, ops=("subtract", "absolute", "multiply", "add", "less_equal", "isfinite",
                              "equal", "isnan", "logical_and", "logical_or"),
            note="a truth value read from the Tensors (a guard in recorded tapes)")
def allclose(a, b, rtol=1.e-5, atol=1.e-8, equal_nan=False):
    return bool(np.all(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)))


# --------------------------------------------------------------------------- order statistics
_ORDER_OPS = ("argsort", "take_along", "take", "subtract", "multiply", "add", "copy")
_ORDER_NOTE = "q is a constant; methods linear, lower, higher, midpoint, nearest; ties as np.sort's"
_GAMMA = {"linear": None, "lower": 0.0, "higher": 1.0, "midpoint": 0.5, "nearest": "nearest"}


def _order_statistic(a, q, axis, keepdims, method, name, value):
    """numpy's quantile of ``a`` at fractions ``q`` (a constant), as reads of the sorted values
    with numpy's weights; the value is numpy's ``value``."""
    if method not in _GAMMA:
        raise ValueError(f"numbad: np.{name} supports the methods {sorted(_GAMMA)}, not {method!r}")
    a = tensorize(a)
    q = np.asarray(q, np.float64)
    nd = a.ndim
    axes = normalize_axes(axis, nd)
    kept = [d for d in range(nd) if d not in axes]
    moved = np.transpose(a, kept + list(axes))
    n = int(np.prod([a.shape[d] for d in axes]))
    s = np.sort(moved.reshape(tuple(a.shape[d] for d in kept) + (n,)), axis=-1)
    virtual = (n - 1) * q                   # numpy's virtual index for these methods
    below = np.floor(virtual)
    gamma = _GAMMA[method]
    if gamma == "nearest":                  # numpy rounds half to even here
        below, gamma = np.around(virtual), 0.0
    elif gamma is None:
        gamma = virtual - below
    below = np.clip(below, 0, n - 1).astype(np.intp)
    above = np.clip(below + 1, 0, n - 1)
    lo, hi = s[..., below], s[..., above]   # shape: kept dims + q's
    out = lo if np.all(gamma == 0.0) else lo + (hi - lo) * gamma
    out = np.moveaxis(out, list(range(len(kept), out.ndim)), list(range(q.ndim))) if q.ndim else out
    if keepdims:
        shape = list(q.shape) + [1 if d in axes else a.shape[d] for d in range(nd)]
        out = out.reshape(shape)
    return numpys_value(out, value)


@implements(np.quantile, torch=("torch.quantile",), ops=_ORDER_OPS,
            note=_ORDER_NOTE)
def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
             weights=None):
    reject("quantile", out=out, weights=weights)
    q = _constant(q, "q")
    value = np.quantile(value_of(a), q, axis=axis, method=method, keepdims=keepdims)
    return _order_statistic(a, q, axis, keepdims, method, "quantile", value)


@implements(np.percentile, ops=_ORDER_OPS,
            note=_ORDER_NOTE)
def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *,
               weights=None):
    reject("percentile", out=out, weights=weights)
    q = _constant(q, "q")
    value = np.percentile(value_of(a), q, axis=axis, method=method, keepdims=keepdims)
    return _order_statistic(a, np.true_divide(q, 100), axis, keepdims, method, "percentile", value)


@implements(np.median, ops=_ORDER_OPS,
            note="the mean of the two middle values of an even count; ties as np.sort's")
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    reject("median", out=out)
    value = np.median(value_of(a), axis=axis, keepdims=keepdims)
    return _order_statistic(a, 0.5, axis, keepdims, "linear", "median", value)


# --------------------------------------------------------------------------- covariance
@implements(np.cov, torch=("torch.cov",), ops=("scatter", "divide", "subtract", "matmul", "multiply",
                                               "assemble", "copy"),
            note="without fweights/aweights")
def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None):
    if fweights is not None or aweights is not None:
        raise TypeError("numbad: np.cov with fweights or aweights is not supported")
    value = np.cov(value_of(m), value_of(y), rowvar, bias, ddof, dtype=dtype)   # (numpy validates)
    X = np.atleast_2d(_array(m))
    if not rowvar and X.shape[0] != 1:
        X = X.T
    if y is not None:
        Y = np.atleast_2d(_array(y))
        if not rowvar and Y.shape[0] != 1:
            Y = Y.T
        X = np.concatenate((X, Y), axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    fact = max(X.shape[1] - ddof, 0.0)
    X = X - np.mean(X, axis=1)[:, None]
    c = (X @ X.T) * np.true_divide(1, fact)
    return numpys_value(np.squeeze(c), value)


@implements(np.corrcoef, torch=("torch.corrcoef",),
            ops=("scatter", "divide", "subtract", "matmul", "multiply", "assemble", "copy", "sqrt", "clip"))
def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    value = np.corrcoef(value_of(x), value_of(y), rowvar, dtype=dtype)
    c = cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return c / c
    stddev = np.sqrt(np.diagonal(c))
    c = c / stddev[:, None]
    c = c / stddev[None, :]
    return numpys_value(np.clip(c, -1, 1), value)


# --------------------------------------------------------------------------- matrix powers
@implements(np.linalg.matrix_power, torch=("torch.linalg.matrix_power",), ops=("matmul", "solve"))
def matrix_power(a, n):
    a = tensorize(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")
    try:
        n = operator.index(n)
    except TypeError as e:
        raise TypeError("exponent must be an integer") from e
    if n == 0:                          # the identity: no derivative flows
        return np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype), a.shape).copy()
    if n < 0:
        a = np.linalg.inv(a)
        n = -n
    if n <= 3:
        return a if n == 1 else a @ a if n == 2 else (a @ a) @ a
    # numpy's binary decomposition, in its order (so the value is numpy's)
    z = result = None
    while n > 0:
        z = a if z is None else z @ z
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else result @ z
    return result


# --------------------------------------------------------------------------- finite differences
@implements(np.gradient, torch=("torch.gradient",),
            ops=("subtract", "divide", "multiply", "add", "assign"),
            note="numpy's differences of f (spacings are constants, or Tensors too)")
def gradient(f, *varargs, axis=None, edge_order=1):
    # numpy's algorithm, step for step (so the values are numpy's), writing into a Tensor
    f = tensorize(f, "f")
    N = f.ndim
    axes = tuple(range(N)) if axis is None else tuple(     # (in the order given, as numpy's)
        normalize_axis(a, N) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    n = len(varargs)
    if n == 0:
        dx = [1.0] * len(axes)
    elif n == 1 and np.ndim(varargs[0]) == 0:
        dx = list(varargs) * len(axes)
    elif n == len(axes):
        dx = list(varargs)
        for i, distances in enumerate(dx):
            distances = _array(distances)
            if distances.ndim == 0:
                continue
            if distances.ndim != 1:
                raise ValueError("distances must be either scalars or 1d")
            if len(distances) != f.shape[axes[i]]:
                raise ValueError("when 1d, distances must match the length of the corresponding dimension")
            if distances.dtype.kind in "iu":
                distances = distances.astype(np.float64)
            diffx = np.diff(distances)
            if bool((diffx == diffx[0]).all()):      # constant spacing: numpy's scalar case
                diffx = diffx[0]
            dx[i] = diffx
    else:
        raise TypeError("invalid number of arguments")
    if edge_order > 2:
        raise ValueError("'edge_order' greater than 2 not supported")
    outvals = []
    for ax, ax_dx in zip(axes, dx):
        if f.shape[ax] < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")

        def at(*index):           # f or out indexed along ax alone
            s = [slice(None)] * N
            s[ax] = index[0] if len(index) == 1 else slice(*index)
            return tuple(s)
        out = np.empty_like(f)
        uniform = np.ndim(ax_dx) == 0
        if uniform:
            out[at(1, -1)] = (f[at(2, None)] - f[at(None, -2)]) / (2. * ax_dx)
        else:
            dx1, dx2 = ax_dx[0:-1], ax_dx[1:]
            shape = [1] * N
            shape[ax] = -1
            a = (-(dx2) / (dx1 * (dx1 + dx2))).reshape(shape)
            b = ((dx2 - dx1) / (dx1 * dx2)).reshape(shape)
            c = (dx1 / (dx2 * (dx1 + dx2))).reshape(shape)
            out[at(1, -1)] = a * f[at(None, -2)] + b * f[at(1, -1)] + c * f[at(2, None)]
        if edge_order == 1:
            out[at(0)] = (f[at(1)] - f[at(0)]) / (ax_dx if uniform else ax_dx[0])
            out[at(-1)] = (f[at(-1)] - f[at(-2)]) / (ax_dx if uniform else ax_dx[-1])
        else:
            if uniform:
                a, b, c = -1.5 / ax_dx, 2. / ax_dx, -0.5 / ax_dx
            else:
                dx1, dx2 = ax_dx[0], ax_dx[1]
                a = -(2. * dx1 + dx2) / (dx1 * (dx1 + dx2))
                b = (dx1 + dx2) / (dx1 * dx2)
                c = - dx1 / (dx2 * (dx1 + dx2))
            out[at(0)] = a * f[at(0)] + b * f[at(1)] + c * f[at(2)]
            if uniform:
                a, b, c = 0.5 / ax_dx, -2. / ax_dx, 1.5 / ax_dx
            else:
                dx1, dx2 = ax_dx[-2], ax_dx[-1]
                a = (dx2) / (dx1 * (dx1 + dx2))
                b = - (dx2 + dx1) / (dx1 * dx2)
                c = (2. * dx2 + dx1) / (dx2 * (dx1 + dx2))
            out[at(-1)] = a * f[at(-3)] + b * f[at(-2)] + c * f[at(-1)]
        outvals.append(out)
    return outvals[0] if len(axes) == 1 else tuple(outvals)


# --------------------------------------------------------------------------- convolution
def _convolve_full(a, v):
    """The full convolution of 1-d ``a`` and ``v``: products of ``a``'s values (zero-padded)
    read through an index matrix, times ``v`` reversed."""
    n, m = a.shape[0], v.shape[0]
    if m > n:                                   # (a convolution is symmetric: index the shorter)
        a, v, n, m = v, a, m, n
    padded = np.concatenate([np.zeros(m - 1, a.dtype), a, np.zeros(m - 1, a.dtype)])
    windows = padded[np.arange(n + m - 1)[:, None] + np.arange(m)[None, :]]
    return windows @ v[::-1]


def _one_d(x, name):
    x = _array(x)
    if x.ndim != 1:
        raise ValueError(f"object too deep for desired array ({name} must be 1-d)")
    if x.shape[0] == 0:
        raise ValueError(f"{name} cannot be empty")
    return x


@implements(np.convolve, ops=("assemble", "take", "matmul", "copy"))
def convolve(a, v, mode="full"):
    value = np.convolve(value_of(a), value_of(v), mode)      # numpy validates; its value
    a, v = _one_d(a, "a"), _one_d(v, "v")
    full = _convolve_full(a, v)
    n, m = a.shape[0], v.shape[0]
    start = {"full": 0, "same": (min(n, m) - 1) // 2, "valid": min(n, m) - 1}[mode]
    return numpys_value(full[start:start + value.shape[0]], value)


@implements(np.correlate, ops=("assemble", "take", "matmul", "copy"))
def correlate(a, v, mode="valid"):
    value = np.correlate(value_of(a), value_of(v), mode)
    a, v = _one_d(a, "a"), _one_d(v, "v")
    full = _convolve_full(a, v[::-1])
    n, m = a.shape[0], v.shape[0]
    start = {"full": 0, "same": (min(n, m) - 1) // 2, "valid": min(n, m) - 1}[mode]
    if mode == "same" and m > n:             # numpy correlates the other way round, reversed
        start = n + m - 1 - value.shape[0] - start
    return numpys_value(full[start:start + value.shape[0]], value)


# --------------------------------------------------------------------------- more NaN-aware reductions
def _nan_extreme(a, axis, keepdims, fill, reduce, value):
    a = tensorize(a)
    nan = np.isnan(a)
    out = reduce(np.where(nan, fill, a), axis=axis, keepdims=keepdims)
    every = np.all(nan, axis=axis, keepdims=keepdims)        # an all-NaN slice: NaN, as numpy's
    return numpys_value(np.where(every, np.nan, out), value)


@implements(np.nanmax, ops=("isnan", "where", "amax", "amin", "not_equal", "copy"), note="ties as np.max's")
def nanmax(a, axis=None, out=None, keepdims=False, initial=np._NoValue, where=np._NoValue):
    reject("nanmax", out=out, initial=initial, where=where)
    value = np.nanmax(value_of(a), axis=axis, keepdims=keepdims)
    return _nan_extreme(a, axis, keepdims, -np.inf, np.max, value)


@implements(np.nanmin, ops=("isnan", "where", "amin", "not_equal", "copy"), note="ties as np.min's")
def nanmin(a, axis=None, out=None, keepdims=False, initial=np._NoValue, where=np._NoValue):
    reject("nanmin", out=out, initial=initial, where=where)
    value = np.nanmin(value_of(a), axis=axis, keepdims=keepdims)
    return _nan_extreme(a, axis, keepdims, np.inf, np.min, value)


def _nanvar(a, axis, ddof, keepdims):
    a = tensorize(a)
    nan = np.isnan(a)
    count = np.sum(~nan, axis=axis, keepdims=True)
    mean = np.sum(np.where(nan, 0.0, a), axis=axis, keepdims=True) / count
    d = np.where(nan, 0.0, a - mean)
    return np.sum(d * d, axis=axis, keepdims=keepdims) / np.maximum(
        np.sum(~nan, axis=axis, keepdims=keepdims) - ddof, 0)


@implements(np.nanvar, ops=("isnan", "logical_not", "scatter", "where", "divide", "subtract", "multiply",
                            "maximum", "copy"))
def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=np._NoValue,
           mean=np._NoValue, correction=np._NoValue):
    reject("nanvar", dtype=dtype, out=out, where=where, mean=mean, correction=correction)
    value = np.nanvar(value_of(a), axis=axis, ddof=ddof, keepdims=keepdims)
    return numpys_value(_nanvar(a, axis, ddof, keepdims), value)


@implements(np.nanstd, ops=("isnan", "logical_not", "scatter", "where", "divide", "subtract", "multiply",
                            "maximum", "sqrt_subgrad", "copy"),
            note="at zero spread the derivative is 0, as np.std's")
def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=np._NoValue,
           mean=np._NoValue, correction=np._NoValue):
    from .reductions import sqrt_subgrad
    reject("nanstd", dtype=dtype, out=out, where=where, mean=mean, correction=correction)
    value = np.nanstd(value_of(a), axis=axis, ddof=ddof, keepdims=keepdims)
    return numpys_value(sqrt_subgrad(_nanvar(a, axis, ddof, keepdims)), value)


# --------------------------------------------------------------------------- products and sums
@implements(np.linalg.multi_dot, ops=("matmul", "copy"), note="left to right (numpy's order may "
                                                              "differ: the value is numpy's)")
def multi_dot(arrays, *, out=None):
    reject("multi_dot", out=out)
    arrays = [_array(x) for x in arrays]
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    value = np.linalg.multi_dot([value_of(x) for x in arrays])
    result = arrays[0]
    for x in arrays[1:]:
        result = result @ x
    return numpys_value(result, value)


@implements(np.cumulative_sum, ops=("cumsum", "assemble"))
def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    reject("cumulative_sum", out=out)
    x = tensorize(x, "x")
    if axis is None:
        if x.ndim > 1:
            raise ValueError("For arrays which have more than one dimension ``axis`` argument is required.")
        axis = 0
    total = np.cumsum(x, axis=axis, dtype=dtype)
    if not include_initial:
        return total
    shape = list(total.shape)
    shape[axis] = 1
    return np.concatenate([np.zeros(shape, total.dtype), total], axis=axis)
