"""Segment ops, node-held indices, assignment and linear algebra on the device against the CPU sweeps.

Each function is recorded once and replayed on the CPU and on the device, as
single replays (``numbad/cuda/replay_kinds.py``: one thread per segment or
matrix, and the parallel forms for few long segments: two-pass extreme,
chunked scan, merge-sort passes, atomic put_along) and as ensembles (the
``lane_*`` functions, one thread per sample): values, cotangents and tangents.

Linear algebra runs the device's own small-matrix routines, so it matches to
1e-12 relative (not bit for bit), and the signs of eigen- and singular vectors
follow the device's convention (``docs/cuda.md``): those cases compare
quantities that do not depend on the signs (eigenvalues, singular values,
reconstructions, derivatives of sign-invariant functions), and
:func:`test_vector_sign_convention` checks the convention itself.
"""
import ast
import inspect

import numpy as np
import pytest

import numbad as nb
from numbad.cuda import codegen, errors
from numbad.ops import BY_CODE, OPS
from numbad.sweeps import kernels as cpu_kernels
from numbad.sweeps import kernels_linalg as cpu_linalg

from cuda_helpers import assert_matches

rng = np.random.default_rng(5)
X3 = rng.standard_normal((2, 3, 4))
X = rng.standard_normal((3, 4))
BIG = rng.standard_normal(300)               # longer than one thread per segment takes
POSBIG = rng.uniform(0.5, 1.5, 300)
TIES = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, -1.0, 2.0, 0.5], [0.0, -0.0, -2.0, 0.0]])
NANS = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, 0.5], [4.0, 3.0, -1.0]])
POS3 = rng.uniform(0.5, 1.5, (2, 3, 4))
Z = POS3.copy()
Z[0, 1, 2] = 0.0                             # one zero in a segment
Z2 = POS3.copy()
Z2[1, 0, 1] = Z2[1, 2, 1] = 0.0              # two zeros in one segment
W3 = np.arange(1.0, 4.0)[:, None]
IDX = np.array([[2, 0, 1, 1], [0, 0, 2, 1], [1, 2, 0, 0]])
M3 = rng.standard_normal((3, 3)) + 3 * np.eye(3)
MB = rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)
C33 = rng.standard_normal((3, 3))
C43 = rng.standard_normal((4, 3))
W35 = rng.standard_normal((3, 5))


def sym(a):
    return a @ np.swapaxes(a, -1, -2) + 3 * np.eye(a.shape[-1])


def assign_row(x):
    o = np.zeros_like(x)
    o[1] = x[0] * 2.0
    return o


def assign_scalar(x):
    o = x * 1.0
    o[:, 1] = x[0, 0]                        # one element written at three positions
    return o * x


def assign_many(x):
    o = np.zeros_like(x)
    o[::2] = x[0]                            # one element at 150 positions: a two-pass sum
    return o * x


def iadd(x):
    y = x * 1.0
    y[1:3] += x[0:2]
    return y * x


def grad_inside(x):
    """A gradient taken inside the recording: put_along and cumsum_reverse are forward ops."""
    w = np.arange(1.0, 1.0 + x.shape[0])
    g = nb.vjp(lambda y: np.sum(np.sort(y) * w * np.cumsum(y)), x, create_graph=True)[1]
    return np.sum(g ** 2)


