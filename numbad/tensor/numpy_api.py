"""How numpy's and PyTorch's spellings reach the op registry.

* ufuncs (``np.exp(x)``, ``x * 2``) arrive in ``Tensor.__array_ufunc__`` and
  are looked up in the registry by ufunc;
* array functions (``np.sum(x, axis=1)``) arrive in ``Tensor.__array_function__``
  and are looked up in :data:`HANDLED`, filled by ``@implements``;
* methods (``x.sum(dim=1)``, ``x.exp()``) are attached to :class:`Tensor`
  below, the elementwise ones generated from the registry's PyTorch names.

Anything else raises a ``TypeError`` naming the function: numbad never drops
a derivative silently.
"""
from __future__ import annotations

import dis
import math
import operator
import sys

import numpy as np

from ..ops import OPS, BY_UFUNC
from . import core
from .core import Tensor, as_constant, contiguous_strides, wrap

_SCATTER_CODE = OPS["scatter"].code

#: numpy function -> implementation taking numpy's signature.
HANDLED: dict = {}


def implements(*funcs):
    def deco(impl):
        for f in funcs:
            HANDLED[f] = impl
        return impl
    return deco


def not_differentiable(name, why=""):
    return TypeError(
        f"numbad does not differentiate {name}{': ' + why if why else ''}. "
        "Use the operations listed in numbad's op table, or read values explicitly "
        "with t.detach() (no derivative flows through a detached value).")


def _npname(func):
    mod = getattr(func, "__module__", None) or "numpy"
    mod = mod.replace("numpy._core.", "numpy.").replace("numpy.core.", "numpy.")
    if mod.startswith("numpy.") and mod.split(".")[1] in ("fromnumeric", "numeric", "multiarray",
                                                           "shape_base", "function_base",
                                                           "_methods", "umath", "lib"):
        mod = "numpy"
    return f"{mod}.{getattr(func, '__name__', func)}"


def is_tensor(x):
    return type(x) is Tensor


def value_of(x):
    return x._v if type(x) is Tensor else x


