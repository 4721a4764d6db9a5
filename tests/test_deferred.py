"""Deferred large values (``Recording.defer_value``): results kept out of the arena, written
when a rule will read them, or recomputed by the sweep.

``BIG = 8`` here makes arrays of a few dozen elements take the large-value path, and the
arena region of every deferred node starts as NaN, so a value the sweep reads without it
having been written or recomputed shows. Each case is held to the same call with deferral
off (bit for bit) and to PyTorch.
"""
import threading

import numpy as np
import pytest
import torch

import numbad as nb
from helpers import torch_vjp
from numbad import sweeps, tape as tape_module
from numbad.functional import _common, vjp as vjp_module
from numbad.tensor import core

RNG = np.random.default_rng(11)


@pytest.fixture(params=["plain", "tiled"])
def deferring(request, monkeypatch):
    """Small large values, NaN in the arena where deferred values belong, and a log of the
    tapes recorded (to check that values were deferred, and which were to be recomputed)."""
    monkeypatch.setattr(core, "BIG", 8)
    if request.param == "tiled":
        monkeypatch.setattr(core, "VIEW_MIN_SIZE", 1)
        monkeypatch.setattr(sweeps, "TILE", 4)
        monkeypatch.setattr(sweeps, "TILED_MIN", 8)
        monkeypatch.setattr(sweeps, "EAGER_TILED_MIN", 8)
        monkeypatch.setattr(sweeps, "TWO_THREADS_MIN", 8)
        monkeypatch.setattr(sweeps, "THREADS", 2)
    alloc = tape_module.Recording.alloc

    def poisoned(self, shape, view=True):
        got = alloc(self, shape, view)
        if not view:
            off = self.node_off[got]
            self.arena[off:off + self.node_size[got]] = np.nan
        return got
    monkeypatch.setattr(tape_module.Recording, "alloc", poisoned)
    tapes = []
    tape_init = tape_module.Recording.__init__

    def init(self, *args, **kwargs):
        tape_init(self, *args, **kwargs)
        tapes.append(self)
    monkeypatch.setattr(tape_module.Recording, "__init__", init)
    return tapes


def _without_deferral(monkeypatch, f, inputs, v=None):
    with monkeypatch.context() as m:
        m.setattr(vjp_module, "start_call",
                  lambda inputs, create_graph, defer=False: _common.start_call(inputs, create_graph))
        return nb.vjp(f, inputs, v)


CASES = [
    # name, numpy function, torch function, input shapes, values recomputed?
    ("rosenbrock", lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
     lambda x: (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum(), [(41,)], True),
    # sin: inexact, so copied when mul reads it; exp reads its own result (never deferred);
    # x ** 2 twice: the second finds the first's node, whose Tensor is gone (revived)
    ("rules read values", lambda x: np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2)),
     lambda x: (torch.sin(x) * torch.exp(-x ** 2) + torch.log1p(x ** 2)).sum(), [(40,)], True),
    # a recomputed chain: c needs b needs a, and x + 2
    ("chain of exact ops", lambda x: np.sum(np.sin((x * x - x) / (x + 2.0))),
     lambda x: torch.sin((x * x - x) / (x + 2.0)).sum(), [(33,)], True),
    # b is exact but made from sin(x), which cannot be recomputed: b is copied instead
    ("exact from inexact", lambda x: np.sum((np.sin(x) + 1.0) * (np.sin(x) + 1.0)),
     lambda x: ((torch.sin(x) + 1.0) * (torch.sin(x) + 1.0)).sum(), [(30,)], False),
    ("two inputs", lambda x, y: np.sum(np.tanh(x - y) * (x + y) + np.sqrt(x * x + 1.0) / y),
     lambda x, y: (torch.tanh(x - y) * (x + y) + torch.sqrt(x * x + 1.0) / y).sum(), [(24,), (24,)], True),
    ("a product", lambda x: np.sum(np.abs(x - 0.3) * -x),
     lambda x: (torch.abs(x - 0.3) * -x).sum(), [(20,)], True),
]


@pytest.mark.parametrize("name, f, tf, shapes, recomputes", CASES, ids=[c[0] for c in CASES])
def test_deferred_values_give_the_same_bits(deferring, monkeypatch, name, f, tf, shapes, recomputes):
    tapes = deferring
    inputs = tuple(RNG.uniform(0.5, 1.5, s) for s in shapes)
    out, grads = nb.vjp(f, inputs)
    assert tapes[-1].defer and tapes[-1]._deferred, "no value was deferred"
    assert bool(tapes[-1]._redo) == recomputes
    out0, grads0 = _without_deferral(monkeypatch, f, inputs)
    assert not tapes[-1]._deferred
    assert out.tobytes() == out0.tobytes()
    for g, g0, t in zip(grads, grads0, torch_vjp(tf, inputs, 1.0)[1]):
        assert not np.isnan(g).any()
        assert g.tobytes() == g0.tobytes()
        np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-12)


