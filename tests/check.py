"""One thorough derivative check, used by the structural-op and numpy-function tests."""
import numpy as np

import numbad as nb
from numbad import sweeps
from numbad.functional._common import Call

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
    check_sweeps(f, args, [v, rng.standard_normal(np.shape(ref)), rng.standard_normal(np.shape(ref))], rng)
    if second:
        u = [rng.standard_normal(a.shape) for a in args]
        # forward mode both ways: the tangent sweep and the double-backward trick (create_graph)
        _, jv = nb.jvp(f, args, tuple(u))
        _, jvc = nb.jvp(f, args, tuple(u), create_graph=True)
        assert_close(jvc.detach() if isinstance(jvc, nb.Tensor) else jvc, jv, rtol=1e-10, atol=1e-12,
                     what="jvp create_graph (double backward) vs the tangent sweep")
        s = nb_second(f, args, v, u)
        # the fused forward-over-reverse hvp of <f, v> against the create_graph path
        _, hv = nb.hvp(lambda *a: np.sum(f(*a) * v), args, tuple(u))
        for k, (hk, sk) in enumerate(zip(hv, s)):
            assert_close(hk, sk, rtol=1e-9, atol=1e-11, what=f"hvp d2/darg{k} vs the create_graph path")

        def first(*a):
            return np.concatenate([np.ravel(x) for x in nb.vjp(f, a, v)[1]])
        fd = central_vjp(first, args, np.concatenate([np.ravel(x) for x in u]), h=1e-5)
        for k, (sk, fk) in enumerate(zip(s, fd)):
            assert_close(sk, fk, rtol=1e-5, atol=1e-6, what=f"d2/darg{k} vs finite differences")
    return g


def check_sweeps(f, args, vs, rng, lanes=3):
    """Every other interpreter on the tape of ``f``: forward replay, tangents, lanes.

    The replay recomputes every recorded value; the tangent sweep matches
    central differences along a random direction; the ``L``-lane reverse and
    tangent sweeps match ``L`` one-lane sweeps.
    """
    call = Call(tuple(args), False)
    out = call.run(f)
    tape, begin, end = call.tape, call.begin, call.tape.n_ops
    ops, off, size, ip, vals = tape.arrays()
    replay = vals.copy()
    for o in ops[begin:end, 1]:
        if o not in tape.view_root:          # (a view's values are its base's: nothing to recompute)
            replay[off[o]:off[o] + size[o]] = np.nan
    sweeps.interpreters().forward(ops, off, size, ip, replay, begin, end, sweeps.workspace())
    assert_close(replay, vals, rtol=1e-10, atol=1e-12, what="forward replay")
    if not isinstance(out, nb.Tensor) or out._tape is not tape:
        return
    nodes, n = call.input_nodes, out._node
    us = [[rng.standard_normal(np.shape(a)) for a in args] for _ in range(lanes)]
    jv = sweeps.tangent(tape, begin, end, nodes, us[0], [n])[0]
    jv = np.zeros(out.shape) if jv is None else jv.reshape(out.shape)
    h = 1e-6
    plus = evaluate(f, [a + h * u for a, u in zip(args, us[0])])
    minus = evaluate(f, [a - h * u for a, u in zip(args, us[0])])
    assert_close(jv, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-6, what="tangent vs finite differences")
    # lanes: one sweep pushing `lanes` tangents (cotangents) equals `lanes` one-lane sweeps
    tl = sweeps.tangent(tape, begin, end, nodes,
                        [np.stack([u[k] for u in us], axis=-1) for k in range(len(args))], [n], lanes)[0]
    for j, u in enumerate(us):
        t1 = sweeps.tangent(tape, begin, end, nodes, u, [n])[0]
        if t1 is not None:
            assert_close(tl.reshape(-1, lanes)[:, j], t1, rtol=1e-12, atol=1e-12, what="tangent lanes")
    rl = sweeps.reverse(tape, begin, end, nodes, [(n, np.stack([np.asarray(v) for v in vs], axis=-1))], lanes)
    for j, v in enumerate(vs):
        r1 = sweeps.reverse(tape, begin, end, nodes, [(n, v)])
        for k, (a, b) in enumerate(zip(rl, r1)):
            if b is not None:
                assert_close(a.reshape(-1, lanes)[:, j], b, rtol=1e-12, atol=1e-12, what=f"reverse lanes arg{k}")
