"""Reductions and scans: sum, mean, prod, max/min, var/std, average, cumsum/cumprod,
logsumexp, and the integer-valued argmax/argmin/argsort.

Reductions over several axes work on the array viewed as ``(O, R, I)`` with
the reduced axes adjacent in the middle (a transpose first when they are
not), the layout of the registry's segment ops. Composites (var, std,
average, logsumexp, prod) are exact compositions of registry ops, so their
derivatives, at every order, are those of the ops they record.
"""
from __future__ import annotations

import math
import operator
from collections import namedtuple

import numpy as np

from ..ops import OPS
from . import core
from .core import Tensor
from .numpy_api import (astype, ew, implements, normalize_axes, normalize_axis, pick, reject, tensorize,
                        where as select)

_SCATTER = OPS["scatter"].code

#: PyTorch's result of ``x.max(dim)``, ``x.sort(dim)``...: ``(values, indices)``.
ValuesIndices = namedtuple("ValuesIndices", "values indices")


def segments(x, axes):
    """``(y, O, R, I)``: ``x`` (or a transpose of it) whose ``axes`` are adjacent, viewed as (O, R, I).

    The kept axes keep their order in ``O``/``I``, so a reduction's result
    over ``R`` is laid out as numpy's result is.
    """
    shape = x.shape
    if not axes:
        return x, math.prod(shape), 1, 1
    if axes == tuple(range(axes[0], axes[-1] + 1)):
        return (x, math.prod(shape[:axes[0]]), math.prod(shape[axes[0]:axes[-1] + 1]),
                math.prod(shape[axes[-1] + 1:]))
    from .shape import transpose
    kept = [d for d in range(len(shape)) if d not in axes]
    y = transpose(x, kept + list(axes))
    return y, math.prod(shape[d] for d in kept), math.prod(shape[d] for d in axes), 1


def _axis_segments(shape, ax):
    return math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:])


def _keep(keepdims, keepdim):
    return bool(pick(keepdims, keepdim, False))


# --------------------------------------------------------------------------- sum, mean
_NOVALUE = np._NoValue


@implements(np.sum, torch=("torch.sum", "x.sum"), ops=("scatter",), names=("x.sum",))
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE,
         where=_NOVALUE, *, dim=None, keepdim=None):
    if out is not None or initial is not _NOVALUE or where is not _NOVALUE:
        reject("sum", out=out, initial=initial, where=where)
    x = a if type(a) is Tensor else tensorize(a)
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    keepdims = bool(keepdims)
    xv = x._v
    shape = xv.shape
    nd = len(shape)
    if axis is None:
        axes = tuple(range(nd))
    elif type(axis) is int and -nd <= axis < nd:
        axes = (axis % nd,)
    else:
        axes = normalize_axes(axis, nd)
    if dtype is not None and np.dtype(dtype) != xv.dtype:
        # numpy casts the elements, then sums in that dtype: record the cast (astype refuses
        # what would drop the derivative), keep numpy's own sum
        x = astype(x, dtype)
        value = xv.sum(axis=axes, dtype=dtype, keepdims=keepdims)
    else:
        value = _add_reduce(xv, axes, None, None, keepdims)     # (xv.sum's own call; by position)
    attrs = _SUM_MAPS.get((shape, axes))
    if attrs is None:
        attrs = _sum_map(shape, axes)
    tape = x._tape
    ia = tape.add_attrs(attrs)
    if type(value) is np.ndarray and value.dtype is tape.dtype and 1 < value.size < core.BIG and not tape._deferred:
        # a small array result waits to be written with its neighbours, as an elementwise
        # one does (core._push; no deferred operand to write first, which add_op would see to)
        return core._push(tape, value, value.size, value.shape, _SCATTER, x._node, -1, -1, ia)
    return core.record(tape, _SCATTER, value, x._node, iattr=ia)


_add_reduce = np.add.reduce
#: (shape, reduced axes) -> the attributes of the sum's scatter (a few hundred layouts kept)
_SUM_MAPS = {}


def _sum_map(shape, axes):
    """The scatter of a sum over ``axes`` into the kept shape (reduced axes have stride 0)."""
    nd = len(shape)
    strides, s, merge, inner = [0] * nd, 1, False, None
    dims = shape
    for d in range(nd - 1, -1, -1):
        kept = d not in axes
        if kept:
            strides[d] = s
            s *= shape[d]
        merge = merge or kept == inner or shape[d] == 1
        inner = kept
    if merge:
        dims, strides = _merged(shape, strides)
    attrs = (len(dims), *dims, *strides, 0, s)
    if len(_SUM_MAPS) >= 512:
        _SUM_MAPS.clear()
    _SUM_MAPS[(shape, axes)] = attrs
    return attrs


