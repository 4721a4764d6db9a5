"""Creating arrays and writing into them: ``np.zeros_like(x)``, ``nb.zeros``, ``t[idx] = v``, ``t += v``.

Semantics (numbad's Tensors are values on a tape; numpy's arrays are memory):

* ``np.zeros_like(t)``, ``np.ones_like``, ``np.empty_like``, ``np.full_like``
  and ``np.copy`` on a Tensor give a Tensor on its tape: a constant (no
  derivative) for the first four, a copy that keeps the derivative for
  ``np.copy``. ``empty_like`` is filled with zeros (numbad has no
  uninitialised memory).
* ``nb.zeros``, ``nb.ones``, ``nb.empty``, ``nb.full`` give a constant
  Tensor on the innermost recording tape while a function is being
  differentiated, and a plain ``ndarray`` (numpy's own result) when nothing
  is recording: outside ``func`` there is nothing to differentiate, and an
  ndarray is what the rest of the code expects there.
* ``t[idx] = v`` and ``t += v`` (``-=``, ``*=``, ``/=``, ``**=``, ``%=``,
  ``//=``) record a new version of ``t`` (an ``assign`` op, or the arithmetic
  op) and rebind the Tensor object to it: every name bound to that object
  sees the write, as with numpy. Derivatives flow through the write: the
  overwritten positions pass nothing back to the old version, the written
  value gets the derivative at its positions. numpy's casting, broadcasting
  and index rules apply (the value is computed by numpy). Writing a Tensor
  into an integer or boolean Tensor, or into a plain ndarray, raises
  ``TypeError``: it would drop the derivative.
* Views behave as numpy's. What numpy returns as a view (a basic index,
  a transpose, ``flip``, and ``reshape``/``ravel`` where the layout allows:
  ``t.T.ravel()`` is a copy in numpy and here) is a Tensor that remembers
  what it views: a write into it is also made in ``t`` (``t[0][1] = v``,
  ``row = t[0]; row += 1``, ``for row in t: row *= 2``, ``t.T[0] = v``), and
  a write into ``t`` reads every view of ``t`` that is still alive again, so
  that ``pos = state[:3]; state += dt * rate`` leaves ``pos`` showing the
  new state, as in numpy. numpy's read-only views (``np.diagonal``,
  ``np.broadcast_to``) see writes too and refuse their own with numpy's
  ``ValueError``. Fancy-index reads are copies, as in numpy.
* Each write costs one copy of the written Tensor (a new version on the
  tape), and one read of each live view of it: a loop writing ``n``
  elements one by one into an ``n``-element array records ``O(n^2)``
  values. For long loops over large arrays, collect the values in a list
  and ``np.stack`` them.
"""
from __future__ import annotations

import operator

import numpy as np

from ..ops import OPS
from ..tape import current_tape
from . import core
from .core import Tensor, as_constant, wrap
from .numpy_api import _PYOPS, implements, power, tensorize


def constant(value, tape):
    """A Tensor on ``tape`` holding ``value``, with no derivative."""
    value = value[()] if type(value) is np.ndarray and value.ndim == 0 else value
    return wrap(value, tape, tape.add_node(value))


# --------------------------------------------------------------------------- *_like and copy
def _as_shape(shape):
    return (operator.index(shape),) if np.ndim(shape) == 0 else tuple(shape)


def _filled_with(fill_value, shape, dtype):
    """A new Tensor of ``shape`` holding the Tensor ``fill_value`` broadcast (differentiable)."""
    out = copy(core.broadcast_to(fill_value, _as_shape(shape)))
    return out if dtype is None else out.astype(dtype)


def _like(fn, a, dtype, shape, *args):
    x = tensorize(a, "the first argument")
    value = fn(x._v, *args, dtype=dtype, shape=shape)
    return constant(np.asarray(value), x._tape)


@implements(np.zeros_like, torch=("torch.zeros_like",), ops=(), note="a constant")
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(np.zeros_like, a, dtype, shape)