# --------------------------------------------------------------------------- helpers
def normalize_axes(axis, ndim, name="axis"):
    """``axis`` (None, int or sequence, negatives allowed) as a sorted tuple."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        axes = tuple(operator.index(a) for a in axis)
    else:
        axes = (operator.index(axis),)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise np.exceptions.AxisError(a, ndim)
        a = a % ndim if ndim else 0
        if a in out:
            raise ValueError(f"duplicate value in '{name}'")
        out.append(a)
    return tuple(sorted(out)) if ndim else ()


def _pick(numpy_value, torch_value, default=None):
    return torch_value if torch_value is not None else (numpy_value if numpy_value is not None else default)


def _reject(name, **kwargs):
    for k, v in kwargs.items():
        if v is not None and v is not np._NoValue:
            if k == "out":
                raise TypeError(f"numbad: {name}(..., out=...) would write a Tensor value into a "
                                "plain array and drop its derivative; assign the result instead")
            raise TypeError(f"numbad: {name}() does not support the argument {k}=")


# --------------------------------------------------------------------------- ufuncs
_PYOPS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
          "divide": operator.truediv, "power": operator.pow}
_LOGICAL_ALIASES = {np.bitwise_and: "logical_and", np.bitwise_or: "logical_or",
                    np.bitwise_xor: "logical_xor", np.invert: "logical_not"}


def apply_ufunc(ufunc, args, kwargs):
    name = getattr(ufunc, "__name__", str(ufunc))
    if ufunc is np.matmul:
        _reject(f"np.{name}", **{k: v for k, v in kwargs.items()})
        return matmul(*args)
    if ufunc in _LOGICAL_ALIASES:
        if not all(getattr(value_of(a), "dtype", np.dtype(bool)) == np.bool_ for a in args):
            raise not_differentiable(f"numpy.{name}", "bitwise ops are only supported on booleans")
        op = OPS[_LOGICAL_ALIASES[ufunc]]
    else:
        op = BY_UFUNC.get(ufunc)
        if op is None:
            raise not_differentiable(f"numpy.{name}")
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        _reject(f"np.{name}", **kwargs)
    if len(args) != op.arity:
        raise TypeError(f"np.{name} takes {op.arity} arguments, got {len(args)}")
    if op.name == "power":
        out = _power(*args)
    elif op.arity == 1:
        out = core.unary(op, args[0])
    elif op.arity == 2:
        out = core.binary(op, args[0], args[1], _PYOPS.get(op.name))
    else:
        out = core.elementwise(op, args)
    return out if dtype is None else astype(out, dtype)


_UNARY_FAST = {}      # ufunc -> Op for plain one-operand calls (filled in _install)


def _array_ufunc(self, ufunc, method, *args, **kwargs):
    if method == "__call__":
        op = _UNARY_FAST.get(ufunc)
        if op is not None and len(args) == 1 and not kwargs:
            return core.unary(op, args[0])
        return apply_ufunc(ufunc, args, kwargs)
    if method == "reduce" and ufunc is np.add:
        kwargs.setdefault("axis", 0)
        return sum_(*args, **kwargs)
    raise not_differentiable(f"numpy.{ufunc.__name__}.{method}")


def _array_function(self, func, types, args, kwargs):
    impl = HANDLED.get(func)
    if impl is None:
        raise not_differentiable(_npname(func))
    return impl(*args, **kwargs)


def _array(self, dtype=None, copy=None):
    raise TypeError(
        "numbad: a Tensor cannot become a plain numpy array (np.asarray, np.array, or writing it "
        "into an ndarray): its derivative would be dropped silently. Use numpy functions on the "
        "Tensor itself, or t.detach() to read its values explicitly.")


# --------------------------------------------------------------------------- elementwise helpers
def _ew(name, *args):
    op = OPS[name]
    if op.arity == 1:
        return core.unary(op, args[0])
    if op.arity == 2:
        return core.binary(op, args[0], args[1], _PYOPS.get(name))
    return core.elementwise(op, args)


_POW_SPECIAL = {2.0: "square", 0.5: "sqrt", -1.0: "reciprocal", 1.0: "positive"}


def _power(a, b):
    """``a ** b``; constant exponents 2, 0.5, -1 and 1 record the exact special-purpose op.

    numpy's own ``**`` takes the same shortcuts, so the value is numpy's; the
    special op's derivative needs no ``log``/``pow`` and is exact.
    """
    if (type(a) is Tensor and isinstance(b, (int, float, np.integer, np.floating))
            and not isinstance(b, (bool, np.bool_))):
        special = _POW_SPECIAL.get(float(b))
        if special is not None:
            return core.unary(OPS[special], a)
    return core.binary(OPS["power"], a, b, operator.pow)


# --------------------------------------------------------------------------- reductions
@implements(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=False, initial=np._NoValue,
         where=np._NoValue, *, dim=None, keepdim=None):
    if out is not None or initial is not np._NoValue or where is not np._NoValue:
        _reject("sum", out=out, initial=initial, where=where)
    x = _tensorize(a)
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    xv = x._v
    shape = xv.shape
    nd = len(shape)
    if axis is None:
        axes = tuple(range(nd))
    elif type(axis) is int and -nd <= axis < nd:
        axes = (axis % nd,)
    else:
        axes = normalize_axes(axis, nd)
    value = xv.sum(axis=axes, keepdims=bool(keepdims))
    if dtype is not None:
        value = value.astype(dtype)
    # a scatter into the kept shape: reduced axes have stride 0
    strides, s = [0] * nd, 1
    for d in range(nd - 1, -1, -1):
        if d not in axes:
            strides[d] = s
            s *= shape[d]
    tape = x._tape
    ia = tape.add_attrs((nd, *shape, *strides, 0, s))
    return core.record(tape, _SCATTER_CODE, value, x._node, iattr=ia)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=np._NoValue,
         dim=None, keepdim=None):
    _reject("mean", out=out, where=where)
    x = _tensorize(a)
    keepdims = bool(_pick(keepdims, keepdim, False))
    axes = normalize_axes(_pick(axis, dim), x.ndim)
    count = 1
    for d in axes:
        count *= x.shape[d]
    # numpy's mean is exactly sum / count, so this records numpy's value
    out = core.binary(OPS["divide"], sum_(x, axis=axes, keepdims=keepdims), count, operator.truediv)
    return out if dtype is None else astype(out, dtype)


@implements(np.round, np.around)
def round_(a, decimals=0, out=None):
    """numpy's round-half-to-even; the derivative is zero (piecewise constant)."""
    _reject("round", out=out)
    if decimals == 0:
        return core.unary(OPS["rint"], a)
    scale = 10.0 ** decimals
    return core.elementwise(OPS["round_decimals"], (a, scale), lambda x, s: np.round(x, decimals))


