"""The one-call reverse sweep of a small vjp (``sweeps.reverse_inputs``) against the general one.

A ``create_graph=False`` vjp with one seed on a small tape, and ``nb.grad``, take
``reverse_inputs``: the flags, the seed, the sweep and the gradients in one njit call. Every
case here is run both ways (the general path forced by ``fits_reverse_inputs`` returning
False) and must give the same bits, and the values a closed form or PyTorch gives.
"""
import numpy as np
import pytest
import torch

import numbad as nb
from helpers import ODD_ARRAY_IDS, ODD_ARRAYS, one_call_and_general, record_calls, same_bits
from numbad import sweeps

RNG = np.random.default_rng(7)


def _both_ways(monkeypatch, run):
    return one_call_and_general(monkeypatch, run, "reverse_inputs")


def test_the_seed_example(monkeypatch):
    x, v = RNG.uniform(size=(4, 4)), np.ones(4)
    fast, general = _both_ways(monkeypatch, lambda: nb.vjp(lambda x: x.exp().sum(dim=1), x, v))
    same_bits(fast[0], general[0])
    same_bits(fast[1], general[1])
    np.testing.assert_array_equal(fast[1], np.exp(x))


def test_several_inputs_one_of_them_unused(monkeypatch):
    a, b, c = RNG.uniform(size=(3, 2)), RNG.uniform(size=2), RNG.uniform(size=5)

    def f(a, b, c):
        return np.sum(np.sin(a) @ b) + np.sum(a * a)

    fast, general = _both_ways(monkeypatch, lambda: nb.vjp(f, (a, b, c)))
    same_bits(fast[1], general[1])
    ga, gb, gc = fast[1]
    _, (ta, tb, tc) = torch.autograd.functional.vjp(
        lambda a, b, c: torch.sum(torch.sin(a) @ b) + torch.sum(a * a) + 0 * c.sum(),
        tuple(torch.tensor(t) for t in (a, b, c)))
    np.testing.assert_allclose(ga, ta.numpy(), rtol=1e-14)
    np.testing.assert_allclose(gb, tb.numpy(), rtol=1e-14)
    np.testing.assert_array_equal(gc, np.zeros(5))
    # each gradient keeps to its own values: writing one leaves the others
    ga[...] = 7.0
    np.testing.assert_allclose(gb, tb.numpy(), rtol=1e-14)
    np.testing.assert_array_equal(gc, np.zeros(5))


def test_strict_names_the_input_no_cotangent_reached(monkeypatch):
    a, b = RNG.uniform(size=3), RNG.uniform(size=3)
    for forced in (False, True):
        with monkeypatch.context() as m:
            if forced:
                m.setattr(sweeps, "fits_reverse_inputs", lambda *_: False)
            with pytest.raises(RuntimeError, match="independent of input 1"):
                nb.vjp(lambda a, b: np.sum(a * a), (a, b), strict=True)


@pytest.mark.parametrize("v", ODD_ARRAYS, ids=ODD_ARRAY_IDS)
def test_any_v_numpy_accepts(monkeypatch, v):
    x = RNG.uniform(size=(2, 3))
    fast, general = _both_ways(monkeypatch, lambda: nb.vjp(lambda x: np.tanh(x) * 2.0, x, v))
    same_bits(fast[1], general[1])
    np.testing.assert_allclose(fast[1], 2.0 * (1.0 - np.tanh(x) ** 2) * v, rtol=1e-15)


def test_float32_zero_d_and_identity(monkeypatch):
    x = np.float32(0.5) * np.ones((2, 2), np.float32)
    s = np.array(1.5)
    fast, general = _both_ways(monkeypatch, lambda: nb.vjp(lambda x, s: np.sum(x * x) * s, (x, s)))
    same_bits(fast[1], general[1])
    assert fast[1][0].dtype == np.float32 and fast[1][1].shape == ()
    np.testing.assert_allclose(fast[1][0], 2 * x * 1.5, rtol=1e-6)
    np.testing.assert_allclose(fast[1][1], np.sum(x * x), rtol=1e-6)
    # the output is the input itself: the seed is the gradient
    v = RNG.uniform(size=(2, 2))
    fast, general = _both_ways(monkeypatch, lambda: nb.vjp(lambda x: x, RNG.uniform(size=(2, 2)), v))
    same_bits(fast[1], general[1])
    np.testing.assert_array_equal(fast[1], v)


