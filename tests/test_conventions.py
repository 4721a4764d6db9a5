"""Conventions where derivatives are not unique (ties, kinks, degenerate spectra), against PyTorch."""
import functools
import math

import numpy as np
import pytest
import torch

import numbad as nb

from helpers import assert_close, nb_second, torch_vjp

TIES = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, -1.0, 2.0, 0.5]])


@pytest.mark.parametrize("name, f, tf", [
    ("amax ties split evenly", lambda x: np.amax(x, axis=1), lambda x: torch.amax(x, 1)),
    ("amin ties split evenly", lambda x: np.amin(-x, axis=1), lambda x: torch.amin(-x, 1)),
    ("max of all, ties", lambda x: np.max(x), lambda x: torch.amax(x)),
    ("inf-norm ties", lambda x: np.linalg.norm(x, np.inf, axis=1), lambda x: torch.linalg.vector_norm(x, float("inf"), 1)),
    ("maximum tie half/half", lambda x: np.maximum(x[:, 1:3], x[:, 2:]), lambda x: torch.maximum(x[:, 1:3], x[:, 2:])),
    ("clip at a bound", lambda x: np.clip(x, 2.0, 3.0), lambda x: torch.clamp(x, 2.0, 3.0)),
    ("abs at zero", lambda x: np.abs(x - 2.0), lambda x: torch.abs(x - 2.0)),
])
def test_ties_and_kinks_follow_pytorch(name, f, tf):
    v = np.arange(1.0, 1.0 + np.size(f(TIES))).reshape(np.shape(f(TIES)))
    out, g = nb.vjp(f, TIES, v)
    tout, (tg,) = torch_vjp(tf, (TIES,), v)
    assert_close(out, tout)
    assert_close(g, tg, what=name)


NAN = np.nan


@pytest.mark.parametrize("name, x, f, tf", [
    ("std at zero spread", np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]]),
     lambda x: np.std(x, axis=1), lambda x: torch.std(x, 1, correction=0)),
    ("std of all at zero spread", np.full((2, 3), 1.5), lambda x: np.std(x), lambda x: torch.std(x, correction=0)),
    ("std, PyTorch's spelling", np.full((2, 3), 1.5), lambda x: x.std(dim=0), lambda x: x.std(dim=0)),
    ("arctan2 at the origin", np.array([[0.0, 1.0, 0.0, -0.0], [0.0, 0.0, -2.0, 0.0]]),
     lambda x: np.arctan2(x[0], x[1]), lambda x: torch.atan2(x[0], x[1])),
    ("maximum with NaN", np.array([[1.0, NAN, 2.0, NAN, 3.0], [1.5, 1.5, NAN, NAN, 3.0]]),
     lambda x: np.maximum(x[0], x[1]), lambda x: torch.maximum(x[0], x[1])),
    ("minimum with NaN", np.array([[1.0, NAN, 2.0, NAN, 3.0], [1.5, 1.5, NAN, NAN, 3.0]]),
     lambda x: np.minimum(x[0], x[1]), lambda x: torch.minimum(x[0], x[1])),
    ("3-norm of a zero row", np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 3.0]]),
     lambda x: np.linalg.norm(x, 3, axis=1), lambda x: torch.linalg.vector_norm(x, 3, dim=1)),
    ("3-norm whose cubes underflow", np.array([[1e-200, -1e-200, 0.0], [1.0, -2.0, 3.0]]),
     lambda x: np.linalg.norm(x, 3, axis=1), lambda x: torch.linalg.vector_norm(x, 3, dim=1)),
    ("1.5-norm of the zero vector", np.zeros(4), lambda x: x.norm(1.5), lambda x: x.norm(1.5)),
    ("0.5-norm with zero entries", np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0]]),
     lambda x: np.linalg.norm(x, 0.5, axis=1), lambda x: torch.linalg.vector_norm(x, 0.5, dim=1)),
    ("(-1)-norm with a zero entry", np.array([[0.0, 1.0, -2.0], [3.0, 1.0, -2.0]]),
     lambda x: np.linalg.norm(x, -1, axis=1), lambda x: torch.linalg.vector_norm(x, -1, dim=1)),
    ("copysign of zero", np.array([[0.0, -0.0, 1.5], [-1.0, 2.0, -2.0]]),
     lambda x: np.copysign(x[0], x[1]), lambda x: torch.copysign(x[0], x[1])),
    ("power of a zero base", np.array([[0.0, 0.0, 2.0], [2.0, 3.0, 1.5]]),
     lambda x: x[0] ** x[1], lambda x: x[0] ** x[1]),
])
def test_degenerate_points_follow_pytorch(name, x, f, tf):
    """Points where the plain formula gives 0/0 or NaN: PyTorch's numbers, on every path."""
    shape = tuple(tf(torch.tensor(x)).shape)
    v = np.arange(1.0, 1.0 + math.prod(shape)).reshape(shape)
    tout, (tg,) = torch_vjp(tf, (x,), v)
    same = functools.partial(np.testing.assert_allclose, rtol=1e-12, atol=0, err_msg=name)  # (NaN == NaN)
    out, g = nb.vjp(f, x, v)
    same(out, tout)
    same(g, tg)
    _, g = nb.vjp(f, x, v, create_graph=True)
    same(g.detach(), tg)
    # forward mode takes the same rule (PyTorch's own forward mode gives NaN for std at zero
    # spread, unlike its reverse mode): J u with J from the reverse sweeps
    u = np.linspace(0.5, 1.5, x.size).reshape(x.shape)
    J = nb.jacobian(f, x).reshape(math.prod(shape), x.size)
    same(nb.jvp(f, x, u)[1], (J @ u.reshape(-1)).reshape(shape))
    # second order: the differentiable sweep (a vjp of the create_graph vjp) and the njit
    # forward-over-reverse sweep take the same rule; neither turns the selected 0 into NaN
    (second,) = nb_second(f, (x,), v, (u,))
    same(second, nb.hvp(lambda x: np.sum(f(x) * v), x, u)[1])
    assert not np.isnan(second[~np.isnan(x)]).any()