# --------------------------------------------------------------------------- shape
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(operator.index(s) for s in shape)


@implements(np.reshape)
def reshape(a, /, shape=None, order="C", *, newshape=None, copy=None):
    if shape is None:
        shape = newshape
    if order != "C":
        raise TypeError("numbad: reshape supports order='C' only")
    x = _tensorize(a)
    value = x._v.reshape(shape) if type(x._v) is np.ndarray else np.reshape(x._v, shape)
    return core.copy(x, value)


@implements(np.ravel)
def ravel(a, order="C"):
    if order not in ("C", "A", "K"):
        raise TypeError("numbad: ravel supports order='C' only")
    return reshape(a, (-1,))


@implements(np.transpose)
def transpose(a, axes=None):
    x = _tensorize(a)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    axes = tuple(operator.index(d) % max(x.ndim, 1) for d in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError("axes don't match array")
    value = np.transpose(x._v, axes)
    src = contiguous_strides(x.shape)
    return core.gather(x, value, [src[d] for d in axes], 0)


# --------------------------------------------------------------------------- where / select
@implements(np.where)
def where(condition, x=np._NoValue, y=np._NoValue):
    if x is np._NoValue and y is np._NoValue:
        return np.nonzero(read_value(condition, "np.where(condition)"))
    if x is np._NoValue or y is np._NoValue:
        raise ValueError("either both or neither of x and y should be given")
    cond = condition
    if type(cond) is not Tensor:
        cond = np.asarray(as_constant(cond, "condition")).astype(bool)
    return core.elementwise(OPS["where"], (cond, x, y), lambda c, a, b: np.where(c, a, b))


# --------------------------------------------------------------------------- matmul family
def _as_operand(x):
    return x if type(x) is Tensor else as_constant(x)


def _broadcast_operand(x, shape):
    if type(x) is Tensor:
        return core.broadcast_to(x, shape)
    return np.broadcast_to(x, shape)


@implements(np.matmul)
def matmul(a, b, /, out=None, **kwargs):
    _reject("matmul", out=out, **kwargs)
    a, b = _as_operand(a), _as_operand(b)
    av, bv = value_of(a), value_of(b)
    value = np.matmul(av, bv)          # numpy validates the shapes
    ash = (1,) + np.shape(av) if np.ndim(av) == 1 else np.shape(av)
    bsh = np.shape(bv) + (1,) if np.ndim(bv) == 1 else np.shape(bv)
    M, K, N = ash[-2], ash[-1], bsh[-1]
    batch = np.broadcast_shapes(ash[:-2], bsh[:-2])
    Bt = math.prod(batch)

    def batch_stride(x, xsh, rows, cols):
        if xsh[:-2] == batch:
            return x, rows * cols
        if math.prod(xsh[:-2]) == 1:
            return x, 0
        return _broadcast_operand(x, batch + xsh[-2:]), rows * cols

    a, sA = batch_stride(a, ash, M, K)
    b, sB = batch_stride(b, bsh, K, N)
    return core.matmul(a, b, 0, 0, Bt, M, K, N, sA, sB, value)


@implements(np.dot)
def dot(a, b, out=None):
    _reject("dot", out=out)
    a, b = _as_operand(a), _as_operand(b)
    if np.ndim(value_of(a)) == 0 or np.ndim(value_of(b)) == 0:
        return _ew("multiply", a, b)
    if np.ndim(value_of(b)) <= 2 and np.ndim(value_of(a)) <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [-2]))


