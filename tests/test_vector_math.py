"""The sweeps' own ``exp``, ``tanh`` and ``expit`` (``numbad.sweeps.scalar_math``), which LLVM vectorizes.

They replace the C library's in every CPU sweep, so they are held here to the accuracy
of the C library's: errors against a 50-digit reference (``decimal``) within 1 ulp for
``exp`` and 1.5 ulp for ``tanh`` (1.29 the most measured over 5*10^5 arguments, just above
0.625 where its formula changes; glibc's ``tanh`` reaches 2) and 2 ulp for ``expit`` (1.8
measured; 1.86 with the C library's ``exp``); IEEE special values and the overflow and
underflow edges as the C library has them; and the same bits in every path of a replay
(an array, one element, a batch).
"""
import decimal
import math

import numpy as np
import pytest

import numbad as nb
from numbad.sweeps import scalar_math

RNG = np.random.default_rng(5)
EXACT = decimal.Context(prec=50)         # (the references: 50 digits)


def _exact_exp(x):
    return EXACT.exp(decimal.Decimal(float(x)))


def _exact_tanh(x):
    e = EXACT.exp(EXACT.multiply(2, decimal.Decimal(float(x))))
    return EXACT.divide(EXACT.subtract(e, 1), EXACT.add(e, 1))


def _exact_expit(x):
    return EXACT.divide(1, EXACT.add(1, EXACT.exp(EXACT.minus(decimal.Decimal(float(x))))))


def _ulp_error(got, exact):
    """|got - exact| in units of the last place of ``exact`` rounded to float64."""
    return float(abs(decimal.Decimal(float(got)) - exact) / decimal.Decimal(math.ulp(float(exact))))


def _samples(lo, hi, n=2500):
    return RNG.uniform(lo, hi, n)


@pytest.mark.parametrize("lo, hi", [(-0.35, 0.35), (-5.0, 5.0), (-700.0, 700.0), (-745.0, -708.5),
                                    (700.0, 709.78), (-1e-9, 1e-9)])
def test_exp_within_one_ulp(lo, hi):
    worst = max(_ulp_error(scalar_math.exp(x), _exact_exp(x)) for x in _samples(lo, hi))
    assert worst <= 1.0


@pytest.mark.parametrize("lo, hi", [(-0.625, 0.625), (0.5, 0.75), (-3.0, 3.0), (-25.0, 25.0),
                                    (-1e-6, 1e-6)])
def test_tanh_within_its_bound(lo, hi):
    worst = max(_ulp_error(scalar_math.tanh(x), _exact_tanh(x)) for x in _samples(lo, hi))
    assert worst <= 1.5


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (-40.0, 40.0), (-700.0, 700.0)])
def test_expit_within_its_bound(lo, hi):
    worst = max(_ulp_error(scalar_math.expit(x), _exact_expit(x)) for x in _samples(lo, hi))
    assert worst <= 2.0
    assert [scalar_math.expit(x) for x in (math.inf, -math.inf, 0.0, -800.0)] == [1.0, 0.0, 0.5, 0.0]
    assert math.isnan(scalar_math.expit(math.nan))


def _same(a, b):
    return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)


EXP_EDGES = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-320, -1e-320, 709.782712893384,
             709.7827128933841, -708.3964185322641, -708.4, -744.44, -745.1332191019411,
             -745.1332191019412, -800.0, 800.0, 1e300, -1e300]


@pytest.mark.parametrize("x", EXP_EDGES)
def test_exp_special_values_and_edges(x):
    try:
        want = math.exp(x)
    except OverflowError:
        want = math.inf
    got = scalar_math.exp(x)
    # (1 ulp apart at most where the result is finite and nonzero; the same otherwise)
    if want != want or want in (0.0, math.inf):
        assert _same(got, want)
    else:
        assert abs(got - want) <= math.ulp(want)


TANH_EDGES = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e-310, 2.0 ** -28,
              -(2.0 ** -28), 3e-9, 0.625, -0.625, 22.0, -22.0, 400.0, -400.0, 1e308]


@pytest.mark.parametrize("x", TANH_EDGES)
def test_tanh_special_values_and_edges(x):
    got, want = scalar_math.tanh(x), math.tanh(x)
    assert _same(got, want) or abs(got - want) <= 2 * math.ulp(want)


def test_tanh_is_monotonic_across_its_two_formulas():
    x = 0.625 + np.arange(-2000, 2000) * 2.0 ** -52        # (a few hundred ulps either side)
    y = np.array([scalar_math.tanh(v) for v in x])
    assert np.all(np.diff(y) >= 0.0) and np.all(np.diff(np.array([scalar_math.tanh(-v) for v in x])) <= 0.0)


@pytest.mark.parametrize("name", ["exp", "tanh", "expit"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_replay_path_gives_the_functions_bits(name, dtype):
    # the array loops (vectorized), the one-element path and the batched replay
    ufunc = nb.special.expit if name == "expit" else getattr(np, name)
    scalar = getattr(scalar_math, name)
    x = RNG.uniform(-3.0, 3.0, 40).astype(dtype)
    want = np.array([scalar(v) for v in x]).astype(dtype)
    tape = nb.record(lambda a: ufunc(a) * 1.0, x)
    assert tape(x).tobytes() == want.tobytes()
    one = nb.record(lambda a: ufunc(a) * 1.0, x[:1])
    assert all(one(x[k:k + 1]).tobytes() == want[k:k + 1].tobytes() for k in range(5))
    out, _ = tape.batch_vjp(np.stack([x, x[::-1]]), np.ones((2, 40), dtype))
    assert out.tobytes() == np.stack([want, want[::-1]]).tobytes()
    # and numpy's own values to within the functions' bounds
    numpys = 1.0 / (1.0 + np.exp(-x)) if name == "expit" else ufunc(x)
    np.testing.assert_allclose(tape(x), numpys, rtol=4 * np.finfo(dtype).eps, atol=0)
