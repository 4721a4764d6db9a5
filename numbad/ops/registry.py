"""The op registry: every operation numbad can put on a tape, declared once.

An :class:`Op` row carries everything the rest of the package derives from it:
the stable opcode stored on tapes, the numpy and PyTorch spellings that reach
it, its derivative rules, the convention it follows at kinks, and the input
domain on which the generated tests probe it.

Elementwise ops state their forward value and their partial derivatives as
short expressions in a tiny rule language (names ``x``/``y`` for unary ops,
``a``/``b``/``c`` and ``y`` for the result otherwise; the functions of
:data:`RULE_FUNCTIONS`). The code generator (:mod:`numbad.sweeps.codegen`)
inlines those expressions into the njit sweeps, and the differentiable path
(``create_graph=True``) evaluates the very same expressions on
:class:`numbad.Tensor` objects, so the fast and the differentiable derivative
come from one definition. ``exact`` marks an elementwise op whose forward value IEEE
arithmetic rounds correctly (``+ - * /``, ``sqrt``, ...): the njit loop then gives numpy's
value to the bit, so a sweep may recompute it instead of storing it (``Recording.redo_rows``).
"""
from __future__ import annotations

import math

import numpy as np

#: Opcodes at or above this value produce non-differentiable results
#: (comparisons, logical ops): no derivative flows through them.
FIRST_NONDIFF_CODE = 1000

#: Functions usable inside rule expressions, by name. In the sweeps they are
#: the scalar numpy functions numba compiles; on Tensors they dispatch
#: through ``__array_ufunc__``/``__array_function__`` like any user code.
RULE_FUNCTIONS = (
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sqrt", "cbrt", "abs", "sign", "floor", "ceil", "trunc",
    "rint", "where", "isnan", "isinf", "isfinite", "signbit", "copysign",
    "arctan2", "hypot", "logaddexp", "logaddexp2", "fmod", "remainder", "square",
    "erf", "erfc", "gammaln", "polygamma", "expit",
)


class Op:
    """One registry row. See the module docstring for the fields' roles."""

    __slots__ = (
        "name", "code", "kind", "arity", "forward", "partials", "ufunc",
        "numpy_names", "torch_names", "kink", "domain", "nondiff_args",
        "dtype_out", "tensor_partials", "doc", "param", "exact", "select",
    )

    def __init__(self, name, code, kind, arity, *, forward=None, partials=(),
                 ufunc=None, numpy_names=(), torch_names=(), kink="",
                 domain=None, nondiff_args=(), dtype_out=None, doc="", param=0, exact=False,
                 select=False):
        self.name = name
        self.code = code
        self.kind = kind
        self.arity = arity
        self.forward = forward
        self.partials = tuple(partials)
        self.ufunc = ufunc
        self.numpy_names = tuple(numpy_names)
        self.torch_names = tuple(torch_names)
        self.kink = kink
        self.domain = domain
        self.nondiff_args = tuple(nondiff_args)
        self.dtype_out = dtype_out
        self.doc = doc
        self.param = param            # a constant the kind's kernels take (a sign, a direction)
        self.exact = exact
        self.select = select          # every partial is a mask: 0 where its operand is not selected
        self.tensor_partials = None  # compiled lazily from ``partials``

    @property
    def differentiable(self):
        return self.code < FIRST_NONDIFF_CODE

    def times(self, x, d, held=None):
        """Code for ``x`` (a cotangent or a tangent) carried through the partial ``d``
        (``held``: the name of a variable already holding ``d``'s value).

        ``x * (d)``, but a partial that is the constant 0 carries nothing, and a select's
        partial carries nothing where it is 0 (its operand not selected): PyTorch selects
        there, so an infinite or NaN ``x`` gives 0, not ``inf * 0 = nan``
        (``sqrt(maximum(x, 0))`` at ``x < 0``).
        """
        if d == "0.0":
            return "0.0"
        d = held or d
        if self.select:
            return f"where(({d}) == 0.0, 0.0, {x} * ({d}))"
        return f"{x} * ({d})"

    def operand_names(self):
        return ("x",) if self.arity == 1 else ("a", "b", "c")[: self.arity]

    def __repr__(self):
        return f"Op({self.name!r}, code={self.code}, kind={self.kind!r})"


