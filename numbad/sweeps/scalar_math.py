"""Scalar functions used by the rule expressions inside the njit sweeps.

Each is the scalar counterpart of a function in :data:`numbad.ops.registry.RULE_FUNCTIONS`
that numba does not provide itself (or provides with Python's exception
semantics). They are inlined into the interpreters.
"""
import math

import numpy as np
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


@_jit
def expit(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


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