def test_a_deferred_value_read_by_a_matmul_a_view_or_a_broadcast(deferring, monkeypatch):
    W = RNG.normal(size=(6, 3))

    def f(x):
        y = np.sin(x) * 2.0                      # deferred, then read by matmul through a view
        m = y.reshape(8, 6) @ W
        z = (x + 1.0).reshape(48, 1) * np.ones((1, 3))      # broadcast reads x + 1
        return np.sum(np.tanh(m)) + np.sum(z * z) + np.sum(y[1:] * y[:-1])

    def tf(x):
        y = torch.sin(x) * 2.0
        m = y.reshape(8, 6) @ torch.tensor(W)
        z = (x + 1.0).reshape(48, 1) * torch.ones((1, 3), dtype=torch.float64)
        return torch.tanh(m).sum() + (z * z).sum() + (y[1:] * y[:-1]).sum()
    x = RNG.normal(size=48)
    out, g = nb.vjp(f, x)
    out0, g0 = _without_deferral(monkeypatch, f, x)
    assert g.tobytes() == g0.tobytes() and out.tobytes() == out0.tobytes()
    np.testing.assert_allclose(g, torch_vjp(tf, (x,), 1.0)[1][0], rtol=1e-12, atol=1e-12)


def test_a_hessian_vector_product_through_a_deferring_call(deferring):
    """create_graph inside a deferring call joins its tape: values recorded before and after
    are both there for the differentiable sweep."""
    u = RNG.normal(size=30)

    def f(x):
        return np.sum(np.sin(x * x - 1.0) * (x + 3.0))

    def tf(x):
        return (torch.sin(x * x - 1.0) * (x + 3.0)).sum()

    def g(x):
        before = x * 2.0 - 1.0                   # deferred before the inner call joins
        _, gx = nb.vjp(lambda y: f(y) + np.sum(before * y), x, create_graph=True)
        return np.sum(gx * u)

    def tg(x):
        before = x * 2.0 - 1.0
        y = x.clone()                   # numbad's inner call differentiates a copy of x
        (gx,) = torch.autograd.grad(tf(y) + (before * y).sum(), y, create_graph=True)
        return (gx * torch.tensor(u)).sum()
    x = RNG.normal(size=30)
    _, h = nb.vjp(g, x)
    xt = torch.tensor(x, requires_grad=True)
    (ht,) = torch.autograd.grad(tg(xt), xt)
    np.testing.assert_allclose(h, ht.numpy(), rtol=1e-12, atol=1e-12)
    outer = deferring[0]
    assert outer._deferred is not None and not outer.defer     # deferred, then joined


def test_values_held_outside_a_call_keep_their_bits(deferring):
    """Scratch memory is reused only once nothing holds it: an output, a value read out
    inside the function, and a value kept from an earlier call stay as they were."""
    x = RNG.normal(size=40)
    kept = []

    def f(x):
        y = x * 3.0
        kept.append(y.detach())
        return y - 1.0

    out, g = nb.vjp(f, x, np.ones(40))
    first = kept[0].copy(), out.copy()
    for _ in range(3):
        nb.vjp(f, x + 1.0, np.ones(40))
        nb.vjp(lambda x: np.sum((x * 5.0 - 2.0) ** 2), x + 2.0)
    np.testing.assert_array_equal(kept[0], first[0])
    np.testing.assert_array_equal(out, first[1])
    np.testing.assert_array_equal(first[1], x * 3.0 - 1.0)


def test_deferring_calls_in_threads_and_after_an_exception(deferring):
    def f(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def broken(x):
        y = x * x - 1.0
        raise ValueError("inside func")

    xs = [RNG.normal(size=50) for _ in range(4)]
    expected = [nb.vjp(f, x)[1] for x in xs]
    with pytest.raises(ValueError, match="inside func"):
        nb.vjp(broken, xs[0])
    results = [None] * 4

    def work(i):
        for _ in range(20):
            results[i] = nb.vjp(f, xs[i])[1]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        assert r.tobytes() == e.tobytes()


def test_other_calls_and_float32_do_not_defer(deferring):
    tapes = deferring
    x = RNG.normal(size=20)
    f = lambda x: np.sum((x * 2.0 - 1.0) ** 2)          # noqa: E731
    nb.vjp(f, x.astype(np.float32))
    assert not tapes[-1]._deferred
    nb.jvp(f, x, np.ones(20))
    assert not tapes[-1].defer and not tapes[-1]._deferred
    nb.vjp(f, x, create_graph=True)
    assert not tapes[-1].defer and not tapes[-1]._deferred
