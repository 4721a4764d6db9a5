"""The rule language's functions (``RULE_FUNCTIONS``) as CUDA device functions.

Each mirrors what the njit sweeps compute for the same name (numpy's scalar
semantics as numba implements them: ``sign`` of NaN and zero returns its
argument, ``remainder`` takes the sign of the divisor, ``logaddexp`` as numpy
writes it, ``polygamma`` by the same series as :mod:`numbad.sweeps.scalar_math`),
so that the CUDA kernels agree with the CPU sweeps to the last bit where the
arithmetic is exact and to rounding where a math library is involved.

On a GPU the transcendental functions come from CUDA's libdevice; under the
simulator from Python's ``math`` (the C library, as on the CPU).
"""
import math

import numpy as np
from numba import cuda
from numba.core import config

SIMULATOR = bool(config.ENABLE_CUDASIM)

pi = math.pi
ln2 = math.log(2.0)
ln10 = math.log(10.0)
inf = math.inf

_dev = cuda.jit(device=True)

# The library functions the rules call. On a GPU: numba's ``math`` (libdevice) and
# libdevice itself where ``math`` returns integers (floor) or lacks the function
# (exp2, cbrt, rint). Under the simulator: numpy's scalar functions, which, like
# the GPU and unlike Python's ``math``, return inf/NaN instead of raising.
if SIMULATOR:
    from scipy.special import gammaln as _lgamma
    _sin, _cos, _tan, _asin, _acos, _atan = np.sin, np.cos, np.tan, np.arcsin, np.arccos, np.arctan
    _sinh, _cosh, _tanh, _asinh, _acosh, _atanh = (np.sinh, np.cosh, np.tanh, np.arcsinh, np.arccosh,
                                                   np.arctanh)
    _exp, _exp2, _expm1, _log, _log2, _log10, _log1p = (np.exp, np.exp2, np.expm1, np.log, np.log2,
                                                        np.log10, np.log1p)
    _sqrt, _cbrt, _floor, _ceil, _trunc, _rint = np.sqrt, np.cbrt, np.floor, np.ceil, np.trunc, np.rint
    _copysign, _atan2, _hypot, _fmod = np.copysign, np.arctan2, np.hypot, np.fmod
    _erf, _erfc, _gamma = math.erf, math.erfc, math.gamma
else:                                   # pragma: no cover - needs a GPU
    from numba.cuda import libdevice
    _sin, _cos, _tan, _asin, _acos, _atan = math.sin, math.cos, math.tan, math.asin, math.acos, math.atan
    _sinh, _cosh, _tanh, _asinh, _acosh, _atanh = (math.sinh, math.cosh, math.tanh, math.asinh,
                                                   math.acosh, math.atanh)
    _exp, _exp2, _expm1, _log, _log2, _log10, _log1p = (math.exp, libdevice.exp2, math.expm1, math.log,
                                                        math.log2, math.log10, math.log1p)
    _sqrt, _cbrt = math.sqrt, libdevice.cbrt
    _floor, _ceil, _trunc, _rint = libdevice.floor, libdevice.ceil, libdevice.trunc, libdevice.rint
    _copysign, _atan2, _hypot, _fmod = math.copysign, math.atan2, math.hypot, math.fmod
    _erf, _erfc, _gamma, _lgamma = math.erf, math.erfc, math.gamma, math.lgamma


@_dev
def where(cond, a, b):
    return a if cond else b


@_dev
def sin(x):
    return _sin(x)


@_dev
def cos(x):
    return _cos(x)


@_dev
def tan(x):
    return _tan(x)


@_dev
def arcsin(x):
    return _asin(x)


@_dev
def arccos(x):
    return _acos(x)


@_dev
def arctan(x):
    return _atan(x)


@_dev
def sinh(x):
    return _sinh(x)


@_dev
def cosh(x):
    return _cosh(x)


@_dev
def tanh(x):
    return _tanh(x)


@_dev
def arcsinh(x):
    return _asinh(x)


@_dev
def arccosh(x):
    return _acosh(x)


@_dev
def arctanh(x):
    return _atanh(x)


@_dev
def exp(x):
    return _exp(x)


@_dev
def exp2(x):
    return _exp2(x)