def svd_loss_tall(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return (u ** 2 * C43).sum() + (vh ** 2).sum(0) @ s


def svd_loss_wide(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return (u * s) @ vh[:, :1] + (u * u).sum(1, keepdims=True)


#: name -> (function, inputs, bit for bit under the simulator)
CASES = {
    # ------------------------------------------------------------------ segments
    "amax axis": (lambda x: np.max(x, axis=1), (X3,), True),
    "amin ties": (lambda x: np.min(x, axis=1), (TIES,), True),
    "amax over two axes": (lambda x: np.amax(x, axis=(0, 2)), (X3,), True),
    "amax with NaN": (lambda x: np.max(x, axis=1), (NANS,), True),
    "amax long, two passes": (lambda x: np.max(x) * x[:3], (BIG,), True),
    "argmax": (lambda x: np.take_along_axis(x, np.argmax(x, axis=1, keepdims=True), axis=1), (X,), True),
    "argmin long, two passes": (lambda x: np.take_along_axis(x, np.argmin(x, keepdims=True), axis=0), (BIG,), True),
    "sort": (lambda x: np.sort(x, axis=1) * W3, (X3,), True),
    "sort descending": (lambda x: x.sort(dim=1, descending=True).values ** 2, (X3,), True),
    "sort long, merge passes": (lambda x: np.sort(x) * np.arange(300.0), (BIG,), True),
    "cumsum": (lambda x: np.cumsum(x, axis=1) * x, (X3,), True),
    "cumsum long, chunked": (lambda x: np.cumsum(x) * x, (POSBIG,), False),
    "cumprod": (lambda x: np.cumprod(x, axis=2), (POS3,), True),
    "cumprod at a zero": (lambda x: np.cumprod(x, axis=2), (Z,), True),
    "cumprod at two zeros": (lambda x: np.cumprod(x, axis=1), (Z2,), True),
    "prod": (lambda x: np.prod(x, axis=0), (Z2,), True),
    "take_along constant indices": (lambda x: np.take_along_axis(x, IDX, axis=0), (X,), True),
    "gradient inside the tape": (grad_inside, (X[0],), True),
    "gradient inside the tape, long": (grad_inside, (BIG[:80],), False),
    # ------------------------------------------------------------------ assign
    "assign a row": (assign_row, (X,), True),
    "assign one element at three positions": (assign_scalar, (X,), True),
    "assign one element at 150 positions": (assign_many, (BIG,), False),
    "augmented assignment": (iadd, (BIG[:5],), True),
    # ------------------------------------------------------------------ linear algebra
    "solve": (lambda a, b: np.linalg.solve(a, b), (M3, X[:, 0]), False),
    "solve batch": (lambda a, b: np.linalg.solve(a, b), (MB, X[:, :2]), False),
    "solve, one matrix for the batch": (lambda a, b: np.linalg.solve(a, b), (M3, X3[:, :, :2]), False),
    "solve(A, A)": (lambda a: np.linalg.solve(a, a) * a, (M3,), False),
    "inv": (lambda a: np.linalg.inv(a), (MB,), False),
    "det": (lambda a: np.linalg.det(a), (MB,), False),
    "slogdet": (lambda a: np.linalg.slogdet(a)[1] * np.linalg.slogdet(a)[0], (MB - 4 * np.eye(3),), False),
    "cholesky": (lambda a: np.linalg.cholesky(sym(a)), (MB,), False),
    "eigh": (lambda a: (lambda w, v: (v ** 2 * C33).sum() + (w * w).sum())(*np.linalg.eigh(sym(a))), (C33,),
             False),
    "eigh batch": (lambda a: (lambda w, v: (v ** 2).sum(-2) * w)(*np.linalg.eigh(sym(a))), (MB,), False),
    "eigvalsh": (lambda a: np.linalg.eigvalsh(sym(a)), (C33,), False),
    "svd tall": (svd_loss_tall, (C43,), False),
    "svd wide": (svd_loss_wide, (W35,), False),
    "svd square batch": (lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ vh)(*np.linalg.svd(a)), (MB,), False),
    "svdvals": (lambda a: np.linalg.svd(a, compute_uv=False), (X,), False),
    "matrix 2-norm": (lambda a: np.linalg.norm(a, 2), (X,), False),
}


def _scaled(a, k):
    """Sample k of an ensemble: a scaled copy, so that ties, zeros, NaNs and orders are kept."""
    return a * (1.0 + 0.05 * k)


def _check(f, args, exact, rtol=1e-12):
    tape = nb.record(f, args)
    dev = tape.to("cuda")
    out = tape(args)
    v = rng.standard_normal(np.shape(out))
    t = tuple(rng.standard_normal(a.shape) for a in args)
    o, g = tape.vjp(args, v)
    d_o, d_g = dev.vjp(args, v)
    assert_matches(d_o, o, exact, rtol, what="value")
    assert_matches(d_g, g, exact, rtol, what="vjp")
    assert_matches(dev.jvp(args, t), tape.jvp(args, t), exact, rtol, what="jvp")
    B = 3
    Xb = tuple(np.stack([_scaled(a, k) for k in range(B)]) for a in args)
    Vb = np.stack([v * (k + 1) for k in range(B)])
    Tb = tuple(np.stack([x * (1 - k) for k in range(B)]) for x in t)
    assert_matches(dev.batch_vjp(Xb, Vb), tape.batch_vjp(Xb, Vb), exact, rtol, what="batch_vjp")
    assert_matches(dev.batch_jvp(Xb, Tb), tape.batch_jvp(Xb, Tb), exact, rtol, what="batch_jvp")
    return tape


@pytest.mark.parametrize("name", list(CASES))
def test_kind(name):
    f, args, exact = CASES[name]
    _check(f, args, exact)


def test_every_new_kind_has_a_case():
    seen = set()
    for f, args, _ in CASES.values():
        tape = nb.record(f, args)
        seen |= {BY_CODE[c].kind for b in tape.branches for c in b.ops[:, 0].tolist()}
    seen |= {"arg_extreme", "argsort"}      # also test_argsort_is_stable_with_nan_last
    kinds = set(codegen.KINDS) - {"elementwise", "nondiff", "copy", "gather", "scatter", "take", "put_add",
                                   "matmul", "assemble"}            # test_cuda_structural.py
    assert kinds <= seen, f"kinds without a device case: {sorted(kinds - seen)}"
    assert {op.kind for op in OPS.values()} <= set(codegen.KINDS) | set(codegen.HOST_ONLY_KINDS)


@pytest.mark.parametrize("name", ["amax axis", "cumsum", "solve", "det"])
def test_float32(name):
    f, args, _ = CASES[name]
    args = tuple(a.astype(np.float32) for a in args)
    tape = nb.record(f, args)
    v = np.ones(np.shape(tape(args)), np.float32)
    o, g = tape.vjp(args, v)
    d_o, d_g = tape.to("cuda").vjp(args, v)
    assert d_o.dtype == np.float32
    assert_matches(d_o, o, rtol=1e-5, what="value")
    assert_matches(d_g, g, rtol=1e-5, what="vjp")


@pytest.mark.parametrize("n", [11, 300])
def test_argsort_is_stable_with_nan_last(n):
    """numpy's stable order (mergesort): NaN after every number, equal elements (0.0 and -0.0
    too) in their original order; single replays (merge passes over all elements) and ensembles."""
    x = np.round(rng.standard_normal(n), 0)      # many ties
    x[::7] = np.nan
    x[1::9] = -0.0
    tape = nb.record(lambda x: np.argsort(x) * 1.0, x).to("cuda")
    np.testing.assert_array_equal(tape(x), np.argsort(x, kind="stable"))
    if n == 11:
        X = np.stack([x, x[::-1], np.zeros(n)])
        out, _ = tape.batch_vjp(X, np.ones((3, n)))
        np.testing.assert_array_equal(out, np.argsort(X, axis=1, kind="stable"))


def test_vector_sign_convention():
    """The device's eigenvectors and left singular vectors have a positive largest-magnitude entry;
    they are the CPU's up to those signs (LAPACK's own convention is not reproduced)."""
    A = sym(C33)
    tape = nb.record(lambda a: np.linalg.eigh(a), A)
    (w, V), (dw, dV) = tape(A), tape.to("cuda")(A)
    assert_matches(dw, w, what="eigenvalues")
    signs = np.sign(np.sum(V * dV, axis=0))
    assert_matches(dV, V * signs, what="eigenvectors up to sign")
    assert np.all(dV[np.argmax(np.abs(dV), axis=0), np.arange(3)] > 0)
    for a in (C43, C43.T):
        tape = nb.record(lambda a: np.linalg.svd(a, full_matrices=False), a)
        (U, S, Vh), (dU, dS, dVh) = tape(a), tape.to("cuda")(a)
        assert_matches(dS, S, what="singular values")
        signs = np.sign(np.sum(U * dU, axis=0))
        assert_matches(dU, U * signs, what="U up to sign")
        assert_matches(dVh, Vh * signs[:, None], what="Vh with U's signs")
        assert np.all(dU[np.argmax(np.abs(dU), axis=0), np.arange(dU.shape[1])] > 0)


def test_svd_of_a_rank_deficient_matrix_completes_the_vectors():
    """A zero singular value gets an orthonormal completion of its singular vectors."""
    A = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [5.0, 6.0, 0.0], [7.0, 8.0, 0.0]])
    for a in (A, A.T):
        tape = nb.record(lambda a: np.linalg.svd(a, full_matrices=False), a)
        U, S, Vh = tape.to("cuda")(a)
        np.testing.assert_allclose(S, tape(a)[1], rtol=1e-12, atol=1e-14)
        assert S[-1] == 0.0
        np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-14)
        np.testing.assert_allclose(Vh @ Vh.T, np.eye(3), atol=1e-14)
        np.testing.assert_allclose((U * S) @ Vh, a, atol=1e-13)