@implements(np.ones_like, torch=("torch.ones_like",), ops=(), note="a constant")
def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(np.ones_like, a, dtype, shape)


@implements(np.empty_like, torch=("torch.empty_like",), ops=(), note="a constant, filled with zeros")
def empty_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    return _like(np.zeros_like, a, dtype, shape)


@implements(np.full_like, torch=("torch.full_like",), ops=("gather", "copy"),
            note="a constant, or a broadcast of fill_value when that is a Tensor")
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    if type(fill_value) is Tensor:
        return _filled_with(fill_value, np.shape(a._v if type(a) is Tensor else a) if shape is None else shape,
                            dtype)
    return _like(np.full_like, a, dtype, shape, fill_value)


@implements(np.copy, torch=("x.clone", "x.copy"), ops=("copy",), names=("x.copy",))
def copy(a, order="K", subok=False):
    x = tensorize(a)
    return core.copy(x, np.array(x._v, order=order))       # (the memory layout numpy gives)


def _created(fn, shape, dtype, *args):
    value = fn(shape, *args, dtype=dtype)
    tape = current_tape()
    return value if tape is None else constant(value, tape)


@implements(torch=("torch.zeros",), ops=(), names=("nb.zeros",),
            note="a constant Tensor while recording, else numpy's ndarray")
def zeros(shape, dtype=float):
    """A zero-filled array to write into: a constant Tensor while recording, else ``np.zeros``.

    >>> import numpy as np, numbad as nb
    >>> def f(x):
    ...     out = nb.zeros(3)
    ...     for i in range(3):
    ...         out[i] = x[i] * (i + 1)
    ...     return out.sum()
    >>> nb.vjp(f, np.ones(3))[1]
    array([1., 2., 3.])
    """
    return _created(np.zeros, shape, dtype)


@implements(torch=("torch.ones",), ops=(), names=("nb.ones",),
            note="a constant Tensor while recording, else numpy's ndarray")
def ones(shape, dtype=float):
    """A one-filled array: a constant Tensor while recording, else ``np.ones``.

    >>> import numpy as np, numbad as nb
    >>> def f(x):
    ...     out = nb.ones(2)
    ...     out *= x
    ...     return out.sum()
    >>> nb.vjp(f, np.array([2.0, 3.0]))[1]
    array([1., 1.])
    """
    return _created(np.ones, shape, dtype)


@implements(torch=("torch.empty",), ops=(), names=("nb.empty",),
            note="a constant Tensor while recording, else numpy's ndarray")
def empty(shape, dtype=float):
    """An array to fill: a zero-filled constant Tensor while recording, else ``np.empty``.

    >>> import numpy as np, numbad as nb
    >>> def f(x):
    ...     out = nb.empty(2)
    ...     out[0], out[1] = x[0] * x[1], x[0] + x[1]
    ...     return out.sum()
    >>> nb.vjp(f, np.array([2.0, 3.0]))[1]
    array([4., 3.])
    """
    return _created(np.zeros if current_tape() is not None else np.empty, shape, dtype)


@implements(torch=("torch.full",), ops=("gather", "copy"), names=("nb.full",),
            note="a constant Tensor while recording, else numpy's ndarray")
def full(shape, fill_value, dtype=None):
    """An array filled with ``fill_value`` (a number, or a Tensor broadcast to ``shape``):
    a Tensor while recording, else ``np.full``.

    >>> import numpy as np, numbad as nb
    >>> nb.vjp(lambda s: nb.full(3, s) * np.arange(3.0), 2.0, np.ones(3))
    (array([0., 2., 4.]), array(3.))
    """
    if type(fill_value) is Tensor:
        return _filled_with(fill_value, shape, dtype)
    return _created(np.full, shape, dtype, fill_value)


# --------------------------------------------------------------------------- writes
def rebind(t, new):
    """Make Tensor ``t`` the new version ``new`` (same tape, same shape), and read the Tensors
    that view ``t`` again from it: as numpy views, they see the write."""
    t._v = new._v
    t._node = new._node
    views = getattr(t, "_views", None)
    if views:
        live = [(ref, v) for ref in views if (v := ref()) is not None and v._base[0] is t]
        t._views = [ref for ref, _ in live]
        for _, v in live:
            rebind(v, v._base[3](t))


