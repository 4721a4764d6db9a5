"""One thorough derivative check, used by the structural-op tests."""
import numpy as np

import numbad as nb

from helpers import assert_close, central_vjp, nb_second, torch_vjp


def evaluate(f, args):
    """``f(*args)`` run on numbad Tensors (so PyTorch-only spellings work), as an array."""
    from numbad.functional._common import Call
    out = Call(tuple(args), False).run(f)
    return np.array(out.detach() if isinstance(out, nb.Tensor) else out)


def check_derivatives(f, args, torch_f=None, second=True, seed=0, value=None):
    """Check ``f`` at ``args``: value, FD, PyTorch, create_graph path, float32 and second order."""
    rng = np.random.default_rng(seed)
    args = tuple(np.asarray(a, np.float64) for a in args)
    fval = lambda *a: evaluate(f, a)  # noqa: E731
    ref = fval(*args) if value is None else value
    v = rng.standard_normal(np.shape(ref))
    out, g = nb.vjp(f, args, v)
    assert np.allclose(out, ref, rtol=1e-13, atol=1e-13)
    for k, (gk, fk) in enumerate(zip(g, central_vjp(fval, args, v))):
        assert_close(gk, fk, rtol=1e-6, atol=1e-7, what=f"d/darg{k} vs finite differences")
    if torch_f is not None:
        tout, tg = torch_vjp(torch_f, args, v)
        assert_close(out, tout, rtol=1e-12, atol=1e-12, what="value vs PyTorch")
        for k, (gk, tk) in enumerate(zip(g, tg)):
            assert_close(gk, tk, rtol=1e-11, atol=1e-12, what=f"d/darg{k} vs PyTorch")
    _, gc = nb.vjp(f, args, v, create_graph=True)
    for k, (gk, c) in enumerate(zip(g, gc)):
        assert_close(c.detach(), gk, rtol=1e-13, atol=1e-13, what=f"d/darg{k} create_graph path")
    _, g32 = nb.vjp(f, tuple(a.astype(np.float32) for a in args), v.astype(np.float32))
    for k, (gk, g64) in enumerate(zip(g32, g)):
        assert gk.dtype == np.float32
        assert_close(gk, g64, rtol=1e-3, atol=1e-3, what=f"d/darg{k} float32")
    if second:
        u = [rng.standard_normal(a.shape) for a in args]
        s = nb_second(f, args, v, u)

        def first(*a):
            return np.concatenate([np.ravel(x) for x in nb.vjp(f, a, v)[1]])
        fd = central_vjp(first, args, np.concatenate([np.ravel(x) for x in u]), h=1e-5)
        for k, (sk, fk) in enumerate(zip(s, fd)):
            assert_close(sk, fk, rtol=1e-5, atol=1e-6, what=f"d2/darg{k} vs finite differences")
    return g
