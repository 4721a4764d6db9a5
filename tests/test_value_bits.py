"""Values whose last bits depend on how numpy itself computes them, held to numpy's.

``**`` is two functions in numpy: on two numbers (numpy scalars, Python numbers) it is the
C library's ``pow``, on anything holding an array (a 0-d input among them) ``np.power``'s
loop, which on processors with AVX-512 is numpy's own vectorised ``pow`` and differs from
the C library's in the last bit for a few percent of arguments (and takes shortcuts for
exponents 2, 0.5, -1 and 1 that the C library's does not). A large elementwise result of a
transposed operand keeps numpy's layout, on which numpy's later sums and matrix-vector
products add in another order than on a C-ordered copy.
"""
import numpy as np
import pytest
import torch

import numbad as nb

RNG = np.random.default_rng(11)


def _arguments(n=400):
    """``n`` random (base, exponent) pairs, and, among 20,000 more, those where numpy's own
    spellings differ on this processor (none where its loop is the C library's ``pow``)."""
    b, e = RNG.uniform(0.05, 3.0, 20_000), RNG.uniform(-2.5, 2.5, 20_000)
    scalar = np.array([np.float64(p) ** np.float64(q) for p, q in zip(b, e)])
    squared = np.array([np.float64(p) ** 2 for p in b])
    telling = (scalar != np.power(b, e)) | (squared != b * b)
    return np.concatenate([b[:n], b[telling][:200]]), np.concatenate([e[:n], e[telling][:200]])


BASES, EXPONENTS = _arguments()
N = len(BASES)

POWERS = [
    # name, function of two one-element values, which numpy computation it is
    ("numbers ** numbers", lambda x, y: (x * 1.0) ** (y * 1.0)),          # scalar arithmetic
    ("0-d input ** 0-d input", lambda x, y: x ** y),                       # the ufunc
    ("number ** 0-d input", lambda x, y: (x * 1.0) ** y),                  # the ufunc
    ("np.power of numbers", lambda x, y: np.power(x * 1.0, y * 1.0)),     # the ufunc
    ("number ** 2", lambda x, y: (x * 1.0) ** 2 + y),                      # pow(x, 2.0)
    ("0-d input ** 2", lambda x, y: x ** 2 + y),                           # x * x
    ("np.power(number, 0.5)", lambda x, y: np.power(x * 1.0, 0.5) + y),   # sqrt
    ("number ** -1.0", lambda x, y: (x * 1.0) ** -1.0 + y),                # pow(x, -1.0)
    ("2.0 ** number", lambda x, y: 2.0 ** (y * 1.0) + x),                  # scalar arithmetic
    ("2.0 ** 0-d input", lambda x, y: 2.0 ** y + x),                       # the ufunc
    ("x.pow(number)", lambda x, y: (x * 1.0).pow(y * 1.0) if isinstance(x, nb.Tensor)
     else (x * 1.0) ** (y * 1.0)),
]


@pytest.mark.parametrize("name, f", POWERS, ids=[p[0] for p in POWERS])
def test_power_of_one_element_values_has_numpys_bits(name, f):
    differ = []
    for b, e in zip(BASES, EXPONENTS):
        x, y = np.array(b), np.array(e)
        out, (gx, gy) = nb.vjp(f, (x, y))
        expected = f(x, y)
        if out.tobytes() != np.float64(expected).tobytes():
            differ.append((b, e, out, expected))
    assert not differ, f"{len(differ)} of {N} differ from numpy, e.g. {differ[:3]}"


def test_power_derivatives_on_numbers_and_arrays():
    def f(x, y):
        return (x * 1.0) ** (y * 1.0) + x ** 2 + (x * 1.0) ** 2 + np.power(x * 1.0, y)
    x, y = np.array(1.7), np.array(-0.6)
    _, (gx, gy) = nb.vjp(f, (x, y))
    np.testing.assert_allclose(gx, 2 * y * x ** (y - 1) + 4 * x, rtol=1e-14)
    np.testing.assert_allclose(gy, 2 * x ** y * np.log(x), rtol=1e-14)


A = RNG.uniform(-1.0, 1.0, (300, 300))
C = RNG.uniform(-1.0, 1.0, (300, 1))
V = RNG.uniform(-1.0, 1.0, 300)
LAYOUTS = [
    # large results of transposed operands, then products and sums that read their layout
    ("(A.T * c) @ v", lambda a: np.multiply(a.T, C) @ V, lambda a: (a.T * torch.tensor(C)) @ torch.tensor(V)),
    ("sin(A.T) @ v", lambda a: np.sin(a.T) @ V, lambda a: torch.sin(a.T) @ torch.tensor(V)),
    ("sum(sin(A.T))", lambda a: np.sum(np.sin(a.T)), lambda a: torch.sin(a.T).sum()),
    ("sum(A.T * 2)", lambda a: np.sum(a.T * 2.0), lambda a: (a.T * 2.0).sum()),
    # a large product of a deferred value (3 A) and a transpose: numpy computes it, and the
    # sweep still reads the deferred value (recomputed), not stale arena memory
    ("sum(3A * A.T)", lambda a: np.sum((a * 3.0) * a.T), lambda a: ((a * 3.0) * a.T).sum()),
    ("in place", lambda a: np.sum(_in_place(a) * A), lambda a: ((a * 1.0) * a.T * torch.tensor(A)).sum()),
]