def _on_tape_of(t, value):
    """``value`` as an operand of a write into ``t``: a Tensor of another tape (an enclosing
    or nested call's) is a constant on ``t``'s tape, so that ``t`` stays on its own tape."""
    if type(value) is Tensor and value._tape is not t._tape:
        return constant(np.array(value._v), t._tape)
    return value


def _positions(t):
    return np.arange(t.size, dtype=np.int64).reshape(t.shape)


def _viewed_positions(t):
    """``(src, positions)``: the Tensor ``t`` is a numpy view of, and where ``t``'s elements
    are in it (flat positions, ``t``'s shape); ``(None, None)`` if ``t`` is no view."""
    base = getattr(t, "_base", None)
    if base is None:
        return None, None
    src, how = base[0], base[1]
    p = _positions(src)
    return src, np.reshape(how(p) if callable(how) else p[how], t.shape)


def _check_writable(t):
    """numpy's refusal to write into a read-only view (``np.broadcast_to``, ``np.diagonal``, and
    views of them), checked before anything is written."""
    while (base := getattr(t, "_base", None)) is not None:
        if not base[2]:
            raise ValueError("assignment destination is read-only")
        t = base[0]


def _write(t, pos, value, checked=False):
    """Record ``t.flat[pos] = value`` (numpy's broadcasting and casting) and rebind ``t``;
    then make the same write in the Tensor ``t`` was read from, if it was a view."""
    if t.dtype.kind != "f" and type(value) is Tensor:
        raise TypeError(f"numbad: writing a Tensor into a {t.dtype} Tensor would drop its "
                        "derivative; create the array with a floating dtype")
    if not checked:
        _check_writable(t)
    value = _on_tape_of(t, value)
    if type(value) is Tensor:
        # the value as it is now: it may be a view of t (v[1:] = v[:-1]), which the write
        # below reads again before the same value is written into what t views
        value = core.wrap(value._v, value._tape, value._node)
    new = np.array(t._v, order="C")        # C order: flat positions index it
    flat = new.reshape(-1)
    pos = np.asarray(pos)
    flat[pos] = value._v if type(value) is Tensor else as_constant(value, "assigned value")
    if pos.size:
        part = _part(t, pos, value, flat)
        fpos = pos.reshape(-1)
        if np.unique(fpos).size != fpos.size:       # repeated positions: the last write wins
            fpos, part = _last_writes(fpos, part)
        whole = new.reshape(np.shape(t._v))
        if type(t._v) is np.ndarray and not t._v.flags.c_contiguous:
            whole = _in_layout_of(t._v, whole)          # numpy writes in place: the layout stays
        rebind(t, core.assign(t, part, fpos, whole))
    src, where = _viewed_positions(t)
    if src is not None:
        _write(src, where.reshape(-1)[pos], value, checked=True)


def _in_layout_of(layout, value):
    """``value`` in the memory layout of ``layout`` (numpy's in-place writes keep an array's layout,
    and a later reshape or ravel copies or views by it)."""
    out = np.empty_like(layout)
    out[...] = value
    return out


def _part(t, pos, value, written):
    """The written value in ``t``'s dtype: one element for all positions, or one per position."""
    if type(value) is not Tensor:
        part = written[pos]                         # numpy's broadcast and cast of the value
        return part.reshape(-1)[0] if np.size(value) == 1 else part
    if value.size != 1:
        shape = value.shape
        while len(shape) > pos.ndim and shape[0] == 1:   # numpy drops leading unit dimensions
            shape = shape[1:]
        from .shape import reshape
        value = core.broadcast_to(reshape(value, shape), pos.shape)
    return value.astype(t.dtype) if value.dtype != t.dtype else value


