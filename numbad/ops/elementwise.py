"""Elementwise ops: forward value and partial derivatives, one row each.

Rule expressions use ``x`` (unary operand), ``a``/``b``/``c`` (operands of
binary/ternary ops) and ``y`` (the op's own result). Derivative conventions at
kinks and ties follow PyTorch; the ``kink`` text is what the docs' op table
shows. ``domain`` is where the generated tests probe the op: one
``(low, high)`` range per operand.

Where a select drops a branch that divides by zero (or takes ``log(0)``) at a
degenerate point, that branch's own operand is selected away from the zero too
(``0.5 / where(y == 0.0, 1.0, y)``): the differentiable sweep (``create_graph``)
differentiates the rule itself, and a dropped infinity would turn the zero
cotangent the select sends it into NaN in second derivatives.

Opcodes are stable: they are stored in saved tapes. Never renumber a row; add
new ops with new codes (1..199 differentiable, 1000+ non-differentiable).
"""
import numpy as np

from .registry import elementwise as ew

R = (-2.0, 2.0)        # default probe range
POS = (0.2, 3.0)       # strictly positive
UNIT = (-0.9, 0.9)     # inside (-1, 1)

# --- arithmetic -------------------------------------------------------------
ew("add", 1, np.add, "a + b", ("1.0", "1.0"), torch=("add", "__add__"), domain=(R, R), exact=True)
ew("subtract", 2, np.subtract, "a - b", ("1.0", "-1.0"), torch=("sub", "__sub__"), domain=(R, R), exact=True)
ew("multiply", 3, np.multiply, "a * b", ("b", "a"), torch=("mul", "__mul__"), domain=(R, R), exact=True)
ew("divide", 4, np.divide, "a / b", ("1.0 / b", "-a / (b * b)"),
   torch=("div", "__truediv__"), numpy=("np.divide", "np.true_divide"), domain=(R, POS), exact=True)
ew("power", 5, np.power, "a ** b",
   ("where(b == 0.0, 0.0, b * a ** where(b == 0.0, 1.0, b - 1.0))",
    "where((a == 0.0) & (b >= 0.0), 0.0, y * log(where((a == 0.0) & (b >= 0.0), 1.0, a)))"),
   torch=("pow", "__pow__"), domain=(POS, R),
   kink="d/da is 0 where b == 0; d/db is 0 where a == 0 and b >= 0 (PyTorch)")
ew("float_power", 6, np.float_power, "a ** b",
   ("where(b == 0.0, 0.0, b * a ** where(b == 0.0, 1.0, b - 1.0))",
    "where((a == 0.0) & (b >= 0.0), 0.0, y * log(where((a == 0.0) & (b >= 0.0), 1.0, a)))"),
   torch=("float_power",), domain=(POS, R), kink="as power; computed in float64 like numpy")
ew("negative", 7, np.negative, "-x", ("-1.0",), torch=("neg", "__neg__"), domain=(R,), exact=True)
ew("positive", 8, np.positive, "x", ("1.0",), torch=("positive", "__pos__"), domain=(R,), exact=True)
ew("absolute", 9, np.absolute, "abs(x)", ("sign(x)",), torch=("abs", "__abs__"),
   numpy=("np.absolute", "np.abs", "abs()"), domain=(R,), kink="derivative 0 at x == 0 (PyTorch)", exact=True)
ew("fabs", 10, np.fabs, "abs(x)", ("sign(x)",), domain=(R,), kink="derivative 0 at x == 0")
ew("square", 11, np.square, "x * x", ("2.0 * x",), torch=("square",), domain=(R,), exact=True)
ew("reciprocal", 12, np.reciprocal, "1.0 / x", ("-(y * y)",), torch=("reciprocal",), domain=(POS,),
   exact=True)
ew("sqrt", 13, np.sqrt, "sqrt(x)", ("0.5 / y",), torch=("sqrt",), domain=(POS,),
   kink="infinite derivative at 0, as PyTorch", exact=True)
ew("sqrt_subgrad", 15, None, "sqrt(x)", ("where(y == 0.0, 0.0, 0.5 / where(y == 0.0, 1.0, y))",),
   numpy=("np.linalg.norm",), domain=(POS,),
   kink="derivative 0 at 0: the subgradient PyTorch's norms take at the zero vector")
ew("cbrt", 14, np.cbrt, "cbrt(x)", ("1.0 / (3.0 * y * y)",), domain=(POS,))