def test_norm_value_is_numpys_to_the_bit():
    # numpy's 2-norm of a whole array sums the squares by a dot product: another order than a sum
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1.0, 1.0, (3, 4)) + 3.0 for _ in range(40)]
    assert any(np.sqrt(np.sum(x * x)) != np.linalg.norm(x) for x in xs)     # (the test can fail)
    for x in xs:
        for f in (lambda x: np.linalg.norm(x), lambda x: np.linalg.norm(x, "fro"),
                  lambda x: np.linalg.norm(x.reshape(-1), 2), lambda x: np.linalg.norm(x, keepdims=True)):
            out, g = nb.vjp(f, x, np.ones(np.shape(f(x))))
            assert np.array_equal(out, f(x))
            assert_close(g, x / np.linalg.norm(x))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_rules_do_not_warn_of_what_they_select_away():
    # the differentiable sweep computes 0/0 at these points and a select drops it, as the njit one does
    spread = np.full((2, 3), 1.5)
    g = nb.vjp(lambda x: np.std(x, axis=1), spread, np.ones(2), create_graph=True)[1]
    assert np.array_equal(g.detach(), np.zeros((2, 3)))
    g = nb.vjp(lambda x: np.arctan2(x[0], x[1]), np.zeros((2, 3)), np.ones(3), create_graph=True)[1]
    assert np.array_equal(g.detach(), np.zeros((2, 3)))
    with pytest.raises(RuntimeWarning, match="divide by zero"):     # the user's own op still warns
        nb.vjp(lambda x: np.log(x), np.zeros(2), np.ones(2), create_graph=True)


@pytest.mark.filterwarnings("ignore:divide by zero")      # (numpy's own (-1)-norm of a zero entry)
def test_p_norms_are_numpys_to_the_bit_and_their_masks_replay():
    rng = np.random.default_rng(4)
    for ord in (3, 1.5, 0.5, -1, -2.5):
        f = lambda x: np.linalg.norm(x, ord, axis=1)
        for _ in range(10):
            x = rng.uniform(-2.0, 2.0, (3, 4))
            x[0, 1] = 0.0
            x[2] = 0.0
            out, g = nb.vjp(f, x, np.ones(3))
            assert np.array_equal(out, f(x)), ord
            assert np.all(np.isfinite(g)) and not np.any(g[2]), ord
        # the zero row and zero entry arrive only at the replay: their selects are recorded ops
        tape = nb.record(f, rng.uniform(0.5, 2.0, (3, 4)))
        assert np.array_equal(tape(x), f(x))
        np.testing.assert_allclose(tape.vjp(x, np.ones(3))[1], g, rtol=1e-14, atol=0, err_msg=str(ord))