@implements(np.tensordot)
def tensordot(a, b, axes=2):
    a, b = _as_operand(a), _as_operand(b)
    na, nb = np.ndim(value_of(a)), np.ndim(value_of(b))
    if isinstance(axes, int):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a = [d % na for d in ax_a]
    ax_b = [d % nb for d in ax_b]
    sa, sb = np.shape(value_of(a)), np.shape(value_of(b))
    free_a = [d for d in range(na) if d not in ax_a]
    free_b = [d for d in range(nb) if d not in ax_b]
    K = math.prod(sa[d] for d in ax_a)
    A = _reshape_any(_transpose_any(a, free_a + ax_a), (-1, K))
    B = _reshape_any(_transpose_any(b, ax_b + free_b), (K, -1))
    return _reshape_any(matmul(A, B), tuple(sa[d] for d in free_a) + tuple(sb[d] for d in free_b))


def _transpose_any(x, axes):
    if list(axes) == list(range(len(axes))):
        return x
    return transpose(x, axes) if type(x) is Tensor else np.transpose(x, axes)


def _reshape_any(x, shape):
    return reshape(x, shape) if type(x) is Tensor else np.reshape(x, shape)


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


def _basic_geometry(shape, key):
    """Element strides and base offset of ``x[key]`` for a basic index, without touching data."""
    items = key if isinstance(key, tuple) else (key,)
    if not any(k is Ellipsis for k in items):
        items = items + (Ellipsis,)            # always get a view, never a scalar read
    fake = np.lib.stride_tricks.as_strided(np.zeros(1, np.int64), shape=shape,
                                           strides=[8 * s for s in contiguous_strides(shape)])
    view = fake[items]
    base = (view.__array_interface__["data"][0] - fake.__array_interface__["data"][0]) // 8
    return [s // 8 for s in view.strides], base


def getitem(x, key):
    key = _resolve_key(key)
    value = x._v[key]                           # numpy validates the index
    if type(key) is int and type(x._v) is np.ndarray:
        st = contiguous_strides(x.shape)
        return core.gather(x, value, st[1:], (key % x.shape[0]) * st[0])
    if _is_basic_key(key):
        strides, base = _basic_geometry(x.shape, key)
        return core.gather(x, value, strides, base)
    flat = np.arange(x.size).reshape(x.shape)[key]
    return core.take(x, value, flat)


def _resolve_key(key):
    """Tensors inside an index are read as values (a guard on a recorded tape)."""
    if type(key) is Tensor:
        return read_value(key, "an index")
    if isinstance(key, tuple) and any(type(k) is Tensor for k in key):
        return tuple(read_value(k, "an index") if type(k) is Tensor else k for k in key)
    if isinstance(key, list):
        return np.asarray([read_value(k, "an index") if type(k) is Tensor else k for k in key]) \
            if any(type(k) is Tensor for k in key) else key
    return key


# --------------------------------------------------------------------------- reading values out
def _site():
    """file:line of the user code that made a value-dependent decision."""
    f = sys._getframe(1)
    pkg = __name__.rsplit(".", 2)[0]
    while f is not None and f.f_globals.get("__name__", "").startswith(pkg + "."):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "<unknown>"


def read_value(t, what="a value"):
    """Read a Tensor's values as a plain array; on a replayable tape, a guard on them."""
    v = np.array(t._v)
    if t._tape.replayable:
        t._tape.add_guard(t._node, "value", v.copy(), _site())
    return v


def _bool(self):
    v = self._v
    if np.size(v) != 1:
        raise ValueError("The truth value of an array with more than one element is ambiguous. "
                         "Use a.any() or a.all()")
    truth = bool(v.reshape(()) if type(v) is np.ndarray else v)
    if self._tape.replayable:
        self._tape.add_guard(self._node, "truth", truth, _site())
    return truth


_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]