# --- exponentials and logarithms ---------------------------------------------
ew("exp", 20, np.exp, "exp(x)", ("y",), torch=("exp",), domain=(R,))
ew("exp2", 21, np.exp2, "exp2(x)", ("y * ln2",), torch=("exp2",), domain=(R,))
ew("expm1", 22, np.expm1, "expm1(x)", ("y + 1.0",), torch=("expm1",), domain=(R,))
ew("log", 23, np.log, "log(x)", ("1.0 / x",), torch=("log",), domain=(POS,))
ew("log2", 24, np.log2, "log2(x)", ("1.0 / (x * ln2)",), torch=("log2",), domain=(POS,))
ew("log10", 25, np.log10, "log10(x)", ("1.0 / (x * ln10)",), torch=("log10",), domain=(POS,))
ew("log1p", 26, np.log1p, "log1p(x)", ("1.0 / (x + 1.0)",), torch=("log1p",), domain=(POS,))
ew("logaddexp", 27, np.logaddexp, "logaddexp(a, b)", ("exp(a - y)", "exp(b - y)"),
   torch=("logaddexp",), domain=(R, R))
ew("logaddexp2", 28, np.logaddexp2, "logaddexp2(a, b)", ("exp2(a - y)", "exp2(b - y)"),
   torch=("logaddexp2",), domain=(R, R))

# --- trigonometric and hyperbolic ---------------------------------------------
ew("sin", 30, np.sin, "sin(x)", ("cos(x)",), torch=("sin",), domain=(R,))
ew("cos", 31, np.cos, "cos(x)", ("-sin(x)",), torch=("cos",), domain=(R,))
ew("tan", 32, np.tan, "tan(x)", ("1.0 + y * y",), torch=("tan",), domain=((-1.2, 1.2),))
ew("arcsin", 33, np.arcsin, "arcsin(x)", ("1.0 / sqrt(1.0 - x * x)",), torch=("asin", "arcsin"),
   domain=(UNIT,))
ew("arccos", 34, np.arccos, "arccos(x)", ("-1.0 / sqrt(1.0 - x * x)",), torch=("acos", "arccos"),
   domain=(UNIT,))
ew("arctan", 35, np.arctan, "arctan(x)", ("1.0 / (1.0 + x * x)",), torch=("atan", "arctan"),
   domain=(R,))
ew("arctan2", 36, np.arctan2, "arctan2(a, b)",
   ("where((a == 0.0) & (b == 0.0), 0.0, b / where((a == 0.0) & (b == 0.0), 1.0, a * a + b * b))",
    "where((a == 0.0) & (b == 0.0), 0.0, -a / where((a == 0.0) & (b == 0.0), 1.0, a * a + b * b))"), torch=("atan2", "arctan2"),
   domain=(R, POS), kink="derivative 0 at a == b == 0 (PyTorch)")
ew("hypot", 37, np.hypot, "hypot(a, b)", ("a / y", "b / y"), torch=("hypot",), domain=(R, POS))
ew("sinh", 38, np.sinh, "sinh(x)", ("cosh(x)",), torch=("sinh",), domain=(R,))
ew("cosh", 39, np.cosh, "cosh(x)", ("sinh(x)",), torch=("cosh",), domain=(R,))
ew("tanh", 40, np.tanh, "tanh(x)", ("1.0 - y * y",), torch=("tanh",), domain=(R,))
ew("arcsinh", 41, np.arcsinh, "arcsinh(x)", ("1.0 / sqrt(x * x + 1.0)",),
   torch=("asinh", "arcsinh"), domain=(R,))
ew("arccosh", 42, np.arccosh, "arccosh(x)", ("1.0 / sqrt((x - 1.0) * (x + 1.0))",),
   torch=("acosh", "arccosh"), domain=((1.2, 3.0),))
ew("arctanh", 43, np.arctanh, "arctanh(x)", ("1.0 / (1.0 - x * x)",),
   torch=("atanh", "arctanh"), domain=(UNIT,))
ew("deg2rad", 44, np.deg2rad, "x * (pi / 180.0)", ("pi / 180.0",), torch=("deg2rad",),
   numpy=("np.deg2rad", "np.radians"), domain=(R,))
ew("rad2deg", 45, np.rad2deg, "x * (180.0 / pi)", ("180.0 / pi",), torch=("rad2deg",),
   numpy=("np.rad2deg", "np.degrees"), domain=(R,))