def test_nonfinite_input_gives_nan_factors():
    """eigh and svd of a matrix with a NaN or inf: NaN factors, no error (LAPACK's results vary)."""
    for f, a in ((lambda a: np.linalg.eigh(a), sym(C33)), (lambda a: np.linalg.svd(a, full_matrices=False), C43)):
        tape = nb.record(f, a).to("cuda")
        for v in (np.nan, np.inf):
            bad = a.copy()
            bad[1, 0] = v
            assert all(np.isnan(out).all() for out in tape(bad))


def _raises(exc, match, tape, call):
    """``call`` raises the same on the CPU tape and on its device twin."""
    for t in (tape, tape.to("cuda")):
        with pytest.raises(exc, match=match):
            call(t)


def test_node_held_indices_out_of_range():
    def f(x, k):
        idx = np.argsort(k) + (k[0] > 0.5)          # indices computed from data, recomputed on replay
        return np.take_along_axis(x, idx, axis=0)
    x, k = np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.1, 0.2])
    tape = nb.record(f, (x, k))
    bad = (x, np.array([0.9, 0.1, 0.2]))            # argsort + 1 reaches past the end
    _raises(IndexError, "out of range for take_along_axis", tape, lambda t: t(bad))
    _raises(IndexError, "out of range", tape, lambda t: t.vjp(bad, np.ones(3)))
    X = np.stack([x, x, x]), np.stack([k, bad[1], k])
    with pytest.raises(IndexError, match=r"out of range for take_along_axis \(sample 1 of the batch\)"):
        tape.batch_vjp(X, np.ones((3, 3)), device="cuda")
    assert_matches(tape.to("cuda")((x, k)), tape((x, k)), exact=True)


