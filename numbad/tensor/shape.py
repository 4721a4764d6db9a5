"""Shapes, joining, splitting, indexing and sorting.

Everything here moves data without arithmetic, so each function records a
data-movement op whose derivative is its transpose: ``copy`` (reshape),
``gather`` (strided reads: transposes, basic slices, broadcasts, diagonals),
``take`` (index reads: fancy indexing, roll, pad modes), ``assemble``
(concatenate, stack, diag), ``take_along`` (sort). The strides and offsets of
a read are found by applying numpy's own function to a fake array of
positions, so every spelling numpy accepts means what numpy means.
"""
from __future__ import annotations

import math
import operator
import weakref

import numpy as np

from ..ops import OPS
from . import core
from .core import Tensor, contiguous_strides
from .numpy_api import (implements, normalize_axis, operand, pick, read_value, reject,
                        tensorize, value_of)


def _positions(shape):
    """The flat position of every element of an array of ``shape``."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def view_geometry(shape, fn):
    """Strides and base offset (in elements) of the view ``fn(x)`` for ``x`` of ``shape``.

    ``fn`` runs on a stand-in of one (never read) byte per element, so that its strides and
    offset count elements. Where numpy returns a copy rather than a view (``np.flip`` of a 0-d
    array does), the geometry is read off the element indices ``fn`` picks from ``arange``
    instead, and must be a strided map.
    """
    # (one real byte, strided as the whole array: its views lead back to it, a copy does not)
    fake = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=shape,
                                           strides=contiguous_strides(shape))
    view = fn(fake)
    b = view.base if type(view) is np.ndarray else None
    while type(b) is np.ndarray and b is not fake:
        b = b.base
    if b is fake or (b is not None and b is fake.base):
        base = view.__array_interface__["data"][0] - fake.__array_interface__["data"][0]
        return list(view.strides), base
    idx = np.asarray(fn(np.arange(math.prod(shape), dtype=np.int64).reshape(shape)))
    if idx.size == 0:
        return [0] * idx.ndim, 0                   # (no element is read)
    base = int(idx.flat[0])
    strides = [int(idx[tuple(1 if k == d else 0 for k in range(idx.ndim))]) - base if n > 1 else 0
               for d, n in enumerate(idx.shape)]
    grid = np.indices(idx.shape, np.int64).reshape(idx.ndim, -1) if idx.ndim else np.zeros((0, 1), np.int64)
    if not np.array_equal(idx.reshape(-1), base + np.asarray(strides, np.int64) @ grid):
        raise TypeError("numbad: this read is not a strided view of the array")     # (no such numpy view)
    return strides, base


def viewed(out, x, how, reread, writable=True):
    """Mark ``out`` as what numpy would return as a view of ``x``: ``how`` (an index, or a
    function of an array) reads it from ``x``. Writes into ``out`` are then also made in ``x``
    (refused for numpy's read-only views: ``writable=False``), and a write into ``x`` reads
    ``out`` again (:func:`numbad.tensor.creation.rebind`) with ``reread(x)``, which records the
    same read of ``x``'s new version (without working out its geometry again)."""
    out._base = (x, how, writable, reread)
    views = getattr(x, "_views", None)
    if views is None:
        x._views = views = []
    elif len(views) >= 64 and not len(views) & (len(views) - 1):
        views[:] = [r for r in views if r() is not None]    # (reads in a loop: drop the dead)
    views.append(weakref.ref(out))
    return out


def gather_view(x, fn, writable=True):
    """Record ``fn(x)`` for a numpy function ``fn`` that returns a view (a strided read).

    A read-only view (``np.diagonal``) is kept as numpy's own array, strides and all: a
    matrix product of a strided vector adds in another order than of a copy (``np.diagonal(a)
    @ b`` of a 6x6 ``a`` differed from numpy's in the last bit in 4 of 5 cases)."""
    strides, base = view_geometry(x.shape, fn)

    def value(b):
        return np.array(fn(b._v)) if writable else fn(b._v)
    out = core.gather(x, value(x), strides, base)
    return viewed(out, x, fn, lambda b: core.gather(b, value(b), strides, base), writable)


# --------------------------------------------------------------------------- reshape family
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(operator.index(s) for s in shape)


@implements(np.reshape, torch=("torch.reshape", "x.reshape", "x.view", "x.view_as", "x.reshape_as"),
            ops=("copy", "view"), names=("x.reshape",))
def reshape(a, /, shape=None, order="C", *, newshape=None, copy=None):
    if shape is None:
        shape = newshape
    if order != "C":
        raise TypeError("numbad: reshape supports order='C' only")
    x = tensorize(a)
    value = x._v.reshape(shape) if type(x._v) is np.ndarray else np.reshape(x._v, shape)
    if value.shape == x.shape:
        return x
    out = core.copy(x, value)
    if not _numpy_views(x, lambda f: np.reshape(f, value.shape)):
        return out
    return viewed(out, x, lambda p: p.reshape(value.shape), lambda b: core.copy(b, b._v.reshape(value.shape)))


def _numpy_views(x, fn, c_order=True):
    """Does numpy's ``fn`` (a reshape, a ravel) of ``x`` give a view, not a copy? That depends
    on the memory layout: ``x.T.ravel()`` and ``x[:, ::2].reshape(-1)`` copy. Asked of a
    stand-in with ``x``'s layout: one byte per element of the Tensor ``x`` views, seen through
    the same chain of views. (``c_order``: ``fn`` flattens in C order, which always views a
    C-contiguous array.)"""
    chain, t = [], x
    while (base := getattr(t, "_base", None)) is not None:
        chain.append(base[1])
        t = base[0]
    root = np.asarray(t._v)
    if c_order and not chain and root.flags.c_contiguous:
        return True                                 # (the common case: no stand-in needed)
    fake = np.empty_like(root, dtype=np.uint8)      # (keeps C or F order)
    for how in reversed(chain):
        fake = how(fake) if callable(how) else fake[how]
    return fake.size > 0 and np.may_share_memory(fn(fake), fake)


@implements(np.ravel, torch=("torch.ravel", "torch.flatten", "x.flatten"), ops=("copy", "view"),
            names=("x.ravel", "x.flatten"))
def ravel(a, order="C"):
    x = tensorize(a)
    if _flat_order(x, order, "ravel") == "F":
        # the flat data of the full transpose: a view where numpy's is (an F-contiguous array)
        out = core.copy(transpose(x), np.ravel(x._v, order="F"))
        if not _numpy_views(x, lambda f: np.ravel(f, order="F"), c_order=False):
            return out
        return viewed(out, x, lambda p: np.ravel(p, order="F"),
                      lambda b: core.copy(transpose(b), np.ravel(b._v, order="F")))
    if not _numpy_views(x, np.ravel):          # numpy's ravel copies unless C-contiguous
        return core.copy(x, np.ravel(x._v))
    return reshape(x, (-1,))


def _flat_order(x, order, what):
    """'C' or 'F' for numpy's ``order`` of a flattening. 'A' and 'K' follow the memory layout,
    which numbad does not track (values live in its arena): refused where the orders differ."""
    if order in ("C", "F"):
        return order
    if order not in ("A", "K"):
        raise ValueError(f"order must be one of 'C', 'F', 'A', or 'K' (got {order!r})")
    if sum(d > 1 for d in x.shape) <= 1:
        return "C"
    raise TypeError(f"numbad: {what}(order={order!r}) follows the memory layout, which numbad does not "
                    "track; use order='C' or order='F'")


def _flatten_method(s, *args, **kwargs):
    """numpy's ``x.flatten(order='C')`` (a copy), or PyTorch's ``x.flatten(start_dim=0, end_dim=-1)``."""
    if "start_dim" in kwargs or "end_dim" in kwargs or (
            args and isinstance(args[0], (int, np.integer)) and not isinstance(args[0], bool)):
        names = ("start_dim", "end_dim")
        dims = dict(zip(names, args), **kwargs)
        if len(args) > 2 or set(dims) - set(names):
            raise TypeError("flatten() takes start_dim and end_dim (PyTorch) or order (numpy)")
        nd = max(s.ndim, 1)
        start, end = operator.index(dims.get("start_dim", 0)) % nd, operator.index(dims.get("end_dim", -1)) % nd
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = s.shape or (1,)
        return reshape(s, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])
    if len(args) > 1 or set(kwargs) - {"order"}:
        raise TypeError("flatten() takes order (numpy) or start_dim and end_dim (PyTorch)")
    order = kwargs.get("order", args[0] if args else "C")
    if _flat_order(s, order, "flatten") == "F":
        return ravel(s, "F")
    return core.copy(s, np.ravel(s._v))      # a copy, as numpy's