# --- selection, ties and kinks ------------------------------------------------
# (written as PyTorch's: an operand gets the whole derivative unless it is the smaller (larger)
# one, so where either is NaN both do; ``select=True``: an operand not selected gets 0 even from
# an infinite cotangent or tangent, as from PyTorch's where and masked_fill, not inf * 0 = NaN)
_HALF_TIE = "at a == b the derivative is split half/half; where either is NaN, both get it whole (PyTorch)"
ew("maximum", 50, np.maximum, "where((a > b) | isnan(a), a, b)",
   ("where(a < b, 0.0, where(a == b, 0.5, 1.0))", "where(a > b, 0.0, where(a == b, 0.5, 1.0))"),
   torch=("maximum",), domain=(R, R), kink=_HALF_TIE, select=True)
ew("minimum", 51, np.minimum, "where((a < b) | isnan(a), a, b)",
   ("where(a > b, 0.0, where(a == b, 0.5, 1.0))", "where(a < b, 0.0, where(a == b, 0.5, 1.0))"),
   torch=("minimum",), domain=(R, R), kink=_HALF_TIE, select=True)
ew("fmax", 52, np.fmax, "where((a >= b) | isnan(b), a, b)",
   ("where((a >= b) | isnan(b), 1.0, 0.0)", "where((a >= b) | isnan(b), 0.0, 1.0)"),
   torch=("fmax",), domain=(R, R), kink="ties go to the first argument; NaN is ignored (PyTorch)",
   select=True)
ew("fmin", 53, np.fmin, "where((a <= b) | isnan(b), a, b)",
   ("where((a <= b) | isnan(b), 1.0, 0.0)", "where((a <= b) | isnan(b), 0.0, 1.0)"),
   torch=("fmin",), domain=(R, R), kink="ties go to the first argument; NaN is ignored (PyTorch)",
   select=True)
ew("where", 54, None, "where(a != 0.0, b, c)",
   (None, "where(a != 0.0, 1.0, 0.0)", "where(a != 0.0, 0.0, 1.0)"),
   torch=("where",), numpy=("np.where",), nondiff_args=(0,), domain=((-1.0, 1.0), R, R),
   doc="a select: replays on any input, no guard", select=True)
ew("clip", 55, np.clip, "where(b > c, c, where(a < b, b, where(a > c, c, a)))",
   ("where((a >= b) & (a <= c), 1.0, 0.0)",
    "where((a < b) & (b <= c), 1.0, 0.0)",
    "where((a > c) | (b > c), 1.0, 0.0)"),
   torch=("clamp", "clip"), numpy=("np.clip", "ndarray.clip"), domain=(R, (-1.0, -0.1), (0.1, 1.0)),
   kink="at a bound the derivative goes to x (PyTorch's clamp)", select=True)
ew("copysign", 56, np.copysign, "copysign(a, b)", ("where(a == 0.0, 0.0, y / where(a == 0.0, 1.0, a))", "0.0"),
   torch=("copysign",), domain=(R, R), kink="derivative 0 at a == 0 (PyTorch)")
ew("remainder", 57, np.remainder, "remainder(a, b)", ("1.0", "-floor(a / b)"),
   torch=("remainder", "__mod__"), numpy=("np.remainder", "np.mod", "%"), domain=(R, POS),
   kink="d/db = -floor(a/b) (PyTorch); jumps where a/b is an integer")
ew("fmod", 58, np.fmod, "fmod(a, b)", ("1.0", "-trunc(a / b)"), torch=("fmod",),
   domain=(R, POS), kink="d/db = -trunc(a/b) (PyTorch); jumps where a/b is an integer")

# --- piecewise constant: derivative zero, still connected (PyTorch) ------------
_ZERO = "derivative 0 everywhere (piecewise constant)"
ew("sign", 60, np.sign, "sign(x)", ("0.0",), torch=("sign",), domain=(R,), kink=_ZERO)
ew("floor", 61, np.floor, "floor(x)", ("0.0",), torch=("floor",), domain=(R,), kink=_ZERO)
ew("ceil", 62, np.ceil, "ceil(x)", ("0.0",), torch=("ceil",), domain=(R,), kink=_ZERO)
ew("trunc", 63, np.trunc, "trunc(x)", ("0.0",), torch=("trunc",), numpy=("np.trunc", "np.fix"),
   domain=(R,), kink=_ZERO)