def _merged(shape, strides):
    """A reduction's map with neighbouring axes that are both reduced (or both kept) merged and
    unit axes dropped: a replay then sums each contiguous run in one pass of numpy's pairwise
    summation, as numpy's iterator does, and so gets numpy's value."""
    dims, sts = [], []
    for n, st in zip(shape, strides):
        if n == 1:
            continue
        if dims and (sts[-1] == 0) == (st == 0):        # (kept axes are contiguous in the result)
            dims[-1] *= n
            sts[-1] = st
        else:
            dims.append(n)
            sts.append(st)
    return tuple(dims), sts


def _count(x, axes):
    n = 1
    for d in axes:
        n *= x.shape[d]
    return n


@implements(np.mean, torch=("torch.mean", "x.mean"), ops=("scatter", "divide"), names=("x.mean",))
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=np._NoValue,
         dim=None, keepdim=None):
    reject("mean", out=out, where=where)
    x = tensorize(a)
    keepdims = _keep(keepdims, keepdim)
    axes = normalize_axes(pick(axis, dim), x.ndim)
    # numpy's mean is exactly sum / count (the sum in ``dtype``), so this records numpy's value
    return core.binary(OPS["divide"], sum_(x, axis=axes, keepdims=keepdims, dtype=dtype),
                       _count(x, axes), operator.truediv)


_mean = mean       # var() has an argument called mean (numpy's signature)


# --------------------------------------------------------------------------- max, min
def _extreme(name, a, axis, keepdims):
    x = tensorize(a)
    axes = normalize_axes(axis, x.ndim)
    value = getattr(np, name)(x._v, axis=axes, keepdims=bool(keepdims))   # numpy rejects empty
    y, O, R, I = segments(x, axes)
    return core.segment(OPS[name].code, y, value, O, R, I)


@implements(np.amax, np.max, torch=("torch.amax", "torch.max", "x.amax", "x.max(dim)"), ops=("amax",),
            note=OPS["amax"].kink, names=("x.max",))
def amax(a, axis=None, out=None, keepdims=False, initial=np._NoValue, where=np._NoValue, *,
         dim=None, keepdim=None):
    reject("max", out=out, initial=initial, where=where)
    return _extreme("amax", a, pick(axis, dim), _keep(keepdims, keepdim))


@implements(np.amin, np.min, torch=("torch.amin", "torch.min", "x.amin", "x.min(dim)"), ops=("amin",),
            note=OPS["amin"].kink, names=("x.min",))
def amin(a, axis=None, out=None, keepdims=False, initial=np._NoValue, where=np._NoValue, *,
         dim=None, keepdim=None):
    reject("min", out=out, initial=initial, where=where)
    return _extreme("amin", a, pick(axis, dim), _keep(keepdims, keepdim))


@implements(np.ptp, ops=("amax", "amin", "subtract"), note=OPS["amax"].kink)
def ptp(a, axis=None, out=None, keepdims=False):
    reject("ptp", out=out)
    return ew("subtract", amax(a, axis, keepdims=keepdims), amin(a, axis, keepdims=keepdims))


def _max_method(name, reduce, argfn):
    """``x.max()``: numpy's ``max(axis, keepdims)``; PyTorch's ``max(dim=d)`` gives
    ``(values, indices)`` and ``max(other_tensor)`` is ``maximum``."""
    def method(self, axis=None, out=None, keepdims=False, *, dim=None, keepdim=None, **kw):
        if type(axis) is Tensor:
            return ew("maximum" if name == "max" else "minimum", self, axis)
        if dim is not None:
            k = _keep(keepdims, keepdim)
            return ValuesIndices(reduce(self, dim, keepdims=k), argfn(self, dim, keepdims=k))
        return reduce(self, axis, out, keepdims, keepdim=keepdim, **kw)
    method.__name__ = name
    return method