def _in_place(a):
    z = a * 1.0
    z *= a.T
    return z


def test_a_diagonal_is_numpys_strided_view():
    """``np.diagonal`` is a read-only strided view; numpy's product of it adds in another order
    than a product of a copy would."""
    differ = 0
    for _ in range(50):
        a, b = RNG.uniform(-1.0, 1.0, (6, 6)), RNG.uniform(-1.0, 1.0, (6, 5))
        out, (ga, gb) = nb.vjp(lambda a, b: np.diagonal(a) @ b, (a, b), np.ones(5))
        differ += not np.array_equal(out, np.diagonal(a) @ b)
        np.testing.assert_allclose(ga, np.diag(b.sum(axis=1)), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(gb, np.outer(np.diagonal(a), np.ones(5)), rtol=1e-14)
    assert differ == 0


def test_a_sort_keeps_numpys_layout():
    """``np.sort`` of a transpose is column-major in numpy, and so is a concatenation of it:
    a sum along the first axis then adds in that order."""
    def f(a):
        return np.concatenate([np.sort(a.T, axis=0), a.T]).sum(axis=0)
    differ = 0
    for _ in range(100):
        a = RNG.uniform(-1.0, 1.0, (3, 4))
        out, g = nb.vjp(f, a, np.ones(3))
        differ += not np.array_equal(out, f(a))
    assert differ == 0
    _, (tg,) = torch.autograd.functional.vjp(lambda t: torch.cat([torch.sort(t.T, dim=0)[0], t.T]).sum(0),
                                             (torch.tensor(a),), torch.ones(3, dtype=torch.float64))
    np.testing.assert_allclose(g, tg.numpy(), rtol=1e-14)


def test_a_product_along_an_axis_is_contiguous_as_numpys():
    """``np.prod`` along an axis of a transpose: numbad's last running products are a strided
    view of them, numpy's result is contiguous, and a product with a matrix reads the layout."""
    def f(a, b):
        return np.dot(np.prod(a.T, axis=0), b)
    differ = 0
    for _ in range(100):
        a, b = RNG.uniform(0.5, 1.5, (3, 2)), RNG.uniform(-1.0, 1.0, (3, 4))
        out, (ga, gb) = nb.vjp(f, (a, b), np.ones(4))
        differ += not np.array_equal(out, f(a, b))
    assert differ == 0
    p = np.prod(a, axis=1)
    np.testing.assert_allclose(ga, (p * b.sum(axis=1))[:, None] / a, rtol=1e-14)
    np.testing.assert_allclose(gb, np.outer(p, np.ones(4)), rtol=1e-14)


@pytest.mark.parametrize("name, f, tf", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_large_results_of_transposes_keep_numpys_layout(name, f, tf):
    expected = f(A)
    v = np.ones(np.shape(expected))
    out, g = nb.vjp(f, A, v)
    np.testing.assert_array_equal(out, expected)
    _, (tg,) = torch.autograd.functional.vjp(tf, (torch.tensor(A),), torch.tensor(v))
    np.testing.assert_allclose(g, tg.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [4, 300], ids=["small", "large"])
def test_an_in_place_write_keeps_numpys_layout(n):
    """numpy's ``z += b`` writes into ``z``: ``z = a.T * 1.0`` stays column-major, and a sum and a
    vector-matrix product over it add in that order."""
    def f(a, b):
        z = a.T * 1.0
        z += b
        w = np.log1p(z * z)
        return np.dot(np.sum(w, axis=0), w)
    differ = 0
    for _ in range(100 if n < 10 else 3):
        a, b = RNG.uniform(-1.0, 1.0, (n, n)), RNG.uniform(-1.0, 1.0, (n, n))
        out, (ga, gb) = nb.vjp(f, (a, b), np.ones(n))
        differ += not np.array_equal(out, f(a, b))
    assert differ == 0
    _, (tga, tgb) = torch.autograd.functional.vjp(
        lambda a, b: (lambda w: w.sum(0) @ w)(torch.log1p((a.T + b) ** 2)),
        (torch.tensor(a), torch.tensor(b)), torch.ones(n, dtype=torch.float64))
    np.testing.assert_allclose(ga, tga.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gb, tgb.numpy(), rtol=1e-12, atol=1e-12)