@pytest.mark.parametrize("name, f, shapes", [
    ("einsum", lambda a, b: np.einsum("ij,ij->i", a, b), [(3, 5), (3, 5)]),
    ("einsum of three", lambda a, b: np.einsum("ij,jk,k->i", a, b.T, b[:, 0]), [(3, 5), (4, 5)]),
    ("dot of N-d arrays", lambda a, b: np.dot(a.reshape(3, 1, 5), b.T), [(3, 5), (4, 5)]),
    ("inner of N-d arrays", lambda a, b: np.inner(a.reshape(3, 1, 5), b), [(3, 5), (4, 5)]),
    ("eigvalsh", lambda a, b: np.linalg.eigvalsh(a @ a.T + b[:3, :3]), [(3, 5), (4, 5)]),
    ("singular values", lambda a, b: np.linalg.svd(a * b[0], compute_uv=False), [(3, 5), (4, 5)]),
])
def test_values_recorded_by_other_steps_are_numpys_to_the_bit(name, f, shapes):
    # numbad records these as other steps than numpy takes (matrix products, eigh, the full
    # SVD), whose last bits differ about half the time: the result carries numpy's value
    rng = np.random.default_rng(5)
    for _ in range(30):
        args = tuple(rng.uniform(-1.0, 1.0, s) for s in shapes)
        expected = f(*args)
        out, grads = nb.vjp(f, args, np.ones(np.shape(expected)))
        assert np.array_equal(out, expected), name
    targs = tuple(torch.tensor(a) for a in args)
    tf = {"einsum": lambda a, b: torch.einsum("ij,ij->i", a, b),
          "einsum of three": lambda a, b: torch.einsum("ij,jk,k->i", a, b.T, b[:, 0]),
          "dot of N-d arrays": lambda a, b: torch.tensordot(a.reshape(3, 1, 5), b.T, dims=([2], [0])),
          "inner of N-d arrays": lambda a, b: torch.inner(a.reshape(3, 1, 5), b),
          "eigvalsh": lambda a, b: torch.linalg.eigvalsh(a @ a.T + b[:3, :3]),
          "singular values": lambda a, b: torch.linalg.svdvals(a * b[0])}[name]
    _, tgrads = torch.autograd.functional.vjp(tf, targs, torch.ones(np.shape(expected)))
    for g, tg in zip(grads, tgrads):
        assert_close(g, tg.numpy(), what=name)


def test_nan_max_passes_the_derivative_to_the_nan():
    x = np.array([1.0, np.nan, 2.0])
    out, g = nb.vjp(lambda x: np.max(x), x)
    assert np.isnan(out) and np.array_equal(g, [0.0, 1.0, 0.0])


def test_norm_at_the_zero_vector_has_derivative_zero():
    for f, tf in ((lambda x: np.linalg.norm(x), lambda x: torch.linalg.norm(x)),
                  (lambda x: np.linalg.norm(x.reshape(2, 2), "fro"), lambda x: torch.linalg.norm(x.reshape(2, 2)))):
        _, g = nb.vjp(f, np.zeros(4))
        _, (tg,) = torch_vjp(tf, (np.zeros(4),), np.array(1.0))
        assert np.array_equal(g, np.zeros(4)) and np.array_equal(tg, np.zeros(4))


def test_eigh_eigenvalues_are_differentiable_at_ties():
    A = np.diag([1.0, 1.0, 2.0])
    _, g = nb.vjp(lambda a: np.linalg.eigvalsh(a).sum(), A)
    assert_close(g, np.eye(3))


def test_eigh_vectors_at_a_degenerate_spectrum_raise():
    A = np.diag([1.0, 1.0, 2.0])
    C = np.arange(9.0).reshape(3, 3)
    for create_graph in (False, True):
        with pytest.raises(ValueError, match="eigenvalues .* are equal"):
            nb.vjp(lambda a: (np.linalg.eigh(a)[1] * C).sum(), A, create_graph=create_graph)


def test_forward_mode_at_a_degenerate_spectrum_raises_both_ways():
    # jvp with create_graph differentiates a reverse sweep run at placeholder cotangents: the tie
    # check must see generic values there (zeros or ones pass it and return a number)
    A = np.diag([1.0, 1.0, 2.0])
    T = np.arange(9.0).reshape(3, 3) / 10.0
    T = T + T.T
    C = np.arange(9.0).reshape(3, 3)
    for f in (lambda a: np.linalg.eigh(a)[1] * 2.0, lambda a: (np.linalg.eigh(a)[1] * C).sum()):
        for create_graph in (False, True):
            with pytest.raises(ValueError, match="eigenvalues .* are equal"):
                nb.jvp(f, A, T, create_graph=create_graph)