@_dev
def expm1(x):
    return _expm1(x)


@_dev
def log(x):
    return _log(x)


@_dev
def log2(x):
    return _log2(x)


@_dev
def log10(x):
    return _log10(x)


@_dev
def log1p(x):
    return _log1p(x)


@_dev
def sqrt(x):
    return _sqrt(x)


@_dev
def cbrt(x):
    return _cbrt(x)


@_dev
def sign(x):
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x                            # zero and NaN are their own sign (numpy)


@_dev
def floor(x):
    return _floor(x)


@_dev
def ceil(x):
    return _ceil(x)


@_dev
def trunc(x):
    return _trunc(x)


@_dev
def rint(x):
    return _rint(x)


@_dev
def isnan(x):
    return x != x


@_dev
def isinf(x):
    return x == inf or x == -inf


@_dev
def isfinite(x):
    return not (x != x or x == inf or x == -inf)


@_dev
def signbit(x):
    return _copysign(1.0, x) < 0.0


@_dev
def copysign(a, b):
    return _copysign(a, b)


@_dev
def arctan2(a, b):
    return _atan2(a, b)


@_dev
def hypot(a, b):
    return _hypot(a, b)


@_dev
def fmod(a, b):
    return _fmod(a, b)


@_dev
def remainder(a, b):
    # numpy's remainder: fmod, then moved into the divisor's sign (numba's np_real_mod_impl)
    r = fmod(a, b)
    if r != 0.0 and ((b < 0.0) != (r < 0.0)):
        r += b
    return r


@_dev
def square(x):
    return x * x


@_dev
def logaddexp(a, b):
    if a == b:
        return a + ln2
    t = a - b
    if t > 0.0:
        return a + log1p(exp(-t))
    if t <= 0.0:
        return b + log1p(exp(t))
    return t


@_dev
def logaddexp2(a, b):
    if a == b:
        return a + 1.0
    t = a - b
    if t > 0.0:
        return a + 1.4426950408889634 * log1p(exp2(-t))
    if t <= 0.0:
        return b + 1.4426950408889634 * log1p(exp2(t))
    return t


@_dev
def erf(x):
    return _erf(x)


@_dev
def erfc(x):
    return _erfc(x)


@_dev
def gammaln(x):
    return _lgamma(x)


@_dev
def expit(x):
    if x >= 0.0:
        return 1.0 / (1.0 + exp(-x))
    e = exp(x)
    return e / (1.0 + e)


# Bernoulli numbers B_2k, k = 1..8 (as in numbad.sweeps.scalar_math)
_B2K = (1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 5.0 / 66.0,
        -691.0 / 2730.0, 7.0 / 6.0, -3617.0 / 510.0)


@_dev
def _polygamma_pos(n, x):
    acc = 0.0
    nfact = _gamma(n + 1.0)
    sgn = -1.0 if n % 2 == 0 else 1.0
    while x < 12.0 + n:
        if n == 0:
            acc -= 1.0 / x
        else:
            acc += sgn * nfact / x ** (n + 1)
        x += 1.0
    if n == 0:
        s = _log(x) - 0.5 / x
        x2 = 1.0
        for k in range(1, 9):
            x2 *= x * x
            s -= _B2K[k - 1] / (2.0 * k * x2)
        return acc + s
    s = _gamma(n * 1.0) / x ** n + nfact / (2.0 * x ** (n + 1))
    for k in range(1, 9):
        s += _B2K[k - 1] * _gamma(2.0 * k + n) / (_gamma(2.0 * k + 1.0) * x ** (2 * k + n))
    return acc + sgn * s


@_dev
def polygamma(n, x):
    """The same algorithm as :func:`numbad.sweeps.scalar_math.polygamma`."""
    k = int(n)
    if k != n or k < 0:
        return math.nan
    if x > 0.0:
        return _polygamma_pos(k, x)
    if x == _floor(x):
        return math.nan if k == 0 else inf
    if k == 0:
        return _polygamma_pos(0, 1.0 - x) - math.pi / _tan(math.pi * x)
    if k == 1:
        s = _sin(math.pi * x)
        return math.pi * math.pi / (s * s) - _polygamma_pos(1, 1.0 - x)
    return _polygamma_pos(k, x)
