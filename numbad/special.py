"""Differentiable special functions with ``scipy.special``'s names and values.

Port an objective that uses ``scipy.special`` by changing its import::

    from numbad.special import erf, gammaln     # was: from scipy.special import ...

On plain arrays these are scipy's functions; on :class:`numbad.Tensor` they
record an op whose derivative is in the registry (``gammaln' = digamma``,
``digamma' = polygamma(1, .)``, and so on to any order). Code that keeps
calling ``scipy.special`` works too where scipy's function is a ufunc
(``erf``, ``erfc``, ``gammaln``, ``digamma``/``psi``, ``expit``, ``logit``): a
ufunc called on a Tensor arrives here. ``polygamma``, ``softplus`` and ``logsumexp`` are
plain Python functions in scipy and need this module's import.

>>> import numpy as np, numbad as nb
>>> out, g = nb.vjp(lambda x: nb.special.erf(x).sum(), np.zeros(2))
>>> g
array([1.12837917, 1.12837917])
"""
from __future__ import annotations

import numpy as np

from .ops import OPS

__all__ = ["erf", "erfc", "gammaln", "digamma", "polygamma", "expit", "logit", "softplus", "logsumexp"]


def _scipy(name):
    import scipy.special as sp
    if name == "softplus" and not hasattr(sp, "softplus"):
        return lambda x: np.logaddexp(0.0, x)
    return getattr(sp, name)


def _apply(name, scipy_name, *args):
    from .tensor.core import Tensor, elementwise
    fn = _scipy(scipy_name)
    if any(type(a) is Tensor for a in args):
        return elementwise(OPS[name], args, fn)
    return fn(*args)


def erf(x):
    """The error function (``scipy.special.erf``)."""
    return _apply("erf", "erf", x)


def erfc(x):
    """The complementary error function (``scipy.special.erfc``)."""
    return _apply("erfc", "erfc", x)


def gammaln(x):
    """``log|Gamma(x)|`` (``scipy.special.gammaln``); its derivative is ``digamma``."""
    return _apply("gammaln", "gammaln", x)


def polygamma(n, x):
    """The n-th derivative of ``digamma`` (``scipy.special.polygamma``); ``n`` is not differentiated."""
    from .tensor.core import Tensor, elementwise
    if type(x) is Tensor:
        return elementwise(OPS["polygamma"], (float(n), x), lambda k, v: _scipy("polygamma")(int(k), v))
    return _scipy("polygamma")(n, x)


def digamma(x):
    """The logarithmic derivative of Gamma (``scipy.special.digamma``)."""
    from .tensor.core import Tensor, elementwise
    if type(x) is Tensor:
        return elementwise(OPS["polygamma"], (0.0, x), lambda k, v: _scipy("digamma")(v))
    return _scipy("digamma")(x)


def expit(x):
    """The logistic sigmoid ``1 / (1 + exp(-x))`` (``scipy.special.expit``)."""
    return _apply("expit", "expit", x)


def logit(x):
    """``log(x / (1 - x))`` (``scipy.special.logit``)."""
    return _apply("logit", "logit", x)


def softplus(x):
    """``log(1 + exp(x))``, computed stably (``scipy.special.softplus``)."""
    return _apply("softplus", "softplus", x)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """``log(sum(b * exp(a)))`` computed stably (``scipy.special.logsumexp``); see ``nb.logsumexp``."""
    from .tensor.core import Tensor
    if type(a) is Tensor or type(b) is Tensor:
        from .tensor.reductions import logsumexp as lse
        return lse(a, axis, b, keepdims, return_sign)
    return _scipy("logsumexp")(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)