# --------------------------------------------------------------------------- prod, cumsum, cumprod
@implements(np.prod, torch=("torch.prod", "x.prod"), ops=("cumprod", "gather", "copy"),
            note="the last element of a cumprod: exact at zeros (see cumprod)", names=("x.prod",))
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=np._NoValue,
         where=np._NoValue, *, dim=None, keepdim=None):
    reject("prod", out=out, initial=initial, where=where)
    x = _cast(tensorize(a), dtype)
    keepdims = _keep(keepdims, keepdim)
    axes = normalize_axes(pick(axis, dim), x.ndim)
    value = np.prod(x._v, axis=axes, keepdims=keepdims)
    shape = np.shape(value)
    y, O, R, I = segments(x, axes)
    if R == 0:
        from .creation import constant
        return constant(np.ones(shape, x.dtype), x._tape)
    c = _cumprod_segments(y, O, R, I)
    last = c._v.reshape(O, R, I)[:, R - 1, :]
    out = core.gather(c, last, (R * I, 1), (R - 1) * I)
    out = core.copy(out, last.reshape(shape)) if last.shape != shape else out
    return core.numpys_layout(out, value)


def _cast(x, dtype):
    """numpy's ``dtype=`` of a reduction or scan: the elements are cast first (then computed in it)."""
    return x if dtype is None else astype(x, dtype)


def _scan_args(a, axis, dim, dtype=None):
    x = _cast(tensorize(a), dtype)
    axis = pick(axis, dim)
    if axis is None:
        from .shape import ravel
        x, axis = ravel(x), 0
    return x, normalize_axis(axis, x.ndim)


@implements(np.cumsum, torch=("torch.cumsum", "x.cumsum"), ops=("cumsum",), names=("x.cumsum",))
def cumsum(a, axis=None, dtype=None, out=None, *, dim=None):
    reject("cumsum", out=out)
    x, ax = _scan_args(a, axis, dim, dtype)
    value = np.cumsum(x._v, axis=ax)
    return core.segment(OPS["cumsum"].code, x, value, *_axis_segments(x.shape, ax))


def cumsum_reverse(x, ax):
    """Running sums from the end of axis ``ax`` (cumsum's transpose)."""
    value = np.flip(np.cumsum(np.flip(x._v, ax), axis=ax), ax)
    return core.segment(OPS["cumsum_reverse"].code, x, value, *_axis_segments(x.shape, ax))


def _cumprod_segments(y, O, R, I):
    value = np.cumprod(np.reshape(y._v, (O, R, I)), axis=1).reshape(np.shape(y._v))
    return core.segment(OPS["cumprod"].code, y, value, O, R, I)


@implements(np.cumprod, torch=("torch.cumprod", "x.cumprod"), ops=("cumprod",), names=("x.cumprod",),
            note=OPS["cumprod"].kink)
def cumprod(a, axis=None, dtype=None, out=None, *, dim=None):
    reject("cumprod", out=out)
    x, ax = _scan_args(a, axis, dim, dtype)
    return _cumprod_segments(x, *_axis_segments(x.shape, ax))


# --------------------------------------------------------------------------- var, std, average
def _ddof(ddof, correction, unbiased, torch_style):
    """numpy's ``ddof=0`` by default; PyTorch's unbiased ``correction=1`` when called its way."""
    if ddof is not None and correction is not None:
        raise ValueError("ddof and correction can't be provided simultaneously.")
    if correction is not None:
        return correction
    if ddof is not None:
        return ddof
    if unbiased is not None:
        return int(bool(unbiased))
    return 1 if torch_style else 0


_VAR_NOTE = ("numpy's ddof=0 by default; PyTorch's correction=1 when called with dim=/keepdim=/"
             "unbiased= (as torch.var does)")


@implements(np.var, torch=("torch.var", "x.var"), ops=("scatter", "divide", "subtract", "multiply"),
            note=_VAR_NOTE, names=("x.var",))
def var(a, axis=None, dtype=None, out=None, ddof=None, keepdims=False, *, where=np._NoValue,
        mean=np._NoValue, correction=None, dim=None, keepdim=None, unbiased=None):
    reject("var", out=out, where=where, mean=mean)
    x = _cast(tensorize(a), dtype)
    torch_style = dim is not None or keepdim is not None or unbiased is not None
    d = _ddof(ddof, correction, unbiased, torch_style)
    axes = normalize_axes(pick(axis, dim), x.ndim)
    keepdims = _keep(keepdims, keepdim)
    dev = ew("subtract", x, _mean(x, axes, keepdims=True))
    s = sum_(ew("multiply", dev, dev), axis=axes, keepdims=keepdims)
    return core.binary(OPS["divide"], s, max(_count(x, axes) - d, 0), operator.truediv)