def _stored_into_array(frame):
    """Is the caller executing ``array[i] = tensor`` (numpy converting the Tensor silently)?"""
    try:
        return frame.f_code.co_code[frame.f_lasti] == _STORE_SUBSCR
    except (AttributeError, IndexError):
        return False


def _read_scalar(self, conv, caller):
    """Read a one-element Tensor as a Python number, recording a guard on the value."""
    if _stored_into_array(caller):
        _array(self)
    v = self._v
    if np.size(v) != 1:
        raise TypeError("only single-element Tensors can be converted to Python scalars")
    v = v.reshape(()) if type(v) is np.ndarray else v
    out = conv(v[()] if type(v) is np.ndarray else v)
    if self._tape.replayable:
        self._tape.add_guard(self._node, "value", np.array(v), _site())
    return out


def _index(self):
    if self.dtype.kind not in "iu":
        raise TypeError("only integer Tensors can be used as an index")
    return _read_scalar(self, int, sys._getframe(1))


def detach(self):
    """The values as a new plain ``ndarray`` (no derivative flows through them).

    On a recorded tape the read is a guard: a replay whose values differ here
    raises ``nb.BranchChanged`` (or retraces), since numbad cannot see how
    Python used the values.
    """
    return read_value(self, "detach()")


def astype(x, dtype, copy=True):
    dtype = np.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype.kind != "f":
        raise TypeError(f"numbad: astype({dtype}) would drop the derivative; "
                        "only floating dtypes are supported (use t.detach() to read values)")
    return core.copy(x, np.asarray(x._v).astype(dtype)[()] if np.ndim(x._v) == 0 else x._v.astype(dtype))


def _tensorize(a):
    if type(a) is not Tensor:
        raise TypeError(f"expected a numbad.Tensor, got {type(a).__name__}")
    return a


class _Size(int):
    """An int (numpy's ``size``) that, called, answers PyTorch's ``size()``/``size(dim)``."""

    def __new__(cls, n, shape):
        self = int.__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim=None):
        return self._shape if dim is None else self._shape[dim]


# --------------------------------------------------------------------------- the Tensor class body
def _repr(self):
    body = np.array2string(np.asarray(self._v), separator=", ", prefix="Tensor(")
    return f"Tensor({body})"


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d Tensor")
    for i in range(self.shape[0]):
        yield getitem(self, i)


def _len(self):
    if self.ndim == 0:
        raise TypeError("len() of unsized object")
    return self.shape[0]


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
        d0, d1 = (operator.index(d) % max(self.ndim, 1) for d in axes)
        perm = list(range(self.ndim))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return transpose(self, perm)
    return transpose(self, axes)


def _permute(self, *dims):
    return transpose(self, _shape_arg(dims))


def _reshape_method(self, *shape, order="C"):
    return reshape(self, _shape_arg(shape), order=order)


def _pow_method(self, exponent):
    return _power(self, exponent)


def _binop(name):
    op = OPS[name]
    pyop = _PYOPS.get(name)

    def fwd(self, other):
        return core.binary(op, self, other, pyop)

    def rev(self, other):
        return core.binary(op, other, self, pyop)
    return fwd, rev


def _cmp(name):
    op = OPS[name]

    def f(self, other):
        return core.binary(op, self, other)
    return f


