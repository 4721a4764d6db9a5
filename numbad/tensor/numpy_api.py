"""How numpy's and PyTorch's spellings reach the op registry.

* ufuncs (``np.exp(x)``, ``x * 2``) arrive in ``Tensor.__array_ufunc__`` and
  are looked up in the registry by ufunc;
* array functions (``np.sum(x, axis=1)``) arrive in ``Tensor.__array_function__``
  and are looked up in :data:`HANDLED`, filled by ``@implements`` in this
  module and in the modules it imports at its end (:mod:`.reductions`,
  :mod:`.shape`, :mod:`.products`, :mod:`.linalg`, :mod:`.creation`);
* methods (``x.sum(dim=1)``, ``x.exp()``) are attached to :class:`Tensor`
  by :func:`_install`, the elementwise ones generated from the registry's
  PyTorch names.

Each ``@implements`` also files a row of :data:`API`, the numpy-function
table that the docs' op table (:mod:`numbad.ops.table`) and the generated
tests are made from. Anything else raises a ``TypeError`` naming the
function: numbad never drops a derivative silently.
"""
from __future__ import annotations

import ast
import dis
import linecache
import operator
import sys
from collections import namedtuple

import numpy as np

from ..ops import OPS, BY_UFUNC
from . import core
from .core import Tensor, as_constant

#: numpy function -> implementation taking numpy's signature.
HANDLED: dict = {}

#: One row of the numpy-function table (the docs' table and the test matrix come from it).
ApiEntry = namedtuple("ApiEntry", "numpy torch ops note")

#: numpy spelling ("np.linalg.norm") -> ApiEntry, in declaration order.
API: dict = {}


def implements(*funcs, torch=(), ops=(), note="", names=()):
    """Route ``funcs`` (numpy functions) to the decorated implementation and file its table row.

    ``torch``: PyTorch spellings of the same operation; ``ops``: the registry
    ops it records (a test checks that it records no others); ``note``: its
    derivative convention where it has one; ``names``: further spellings that
    reach it without being numpy functions (``x.max()``, ``nb.zeros``).
    """
    def deco(impl):
        spellings = [npname(f) for f in funcs] + list(names)
        for f in funcs:
            HANDLED[f] = impl
        entry = ApiEntry(tuple(spellings), tuple(torch), tuple(ops), note)
        for s in spellings:
            API[s] = entry
        return impl
    return deco


def npname(func):
    """The public spelling of a numpy function: ``np.sum``, ``np.linalg.norm``."""
    mod = getattr(func, "__module__", None) or "numpy"
    name = getattr(func, "__name__", str(func))
    if mod.startswith("numpy.linalg"):
        return f"np.linalg.{name}"
    if mod == "numpy" or mod.startswith("numpy."):
        return f"np.{name}"
    return f"{mod}.{name}"


def not_differentiable(name, why=""):
    return TypeError(
        f"numbad does not differentiate {name}{': ' + why if why else ''}. "
        "Use the operations listed in numbad's op table, or read values explicitly "
        "with t.detach() (no derivative flows through a detached value).")


def _full_name(func):
    mod = getattr(func, "__module__", None) or "numpy"
    mod = mod.replace("numpy._core.", "numpy.").replace("numpy.core.", "numpy.")
    if mod.startswith("numpy.") and mod.split(".")[1] in ("fromnumeric", "numeric", "multiarray",
                                                           "shape_base", "function_base",
                                                           "_methods", "umath", "lib"):
        mod = "numpy"
    return f"{mod}.{getattr(func, '__name__', func)}"


def value_of(x):
    return x._v if type(x) is Tensor else x


# --------------------------------------------------------------------------- argument helpers
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


def normalize_axis(axis, ndim):
    """One axis (negatives allowed) as a non-negative int."""
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim)
    return a % ndim


