"""``numbad.special``: scipy.special's names and values, differentiable on Tensors."""
import numpy as np
import pytest
import scipy.special as sp
import torch

import numbad as nb

from check import check_derivatives

X = np.random.default_rng(5).uniform(0.2, 3.0, (2, 3))
U = X / 3.2                 # inside (0, 1) for logit

CASES = {
    "erf": (X, torch.erf), "erfc": (X, torch.erfc), "gammaln": (X, torch.lgamma),
    "digamma": (X, torch.digamma), "expit": (X - 1.5, torch.sigmoid), "logit": (U, torch.logit),
    "softplus": (X - 1.5, torch.nn.functional.softplus),
    "polygamma": (X, lambda x: torch.polygamma(2, x)),
    "logsumexp": (X, lambda x: torch.logsumexp(x.reshape(-1), 0)),
}


def test_every_special_function_has_a_case():
    assert set(nb.special.__all__) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_special_function(name):
    x, tf = CASES[name]
    fn = getattr(nb.special, name)
    f = (lambda x: fn(2, x)) if name == "polygamma" else fn
    ref = sp.polygamma(2, x) if name == "polygamma" else getattr(sp, name)(x)
    assert np.allclose(f(x), ref, rtol=1e-15, atol=0), "plain arrays get scipy's values"
    # PyTorch's trigamma and higher are accurate to ~1e-9 only: compare second order against FD only
    check_derivatives(f, (x,), tf if name not in ("polygamma", "gammaln", "digamma") else None)
    if name in ("gammaln", "digamma"):
        from helpers import assert_close, torch_vjp
        _, g = nb.vjp(f, x, np.ones(x.shape))
        assert_close(g, torch_vjp(tf, (x,), np.ones(x.shape))[1][0], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ["erf", "erfc", "gammaln", "digamma", "psi", "expit", "logit"])
def test_scipy_special_ufuncs_on_tensors_record_numbads_op(name):
    # code that calls scipy.special itself runs unchanged: its ufuncs reach numbad.special
    x = U if name == "logit" else X
    ours = getattr(nb.special, "digamma" if name == "psi" else name)
    out, g = nb.vjp(lambda t: getattr(sp, name)(t).sum(), x)
    eout, eg = nb.vjp(lambda t: ours(t).sum(), x)
    assert out == eout and np.array_equal(g, eg)


def test_a_scipy_special_ufunc_without_a_rule_is_named():
    with pytest.raises(TypeError, match="numbad does not differentiate scipy.special.j0"):
        nb.vjp(lambda t: sp.j0(t).sum(), X)
    with pytest.raises(TypeError, match="numbad does not differentiate numpy.frexp"):
        nb.vjp(lambda t: np.frexp(t)[0].sum(), X)