#: name -> Op, in declaration order.
OPS: dict[str, Op] = {}
#: opcode -> Op.
BY_CODE: dict[int, Op] = {}
#: numpy ufunc -> elementwise Op computing it.
BY_UFUNC: dict[object, Op] = {}


def register(op: Op) -> Op:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    if op.code in BY_CODE:
        raise ValueError(f"opcode {op.code} of {op.name!r} already used by {BY_CODE[op.code].name!r}")
    if op.kind in ("elementwise", "nondiff") and (op.code >= FIRST_NONDIFF_CODE) != (op.kind == "nondiff"):
        raise ValueError(f"{op.name!r}: opcodes >= {FIRST_NONDIFF_CODE} are for, and only for, "
                         "non-differentiable ops")
    OPS[op.name] = op
    BY_CODE[op.code] = op
    if op.ufunc is not None:
        BY_UFUNC.setdefault(op.ufunc, op)
    return op


def elementwise(name, code, ufunc, forward, partials=None, *, torch=(), kink="",
                domain=None, numpy=(), nondiff_args=(), dtype_out=None, doc="", exact=False,
                select=False):
    """Declare an elementwise op; ``partials=None`` declares it non-differentiable.
    ``select``: each partial is 1 (or a tie's share) where the result is its operand, else 0
    (see :meth:`Op.times`)."""
    arity = 1 if "x" in _names(forward) else (3 if "c" in _names(forward) else 2)
    kind = "nondiff" if partials is None else "elementwise"
    if partials is None:
        partials = (None,) * arity
    if len(partials) != arity:
        raise ValueError(f"{name}: {arity} operands but {len(partials)} partials")
    np_names = tuple(numpy) or ((f"np.{ufunc.__name__}",) if ufunc is not None else ())
    op = register(Op(name, code, kind, arity, forward=forward, partials=partials,
                     ufunc=ufunc, numpy_names=np_names, torch_names=tuple(torch),
                     kink=kink, domain=domain, nondiff_args=nondiff_args,
                     dtype_out=dtype_out, doc=doc, exact=exact, select=select))
    for spelling in np_names:           # ufuncs of the same math under another name (np.radians)
        alias = getattr(np, spelling[3:], None) if spelling.startswith("np.") else None
        if isinstance(alias, np.ufunc):
            BY_UFUNC.setdefault(alias, op)
    return op


def structural(name, code, kind, arity, *, numpy=(), torch=(), doc="", kink="", param=0,
               nondiff_args=(), dtype_out=None):
    """Declare a non-elementwise op whose kernels live in :mod:`numbad.sweeps.kernels`.

    Codes 200-399 are differentiable; a non-differentiable structural op (an
    integer result such as argmax) takes a code from 1100 up.
    """
    differentiable = 200 <= code < 400
    if not differentiable and not 1100 <= code < 1200:
        raise ValueError(f"{name!r}: structural opcodes are 200-399 (differentiable) or 1100-1199")
    return register(Op(name, code, kind, arity, numpy_names=numpy, torch_names=torch, doc=doc,
                       kink=kink, param=param, nondiff_args=nondiff_args, dtype_out=dtype_out))


def _names(expr):
    import re
    return set(re.findall(r"\b[a-z_][a-z_0-9]*\b", expr))


def tensor_rule_namespace():
    """Namespace in which rule expressions are evaluated on Tensors/arrays."""
    from .. import special
    ns = {name: getattr(np, name) for name in RULE_FUNCTIONS if hasattr(np, name)}
    ns.update({name: getattr(special, name) for name in RULE_FUNCTIONS if hasattr(special, name)})
    ns.update(abs=np.abs, where=np.where, pi=math.pi, ln2=math.log(2.0),
              ln10=math.log(10.0), inf=math.inf)
    return ns


def compiled_partials(op: Op):
    """The op's partials as Python callables over Tensors (the differentiable path)."""
    if op.tensor_partials is None:
        ns = tensor_rule_namespace()
        args = ", ".join(op.operand_names() + ("y",))
        op.tensor_partials = tuple(
            None if p is None else eval(f"lambda {args}: {p}", ns) for p in op.partials)
    return op.tensor_partials