def pick(numpy_value, torch_value, default=None):
    """numpy's argument or PyTorch's spelling of it (``axis``/``dim``, ``keepdims``/``keepdim``)."""
    return torch_value if torch_value is not None else (numpy_value if numpy_value is not None else default)


def reject(name, **kwargs):
    """Refuse arguments numbad does not support, naming them (``out=`` says why)."""
    for k, v in kwargs.items():
        if v is not None and v is not np._NoValue:
            if k == "out":
                raise TypeError(f"numbad: {name}(..., out=...) would write a Tensor value into a "
                                "plain array and drop its derivative; assign the result instead")
            raise TypeError(f"numbad: {name}() does not support the argument {k}=")


def tensorize(a, name="the array argument"):
    """``a`` as a Tensor: array functions reach numbad only when some argument is a Tensor, and
    functions whose first argument is not one (``np.sum(list_of_tensors)``) are refused clearly."""
    if type(a) is not Tensor:
        raise TypeError(f"numbad: {name} must be a numbad.Tensor here, got {type(a).__name__}; "
                        "wrap lists of Tensors with np.stack first")
    return a


def operand(x):
    """A Tensor, or a non-Tensor argument as a numpy constant."""
    return x if type(x) is Tensor else as_constant(x)


# --------------------------------------------------------------------------- ufuncs
_PYOPS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
          "divide": operator.truediv, "power": operator.pow, "floor_divide": operator.floordiv}
_LOGICAL_ALIASES = {np.bitwise_and: "logical_and", np.bitwise_or: "logical_or",
                    np.bitwise_xor: "logical_xor", np.invert: "logical_not"}


def _scipy_special(ufunc):
    """For a ``scipy.special`` ufunc: numbad's function of that name (:mod:`numbad.special`), or
    ``True`` where numbad has none; ``None`` for other ufuncs."""
    sp = sys.modules.get("scipy.special")
    if sp is None or getattr(sp, getattr(ufunc, "__name__", ""), None) is not ufunc:
        return None
    from .. import special
    for name in special.__all__:
        if getattr(sp, name, None) is ufunc:
            return getattr(special, name)
    return True


def _ufunc_name(ufunc):
    name = getattr(ufunc, "__name__", str(ufunc))
    return f"scipy.special.{name}" if _scipy_special(ufunc) is not None else f"numpy.{name}"


def apply_ufunc(ufunc, args, kwargs):
    if ufunc is np.matmul:
        if kwargs:
            reject("np.matmul", **kwargs)
        return matmul(*args)           # (imported at the end of this module)
    name = getattr(ufunc, "__name__", str(ufunc))
    if ufunc is np.divmod:
        reject("np.divmod", **kwargs)
        return ew("floor_divide", *args), ew("remainder", *args)
    if ufunc in _LOGICAL_ALIASES:
        if not all(getattr(value_of(a), "dtype", np.dtype(bool)) == np.bool_ for a in args):
            raise not_differentiable(f"numpy.{name}", "bitwise ops are only supported on booleans")
        op = OPS[_LOGICAL_ALIASES[ufunc]]
    else:
        op = BY_UFUNC.get(ufunc)
        if op is None:
            special = _scipy_special(ufunc)
            if special is None:
                raise not_differentiable(_ufunc_name(ufunc))
            if special is not True and not kwargs:
                return special(*args)
            raise not_differentiable(_ufunc_name(ufunc), "call it without keyword arguments"
                                     if special is not True else "")
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        reject(f"np.{name}", **kwargs)
    if len(args) != op.arity:
        raise TypeError(f"np.{name} takes {op.arity} arguments, got {len(args)}")
    if dtype is not None:
        args = _cast_operands(name, op, args, dtype)
    if op.name == "power":
        out = ufunc_power(*args)
    elif op.arity == 1:
        out = core.unary(op, args[0])
    elif op.arity == 2:
        out = core.binary(op, args[0], args[1], _PYOPS.get(op.name))
    else:
        out = core.elementwise(op, args)
    return out if dtype is None else astype(out, dtype)