def test_a_failed_guard_before_a_failing_op_is_a_branch_change():
    """As on the CPU, an op after a guard that fails does not run: BranchChanged, not its error."""
    def f(x, k):
        if np.sum(k) > 0:
            return np.take_along_axis(x, np.argsort(k) + (k[0] > 0.5), axis=0)
        return x * 2.0
    x, k = np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.1, 0.2])
    tape = nb.record(f, (x, k))
    _raises(nb.BranchChanged, "changed on replay", tape, lambda t: t((x, np.array([0.9, -2.0, 0.2]))))


def test_logabsdet_derivative_at_a_singular_matrix():
    tape = nb.record(lambda a: np.linalg.slogdet(a)[1], M3)
    S = np.ones((3, 3))
    assert tape.to("cuda")(S) == tape(S) == -np.inf
    _raises(np.linalg.LinAlgError, "Singular matrix", tape, lambda t: t.vjp(S, 1.0))
    _raises(np.linalg.LinAlgError, "Singular matrix", tape, lambda t: t.jvp(S, np.ones((3, 3))))
    with pytest.raises(np.linalg.LinAlgError, match=r"Singular matrix \(sample 2 of the batch\)"):
        tape.batch_vjp(np.stack([M3, M3, S]), np.ones(3), device="cuda")


def test_solve_and_cholesky_failures():
    tape = nb.record(lambda a, b: np.linalg.solve(a, b), (M3, X[:, 0]))
    _raises(np.linalg.LinAlgError, "Singular matrix", tape, lambda t: t((np.ones((3, 3)), X[:, 0])))
    tape = nb.record(lambda a: np.linalg.cholesky(a), sym(M3))
    _raises(np.linalg.LinAlgError, "not positive definite", tape, lambda t: t(-np.eye(3)))


def test_eigenvector_derivative_at_a_tie():
    tape = nb.record(lambda a: (np.linalg.eigh(a)[1] * C33).sum(), sym(C33))
    D = np.diag([1.0, 1.0, 2.0])
    _raises(ValueError, "eigenvalues .* are equal", tape, lambda t: t.vjp(D, 1.0))
    _raises(ValueError, "eigenvalues .* are equal", tape, lambda t: t.jvp(D, C33))
    values = nb.record(lambda a: np.linalg.eigvalsh(a).sum(), sym(C33))
    assert_matches(values.to("cuda").vjp(D, 1.0)[1], np.eye(3), what="eigenvalues at a tie")
    with pytest.raises(ValueError, match=r"are equal \(sample 1 of the batch\)"):
        tape.batch_vjp(np.stack([sym(C33), D]), np.ones(2), device="cuda")


def test_singular_vector_derivative_at_a_zero_singular_value():
    tape = nb.record(lambda a: (np.linalg.svd(a, full_matrices=False)[0] * C43[:, :2]).sum(), C43[:, :2])
    A = np.zeros((4, 2))
    A[0, 0] = 1.0                                    # singular values 1 and 0
    _raises(ValueError, "zero singular value", tape, lambda t: t.vjp(A, 1.0))


def test_error_messages_are_the_cpu_kernels():
    texts = set()
    for module in (cpu_kernels, cpu_linalg):
        texts |= {n.value for n in ast.walk(ast.parse(inspect.getsource(module)))
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for exc, msg in errors.MESSAGES.values():
        assert msg in texts, f"{msg!r} is not a message of the CPU kernels"