def sqrt_subgrad(x, value=None):
    """``sqrt`` whose derivative at 0 is 0 (the subgradient PyTorch's norms and std use, where
    the plain sqrt's infinite slope times a zero derivative of ``x`` would give NaN).
    ``value``: the result, where numpy computes it otherwise (``np.linalg.norm``)."""
    if type(x) is not Tensor:
        return np.sqrt(x) if value is None else value
    return core.elementwise(OPS["sqrt_subgrad"], (x,), np.sqrt if value is None else lambda _: value)


@implements(np.std, torch=("torch.std", "x.std"),
            ops=("scatter", "divide", "subtract", "multiply", "sqrt_subgrad"),
            note=_VAR_NOTE + "; at zero spread the derivative is 0, as PyTorch's", names=("x.std",))
def std(a, axis=None, dtype=None, out=None, ddof=None, keepdims=False, *, where=np._NoValue,
        mean=np._NoValue, correction=None, dim=None, keepdim=None, unbiased=None):
    return sqrt_subgrad(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                            correction=correction, dim=dim, keepdim=keepdim, unbiased=unbiased))


@implements(np.average, ops=("scatter", "divide", "multiply", "gather", "copy"),
            note="weights may be Tensors too (both are differentiated)")
def average(a, axis=None, weights=None, returned=False, *, keepdims=np._NoValue):
    keepdims = False if keepdims is np._NoValue else bool(keepdims)
    if weights is None:
        x = tensorize(a)
        avg = mean(x, axis, keepdims=keepdims)
        scl = np.asarray(x.size / max(np.size(avg._v), 1), avg.dtype)
    else:
        av, wv = np.shape(a._v if type(a) is Tensor else a), np.shape(weights._v if type(weights) is Tensor
                                                                     else weights)
        w = weights
        if av != wv:
            if axis is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            if len(wv) != 1 or isinstance(axis, (tuple, list)):
                raise TypeError("1D weights expected when shapes of a and weights differ.")
            ax = normalize_axis(axis, len(av))
            if wv[0] != av[ax]:
                raise ValueError("Length of weights not compatible with specified axis.")
            from .shape import reshape
            shp = [1] * len(av)
            shp[ax] = wv[0]
            w = reshape(w, shp) if type(w) is Tensor else np.reshape(w, shp)
        prodw = ew("multiply", a, w)
        axes = normalize_axes(axis, prodw.ndim)
        if type(w) is Tensor:
            scl = sum_(core.broadcast_to(w, prodw.shape), axis=axes, keepdims=keepdims)
            zero = np.any(scl._v == 0.0)
        else:
            scl = np.broadcast_to(w, prodw.shape).sum(axis=axes, keepdims=keepdims)
            zero = np.any(scl == 0.0)
        if zero:
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        avg = ew("divide", sum_(prodw, axis=axes, keepdims=keepdims), scl)
    if returned:
        shape = np.shape(avg._v)
        scl = core.broadcast_to(scl, shape) if type(scl) is Tensor else np.broadcast_to(scl, shape).copy()
        return avg, scl
    return avg


# --------------------------------------------------------------------------- logsumexp
@implements(torch=("torch.logsumexp", "x.logsumexp"), ops=("amax", "isfinite", "where", "subtract", "exp",
                                                         "multiply", "scatter", "log", "add", "sign", "absolute"),
            note="derivative softmax(a) (the shift by the maximum cancels)",
            names=("nb.logsumexp", "nb.special.logsumexp", "x.logsumexp"))
def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, dim=None, keepdim=None):
    """``log(sum(b * exp(a), axis))`` computed stably (``scipy.special.logsumexp``'s signature;
    PyTorch's ``torch.logsumexp(x, dim, keepdim)`` spelling works too).

    The shift by the maximum cancels from the derivative, which is ``softmax(a)``.

    >>> import numpy as np, numbad as nb
    >>> out, g = nb.vjp(lambda x: nb.logsumexp(x), np.log(np.array([1.0, 3.0])))
    >>> float(out), g
    (1.3862943611198906, array([0.25, 0.75]))
    """
    x = tensorize(a)
    axis = pick(axis, dim)
    keepdims = _keep(keepdims, keepdim)
    axes = normalize_axes(axis, x.ndim)
    m = amax(x, axes, keepdims=True)
    m = select(ew("isfinite", m), m, 0.0)
    e = ew("exp", ew("subtract", x, m))
    if b is not None:
        e = ew("multiply", e, b)
    s = sum_(e, axis=axes, keepdims=True)
    sign = None
    if return_sign:
        sign = ew("sign", s)
        s = ew("absolute", s)
    out = ew("add", ew("log", s), m)
    if not keepdims:
        from .shape import squeeze
        out = squeeze(out, axes) if axes else out
        sign = squeeze(sign, axes) if sign is not None and axes else sign
    return (out, sign) if return_sign else out