def _cast_operands(name, op, args, dtype):
    """numpy's ``dtype=``: the operands are cast to it before the op computes (so a float32
    input exponentiated ``dtype=float64`` is computed in float64, as numpy does)."""
    dtype = np.dtype(dtype)
    if op.dtype_out == "bool":
        if dtype != np.bool_:
            raise TypeError(f"numbad: np.{name}(..., dtype={dtype}) is not supported (its result is boolean)")
        return args
    if dtype.kind != "f":
        raise TypeError(f"numbad: np.{name}(..., dtype={dtype}) would drop the derivative; only "
                        "floating dtypes are supported")
    cast = tuple(astype(a, dtype) if type(a) is Tensor
                 else np.asarray(a).astype(dtype)[()] if isinstance(a, (np.ndarray, np.generic)) else a
                 for a in args)
    return cast


_UNARY_FAST = {}      # ufunc -> Op for plain one-operand calls (filled in _install)


def _reduce_method(ufunc, method):
    """``np.add.reduce``, ``np.maximum.accumulate``...: the reduction or scan that numbad has."""
    from . import reductions as R
    table = {("reduce", np.add): R.sum_, ("reduce", np.multiply): R.prod,
             ("reduce", np.maximum): R.amax, ("reduce", np.minimum): R.amin,
             ("accumulate", np.add): R.cumsum, ("accumulate", np.multiply): R.cumprod}
    return table.get((method, ufunc))


def _array_ufunc(self, ufunc, method, *args, **kwargs):
    if method == "__call__":
        op = _UNARY_FAST.get(ufunc)
        if op is not None and len(args) == 1 and not kwargs:
            return core.unary(op, args[0])
        return apply_ufunc(ufunc, args, kwargs)
    impl = _reduce_method(ufunc, method)
    if impl is not None:
        kwargs.setdefault("axis", 0)
        return impl(*args, **kwargs)
    if method == "at" and ufunc is np.add:
        from .creation import add_at
        return add_at(*args)
    raise not_differentiable(f"numpy.{ufunc.__name__}.{method}")


def _array_function(self, func, types, args, kwargs):
    impl = HANDLED.get(func)
    if impl is None:
        raise not_differentiable(_full_name(func))
    return impl(*args, **kwargs)


def _array(self, dtype=None, copy=None):
    raise TypeError(
        "numbad: a Tensor cannot become a plain numpy array (np.asarray, np.array, or writing it "
        "into an ndarray): its derivative would be dropped silently. Use numpy functions on the "
        "Tensor itself (np.stack([a, b]) in place of np.array([a, b])), or t.detach() to read "
        "its values explicitly.")


# --------------------------------------------------------------------------- elementwise helpers
def ew(name, *args):
    """Record registry op ``name`` on ``args`` (Tensors and constants)."""
    op = OPS[name]
    if op.arity == 1:
        return core.unary(op, args[0])
    if op.arity == 2:
        return core.binary(op, args[0], args[1], _PYOPS.get(name))
    return core.elementwise(op, args)


_POW_SPECIAL = {2.0: "square", 0.5: "sqrt", -1.0: "reciprocal", 1.0: "positive"}


def power(a, b):
    """``a ** b`` with the bits numpy gives it, which depend on the operands' types.

    Where numpy sees an array (a Tensor of several elements, an input given as a 0-d
    array, a constant array), ``**`` is ``np.power``'s loop: :func:`ufunc_power`. Where it
    sees two numbers (numpy scalars, as one-element values are, or Python numbers), it is
    numpy's scalar arithmetic: the C library's ``pow``, which takes no shortcut for
    ``x ** 2`` and is not always ``x * x`` to the last bit (nor ``np.power``'s loop).
    """
    if _numpy_sees_array(a) or _numpy_sees_array(b):
        return ufunc_power(a, b)
    return core.binary(OPS["power"], a, b, operator.pow)