@implements(np.squeeze, torch=("torch.squeeze", "x.squeeze"), ops=("copy",), names=("x.squeeze",))
def squeeze(a, axis=None):
    x = tensorize(a)
    return reshape(x, np.squeeze(np.empty(x.shape, np.bool_), axis).shape)


@implements(np.expand_dims, torch=("torch.unsqueeze", "x.unsqueeze"), ops=("copy",))
def expand_dims(a, axis):
    x = tensorize(a)
    return reshape(x, np.expand_dims(np.empty(x.shape, np.bool_), axis).shape)


def _atleast(nd, arys):
    fn = {1: np.atleast_1d, 2: np.atleast_2d, 3: np.atleast_3d}[nd]
    out = [reshape(a, fn(np.empty(a.shape, np.bool_)).shape) if type(a) is Tensor else fn(a) for a in arys]
    return out[0] if len(out) == 1 else tuple(out)


@implements(np.atleast_1d, torch=("torch.atleast_1d",), ops=("copy",))
def atleast_1d(*arys):
    return _atleast(1, arys)


@implements(np.atleast_2d, torch=("torch.atleast_2d",), ops=("copy",))
def atleast_2d(*arys):
    return _atleast(2, arys)


@implements(np.atleast_3d, torch=("torch.atleast_3d",), ops=("copy",))
def atleast_3d(*arys):
    return _atleast(3, arys)