# --------------------------------------------------------------------------- any / all (booleans)
@implements(np.any, torch=("torch.any", "x.any"), ops=("not_equal", "amax"),
            note="boolean result: no derivative", names=("x.any",))
def any_(a, axis=None, out=None, keepdims=False, *, where=np._NoValue, dim=None, keepdim=None):
    reject("any", out=out, where=where)
    nz = ew("not_equal", tensorize(a), 0)
    return _extreme("amax", nz, pick(axis, dim), _keep(keepdims, keepdim))


@implements(np.all, torch=("torch.all", "x.all"), ops=("not_equal", "amin"),
            note="boolean result: no derivative", names=("x.all",))
def all_(a, axis=None, out=None, keepdims=False, *, where=np._NoValue, dim=None, keepdim=None):
    reject("all", out=out, where=where)
    nz = ew("not_equal", tensorize(a), 0)
    return _extreme("amin", nz, pick(axis, dim), _keep(keepdims, keepdim))


# --------------------------------------------------------------------------- argmax, argmin, argsort
def _arg(name, a, axis, keepdims):
    x = tensorize(a)
    if axis is None:
        from .shape import ravel
        value = getattr(np, name)(x._v, keepdims=keepdims)
        flat = ravel(x)
        out = core.segment(OPS[name].code, flat, np.reshape(value, ()), 1, flat.size, 1)
        if keepdims:
            from .shape import reshape
            out = reshape(out, value.shape)
        return out
    ax = normalize_axis(axis, x.ndim)
    value = getattr(np, name)(x._v, axis=ax, keepdims=keepdims)
    return core.segment(OPS[name].code, x, value, *_axis_segments(x.shape, ax))


@implements(np.argmax, torch=("torch.argmax", "x.argmax"), ops=("argmax", "copy"),
            note=OPS["argmax"].kink + "; recomputed on replay", names=("x.argmax",))
def argmax(a, axis=None, out=None, *, keepdims=False, dim=None, keepdim=None):
    reject("argmax", out=out)
    return _arg("argmax", a, pick(axis, dim), _keep(keepdims, keepdim))


@implements(np.argmin, torch=("torch.argmin", "x.argmin"), ops=("argmin", "copy"),
            note=OPS["argmin"].kink + "; recomputed on replay", names=("x.argmin",))
def argmin(a, axis=None, out=None, *, keepdims=False, dim=None, keepdim=None):
    reject("argmin", out=out)
    return _arg("argmin", a, pick(axis, dim), _keep(keepdims, keepdim))


@implements(np.argsort, torch=("torch.argsort", "x.argsort"), ops=("argsort", "negative", "copy"),
            note="integer result: no derivative; always stable (ties keep their order); "
                 "recomputed on replay", names=("x.argsort",))
def argsort(a, axis=-1, kind=None, order=None, *, stable=None, dim=None, descending=False):
    reject("argsort", order=order)
    x = tensorize(a)
    axis = pick(axis, dim)
    if axis is None:
        from .shape import ravel
        x, axis = ravel(x), 0
    if descending:
        x = ew("negative", x)
    ax = normalize_axis(axis, x.ndim)
    value = np.argsort(x._v, axis=ax, kind="stable")
    return core.segment(OPS["argsort"].code, x, value, *_axis_segments(x.shape, ax))


# --------------------------------------------------------------------------- methods
def install(T):
    T.sum = sum_
    T.mean = mean
    T.prod = prod
    T.max = _max_method("max", amax, argmax)
    T.min = _max_method("min", amin, argmin)
    T.amax = amax
    T.amin = amin
    T.ptp = ptp
    T.cumsum = cumsum
    T.cumprod = cumprod
    T.var = var
    T.std = std
    T.any = any_
    T.all = all_
    T.argmax = argmax
    T.argmin = argmin
    T.argsort = argsort
    T.logsumexp = lambda s, dim=None, keepdim=False, *, axis=None, keepdims=None: logsumexp(
        s, pick(axis, dim), keepdims=bool(pick(keepdims, keepdim, False)))