def ufunc_power(a, b):
    """``np.power(a, b)``; constant exponents 2, 0.5, -1 and 1 record the exact special-purpose op.

    ``np.power``'s loop takes the same shortcuts, on arrays and numbers alike, so the value
    is numpy's; the special op's derivative needs no ``log``/``pow`` and is exact. Other
    one-element values call the ufunc too (never the scalar ``**`` of :func:`power`).
    """
    if (type(a) is Tensor and isinstance(b, (int, float, np.integer, np.floating))
            and not isinstance(b, (bool, np.bool_))):
        special = _POW_SPECIAL.get(float(b))
        # (a numpy scalar exponent takes part in numpy's type promotion: x32 ** np.float64(2) is
        # float64, not a float32 square)
        if special is not None and (type(b) in (int, float) or np.result_type(a._v, b) == a.dtype):
            return core.unary(OPS[special], a)
    return core.binary(OPS["power"], a, b)


def _numpy_sees_array(x):
    """Would numpy's own run of the function hold an array where ``x`` is? (One-element
    values are numpy scalars but for inputs given as 0-d arrays: ``Recording.zero_d``.)"""
    if type(x) is Tensor:
        if type(x._v) is np.ndarray:
            return True
        zero_d = x._tape.zero_d
        return zero_d is not None and x._node in zero_d
    return isinstance(x, np.ndarray)


@implements(np.where, torch=("torch.where",), ops=("where",), note=OPS["where"].doc)
def where(condition, x=np._NoValue, y=np._NoValue):
    if x is np._NoValue and y is np._NoValue:
        return np.nonzero(read_value(condition, "np.where(condition)"))
    if x is np._NoValue or y is np._NoValue:
        raise ValueError("either both or neither of x and y should be given")
    cond = condition
    if type(cond) is not Tensor:
        cond = np.asarray(as_constant(cond, "condition")).astype(bool)
    return core.elementwise(OPS["where"], (cond, x, y), lambda c, a, b: np.where(c, a, b))


@implements(np.clip, torch=("torch.clamp", "torch.clip", "x.clamp", "x.clamp_min", "x.clamp_max"),
            ops=("clip",), note=OPS["clip"].kink, names=("x.clip",))
def clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue, max=np._NoValue,
         **kwargs):
    reject("clip", out=out, **kwargs)
    lo = a_min if a_min is not np._NoValue else (min if min is not np._NoValue else None)
    hi = a_max if a_max is not np._NoValue else (max if max is not np._NoValue else None)
    if lo is None and hi is None:
        raise ValueError("One of max or min must be given")
    lo = -np.inf if lo is None else lo
    hi = np.inf if hi is None else hi
    return core.elementwise(OPS["clip"], (a, lo, hi), lambda x, l, h: np.clip(x, l, h))


@implements(np.round, np.around, torch=("torch.round",), ops=("rint", "round_decimals"),
            note="derivative 0 (piecewise constant)", names=("x.round",))
def round_(a, decimals=0, out=None):
    """numpy's round-half-to-even; the derivative is zero (piecewise constant)."""
    reject("round", out=out)
    if decimals == 0:
        return core.unary(OPS["rint"], a)
    scale = 10.0 ** decimals
    return core.elementwise(OPS["round_decimals"], (a, scale), lambda x, s: np.round(x, decimals))


@implements(np.fix, torch=("torch.fix",), ops=("trunc",), note="derivative 0 (piecewise constant)")
def fix(x, out=None):
    reject("fix", out=out)
    return core.unary(OPS["trunc"], x)


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


#: Calls that may turn a Tensor into a Python float: explicit conversions (by a type's name),
#: and functions whose result carries no derivative anyway (a truth value, an integer).
_EXPLICIT_READS = frozenset({
    "float", "int", "float64", "float32", "float16", "double", "single", "int64", "int32",
    "isnan", "isinf", "isfinite", "isclose", "floor", "ceil", "trunc", "round", "str", "repr", "format"})