@pytest.mark.parametrize("shape", [(2, 3), (3, 2), (2, 2, 3), (2, 4, 3)])
def test_singular_vectors_of_non_square_matrices_in_forward_mode_with_create_graph(shape):
    rng = np.random.default_rng(0)
    A, T = rng.standard_normal(shape), rng.standard_normal(shape)
    C = rng.standard_normal(shape)

    def f(a):
        u, s, vh = np.linalg.svd(a, full_matrices=False)
        return (u ** 2).sum(-1) + (vh ** 2 * C[..., :vh.shape[-2], :]).sum(-2)[..., :1] * s[..., :1]

    def ft(a):
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        return (u ** 2).sum(-1) + (vh ** 2 * torch.tensor(C)[..., :vh.shape[-2], :]).sum(-2)[..., :1] * s[..., :1]
    _, jv = nb.jvp(f, A, T)
    _, jvc = nb.jvp(f, A, T, create_graph=True)
    _, tjv = torch.autograd.functional.jvp(ft, torch.tensor(A), torch.tensor(T))
    assert_close(jv, tjv.numpy(), rtol=1e-9, atol=1e-11, what="jvp vs PyTorch")
    assert_close(jvc.detach(), jv, rtol=1e-10, atol=1e-12, what="create_graph jvp vs the tangent sweep")
    nuc = lambda a: np.linalg.norm(a, ord="nuc") if a.ndim == 2 else np.sum(np.linalg.svd(a, compute_uv=False))  # noqa: E731
    _, hv = nb.hvp(nuc, A, T)
    _, hvc = nb.hvp(nuc, A, T, create_graph=True)
    assert_close(hvc.detach(), hv, rtol=1e-10, atol=1e-12, what="create_graph hvp of the nuclear norm")


def test_svd_at_degenerate_singular_values_raises_and_values_still_work():
    A = np.diag([2.0, 2.0, 1.0])
    C = np.arange(9.0).reshape(3, 3)
    with pytest.raises(ValueError, match="singular values"):
        nb.vjp(lambda a: (np.linalg.svd(a)[0] * C).sum(), A)
    _, g = nb.vjp(lambda a: np.linalg.svd(a, compute_uv=False).sum(), A)
    assert_close(g, np.eye(3))


def test_full_svd_of_a_non_square_matrix_is_refused():
    with pytest.raises(TypeError, match="full_matrices=False"):
        nb.vjp(lambda a: np.linalg.svd(a)[0].sum(), np.ones((3, 2)))


def test_det_of_a_singular_matrix_raises_instead_of_nan():
    with pytest.raises(np.linalg.LinAlgError):
        nb.vjp(lambda a: np.linalg.det(a), np.ones((2, 2)))


def test_max_with_dim_returns_values_and_indices():
    def f(x):
        values, indices = x.max(dim=1)
        assert np.array_equal(indices.detach(), [1, 0])
        return values
    out, g = nb.vjp(f, TIES, np.ones(2))
    assert_close(out, [3.0, 2.0])
    assert_close(g, [[0, 1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5, 0]])


def test_sort_is_stable_at_ties():
    x = np.array([2.0, 1.0, 2.0, 1.0])
    _, g = nb.vjp(lambda x: np.sort(x), x, np.array([1.0, 2.0, 3.0, 4.0]))
    assert_close(g, [3.0, 1.0, 4.0, 2.0])


def test_var_follows_numpy_or_pytorch_by_spelling():
    x = np.arange(4.0)

    def f(x):
        return np.stack([np.var(x), x.var(), x.var(dim=0), x.var(unbiased=False), np.var(x, ddof=1)])
    out, _ = nb.vjp(f, x, np.ones(5))
    assert_close(out, [1.25, 1.25, 5 / 3, 1.25, 5 / 3])


