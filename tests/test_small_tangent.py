"""The one-call tangent sweep of a small jvp (``sweeps.tangent_inputs``) against the general one.

A ``create_graph=False``, non-strict jvp of a function returning one Tensor, on a small
tape, takes ``tangent_inputs``: the flags, the input tangents, the sweep and the output's
tangent in one njit call. Every case here is run both ways (the general path forced by
``fits_reverse_inputs`` returning False) and must give the same bits, and the values a
closed form or PyTorch gives.
"""
import numpy as np
import pytest
import torch

import numbad as nb
from helpers import ODD_ARRAY_IDS, ODD_ARRAYS, one_call_and_general, same_bits
from numbad import sweeps

RNG = np.random.default_rng(11)


def _both_ways(monkeypatch, run):
    return one_call_and_general(monkeypatch, run, "tangent_inputs")


def test_the_seed_example(monkeypatch):
    x, u = RNG.uniform(size=(4, 4)), RNG.uniform(size=(4, 4))
    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(lambda x: x.exp().sum(dim=1), x, u))
    same_bits(fast, general)
    np.testing.assert_allclose(fast[1], np.sum(np.exp(x) * u, axis=1), rtol=1e-15)


def test_several_inputs_against_pytorch(monkeypatch):
    A, x, c = RNG.uniform(size=(5, 5)), RNG.uniform(size=5), RNG.uniform(size=3)
    u = tuple(RNG.uniform(-1, 1, a.shape) for a in (A, x, c))

    def f(A, x, c):
        return np.tanh(A @ x) * x

    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(f, (A, x, c), u))
    same_bits(fast, general)
    _, tjv = torch.func.jvp(lambda A, x, c: torch.tanh(A @ x) * x, tuple(map(torch.tensor, (A, x, c))),
                            tuple(map(torch.tensor, u)))
    np.testing.assert_allclose(fast[1], tjv.numpy(), rtol=1e-13)


@pytest.mark.parametrize("u", ODD_ARRAYS, ids=ODD_ARRAY_IDS)
def test_any_v_numpy_accepts(monkeypatch, u):
    x = RNG.uniform(size=(2, 3))
    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(lambda x: np.tanh(x) * 2.0, x, u))
    same_bits(fast, general)
    np.testing.assert_allclose(fast[1], 2.0 * (1.0 - np.tanh(x) ** 2) * u, rtol=1e-15)


def test_float32_zero_d_numbers_and_identity(monkeypatch):
    x = np.float32(0.5) * np.ones((2, 2), np.float32)
    s = np.array(1.5)
    u = (np.ones((2, 2), np.float32), np.array(2.0))
    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(lambda x, s: np.sum(x * x) * s, (x, s), u))
    same_bits(fast, general)
    np.testing.assert_allclose(fast[1], np.sum(2 * x) * 1.5 + np.sum(x * x) * 2.0, rtol=1e-6)
    # a Python float as the input and its tangent
    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(lambda t: t * t * 3.0, 2.0, 0.5))
    same_bits(fast, general)
    assert fast[1] == 6.0 and fast[1].shape == ()
    # the output is the input itself: the tangent is v
    x, u = RNG.uniform(size=(2, 2)), RNG.uniform(size=(2, 2))
    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(lambda x: x, x, u))
    same_bits(fast, general)
    np.testing.assert_array_equal(fast[1], u)


def test_an_output_of_no_input_has_a_zero_tangent(monkeypatch):
    x = RNG.uniform(-1, 1, 4)
    fast, general = _both_ways(monkeypatch, lambda: nb.jvp(lambda x: np.where(x > 0, 1.0, 2.0) * 3.0, x,
                                                           np.ones(4)))
    same_bits(fast, general)
    np.testing.assert_array_equal(fast[1], np.zeros(4))
    assert fast[0].tolist() == np.where(x > 0, 3.0, 6.0).tolist()


def test_what_the_one_call_does_not_serve(monkeypatch):
    """strict, create_graph, tuples of outputs and large tapes go through ``sweeps.tangent``."""
    taken = []
    monkeypatch.setattr(sweeps, "tangent_inputs", lambda *a: taken.append(a))
    a, b = RNG.uniform(size=3), RNG.uniform(size=3)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        nb.jvp(lambda a, b: a * a, (a, b), (np.ones(3), np.ones(3)), strict=True)
    _, jv = nb.jvp(lambda a: a * a, a, np.ones(3), strict=True)
    np.testing.assert_allclose(jv, 2 * a, rtol=1e-15)
    _, jv = nb.jvp(lambda a: a * a, a, np.ones(3), create_graph=True)
    np.testing.assert_allclose(jv._v, 2 * a, rtol=1e-15)
    _, (j1, j2) = nb.jvp(lambda a: (a * a, a * 3.0), a, np.ones(3))
    np.testing.assert_allclose(j1, 2 * a, rtol=1e-15)
    np.testing.assert_allclose(j2, np.full(3, 3.0))
    big = RNG.uniform(size=sweeps.SMALL_TAPE)
    _, jv = nb.jvp(lambda x: x * 3.0, big, np.ones(big.shape))
    np.testing.assert_array_equal(jv, np.full(big.shape, 3.0))
    assert not taken