_CALLS = frozenset(dis.opmap[n] for n in ("CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_KW",
                                          "CALL_FUNCTION_EX", "CALL_FUNCTION_KW") if n in dis.opmap)
_implicit_calls = {}          # (code, offset) -> the callee's source, or None: decided once per site


def _implicit_float(frame):
    """The callee of a call such as ``math.exp(t)`` or ``a.fill(t)`` that the caller is running,
    where the call itself turns the Tensor into a Python float (``float(t)`` and the reads in
    ``_EXPLICIT_READS`` are not such calls); ``None`` otherwise, or where the source is unknown.

    Python passes no hint of who asks ``__float__``: the call's source text, located by the
    code's positions table (Python 3.11+), names it.
    """
    try:
        code, at = frame.f_code, frame.f_lasti
    except AttributeError:
        return None
    key = (code, at)
    if key in _implicit_calls:
        return _implicit_calls[key]
    callee = None
    try:
        if code.co_code[at] in _CALLS and hasattr(code, "co_positions"):
            line, end_line, col, end_col = list(code.co_positions())[at // 2]
            lines = linecache.getlines(code.co_filename, frame.f_globals)
            if line and end_line and col is not None and end_col is not None and len(lines) >= end_line:
                text = [ln.encode() for ln in lines[line - 1:end_line]]      # columns count bytes
                text[-1] = text[-1][:end_col]
                text[0] = text[0][col:]
                call = ast.parse(b"".join(text).decode(), mode="eval").body
                if isinstance(call, ast.Call):
                    f = call.func
                    name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                    if name not in _EXPLICIT_READS:
                        callee = ast.unparse(f)
    except (SyntaxError, ValueError, IndexError, UnicodeDecodeError):
        callee = None
    _implicit_calls[key] = callee
    return callee


def _read_scalar(self, conv, caller):
    """Read a one-element Tensor as a Python number, recording a guard on the value."""
    if _stored_into_array(caller):
        _array(self)
    if conv is float:
        callee = _implicit_float(caller)
        if callee is not None:
            raise TypeError(
                f"numbad: {callee}() reads a Tensor as a plain Python float, which would drop its "
                "derivative silently. Use numpy's function on the Tensor (np.exp(t) for math.exp(t)), "
                "or float(t) to read the value explicitly (no derivative flows through it).")
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


def _format(self, spec):
    """``f"{t:.3f}"`` as numpy formats a 0-d array (a read of the value: a guard on a recorded tape)."""
    if not spec:
        return str(self)
    v = read_value(self, "format")
    return format(v[()] if v.ndim == 0 else v, spec)


def _contains(self, value):
    """``value in t``: numpy's ``(t == value).any()``, read as a truth value (a guard)."""
    return bool((self == value).any())


def _round(self, ndigits=None):
    """``round(t)`` of a 0-d Tensor, as of the numpy scalar numpy's reductions return: a Python
    int (a read, like ``int(t)``), or with ``ndigits`` ``np.round`` (an op). Arrays refuse it, as
    numpy's do."""
    if self.ndim:
        raise TypeError("type numbad.Tensor doesn't define __round__ method for arrays (as numpy's "
                        "ndarray); use np.round(t, decimals)")
    if ndigits is None:
        return _read_scalar(self, lambda v: round(float(v)), sys._getframe(1))
    return np.round(self, ndigits)


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
    return core.copy(x, np.asarray(x._v).astype(dtype)[()] if np.ndim(x._v) == 0 else x._v.astype(dtype),
                     share=False)


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


def _len(self):
    if self.ndim == 0:
        raise TypeError("len() of unsized object")
    return self.shape[0]


def _binop(name):
    op = OPS[name]
    pyop = _PYOPS.get(name)

    fwd = core.binary_method(op, pyop)

    def rev(self, other):
        return core.binary(op, other, self, pyop)
    return fwd, rev


def _cmp(name):
    op = OPS[name]

    def f(self, other):
        return core.binary(op, self, other)
    return f


# Functions that read only metadata (shape, dtype): a Tensor answers as its values do. They record
# nothing and have no derivative, so they stay out of the op table.
for _meta in (np.shape, np.ndim, np.size, np.iscomplexobj, np.isrealobj):
    HANDLED[_meta] = (lambda f: lambda a, *args, **kwargs: f(value_of(a), *args, **kwargs))(_meta)
HANDLED[np.result_type] = lambda *args: np.result_type(*[value_of(a) for a in args])


def _install():
    from . import creation, linalg, products, reductions, shape
    from . import composites  # noqa: F401 (its functions register themselves on import)
    T = Tensor
    T.__array_ufunc__ = _array_ufunc
    T.__array_function__ = _array_function
    T.__array__ = _array
    T.shape = property(lambda s: s._v.shape, doc="The shape, as numpy reports it.")
    T.ndim = property(lambda s: s._v.ndim)
    T.size = property(lambda s: _Size(s._v.size, s._v.shape),
                      doc="numpy's ``x.size`` (an int) that PyTorch's ``x.size(dim)`` can also call.")
    T.dtype = property(lambda s: s._v.dtype)
    T.__repr__ = _repr
    T.__format__ = _format
    T.__contains__ = _contains
    T.tolist = lambda s: read_value(s, "tolist()").tolist()
    T.real = property(lambda s: s, doc="The real part: the Tensor itself (numbad's values are real).")
    T.__round__ = _round
    T.__str__ = _repr
    T.__len__ = _len
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
                         ("truediv", "divide"), ("mod", "remainder"), ("floordiv", "floor_divide")):
        fwd, rev = _binop(name)
        setattr(T, f"__{dunder}__", fwd)
        setattr(T, f"__r{dunder}__", rev)
    T.__pow__ = lambda s, o: power(s, o)
    T.__rpow__ = lambda s, o: power(o, s)
    T.__divmod__ = lambda s, o: (ew("floor_divide", s, o), ew("remainder", s, o))
    T.__rdivmod__ = lambda s, o: (ew("floor_divide", o, s), ew("remainder", o, s))
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
    from .. import special
    for op in OPS.values():
        if op.kind not in ("elementwise", "nondiff"):
            continue
        if op.ufunc is None:
            fn = getattr(special, op.name, None)
            if fn is None:
                continue
            for nm in op.torch_names:
                if "." not in nm and not hasattr(T, nm):
                    setattr(T, nm, (lambda f: lambda s: f(s))(fn))
            continue
        for nm in op.torch_names + (op.name,):
            if nm.startswith("_") or "." in nm or hasattr(T, nm):
                continue
            if op.arity == 1:
                setattr(T, nm, (lambda o: lambda s: core.unary(o, s))(op))
            elif op.arity == 2:
                setattr(T, nm, (lambda o: lambda s, other: core.binary(o, s, other))(op))
    T.digamma = lambda s: special.digamma(s)
    T.pow = lambda s, exponent: power(s, exponent)
    T.round = lambda s, decimals=0: round_(s, decimals)
    T.clamp = lambda s, min=None, max=None: clip(s, min, max)
    T.clamp_min = lambda s, min: clip(s, min, None)
    T.clamp_max = lambda s, max: clip(s, None, max)
    T.clip = lambda s, min=None, max=None, **kw: clip(s, min, max, **kw)
    T.where = lambda s, condition, other: where(condition, s, other)     # PyTorch's x.where(c, y)
    for module in (reductions, shape, products, linalg, creation):
        module.install(T)


_install()

# spellings other modules use (the differentiable sweep, the functional API)
from .reductions import sum_  # noqa: E402
from .shape import reshape, transpose  # noqa: E402
from .products import matmul  # noqa: E402

__all__ = ["HANDLED", "API", "implements", "astype", "sum_", "reshape", "transpose", "matmul"]
