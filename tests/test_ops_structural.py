"""Reductions, shapes, indexing and products: every spelling against FD and PyTorch."""
import numpy as np
import pytest
import torch

import numbad as nb

from check import check_derivatives

rng = np.random.default_rng(7)
X = rng.standard_normal((3, 4))
X3 = rng.standard_normal((2, 3, 4))

# ----------------------------------------------------------------------------- sum / mean
SUMS = [
    ("np.sum", lambda x: np.sum(x), lambda x: torch.sum(x)),
    ("np.sum axis=1", lambda x: np.sum(x, axis=1), lambda x: torch.sum(x, dim=1)),
    ("np.sum axis=-1 keepdims", lambda x: np.sum(x, axis=-1, keepdims=True), lambda x: x.sum(-1, keepdim=True)),
    ("np.sum axis=(0,2)", lambda x: np.sum(x, axis=(0, 2)), lambda x: x.sum(dim=(0, 2))),
    ("x.sum(dim=1, keepdim)", lambda x: x.sum(dim=1, keepdim=True), lambda x: x.sum(dim=1, keepdim=True)),
    ("x.sum(axis=0)", lambda x: x.sum(axis=0), lambda x: x.sum(dim=0)),
    ("np.mean", lambda x: np.mean(x), lambda x: torch.mean(x)),
    ("np.mean axis=(1,)", lambda x: np.mean(x, axis=(1,)), lambda x: x.mean(dim=(1,))),
    ("x.mean(dim=-2, keepdim)", lambda x: x.mean(dim=-2, keepdim=True), lambda x: x.mean(dim=-2, keepdim=True)),
    ("x.mean(axis=2, keepdims)", lambda x: x.mean(axis=2, keepdims=True), lambda x: x.mean(dim=2, keepdim=True)),
]


@pytest.mark.parametrize("name, f, tf", SUMS, ids=[s[0] for s in SUMS])
def test_sum_mean(name, f, tf):
    check_derivatives(f, (X3,), tf)


# ----------------------------------------------------------------------------- shapes
SHAPES = [
    ("reshape tuple", lambda x: np.reshape(x, (4, 6)) * 2, lambda x: x.reshape(4, 6) * 2),
    ("x.reshape(*dims)", lambda x: x.reshape(6, -1) ** 2, lambda x: x.reshape(6, -1) ** 2),
    ("x.view", lambda x: x.view(24) * 3, lambda x: x.view(24) * 3),
    ("np.transpose", lambda x: np.transpose(x) * 1.5, lambda x: x.permute(2, 1, 0) * 1.5),
    ("np.transpose axes", lambda x: np.transpose(x, (1, 0, 2)) ** 2, lambda x: x.permute(1, 0, 2) ** 2),
    ("x.T", lambda x: x.T ** 2, lambda x: x.permute(2, 1, 0) ** 2),
    ("x.transpose(0, 2) torch", lambda x: x.transpose(0, 2) ** 2, lambda x: x.transpose(0, 2) ** 2),
    ("x.permute", lambda x: x.permute(2, 0, 1) ** 2, lambda x: x.permute(2, 0, 1) ** 2),
    ("ravel", lambda x: np.ravel(x) ** 3, lambda x: x.reshape(-1) ** 3),
]


@pytest.mark.parametrize("name, f, tf", SHAPES, ids=[s[0] for s in SHAPES])
def test_shapes(name, f, tf):
    check_derivatives(f, (X3,), tf)


def test_t_on_matrix():
    check_derivatives(lambda x: x.t() ** 2, (X,), lambda x: x.t() ** 2)


# ----------------------------------------------------------------------------- indexing
MASK = X3 > 0
INDEXING = [
    ("int", lambda x: x[1]),
    ("negative int", lambda x: x[-1, 2]),
    ("scalar element", lambda x: x[1, 2, 3] * x[0, 0, 0]),
    ("slice", lambda x: x[:, 1:3]),
    ("step slice", lambda x: x[::-1, ::2, 1::2]),
    ("None and ellipsis", lambda x: x[None, ..., 2]),
    ("int array", lambda x: x[np.array([1, 0, 1])]),
    ("int arrays in two axes", lambda x: x[np.array([0, 1]), :, np.array([3, 0])]),
    ("boolean mask", lambda x: x[MASK]),
    ("list of ints", lambda x: x[:, [2, 0, 2]]),
    ("repeated indices", lambda x: x[np.array([0, 0, 1, 0])] * 2.0),
    ("negative steps with bounds", lambda x: x[1::-1, -1:0:-2]),
    ("ellipsis to a scalar", lambda x: x[1, ..., 2, 3] * x[0, ...]),
    ("advanced, basic and None mixed", lambda x: x[None, np.array([1, 0]), 1:3, np.array([3, 1])]),
    ("tensor boolean mask", lambda x: x[x > 0.1]),
    ("tensor integer index", lambda x: x[np.argmax(x[:, 0, 0])]),
    ("empty slice", lambda x: x[:, 2:2] * 3.0),
]


