"""Scalar functions used by the rule expressions inside the njit sweeps.

Each is the scalar counterpart of a function in :data:`numbad.ops.registry.RULE_FUNCTIONS`
that numba does not provide itself, provides with Python's exception semantics, or
compiles to a C library call that LLVM cannot vectorize (``exp``, ``tanh``). They are
inlined into the interpreters.
"""
import math

import numpy as np
from numba import types
from numba.extending import intrinsic

from .deferred import njit

_jit = njit(inline="always", error_model="numpy", cache=True)


@_jit
def where(cond, a, b):
    return a if cond else b


@_jit
def erf(x):
    return math.erf(x)


@_jit
def erfc(x):
    return math.erfc(x)


@_jit
def gammaln(x):
    return math.lgamma(x)


# ------------------------------------------------------------- exp, tanh (and expit), vectorizable
# The C library's exp and tanh are calls, which LLVM does not vectorize: on a 2-core Xeon a
# replay's tanh took 13.6 ns an element and its exp 4.2 ns, where numpy's own SIMD loops
# take 1.2 and 0.6 ns. These two are branch-free arithmetic that LLVM vectorizes (1.4 ns an
# element for exp, 2.1 for tanh, there). They compute in float64 (a float32 value is widened,
# and its result rounded once to float32).
#   exp: fdlibm's algorithm (e_exp.c): x = k ln2 + r, |r| <= ln2/2, and
#     exp(r) = 1 + 2r / (2 - c) with c = r - r^2 P(r^2), P of degree 4 (its Remez coefficients
#     below); then times 2^k, built from the bits of the exponent. Error below 1 ulp (fdlibm's
#     bound; against mpmath, 0.87 ulp at most over 5*10^5 arguments, 10% of results one ulp
#     from glibc's).
#   tanh: Cephes's (tanh.c): for |x| <= 0.625, x + x^3 P(x^2) / Q(x^2) (a rational fit of
#     degrees 2 and 3); above, 1 - 2 / (exp(2|x|) + 1). Against mpmath, 1.29 ulp at most over
#     5*10^5 arguments (just above 0.625); glibc's tanh reaches 2.0 ulp, numpy's 1.1.
@intrinsic
def _float_of_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (a bitcast; LLVM vectorizes it)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


_EXP_P = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
          -1.65339022054652515390e-06, 4.13813679705723846039e-08)
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10   # (hi: 32 bits)
_INV_LN2 = 1.44269504088896338700e+00


@_jit
def exp(x):
    x = np.float64(x)
    # (clamped: beyond, the result is 0 or inf either way, and k stays small enough below)
    xc = min(max(x, -750.0), 710.0)
    kf = math.floor(xc * _INV_LN2 + 0.5)
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_EXP_P[0] + t * (_EXP_P[1] + t * (_EXP_P[2] + t * (_EXP_P[3] + t * _EXP_P[4]))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # y * 2^k as y * 2^(k >> 1) * 2^(k - (k >> 1)): both factors normal numbers for every
    # k of the clamped range (-1082 to 1024), so overflow and gradual underflow round once
    k = np.int64(kf)
    half = k >> 1
    e = y * _float_of_bits((half + 1023) << 52) * _float_of_bits((k - half + 1023) << 52)
    return e if x == x else x


_TANH_P = (-9.64399179425052238628e-01, -9.92877231001918586564e+01, -1.61468768441708447952e+03)
_TANH_Q = (1.12811678491632931402e+02, 2.23548839060100448583e+03, 4.84406305325125486048e+03)


@_jit
def tanh(x):
    x = np.float64(x)
    a = abs(x)
    s = x * x
    near = x + x * s * (((_TANH_P[0] * s + _TANH_P[1]) * s + _TANH_P[2])
                        / (((s + _TANH_Q[0]) * s + _TANH_Q[1]) * s + _TANH_Q[2]))
    far = 1.0 - 2.0 / (exp(2.0 * a) + 1.0)
    z = near if a <= 0.625 else (far if x > 0.0 else -far)
    # below 2^-28, tanh(x) rounds to x (this keeps -0.0 and subnormals); NaN stays itself
    return z if a >= 3.725290298461914e-09 else x


@_jit
def expit(x):
    # 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below (no overflow either way), as a
    # select of the two with the vectorizable exp
    e = exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


# Bernoulli numbers B_2k, k = 1..8, for the asymptotic series of polygamma.
_B2K = (1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0,
        -691.0 / 2730.0, 7.0 / 6.0, -3617.0 / 510.0)


@njit(error_model="numpy", cache=True)
def _polygamma_pos(n, x):
    """psi^(n)(x) for integer n >= 0 and x not a pole: shift up, then the asymptotic series."""
    acc = 0.0
    nfact = math.gamma(n + 1.0)
    sgn = -1.0 if n % 2 == 0 else 1.0            # (-1)^(n+1)
    while x < 12.0 + n:
        # psi^(n)(x) = psi^(n)(x + 1) - (-1)^n n! / x^(n+1)
        if n == 0:
            acc -= 1.0 / x
        else:
            acc += sgn * nfact / x ** (n + 1)
        x += 1.0
    if n == 0:
        s = math.log(x) - 0.5 / x
        x2 = 1.0
        for k in range(1, 9):
            x2 *= x * x
            s -= _B2K[k - 1] / (2.0 * k * x2)
        return acc + s
    # (-1)^(n+1) [ (n-1)!/x^n + n!/(2 x^(n+1)) + sum_k B_2k (2k+n-1)! / ((2k)! x^(2k+n)) ]
    s = math.gamma(n * 1.0) / x ** n + nfact / (2.0 * x ** (n + 1))
    for k in range(1, 9):
        s += _B2K[k - 1] * math.gamma(2.0 * k + n) / (math.gamma(2.0 * k + 1.0) * x ** (2 * k + n))
    return acc + sgn * s


@_jit
def polygamma(n, x):
    """The n-th derivative of the digamma function (n = 0: digamma), scipy's conventions."""
    k = int(n)
    if k != n or k < 0:
        return np.nan
    if x > 0.0:
        return _polygamma_pos(k, x)
    if x == math.floor(x):
        return np.nan if k == 0 else np.inf
    # reflection formulas for negative non-integer x
    if k == 0:
        return _polygamma_pos(0, 1.0 - x) - math.pi / math.tan(math.pi * x)
    if k == 1:
        s = math.sin(math.pi * x)
        return math.pi * math.pi / (s * s) - _polygamma_pos(1, 1.0 - x)
    return _polygamma_pos(k, x)     # the upward recurrence holds for negative x too