def _install():
    T = Tensor
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function
    T.__array__ = _array
    T.shape = property(lambda s: s._v.shape, doc="The shape, as numpy reports it.")
    T.ndim = property(lambda s: s._v.ndim)
    T.size = property(lambda s: _Size(s._v.size, s._v.shape),
                      doc="numpy's ``x.size`` (an int) that PyTorch's ``x.size(dim)`` can also call.")
    T.dtype = property(lambda s: s._v.dtype)
    T.T = property(lambda s: transpose(s))
    T.mT = property(lambda s: transpose(s, tuple(range(s.ndim - 2)) + (s.ndim - 1, s.ndim - 2)))
    T.__repr__ = _repr
    T.__str__ = _repr
    T.__len__ = _len
    T.__iter__ = _iter
    T.__getitem__ = getitem
    T.__bool__ = _bool
    T.__float__ = lambda s: _read_scalar(s, float, sys._getframe(1))
    T.__int__ = lambda s: _read_scalar(s, int, sys._getframe(1))
    T.__index__ = _index
    T.__hash__ = None
    T.item = lambda s: _read_scalar(s, lambda v: v.item(), sys._getframe(1))
    T.detach = detach
    T.astype = astype
    T.numel = lambda s: s.size
    T.dim = lambda s: s.ndim

    for dunder, name in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                         ("truediv", "divide"), ("mod", "remainder")):
        fwd, rev = _binop(name)
        setattr(T, f"__{dunder}__", fwd)
        setattr(T, f"__r{dunder}__", rev)
    T.__pow__ = lambda s, o: _power(s, o)
    T.__rpow__ = lambda s, o: core.binary(OPS["power"], o, s, operator.pow)
    T.__matmul__ = lambda s, o: matmul(s, o)
    T.__rmatmul__ = lambda s, o: matmul(o, s)
    T.__neg__ = lambda s: core.unary(OPS["negative"], s)
    T.__pos__ = lambda s: core.unary(OPS["positive"], s)
    T.__abs__ = lambda s: core.unary(OPS["absolute"], s)
    for dunder, name in (("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                         ("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")):
        setattr(T, f"__{dunder}__", _cmp(name))
    for dunder, name in (("and", "logical_and"), ("or", "logical_or"), ("xor", "logical_xor")):
        f = _cmp(name)
        setattr(T, f"__{dunder}__", f)
        setattr(T, f"__r{dunder}__", f)
    T.__invert__ = lambda s: core.unary(OPS["logical_not"], s)

    for uf, op in BY_UFUNC.items():
        if op.arity == 1 and uf not in _LOGICAL_ALIASES:
            _UNARY_FAST[uf] = op

    # methods: numpy's and PyTorch's spellings of the registry's elementwise ops
    for op in OPS.values():
        if op.kind not in ("elementwise", "nondiff") or op.ufunc is None:
            continue
        for nm in op.torch_names + (op.name,):
            if nm.startswith("_") or "." in nm or hasattr(T, nm):
                continue
            if op.arity == 1:
                setattr(T, nm, (lambda o: lambda s: core.unary(o, s))(op))
            elif op.arity == 2:
                setattr(T, nm, (lambda o: lambda s, other: core.binary(o, s, other))(op))
    T.pow = _pow_method
    T.sum = sum_
    T.mean = mean
    T.reshape = _reshape_method
    T.view = _reshape_method
    T.ravel = lambda s, order="C": ravel(s, order)
    T.flatten = lambda s, order="C": ravel(s, order)
    T.transpose = _transpose_method
    T.permute = _permute
    T.t = _t
    T.matmul = lambda s, o: matmul(s, o)
    T.dot = lambda s, o: dot(s, o)
    T.mm = T.matmul
    T.round = lambda s, decimals=0: round_(s, decimals)
    T.clamp = lambda s, min=None, max=None: clip(s, min, max)
    T.clip = lambda s, min=None, max=None, **kw: clip(s, min, max, **kw)


@implements(np.clip)
def clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue, max=np._NoValue, **kwargs):
    _reject("clip", out=out, **kwargs)
    lo = a_min if a_min is not np._NoValue else (min if min is not np._NoValue else None)
    hi = a_max if a_max is not np._NoValue else (max if max is not np._NoValue else None)
    if lo is None and hi is None:
        raise ValueError("One of max or min must be given")
    lo = -np.inf if lo is None else lo
    hi = np.inf if hi is None else hi
    return core.elementwise(OPS["clip"], (a, lo, hi), lambda x, l, h: np.clip(x, l, h))


_install()