@pytest.mark.parametrize("name, f", INDEXING, ids=[s[0] for s in INDEXING])
def test_getitem(name, f):
    tf = (lambda x: f(x)) if name not in ("step slice", "boolean mask", "negative steps with bounds",
                                          "advanced, basic and None mixed", "tensor integer index") else None
    if name == "boolean mask":
        tf = lambda x: x[torch.tensor(MASK)]  # noqa: E731
    check_derivatives(f, (X3,), tf)


def test_iteration_and_len():
    def f(x):
        assert len(x) == 3
        return sum(row * (i + 1) for i, row in enumerate(x))
    g = check_derivatives(f, (X,))
    assert np.allclose(g[0], np.arange(1, 4)[:, None] * np.ones((3, 4)) * 0 + g[0])


# ----------------------------------------------------------------------------- products
A = rng.standard_normal((3, 4))
B = rng.standard_normal((4, 5))
v4 = rng.standard_normal(4)
v3 = rng.standard_normal(3)
BA = rng.standard_normal((2, 3, 4))
BB = rng.standard_normal((2, 4, 5))
PRODUCTS = [
    ("matrix @ matrix", lambda a, b: a @ b, (A, B)),
    ("np.matmul", lambda a, b: np.matmul(a, b), (A, B)),
    ("np.dot 2d", lambda a, b: np.dot(a, b), (A, B)),
    ("matrix @ vector", lambda a, b: a @ b, (A, v4)),
    ("vector @ matrix", lambda a, b: a @ b, (v3, A)),
    ("vector @ vector", lambda a, b: a @ b, (v4, v4 * 2)),
    ("np.dot vectors", lambda a, b: np.dot(a, b), (v4, v4 * 0.5)),
    ("batched", lambda a, b: a @ b, (BA, BB)),
    ("batch @ matrix", lambda a, b: a @ b, (BA, B)),
    ("matrix @ batch", lambda a, b: a @ b, (A, BB[:, :, :])),
    ("x.matmul", lambda a, b: a.matmul(b), (A, B)),
    ("x.dot", lambda a, b: a.dot(b), (A, B)),
    ("x @ x.T", lambda a, b: a @ a.T + b.sum(), (A, B)),
]


@pytest.mark.parametrize("name, f, args", PRODUCTS, ids=[p[0] for p in PRODUCTS])
def test_products(name, f, args):
    tf = f if "dot" not in name and "np." not in name else (lambda a, b: torch.matmul(a, b))
    check_derivatives(f, args, tf)