ew("rint", 64, np.rint, "rint(x)", ("0.0",), torch=("round",), numpy=("np.rint", "np.round"),
   domain=(R,), kink=_ZERO)
ew("round_decimals", 65, None, "rint(a * b) / b", ("0.0", "0.0"),
   numpy=("np.round(x, decimals)",), nondiff_args=(1,), domain=(R, (10.0, 10.0)), kink=_ZERO)
ew("floor_divide", 67, np.floor_divide, "a // b", ("0.0", "0.0"), torch=("floor_divide", "__floordiv__"),
   numpy=("np.floor_divide", "//"), domain=(R, POS), kink=_ZERO)
ew("heaviside", 66, np.heaviside, "where(isnan(a) | (a > 0.0), where(a > 0.0, 1.0, a), where(a < 0.0, 0.0, b))", ("0.0", "0.0"),
   torch=("heaviside",), domain=(R, R), kink=_ZERO)

# --- special functions (numbad.special, scipy.special names) ---------------------
ew("erf", 70, None, "erf(x)", ("1.1283791670955126 * exp(-x * x)",), torch=("erf",),
   numpy=("nb.special.erf",), domain=(R,))
ew("erfc", 71, None, "erfc(x)", ("-1.1283791670955126 * exp(-x * x)",), torch=("erfc",),
   numpy=("nb.special.erfc",), domain=(R,))
ew("gammaln", 72, None, "gammaln(x)", ("polygamma(0.0, x)",), torch=("lgamma",),
   numpy=("nb.special.gammaln",), domain=(POS,))
ew("polygamma", 73, None, "polygamma(a, b)", ("0.0", "polygamma(a + 1.0, b)"),
   torch=("polygamma",), numpy=("nb.special.polygamma", "nb.special.digamma"),
   nondiff_args=(0,), domain=((1.0, 1.0), POS))
ew("expit", 74, None, "expit(x)", ("y * (1.0 - y)",), torch=("sigmoid",),
   numpy=("nb.special.expit",), domain=(R,))
ew("logit", 75, None, "log(x / (1.0 - x))", ("1.0 / (x * (1.0 - x))",), torch=("logit",),
   numpy=("nb.special.logit",), domain=((0.1, 0.9),))
ew("softplus", 76, None, "where(x > 0.0, x + log1p(exp(-x)), log1p(exp(x)))", ("expit(x)",),
   numpy=("nb.special.softplus",), torch=("nn.functional.softplus",), domain=(R,))

# --- non-differentiable: comparisons and logic (results are boolean) -------------
for _name, _code, _uf, _expr, _torch in (
    ("less", 1000, np.less, "a < b", ("lt", "__lt__")),
    ("less_equal", 1001, np.less_equal, "a <= b", ("le", "__le__")),
    ("greater", 1002, np.greater, "a > b", ("gt", "__gt__")),
    ("greater_equal", 1003, np.greater_equal, "a >= b", ("ge", "__ge__")),
    ("equal", 1004, np.equal, "a == b", ("eq", "__eq__")),
    ("not_equal", 1005, np.not_equal, "a != b", ("ne", "__ne__")),
    ("logical_and", 1006, np.logical_and, "(a != 0.0) & (b != 0.0)", ("logical_and", "__and__")),
    ("logical_or", 1007, np.logical_or, "(a != 0.0) | (b != 0.0)", ("logical_or", "__or__")),
    ("logical_xor", 1008, np.logical_xor, "(a != 0.0) != (b != 0.0)", ("logical_xor", "__xor__")),
    ("logical_not", 1009, np.logical_not, "x == 0.0", ("logical_not", "__invert__")),
    ("isfinite", 1010, np.isfinite, "isfinite(x)", ("isfinite",)),
    ("isnan", 1011, np.isnan, "isnan(x)", ("isnan",)),
    ("isinf", 1012, np.isinf, "isinf(x)", ("isinf",)),
    ("signbit", 1013, np.signbit, "signbit(x)", ("signbit",)),
):
    ew(_name, _code, _uf, _expr, None, torch=_torch, dtype_out="bool",
       domain=(R,) if "x" in _expr else (R, R), kink="boolean result: no derivative")

# --- identity with no derivative: what a nested create_graph=False vjp returns inside nb.record,
# so that the replayed tape recomputes the value while no derivative flows through it
ew("stop_gradient", 1050, None, "x", None, numpy=("nested nb.vjp(create_graph=False) in nb.record",),
   domain=(R,), kink="no derivative (a constant for the enclosing derivative)")