# --------------------------------------------------------------------------- transposes and broadcasts
@implements(np.transpose, torch=("torch.permute", "x.permute", "x.T", "x.mT", "x.t"), ops=("gather",),
            names=("x.transpose", "x.T"))
def transpose(a, axes=None):
    x = tensorize(a)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    axes = tuple(operator.index(d) % max(x.ndim, 1) for d in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError("axes don't match array")
    if axes == tuple(range(x.ndim)):
        return x
    value = np.transpose(x._v, axes)
    src = contiguous_strides(x.shape)
    strides = [src[d] for d in axes]
    return viewed(core.gather(x, value, strides, 0), x, lambda p: np.transpose(p, axes),
                  lambda b: core.gather(b, np.transpose(b._v, axes), strides, 0))


@implements(np.swapaxes, torch=("torch.swapaxes", "torch.transpose", "x.transpose(d0, d1)"),
            ops=("gather",), names=("x.swapaxes",))
def swapaxes(a, axis1, axis2):
    x = tensorize(a)
    perm = list(range(x.ndim))
    i, j = normalize_axis(axis1, x.ndim), normalize_axis(axis2, x.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(x, perm)


@implements(np.moveaxis, torch=("torch.movedim", "torch.moveaxis"), ops=("gather",))
def moveaxis(a, source, destination):
    x = tensorize(a)
    norm = np.lib.array_utils.normalize_axis_tuple
    source, destination = norm(source, x.ndim, "source"), norm(destination, x.ndim, "destination")
    if len(source) != len(destination):
        raise ValueError("`source` and `destination` arguments must have the same number of elements")
    order = [d for d in range(x.ndim) if d not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return transpose(x, order)


@implements(np.broadcast_to, torch=("torch.broadcast_to", "x.expand", "x.expand_as"), ops=("gather",))
def broadcast_to(array, shape, subok=False):
    x = tensorize(array)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    np.broadcast_shapes(x.shape, shape)          # numpy's error for shapes that don't broadcast
    if len(shape) < x.ndim or np.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"cannot broadcast a Tensor of shape {x.shape} to shape {shape}")
    return _broadcast_view(x, shape)


def _broadcast_view(x, shape, same_shape_is_x=False):
    """numpy's broadcast view: read-only (to ``x``'s own shape too), and it sees later writes
    into ``x``. PyTorch's ``expand`` to the same shape is ``x`` itself (``same_shape_is_x``)."""
    out = core.broadcast_to(x, shape)
    if out is x:
        if same_shape_is_x:
            return x
        out = core.copy(x, x._v)
    return viewed(out, x, lambda p: np.broadcast_to(p, shape),
                  lambda b: core.broadcast_to(b, shape) if b.shape != shape else core.copy(b, b._v),
                  writable=False)


@implements(np.broadcast_arrays, torch=("torch.broadcast_tensors",), ops=("gather",))
def broadcast_arrays(*args, subok=False):
    shape = np.broadcast_shapes(*(np.shape(value_of(a)) for a in args))
    return tuple(_broadcast_view(a, shape) if type(a) is Tensor else np.broadcast_to(a, shape)
                 for a in args)


def _expand(self, *sizes):
    """PyTorch's ``expand``: -1 keeps a dimension."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - self.ndim
    shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    np.broadcast_shapes(self.shape, shape)
    return _broadcast_view(self, shape, same_shape_is_x=True)


# --------------------------------------------------------------------------- joining
def _assemble(parts, value, axis_positions):
    """Record ``value`` made of ``parts`` (Tensors or constants), part k placed at index
    ``axis_positions[k]`` of ``value``'s strided layout (a ``(strides, base)`` pair)."""
    return core.assemble([(p, st, base) for p, (st, base) in zip(parts, axis_positions)], value)


@implements(np.concatenate, torch=("torch.cat", "torch.concatenate"), ops=("assemble", "copy"))
def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    reject("concatenate", out=out)
    arrays = [operand(a) for a in arrays]
    if axis is None:
        arrays = [ravel(a) if type(a) is Tensor else np.ravel(a) for a in arrays]
        axis = 0
    value = np.concatenate([value_of(a) for a in arrays], axis=axis, dtype=dtype, casting=casting)
    ax = normalize_axis(axis, value.ndim)
    st = contiguous_strides(value.shape)
    places, offset = [], 0
    for a in arrays:
        places.append((st, offset * st[ax]))
        offset += np.shape(value_of(a))[ax]
    return _assemble(arrays, value, places)


@implements(np.stack, torch=("torch.stack",), ops=("assemble",))
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    reject("stack", out=out)
    arrays = [operand(a) for a in arrays]
    value = np.stack([value_of(a) for a in arrays], axis=axis, dtype=dtype, casting=casting)
    ax = normalize_axis(axis, value.ndim)
    st = contiguous_strides(value.shape)
    inner = st[:ax] + st[ax + 1:]
    return _assemble(arrays, value, [(inner, k * st[ax]) for k in range(len(arrays))])


@implements(np.hstack, torch=("torch.hstack",), ops=("assemble", "copy"))
def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = _atleast_list(1, tup)
    return concatenate(arrs, 0 if np.ndim(value_of(arrs[0])) == 1 else 1, dtype=dtype, casting=casting)


@implements(np.vstack, torch=("torch.vstack", "torch.row_stack"), ops=("assemble", "copy"))
def vstack(tup, *, dtype=None, casting="same_kind"):
    return concatenate(_atleast_list(2, tup), 0, dtype=dtype, casting=casting)


@implements(np.dstack, torch=("torch.dstack",), ops=("assemble", "copy"))
def dstack(tup):
    return concatenate(_atleast_list(3, tup), 2)


@implements(np.column_stack, torch=("torch.column_stack",), ops=("assemble", "copy"))
def column_stack(tup):
    arrs = [operand(a) for a in tup]
    arrs = [(reshape(a, (-1, 1)) if type(a) is Tensor else np.reshape(a, (-1, 1)))
            if np.ndim(value_of(a)) < 2 else a for a in arrs]
    return concatenate(arrs, 1)


def _atleast_list(nd, tup):
    out = _atleast(nd, [operand(a) for a in tup])
    return list(out) if isinstance(out, tuple) else [out]


@implements(np.append, ops=("assemble", "copy"))
def append(arr, values, axis=None):
    return concatenate([arr, values], axis=axis)


# --------------------------------------------------------------------------- splitting
def _split(ary, bounds, axis):
    x = tensorize(ary)
    ax = normalize_axis(axis, x.ndim)
    lead = (slice(None),) * ax
    return [getitem(x, lead + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _bounds(n, indices_or_sections, equal):
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError("number sections must be larger than 0.")
        if equal and n % k:
            raise ValueError("array split does not result in an equal division")
        each, extra = divmod(n, k)
        sizes = [each + 1] * extra + [each] * (k - extra)
        return [0] + list(np.cumsum(sizes))
    idx = [int(i) for i in indices_or_sections]
    return [0] + idx + [n]


@implements(np.split, torch=("torch.tensor_split",), ops=("gather",))
def split(ary, indices_or_sections, axis=0):
    x = tensorize(ary)
    return _split(x, _bounds(x.shape[normalize_axis(axis, x.ndim)], indices_or_sections, True), axis)


@implements(np.array_split, ops=("gather",))
def array_split(ary, indices_or_sections, axis=0):
    x = tensorize(ary)
    return _split(x, _bounds(x.shape[normalize_axis(axis, x.ndim)], indices_or_sections, False), axis)


@implements(np.hsplit, torch=("torch.hsplit",), ops=("gather",))
def hsplit(ary, indices_or_sections):
    x = tensorize(ary)
    return split(x, indices_or_sections, 1 if x.ndim > 1 else 0)


@implements(np.vsplit, torch=("torch.vsplit",), ops=("gather",))
def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, 0)


# --------------------------------------------------------------------------- tile, repeat, flip, roll
@implements(np.tile, torch=("torch.tile", "x.tile"), ops=("gather", "copy"), names=("x.tile",))
def tile(A, reps):
    x = tensorize(A)
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    d = max(len(reps), x.ndim)
    shape = (1,) * (d - x.ndim) + x.shape
    reps = (1,) * (d - len(reps)) + reps
    inter = reshape(x, tuple(v for s in shape for v in (1, s)))
    big = core.broadcast_to(inter, tuple(v for r, s in zip(reps, shape) for v in (r, s)))
    return reshape(big, tuple(r * s for r, s in zip(reps, shape)))


@implements(np.repeat, torch=("torch.repeat_interleave", "x.repeat_interleave"), ops=("gather", "copy", "take"),
            names=("x.repeat",), note="x.repeat follows numpy (PyTorch's x.repeat is np.tile)")
def repeat(a, repeats, axis=None):
    x = tensorize(a)
    if axis is None:
        x, axis = ravel(x), 0
    ax = normalize_axis(axis, x.ndim)
    if np.ndim(repeats) == 0:
        r = operator.index(repeats)
        s = x.shape
        big = core.broadcast_to(reshape(x, s[:ax + 1] + (1,) + s[ax + 1:]), s[:ax + 1] + (r,) + s[ax + 1:])
        return reshape(big, s[:ax] + (s[ax] * r,) + s[ax + 1:])
    idx = np.repeat(np.arange(x.shape[ax]), repeats)
    return getitem(x, (slice(None),) * ax + (idx,))


@implements(np.flip, torch=("torch.flip", "x.flip"), ops=("gather",))
def flip(m, axis=None):
    x = tensorize(m)
    return gather_view(x, lambda v: np.flip(v, axis))


@implements(np.fliplr, torch=("torch.fliplr",), ops=("gather",))
def fliplr(m):
    return gather_view(tensorize(m), np.fliplr)


@implements(np.flipud, torch=("torch.flipud",), ops=("gather",))
def flipud(m):
    return gather_view(tensorize(m), np.flipud)


@implements(np.roll, torch=("torch.roll", "x.roll"), ops=("take",))
def roll(a, shift, axis=None):
    x = tensorize(a)
    return core.take(x, np.roll(x._v, shift, axis), np.roll(_positions(x.shape), shift, axis))


_PAD_BY_INDEX = ("edge", "reflect", "symmetric", "wrap")


@implements(np.pad, torch=("torch.nn.functional.pad",), ops=("assign", "take"),
            note="modes constant (a constant pad value), edge, reflect, symmetric, wrap")
def pad(array, pad_width, mode="constant", **kwargs):
    x = tensorize(array)
    if mode in _PAD_BY_INDEX and kwargs.get("reflect_type", "even") == "even":
        return core.take(x, np.pad(x._v, pad_width, mode, **kwargs),
                              np.pad(_positions(x.shape), pad_width, mode, **kwargs))
    if mode != "constant" or any(type(v) is Tensor for v in np.ravel(
            np.asarray(kwargs.get("constant_values", 0), dtype=object))):
        raise TypeError(f"numbad: np.pad supports mode='constant' with constant values and the "
                        f"modes {', '.join(_PAD_BY_INDEX)}; got mode={mode!r}")
    value = np.pad(x._v, pad_width, mode, **kwargs)
    marks = np.pad(np.ones(x.shape, np.bool_), pad_width, "constant", constant_values=False)
    base = np.where(marks, 0, value).astype(value.dtype)
    return core.assign(base, x, _positions(value.shape)[marks], value)


# --------------------------------------------------------------------------- take, take_along_axis, sort
@implements(np.take, torch=("torch.take", "x.take", "torch.index_select"), ops=("take",),
            note="Tensor indices are read as values (a guard on a recorded tape)", names=("x.take",))
def take(a, indices, axis=None, out=None, mode="raise"):
    reject("take", out=out)
    x = tensorize(a)
    if type(indices) is Tensor:
        indices = read_value(indices, "np.take indices")
    return core.take(x, np.take(x._v, indices, axis, mode=mode),
                          np.take(_positions(x.shape), indices, axis, mode=mode))


@implements(np.take_along_axis, torch=("torch.take_along_dim", "x.gather(dim, index)"),
            ops=("take", "take_along", "gather", "copy"),
            note="Tensor indices (argsort, argmax) are recomputed on replay")
def take_along_axis(arr, indices, axis=-1):
    x = tensorize(arr)
    if type(indices) is not Tensor:
        idx = np.asarray(indices)
        return core.take(x, np.take_along_axis(x._v, idx, axis),
                              np.take_along_axis(_positions(x.shape), idx, axis))
    if axis is None:
        x, axis = ravel(x), 0
    value = np.take_along_axis(x._v, indices._v, axis)      # numpy checks the shapes
    ax = normalize_axis(axis, x.ndim)
    bshape = list(value.shape)
    xshape = bshape[:ax] + [x.shape[ax]] + bshape[ax + 1:]
    x = core.broadcast_to(x, tuple(xshape))
    idx = core.broadcast_to(indices, value.shape)
    O, I = math.prod(bshape[:ax]), math.prod(bshape[ax + 1:])
    return core.take_along(x, idx, value, O, x.shape[ax], I, bshape[ax])


@implements(np.sort, torch=("torch.sort", "x.sort(dim=...)"), ops=("argsort", "take_along", "copy", "negative"),
            note="derivative follows the sorting permutation (stable: ties keep their order); x.sort() "
                 "sorts in place as numpy's, x.sort(dim=..., descending=...) returns PyTorch's "
                 "(values, indices)", names=("x.sort",))
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    reject("sort", order=order)
    from .reductions import argsort
    x = tensorize(a)
    if axis is None:
        x, axis = ravel(x), 0
    out = take_along_axis(x, argsort(x, axis), axis)
    if type(x._v) is np.ndarray and x._v.ndim > 1 and not x._v.flags.c_contiguous:
        out = core.numpys_layout(out, np.sort(x._v, axis))     # (numpy's keeps its operand's layout)
    return out


def _sort_method(self, axis=-1, kind=None, order=None, *, dim=None, descending=False, stable=None):
    """numpy's ``x.sort(axis)`` sorts in place (returns None); PyTorch's ``x.sort(dim=...,
    descending=...)`` returns ``(values, indices)``."""
    from .reductions import ValuesIndices, argsort
    if dim is not None or descending:
        d = pick(axis, dim)
        idx = argsort(self, d, descending=descending)
        return ValuesIndices(take_along_axis(self, idx, d), idx)
    from .creation import commit
    commit(self, sort(self, axis))


# --------------------------------------------------------------------------- diagonals and triangles
@implements(np.diagonal, torch=("torch.diagonal", "x.diagonal"), ops=("gather",), names=("x.diagonal",))
def diagonal(a, offset=0, axis1=0, axis2=1):
    # numpy's diagonal is a read-only view: a write into it is refused there, a copy here
    return gather_view(tensorize(a), lambda v: np.diagonal(v, offset, axis1, axis2), writable=False)


@implements(np.diag, torch=("torch.diag",), ops=("assemble", "gather"))
def diag(v, k=0):
    x = tensorize(v)
    if x.ndim == 2:
        return diagonal(x, k)
    if x.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    value = np.diag(x._v, k)
    n = value.shape[0]
    return core.assemble([(x, (n + 1,), k if k >= 0 else -k * n)], value)


def _tri_mask(x, k, upper):
    if x.ndim < 2:
        raise ValueError("input array must be at least 2-d")
    return ~np.tri(*x.shape[-2:], k=k - 1, dtype=bool) if upper else np.tri(*x.shape[-2:], k=k, dtype=bool)


@implements(np.triu, torch=("torch.triu", "x.triu"), ops=("where",))
def triu(m, k=0):
    x = tensorize(m)
    return core.elementwise(OPS["where"], (_tri_mask(x, k, True), x, 0.0), lambda c, a, b: np.where(c, a, b))


@implements(np.tril, torch=("torch.tril", "x.tril"), ops=("where",))
def tril(m, k=0):
    x = tensorize(m)
    return core.elementwise(OPS["where"], (_tri_mask(x, k, False), x, 0.0), lambda c, a, b: np.where(c, a, b))


@implements(np.diff, torch=("torch.diff",), ops=("gather", "subtract", "assemble"))
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    x = tensorize(a)
    if prepend is not np._NoValue or append is not np._NoValue:
        parts = ([prepend] if prepend is not np._NoValue else []) + [x] + \
                ([append] if append is not np._NoValue else [])
        ax = normalize_axis(axis, x.ndim)
        parts = [p if type(p) is Tensor or np.ndim(p) == x.ndim else
                 np.broadcast_to(p, x.shape[:ax] + (1,) + x.shape[ax + 1:]) for p in parts]
        x = concatenate(parts, ax)
    ax = normalize_axis(axis, x.ndim)
    lead = (slice(None),) * ax
    for _ in range(n):
        x = core.binary(OPS["subtract"], getitem(x, lead + (slice(1, None),)),
                        getitem(x, lead + (slice(None, -1),)), operator.sub)
    return x


# --------------------------------------------------------------------------- indexing
def _is_basic_key(key):
    items = key if isinstance(key, tuple) else (key,)
    for k in items:
        if k is None or k is Ellipsis or isinstance(k, slice):
            continue
        if isinstance(k, (bool, np.bool_)):
            return False
        if isinstance(k, (int, np.integer)):
            continue
        return False
    return True


def resolve_key(key):
    """Tensors inside an index are read as values (a guard on a recorded tape)."""
    if type(key) is Tensor:
        return read_value(key, "an index")
    if isinstance(key, tuple) and any(type(k) is Tensor for k in key):
        return tuple(read_value(k, "an index") if type(k) is Tensor else k for k in key)
    if isinstance(key, list):
        return np.asarray([read_value(k, "an index") if type(k) is Tensor else k for k in key]) \
            if any(type(k) is Tensor for k in key) else key
    return key


def slice_geometry(shape, items):
    """Strides and base offset (in elements) of ``x[items]`` for ``x`` of ``shape``, C order,
    where ``items`` are at most ``len(shape)`` slices and Python ints that numpy accepted
    (so the ints are in range). The common reads (``x[1:]``, ``m[:, 0]``, ``x[::-1]``) need
    no stand-in array: :func:`view_geometry` gives the same answer ten times slower."""
    if len(shape) == 1:                         # (most reads: a vector's)
        k = items[0]
        if type(k) is int:
            return [], k % shape[0]
        start, _, by = k.indices(shape[0])
        return [by], start
    strides, base = [], 0
    cs = contiguous_strides(shape)
    for d, k in enumerate(items):
        if type(k) is int:
            base += (k % shape[d]) * cs[d]
        else:
            start, _, by = k.indices(shape[d])
            base += start * cs[d]
            strides.append(by * cs[d])
    strides += cs[len(items):]
    return strides, base


def _slices_and_ints(key, ndim):
    """``key`` as a tuple of slices and Python ints (at most ``ndim``), or ``None``."""
    items = key if type(key) is tuple else (key,)
    if len(items) > ndim:
        return None
    for k in items:
        if type(k) is not slice and type(k) is not int:
            return None
    return items


def getitem(x, key):
    key = resolve_key(key)
    value = x._v[key]                           # numpy validates the index
    items = _slices_and_ints(key, x._v.ndim) if type(x._v) is np.ndarray else None
    if items is not None and value.size:        # (an empty read: as numpy's stand-in says)
        strides, base = slice_geometry(x._v.shape, items)
    elif _is_basic_key(key):
        items = key if isinstance(key, tuple) else (key,)
        if not any(k is Ellipsis for k in items):
            items = items + (Ellipsis,)        # always a view, never a scalar read
        strides, base = view_geometry(x.shape, lambda v: v[items])
    else:
        return core.take(x, value, _positions(x.shape)[key])
    out = core.gather(x, value, strides, base)
    if type(value) is not np.ndarray:
        return out
    return viewed(out, x, key, lambda b: core.gather(b, b._v[key], strides, base))


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d Tensor")
    for i in range(self.shape[0]):
        yield getitem(self, i)


def _t(self):
    """PyTorch's ``t()``: transpose a 0-, 1- or 2-D Tensor."""
    if self.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
    return transpose(self) if self.ndim == 2 else self


def _transpose_method(self, *axes, dim0=None, dim1=None):
    """numpy's ``transpose(*axes)``, or PyTorch's ``transpose(dim0, dim1)`` swap.

    Two integer arguments swap those two dimensions (PyTorch); on a 2-D
    Tensor numpy would read ``(0, 1)`` as the identity permutation, a no-op
    nobody writes on purpose, so the PyTorch reading is taken there too.
    """
    if dim0 is not None or dim1 is not None:
        axes = (dim0, dim1)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        return transpose(self, tuple(axes[0]))
    if len(axes) == 0:
        return transpose(self)
    if len(axes) == 2:
        return swapaxes(self, *axes)
    return transpose(self, axes)


def _squeeze_method(self, axis=None, *, dim=None):
    """numpy's ``squeeze(axis)``; PyTorch's ``squeeze(dim=d)`` leaves a dimension not of size 1."""
    if dim is not None:
        dims = [normalize_axis(d, self.ndim) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
        axis = tuple(d for d in dims if self.shape[d] == 1)
    return squeeze(self, axis)


def install(T):
    T.__getitem__ = getitem
    T.__iter__ = _iter
    T.T = property(lambda s: transpose(s))
    T.mT = property(lambda s: transpose(s, tuple(range(s.ndim - 2)) + (s.ndim - 1, s.ndim - 2)))
    T.reshape = lambda s, *shape, order="C": reshape(s, _shape_arg(shape), order=order)
    T.view = lambda s, *shape: reshape(s, _shape_arg(shape)) if shape else s     # (numpy's x.view())
    T.view_as = lambda s, other: reshape(s, other.shape)
    T.reshape_as = lambda s, other: reshape(s, other.shape)
    T.ravel = lambda s, order="C": ravel(s, order)
    T.flatten = _flatten_method
    T.transpose = _transpose_method
    T.permute = lambda s, *dims: transpose(s, _shape_arg(dims))
    T.t = _t
    T.swapaxes = swapaxes
    T.squeeze = _squeeze_method
    T.unsqueeze = lambda s, dim: expand_dims(s, dim)
    T.expand = _expand
    T.expand_as = lambda s, other: broadcast_to(s, other.shape)
    T.repeat = lambda s, repeats, axis=None: repeat(s, repeats, axis)
    T.repeat_interleave = lambda s, repeats, dim=None: repeat(s, repeats, dim)
    T.tile = lambda s, *reps: tile(s, _shape_arg(reps))
    T.flip = lambda s, *dims: flip(s, _shape_arg(dims) if dims else None)
    T.roll = lambda s, shifts, dims=None: roll(s, shifts, dims)
    T.take = lambda s, indices, axis=None: take(s, indices, axis)
    T.gather = lambda s, dim, index: take_along_axis(s, index, dim)
    T.take_along_dim = lambda s, indices, dim=None: take_along_axis(s, indices, dim)
    T.diagonal = lambda s, offset=0, axis1=0, axis2=1, *, dim1=None, dim2=None: diagonal(
        s, offset, pick(axis1, dim1), pick(axis2, dim2))
    T.triu = lambda s, diagonal=0: triu(s, diagonal)
    T.tril = lambda s, diagonal=0: tril(s, diagonal)
    T.sort = _sort_method
