"""Structural ops (sums, data movement, indexing, assembly, matmul) on the device against the CPU.

Each function is recorded once and replayed on the CPU and on the device, as
a single replay (``k_*`` kernels: gathers, deterministic reductions in one or
two passes, atomics where indices repeat, GEMM) and as an ensemble
(``lane_*`` device functions).
"""
import numpy as np
import pytest

import numbad as nb
from numbad.tensor import core

from cuda_helpers import assert_matches, simulated

rng = np.random.default_rng(11)
X = rng.standard_normal((3, 4))
Y = rng.standard_normal((4, 5))
Z = rng.standard_normal((2, 3, 4))
BIG = rng.standard_normal(300)          # a reduction over more elements than one pass takes


def concat(x, y):
    """np.concatenate([x, y]) of two vectors through the assemble op."""
    value = np.concatenate([np.asarray(x._v), np.asarray(y._v)])
    return core.assemble([(x, (1,), 0), (y, (1,), x.shape[0])], value)


def hvp(x):
    """A gradient taken inside the recording: its reverse ops (put_add, scatter) are on the tape."""
    idx = np.array([0, 2, 2, 1])
    g = nb.vjp(lambda y: np.sum(np.sin(y[idx]) * y[1:3].sum()), x, create_graph=True)[1]
    return np.sum(g ** 2)


CASES = {
    "sum": (lambda x: np.sum(x ** 2), (X,)),
    "sum axis": (lambda x: np.sum(np.sin(x), axis=1), (X,)),
    "sum axes keepdims": (lambda x: np.sum(x * x, axis=(0, 2), keepdims=True), (Z,)),
    "mean, two-pass reduction": (lambda x: np.mean(np.exp(x)), (BIG,)),
    "sum over a broadcast scalar": (lambda x, s: np.sum(x * s), (BIG, np.array(0.5))),
    "transpose": (lambda x: np.transpose(x, (1, 0, 2)) ** 2, (Z,)),
    "broadcast": (lambda x, y: x[:, :, None] * y[None, :, :], (X, Y)),
    "slice": (lambda x: x[1:, ::2] * 3.0, (X,)),
    "take with repeats": (lambda x: x[np.array([0, 2, 2, 1])] ** 2, (X,)),
    "boolean mask": (lambda x: np.sin(x[x > 0]), (X,)),
    "assemble": (lambda x, y: concat(x, y) ** 2 * concat(y, x), (X[0], Y[0])),
    "matmul": (lambda x, y: np.tanh(x @ y), (X, Y)),
    "matmul transposed": (lambda x, y: x.T @ y.T, (rng.standard_normal((4, 3)), rng.standard_normal((5, 4)))),
    "batched matmul": (lambda a, b: a @ b, (Z, rng.standard_normal((2, 4, 2)))),
    "matmul broadcast over the batch": (lambda a, b: a @ b, (Z, rng.standard_normal((4, 2)))),
    "matrix-vector": (lambda a, b: a @ b, (X, rng.standard_normal(4))),
    "reshape": (lambda x: np.reshape(x, (4, 3)) @ x, (X,)),
    "gradient inside the tape": (hvp, (X[0],)),
}


def _check(f, args, exact):
    tape = nb.record(f, args)
    out = tape(args)
    v = rng.standard_normal(np.shape(out))
    t = tuple(rng.standard_normal(a.shape) for a in args)
    dev = tape.to("cuda")
    o, g = tape.vjp(args, v)
    d_o, d_g = dev.vjp(args, v)
    assert_matches(d_o, o, exact, what="value")
    assert_matches(d_g, g, exact, what="vjp")
    assert_matches(dev.jvp(args, t)[1], tape.jvp(args, t)[1], exact, what="jvp")
    B = 4
    Xb = tuple(np.stack([a + 0.01 * k for k in range(B)]) for a in args)
    Vb = np.stack([v * (k + 1) for k in range(B)])
    Tb = tuple(np.stack([x] * B) for x in t)
    assert_matches(dev.batch_vjp(Xb, Vb), tape.batch_vjp(Xb, Vb), exact, what="batch_vjp")
    assert_matches(dev.batch_jvp(Xb, Tb), tape.batch_jvp(Xb, Tb), exact, what="batch_jvp")


@pytest.mark.parametrize("name", list(CASES))
def test_structural(name):
    f, args = CASES[name]
    _check(f, args, exact=False)


def test_data_movement_is_bit_exact():
    """Gathers, scatters of distinct targets, takes and assemblies move values without arithmetic."""
    for name in ("transpose", "slice", "assemble", "boolean mask"):
        f, args = CASES[name]
        tape = nb.record(lambda *a: f(*a) * 1.0, args)
        assert_matches(tape.to("cuda")(args), tape(args), exact=True, what=name)


@pytest.mark.parametrize("backend", ["numba", "cupy"])
def test_gemm_backends(backend, monkeypatch):
    if backend == "cupy":
        if simulated():
            pytest.skip("CuPy (cuBLAS) needs a real GPU")
        pytest.importorskip("cupy", reason="CuPy is optional: without it GEMM is numbad's own kernel")
    monkeypatch.setenv("NUMBAD_CUDA_GEMM", backend)
    A, Bm = rng.standard_normal((2, 5, 7)), rng.standard_normal((7, 6))
    tape = nb.record(lambda a, b: np.sum(np.tanh(a @ b) @ b.T), (A, Bm))    # a fresh branch
    o, g = tape.vjp((A, Bm))
    dev = tape.to("cuda")
    from numbad.cuda.runtime import device_branch
    assert device_branch(dev.branches[0]).gemm == backend
    assert_matches(dev.vjp((A, Bm)), (o, g), what=backend)


def test_scatter_with_colliding_targets():
    """A strided map whose kept dims overlap (targets repeat): the atomic kernel."""
    from numba import cuda

    from numbad.cuda import kernels as K
    # walk shape (3, 2), strides (1, 1): positions 0,1,1,2,2,3
    ip = np.array([2, 3, 2, 1, 1, 0, 4], np.int64)
    src = np.arange(1.0, 7.0)
    dst = cuda.to_device(np.zeros(4))
    K.k_scatter_atomic[1, K.TPB](cuda.to_device(src), 0, dst, 0, cuda.to_device(ip), 0, 6)
    np.testing.assert_array_equal(dst.copy_to_host(), [1.0, 5.0, 9.0, 6.0])
    from numbad.cuda.runtime import DeviceBranch
    db = DeviceBranch.__new__(DeviceBranch)
    db.branch, db._maps, db.cuda = type("B", (), {"ip": ip})(), {}, cuda
    assert db._map(0)[0] is False, "overlapping strides must not take the ordered row form"