# A select passes a derivative by selection, as PyTorch's where and masked_fill do: the operand
# not selected gets 0 even from an infinite cotangent (sqrt'(0)), or an infinite tangent, where
# a mask multiplied in would give inf * 0 = NaN. A constant-zero partial (copysign's sign
# operand) carries nothing either. Each case runs every path: the eager reverse and tangent
# sweeps, the differentiable path, both Jacobian strategies, and a recorded tape's replays.
XS = np.array([-1.0, 0.0, 4.0])
YS = np.array([1.0, 1.0, 2.0])
SELECT_CASES = [
    ("sqrt of maximum", lambda a, b: np.sqrt(np.maximum(a, 0.0 * b)), lambda a, b: torch.sqrt(torch.maximum(a, 0.0 * b))),
    ("sqrt of minimum", lambda a, b: np.sqrt(np.minimum(a + 1.0, b)), lambda a, b: torch.sqrt(torch.minimum(a + 1.0, b))),
    # (no tie for fmax: PyTorch's forward mode gives it to the second operand, its reverse mode to the first)
    ("sqrt of fmax", lambda a, b: np.sqrt(np.fmax(a, b - 1.5)), lambda a, b: torch.sqrt(torch.fmax(a, b - 1.5))),
    ("sqrt of fmin", lambda a, b: np.sqrt(np.fmin(a + 1.0, b)), lambda a, b: torch.sqrt(torch.fmin(a + 1.0, b))),
    ("sqrt of clip", lambda a, b: np.sqrt(np.clip(a, 0.0, b)), lambda a, b: torch.sqrt(torch.clamp(a, torch.zeros(3), b))),
    ("sqrt of where", lambda a, b: np.sqrt(np.where(a > 0, a, b - 1.0)),
     lambda a, b: torch.sqrt(torch.where(a > 0, a, b - 1.0))),
    ("where of sqrt", lambda a, b: np.where(a > 0, np.sqrt(np.abs(a)) * b, np.sqrt(a + 1.0)),
     lambda a, b: torch.where(a > 0, torch.sqrt(torch.abs(a)) * b, torch.sqrt(a + 1.0))),
    ("sqrt of copysign", lambda a, b: np.sqrt(np.copysign(a, b)), lambda a, b: torch.sqrt(torch.copysign(a, b))),
]


def _plain(t):
    return np.asarray(t.detach() if isinstance(t, nb.Tensor) else t)


@pytest.mark.parametrize("name, f, tf", SELECT_CASES, ids=[c[0] for c in SELECT_CASES])
def test_selects_give_the_unselected_operand_zero_as_pytorch(name, f, tf):
    args = (XS, YS)
    targs = tuple(torch.tensor(a) for a in args)
    v = np.array([1.0, 2.0, 3.0])
    with np.errstate(all="ignore"):
        tout, tg = torch_vjp(tf, args, v)
        tJ = [j.numpy() for j in torch.autograd.functional.jacobian(tf, targs)]
        tJf = [j.numpy() for j in torch.autograd.functional.jacobian(tf, targs, vectorize=True,
                                                                      strategy="forward-mode")]
        tjv = torch.func.jvp(tf, targs, tuple(torch.ones(3) for _ in args))[1].numpy()

        out, g = nb.vjp(f, args, v)
        assert_close(out, tout, what=name)
        for k in range(2):
            assert_close(g[k], tg[k], what=f"{name}: vjp d/d{'ab'[k]}")
        _, gd = nb.vjp(f, args, v, create_graph=True)
        for k in range(2):
            assert_close(_plain(gd[k]), tg[k], what=f"{name}: create_graph d/d{'ab'[k]}")
        for strategy, ref in (("reverse-mode", tJ), ("forward-mode", tJf)):
            J = nb.jacobian(f, args, strategy=strategy)
            for k in range(2):
                assert_close(J[k], ref[k], what=f"{name}: {strategy} jacobian d/d{'ab'[k]}")
        _, jv = nb.jvp(f, args, (np.ones(3), np.ones(3)))
        assert_close(jv, tjv, what=f"{name}: jvp")

        tape = nb.record(f, args)
        _, g = tape.vjp(args, v)
        for k in range(2):
            assert_close(g[k], tg[k], what=f"{name}: tape.vjp d/d{'ab'[k]}")
        _, jv = tape.jvp(args, (np.ones(3), np.ones(3)))
        assert_close(jv, tjv, what=f"{name}: tape.jvp")
        J = tape.jacobian(args)
        for k in range(2):
            assert_close(J[k], tJ[k], what=f"{name}: tape.jacobian d/d{'ab'[k]}")
        batch = tuple(np.stack([a, a]) for a in args)
        _, G = tape.batch_vjp(batch, np.stack([v, v]))
        _, JV = tape.batch_jvp(batch, tuple(np.ones((2, 3)) for _ in args))
        for s in range(2):
            for k in range(2):
                assert_close(G[k][s], tg[k], what=f"{name}: batch_vjp d/d{'ab'[k]}")
            assert_close(JV[s], tjv, what=f"{name}: batch_jvp")