def test_large_matmul_goes_through_blas():
    a = rng.standard_normal((40, 50))
    b = rng.standard_normal((50, 30))
    check_derivatives(lambda a, b: np.tanh(a @ b), (a[:8], b), lambda a, b: torch.tanh(a @ b), second=False)
    out, (ga, gb) = nb.vjp(lambda a, b: a @ b, (a, b), np.ones((40, 30)))
    assert np.allclose(ga, np.ones((40, 30)) @ b.T) and np.allclose(gb, a.T @ np.ones((40, 30)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lane_product_with_a_diagonal_block_gives_blas_numbers(dtype):
    # a matrix-vector product whose lanes block is diagonal (a Jacobian's identity seed) is
    # a scaling; the numbers are BLAS's, NaNs from inf * 0 included, in both layouts of A
    from numbad.sweeps import WORKSPACE, kernels as K
    ws = np.zeros(WORKSPACE, np.int64)
    m, k = 90, 70                                     # above the small-product loop
    D = np.diag(rng.standard_normal(k)).astype(dtype)
    D[3, 3] = 0.0
    for special in (None, np.inf, np.nan):
        A = rng.standard_normal((m, k)).astype(dtype)
        A[5, 7] = -0.0
        if special is not None:
            A[10, 20] = special
        for tA in (0, 1):
            stored = np.ascontiguousarray(A.T) if tA else A
            for beta in (0.0, 1.0):
                C0 = rng.standard_normal((m, k)).astype(dtype)
                C = C0.ravel().copy()
                K.lane_matmul(False, tA, 0, m, 1, k, stored.ravel(), 0, D.ravel(), 0, m if tA else k,
                              C, 0, k, beta, ws)
                with np.errstate(invalid="ignore"):
                    expected = A @ D + (C0 if beta else 0)
                np.testing.assert_array_equal(C.reshape(m, k), expected)


@pytest.mark.parametrize("strategy", ["forward-mode", "reverse-mode"])
def test_jacobian_of_matvec_is_the_matrix(strategy):
    # the identity seed meets A @ x: the shortcut must give exactly BLAS's A @ I, inf * 0 included
    M = rng.standard_normal((60, 80))
    np.testing.assert_array_equal(nb.jacobian(lambda x: M @ x, rng.standard_normal(80), strategy=strategy), M)
    M[4, 9] = np.inf
    with np.errstate(invalid="ignore"):
        J = nb.jacobian(lambda x: M @ x, rng.standard_normal(80), strategy=strategy)
        np.testing.assert_array_equal(J, M @ np.eye(80) if strategy == "forward-mode" else np.eye(60) @ M)


def test_matmul_with_constant_operand():
    W = rng.standard_normal((4, 4))
    check_derivatives(lambda x: np.tanh(W @ x) * x, (v4,), lambda x: torch.tanh(torch.tensor(W) @ x) * x)
    check_derivatives(lambda x: x @ W, (A,), lambda x: x @ torch.tensor(W))


def test_np_dot_nd_is_tensordot():
    a = rng.standard_normal((2, 3, 4))
    b = rng.standard_normal((5, 4, 2))
    check_derivatives(lambda a, b: np.dot(a, b), (a, b), lambda a, b: torch.tensordot(a, b, dims=([2], [1])))


# ----------------------------------------------------------------------------- broadcasting
BCAST = [
    ("row + column", lambda a, b: a * b + a, None, ((3, 1), (1, 4))),
    ("matrix * vector", lambda a, b: a * b, None, ((3, 4), (4,))),
    ("scalar tensor * matrix", lambda a, b: a * b - b / (a + 3.0), None, ((), (3, 4))),
    ("3d with 2d", lambda a, b: np.maximum(a, b) + np.minimum(a, 2 * b),
     lambda a, b: torch.maximum(a, b) + torch.minimum(a, 2 * b), ((2, 3, 4), (3, 1))),
    ("where broadcast", lambda a, b: np.where(a > 1, a, b), lambda a, b: torch.where(a > 1, a, b),
     ((3, 4), (4,))),
    ("ones + x", lambda a, b: np.ones(4) + a * b, lambda a, b: torch.ones(4) + a * b, ((4,), ())),
    ("constant arrays", lambda a, b: (np.arange(12.0).reshape(3, 4) * a) ** 2 + b,
     lambda a, b: (torch.arange(12.0).reshape(3, 4) * a) ** 2 + b, ((3, 4), (1, 4))),
]


@pytest.mark.parametrize("name, f, tf, shapes", BCAST, ids=[b[0] for b in BCAST])
def test_broadcasting(name, f, tf, shapes):
    args = tuple(rng.uniform(0.5, 2.0, s) for s in shapes)
    check_derivatives(f, args, tf or f)


def test_elementwise_with_scalars_on_both_sides():
    f = lambda x: 2.0 * x + x * 3 - 1 / x + x / 2 - (4 - x) + x ** 3 + 2 ** x + (-x)  # noqa: E731
    check_derivatives(f, (rng.uniform(0.5, 2, (3,)),), f)


def test_power_special_exponents():
    for e in (2, 0.5, -1, 1, 3, 2.5, 0):
        f = lambda x: x ** e  # noqa: E731
        check_derivatives(f, (rng.uniform(0.5, 2, (4,)),), f)


def test_slice_and_integer_reads_have_the_geometry_numpys_own_views_give():
    # getitem works out x[1:], m[:, 2], x[::-2] arithmetically (shape.slice_geometry); the
    # stand-in array of view_geometry is numpy's own answer for every basic index
    from numbad.tensor.shape import _slices_and_ints, slice_geometry, view_geometry
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(3000):
        shape = tuple(int(n) for n in rng.integers(1, 6, rng.integers(1, 5)))
        key = []
        for d in range(int(rng.integers(1, len(shape) + 1))):
            if rng.random() < 0.3:
                key.append(int(rng.integers(-shape[d], shape[d])))
            else:
                ends = [None] + list(range(-7, 8))
                key.append(slice(ends[rng.integers(len(ends))], ends[rng.integers(len(ends))],
                                 [None, 1, 2, 3, -1, -2, -3][rng.integers(7)]))
        key = tuple(key) if len(key) > 1 or rng.random() < 0.5 else key[0]
        if np.zeros(shape)[key].size == 0:
            continue
        items = _slices_and_ints(key, len(shape))
        strides, base = slice_geometry(shape, items)
        expected = view_geometry(shape, lambda v: v[items + (Ellipsis,)])
        assert (list(strides), base) == (list(expected[0]), expected[1]), (shape, key)
        checked += 1
    assert checked > 1000
