"""Reuse of large arenas between calls (numbad.buffers): never overwrite what a caller still sees."""
import types

import numpy as np
import pytest

import numbad as nb
from helpers import count_worker_requests
from numbad import buffers, sweeps
from numbad.tensor import core

N = 1 << 18          # 2 MiB of float64: above buffers.MIN_BYTES


@pytest.fixture(autouse=True)
def no_spares():
    buffers._spares(np.dtype(np.float64)).clear()
    yield
    buffers._spares(np.dtype(np.float64)).clear()


def f(x):
    return np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2))


def f_grad(x):
    return np.cos(x) * np.exp(-x ** 2) - 2 * x * np.sin(x) * np.exp(-x ** 2) + 2 * x / (1 + x ** 2)


def test_results_survive_later_calls():
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(-1, 1, N), rng.uniform(-1, 1, N)
    _, g1 = nb.vjp(f, x1)
    kept = g1.copy()
    for _ in range(3):
        _, g2 = nb.vjp(f, x2)
    np.testing.assert_array_equal(g1, kept)
    np.testing.assert_allclose(g1, f_grad(x1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g2, f_grad(x2), rtol=1e-12, atol=1e-14)


def test_large_outputs_survive_later_calls():
    x = np.random.default_rng(3).uniform(-1, 1, N)
    out, _ = nb.vjp(np.sin, x, np.ones(N))
    kept = out.copy()
    for _ in range(2):
        nb.vjp(np.sin, x + 0.5, np.ones(N))
    np.testing.assert_array_equal(out, kept)
    np.testing.assert_array_equal(out, np.sin(x))


def test_differentiable_results_survive_later_calls():
    # create_graph=True results are Tensors whose values are views of the tape's arena:
    # the arena must not be handed to the next call while they live
    x = np.random.default_rng(1).uniform(-1, 1, N)
    _, g = nb.vjp(f, x, create_graph=True)
    kept = np.array(g._v, copy=True)
    for _ in range(2):
        nb.vjp(f, x + 0.5)
    np.testing.assert_array_equal(g._v, kept)


def test_steady_state_reuses_both_arenas():
    x = np.random.default_rng(2).uniform(-1, 1, N)
    nb.vjp(f, x)
    spares = buffers._spares(np.dtype(np.float64))
    before = sorted(id(s) for s in spares)
    assert len(before) == 2                  # the tape's arena and the sweep's adjoints
    nb.vjp(f, x)
    assert sorted(id(s) for s in spares) == before


@pytest.mark.parametrize("call", [
    lambda x: nb.jvp(f, x, x),
    lambda x: nb.hvp(f, x, x),
    lambda x: nb.vhp(f, x, x),
    lambda x: nb.hessp(f)(x, x),
    lambda x: nb.value_and_grad(f)(x),
    lambda x: nb.jacobian(lambda t: np.sin(t) * t[0], x[:256])],      # 256 lanes of 2 KiB
    ids=["jvp", "hvp", "vhp", "hessp", "value_and_grad", "jacobian"])
def test_every_function_returns_its_arenas(call, monkeypatch):
    x = np.random.default_rng(4).uniform(-1, 1, N)
    call(x)
    fresh = []

    def empty(n, dtype=float):
        fresh.append(n)
        return np.empty(n, dtype)
    monkeypatch.setattr(buffers, "np", types.SimpleNamespace(empty=empty, dtype=np.dtype, ndarray=np.ndarray))
    call(x)                      # the tape's arena and the sweeps' all come from the spares
    assert fresh == []


def test_a_buffer_with_a_live_view_is_not_kept():
    buf = buffers.take(N, np.float64)
    view = buf[10:20]
    assert not buffers.give(buf)
    del view
    assert buffers.give(buf)
    del buf
    assert len(buffers._spares(np.dtype(np.float64))) == 1


def test_take_picks_a_fitting_spare():
    for size in (N, 2 * N, 4 * N):
        buffers.give(np.empty(size))
    exact = buffers.take(N + 1, np.float64)        # N + 1 <= size < 2 (N + 1): the 2N spare
    assert exact.shape == (N + 1,) and exact.base.shape == (2 * N,)
    grown = buffers.take(N, np.float64, at_least=True)     # an arena: the largest spare
    assert grown.shape == (4 * N,)
    assert buffers.take(8 * N, np.float64).shape == (8 * N,)      # none fits: a new one


def test_at_most_max_spares_are_kept_largest_first():
    for k in range(buffers.MAX_SPARES + 2):
        buffers.give(np.empty(N * (k + 1)))
    sizes = [s.shape[0] for s in buffers._spares(np.dtype(np.float64))]
    assert sizes == [N * (k + 3) for k in range(buffers.MAX_SPARES)]


def test_small_buffers_are_not_spares_but_the_next_tapes_first_arena():
    buffers.clear()
    small = np.empty(16)
    assert buffers.give(small)
    assert buffers._spares(np.dtype(np.float64)) == []
    assert buffers.take_small(np.dtype(np.float64)) is small
    assert buffers.take_small(np.dtype(np.float64)) is None        # handed out once
    viewed = np.empty(16)
    view = viewed[2:]
    assert not buffers.give(viewed) and not buffers.give(view)    # something still sees them
    # a recording that grew its arena leaves it for the next one, which starts at that size
    nb.vjp(lambda x: np.sum(x * 2.0), np.ones(1000))
    arena = buffers.take_small(np.dtype(np.float64))
    assert arena is not None and arena.shape[0] >= 1000


def test_clear_drops_the_spares():
    nb.vjp(f, np.random.default_rng(5).uniform(-1, 1, N))
    assert buffers._spares(np.dtype(np.float64))
    buffers.clear()
    assert buffers._spares(np.dtype(np.float64)) == []


def test_a_large_copy_runs_in_two_halves_and_copies_every_value(monkeypatch):
    """``buffers.copy_into`` (an input written into the arena, a gradient copied out of a sweep's):
    from ``SPLIT_COPY`` values, half on the worker thread; every value lands, cast as numpy
    assigns; called on the worker itself, or while numpy's BLAS threads spin, it copies alone."""
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "_blas_spins_until", 0.0)
    requests = count_worker_requests(monkeypatch)
    src = np.random.default_rng(5).standard_normal(buffers.SPLIT_COPY + 3)
    out = buffers.copy(src)
    assert len(requests) == 1 and out.dtype == src.dtype and not np.shares_memory(out, src)
    np.testing.assert_array_equal(out, src)
    narrow = np.full(src.shape[0] + 2, np.nan, np.float32)
    buffers.copy_into(narrow[1:-1], src)
    np.testing.assert_array_equal(narrow[1:-1], src.astype(np.float32))
    assert np.isnan(narrow[0]) and np.isnan(narrow[-1])
    # on the worker thread, its own second half would wait behind it: taken back, not awaited
    on_worker = sweeps._worker().submit(buffers.copy, src).result(timeout=60)
    np.testing.assert_array_equal(on_worker, src)
    # the small ones, and any while BLAS spins, on the calling thread alone
    requests.clear()
    np.testing.assert_array_equal(buffers.copy(src[:buffers.SPLIT_COPY - 1]), src[:buffers.SPLIT_COPY - 1])
    monkeypatch.setattr(core, "_blas_spins_until", float("inf"))
    np.testing.assert_array_equal(buffers.copy(src), src)
    assert requests == []