def test_grad_for_scipy(monkeypatch):
    x = RNG.uniform(-1.0, 1.0, 5)

    def rosen(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    fast, general = _both_ways(monkeypatch, lambda: nb.value_and_grad(rosen)(x))
    assert fast[0] == general[0] == rosen(x)
    same_bits(fast[1], general[1])
    t = torch.tensor(x, requires_grad=True)
    torch.sum(100.0 * (t[1:] - t[:-1] ** 2) ** 2 + (1.0 - t[:-1]) ** 2).backward()
    np.testing.assert_allclose(fast[1], t.grad.numpy(), rtol=1e-14)
    # a function of something else than x: zeros
    g = nb.grad(lambda x: np.sum(np.ones(3) * 2.0))(x)
    np.testing.assert_array_equal(g, np.zeros(5))


def test_the_general_sweep_serves_what_the_one_call_cannot(monkeypatch):
    """Two seeds, many inputs and large tapes go through ``sweeps.reverse``."""
    taken = []
    monkeypatch.setattr(sweeps, "reverse_inputs", lambda *a: taken.append(a))
    x = RNG.uniform(size=3)
    _, g = nb.vjp(lambda x: (x * 2.0, x * x), x, (np.ones(3), np.ones(3)))
    np.testing.assert_allclose(g, 2.0 + 2.0 * x, rtol=1e-15)
    xs = tuple(RNG.uniform(size=2) for _ in range(sweeps.MAX_SMALL_INPUTS + 1))
    _, gs = nb.vjp(lambda *xs: sum(np.sum(t * t) for t in xs), xs)
    np.testing.assert_allclose(np.concatenate(gs), 2.0 * np.concatenate(xs), rtol=1e-15)
    big = RNG.uniform(size=sweeps.SMALL_TAPE)
    _, g = nb.vjp(lambda x: np.sum(x * 3.0), big)
    np.testing.assert_array_equal(g, np.full(big.shape, 3.0))
    assert not taken


def _general_handling(monkeypatch, run):
    """``run()`` through ``nb.vjp``'s shortcut for the common call (checked to be taken), then
    with the shortcut refused, so that the general argument handling serves the same call."""
    from numbad.functional import vjp as vjp_module
    with monkeypatch.context() as m:
        handled = record_calls(m, vjp_module, "as_output_tuple")
        short = run()
    assert not handled, "the shortcut was not taken"
    with monkeypatch.context() as m:
        m.setattr(vjp_module, "_common_seed", lambda *_: None)
        handled = record_calls(m, vjp_module, "as_output_tuple")
        general = run()
    assert handled
    return short, general


@pytest.mark.parametrize("case", ["seed", "tuple of one", "two inputs", "float32", "0-d, v=None",
                                  "0-d float32, v=None"])
def test_the_common_call_shortcut_gives_what_the_general_handling_gives(monkeypatch, case):
    # each function in PyTorch's method spelling, which numbad's Tensor and torch.Tensor share
    x = RNG.uniform(size=(4, 4))
    f, inputs, v = (lambda x: x.exp().sum(dim=1)), x, RNG.uniform(size=4)
    if case == "tuple of one":
        inputs = (x,)
    elif case == "two inputs":
        f, inputs, v = (lambda x, w: (x @ w).tanh()), (x, RNG.uniform(size=(4, 2))), RNG.uniform(size=(4, 2))
    elif case == "float32":
        inputs, v = x.astype(np.float32), v.astype(np.float32)
    elif case.startswith("0-d"):
        f, v = (lambda x: (x.sin() * x).sum()), None
        if "float32" in case:
            inputs = x.astype(np.float32)
    short, general = _general_handling(monkeypatch, lambda: nb.vjp(f, inputs, v))
    same_bits(short[0], general[0])
    assert type(short[1]) is type(general[1])
    same_bits(short[1], general[1])
    tin = tuple(torch.tensor(a) for a in (inputs if isinstance(inputs, tuple) else (inputs,)))
    tout, tg = torch.autograd.functional.vjp(f, tin, None if v is None else torch.tensor(v))
    rtol = 1e-6 if "float32" in case else 1e-14
    np.testing.assert_allclose(short[0], tout.numpy(), rtol=rtol)
    for g, t in zip(short[1] if isinstance(short[1], tuple) else (short[1],), tg):
        assert g.dtype == t.numpy().dtype
        np.testing.assert_allclose(g, t.numpy(), rtol=rtol)


def test_the_shortcut_keeps_strict_and_what_it_does_not_serve(monkeypatch):
    a, b = RNG.uniform(size=3), RNG.uniform(size=3)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        nb.vjp(lambda a, b: a * a, (a, b), np.ones(3), strict=True)
    with pytest.raises(RuntimeError, match="Output 0 of the user-provided function does not require"):
        nb.vjp(lambda a: a.detach() * 2.0, a, np.ones(3), strict=True)
    # a v of another shape, an integer v, a 0-d output given an array v: the general handling
    with pytest.raises(RuntimeError, match=r"v has invalid size: should be \(3,\) but got \(2,\)"):
        nb.vjp(lambda a: a * a, a, np.ones(2))
    _, g = nb.vjp(lambda a: a * a, a, np.arange(3))
    np.testing.assert_array_equal(g, 2 * a * np.arange(3))
    _, g = nb.vjp(lambda a: np.sum(a * a), a, np.array(2.0))
    np.testing.assert_allclose(g, 4 * a, rtol=1e-15)
    # a constant output: zeros, as PyTorch gives
    out, g = nb.vjp(lambda a: np.ones(3), a, np.ones(3))
    np.testing.assert_array_equal(g, np.zeros(3))