def _last_writes(fpos, part):
    _, first = np.unique(fpos[::-1], return_index=True)
    keep = np.sort(fpos.size - 1 - first)
    if np.size(part._v if type(part) is Tensor else part) > 1:
        if type(part) is Tensor:
            from .shape import reshape
            flatp = reshape(part, (-1,))
            part = core.take(flatp, flatp._v[keep], keep)
        else:
            part = np.ravel(part)[keep]
    return fpos[keep], part


def setitem(self, key, value):
    from .shape import resolve_key
    _write(self, _positions(self)[resolve_key(key)], value)


def commit(t, new):
    """Rebind ``t`` to ``new`` (its whole new value) and write it through to what ``t`` views."""
    _check_writable(t)
    if new.dtype != t.dtype:
        if not np.can_cast(new.dtype, t.dtype, "same_kind"):
            raise TypeError(f"numbad: Cannot cast an in-place result from {new.dtype} to {t.dtype} "
                            "with casting rule 'same_kind'")
        new = new.astype(t.dtype)
    if np.shape(new._v) != t.shape:
        raise ValueError(f"non-broadcastable output operand with shape {t.shape} doesn't match "
                         f"the broadcast shape {np.shape(new._v)}")
    if type(t._v) is np.ndarray and not t._v.flags.c_contiguous and type(new._v) is np.ndarray:
        # numpy writes in place, so the array keeps its layout (z = a.T * 1.0; z += b is
        # column-major), which decides the last bits of a later sum over it
        laid = _in_layout_of(t._v, new._v)
        tape = new._tape
        if tape._deferred and new._node in tape._deferred:
            tape.revive(new._node, laid)          # (the same values, held by the new array)
        new._v = laid
    rebind(t, new)
    src, where = _viewed_positions(t)
    if src is not None:
        _write(src, where, t, checked=True)
    return t


def _inplace(name):
    op = OPS[name]

    def method(self, other):
        other = _on_tape_of(self, other)
        new = power(self, other) if name == "power" else core.binary(op, self, other, _PYOPS.get(name))
        return commit(self, new)
    method.__name__ = f"__i{name}__"
    return method


def add_at(a, indices, b):
    """``np.add.at(t, indices, b)``: unbuffered in-place addition (repeated indices add up)."""
    from .shape import reshape, resolve_key
    t = tensorize(a, "np.add.at's first argument")
    b = _on_tape_of(t, b)
    region = _positions(t)[resolve_key(indices)]
    if type(b) is Tensor:
        part = reshape(core.broadcast_to(b, region.shape), (-1,))
    else:
        part = constant(np.broadcast_to(as_constant(b, "np.add.at's value"), region.shape)
                        .reshape(-1).astype(t.dtype), t._tape)
    sums = np.zeros(t.size, part.dtype)
    np.add.at(sums, region.reshape(-1), np.ravel(part._v))
    added = core.put_add(part, region, t.size, sums.reshape(t.shape))
    # the value is numpy's own: np.add.at adds repeated entries one at a time into t, which
    # can differ in the last bit from adding their sum (the recorded op, which replays use)
    value = np.array(t._v, copy=True, order="C")          # (C order: the flat positions are C)
    np.add.at(value.reshape(-1), region.reshape(-1), np.ravel(part._v))
    commit(t, core.elementwise(OPS["add"], (t, added), lambda *_: value))


def install(T):
    T.__setitem__ = setitem
    for dunder, name in (("iadd", "add"), ("isub", "subtract"), ("imul", "multiply"),
                         ("itruediv", "divide"), ("ipow", "power"), ("imod", "remainder"),
                         ("ifloordiv", "floor_divide")):
        setattr(T, f"__{dunder}__", _inplace(name))
    T.copy = lambda s, order="C": copy(s, order)
    T.clone = lambda s: copy(s)
    T.fill_ = lambda s, value: (setitem(s, Ellipsis, value), s)[1]
    T.zero_ = lambda s: (setitem(s, Ellipsis, 0.0), s)[1]
    T.add_ = T.__iadd__
    T.sub_ = T.__isub__
    T.mul_ = T.__imul__
    T.div_ = T.__itruediv__
