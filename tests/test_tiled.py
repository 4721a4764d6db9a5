"""The tiled reverse sweep (``sweeps._reverse_in_tiles``): a large elementwise sum swept a tile at a time.

Small tiles here (``TILE = 4``, arrays from 8 elements) make every case cross many tile
edges. Each case is held to the plain sweep on the same tape, to PyTorch, and checked to
have been tiled (or, for the tapes outside the tiled form, not to have been).
"""
import numpy as np
import pytest
import torch

import numbad as nb
from helpers import count_worker_requests, record_tiled_reverses, record_tiled_tangents, torch_vjp
from numbad import buffers, sweeps
from numbad.tensor import core

RNG = np.random.default_rng(3)


@pytest.fixture
def tiles(monkeypatch):
    """Small tiles (contiguous reads as views, as for large arrays), sweep arenas full of NaN
    (an element a sweep forgets shows), and a record of which sweeps ran tiled."""
    monkeypatch.setattr(core, "VIEW_MIN_SIZE", 1)
    take = buffers.take

    def poisoned(*args, **kwargs):
        buf = take(*args, **kwargs)
        buf.fill(np.nan)
        return buf
    monkeypatch.setattr(buffers, "take", poisoned)
    monkeypatch.setattr(sweeps, "TILE", 4)
    monkeypatch.setattr(sweeps, "TILED_MIN", 8)
    monkeypatch.setattr(sweeps, "EAGER_TILED_MIN", 8)
    monkeypatch.setattr(sweeps, "TWO_THREADS_MIN", 8)
    monkeypatch.setattr(sweeps, "THREADS", 2)         # (whatever this machine's cores)
    return record_tiled_reverses(monkeypatch)


def _untiled(monkeypatch, f, inputs, v=None):
    with monkeypatch.context() as m:
        m.setattr(sweeps, "TILED_MIN", 1 << 62)
        m.setattr(sweeps, "EAGER_TILED_MIN", 1 << 62)
        return nb.vjp(f, inputs, v)


CASES = [
    # name, numpy function, torch function, input sizes
    ("rosenbrock", lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
     lambda x: (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum(), (37,)),
    ("second differences", lambda x: np.sum(np.tanh(x[2:] - 2.0 * x[1:-1] + x[:-2]) ** 2),
     lambda x: (torch.tanh(x[2:] - 2.0 * x[1:-1] + x[:-2]) ** 2).sum(), (30,)),
    ("values the rules read", lambda x: np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2)),
     lambda x: (torch.sin(x) * torch.exp(-x ** 2) + torch.log1p(x ** 2)).sum(), (41,)),
    ("a node used twice", lambda x: np.sum(np.exp(x) * np.exp(x) / (1.0 + np.exp(x))),
     lambda x: (torch.exp(x) * torch.exp(x) / (1.0 + torch.exp(x))).sum(), (16,)),
    ("comparisons and where", lambda x: np.sum(np.where(x > 0.1, x * x, -np.abs(x)) + np.maximum(x, 0.3)),
     lambda x: (torch.where(x > 0.1, x * x, -torch.abs(x)) + torch.maximum(x, torch.tensor(0.3))).sum(), (29,)),
    ("the sum of a view", lambda x: np.sum(x[3:]), lambda x: x[3:].sum(), (20,)),
    # elements past the summed run: their cotangents are zeros the tiles must still reach
    ("a value read in part", lambda x: np.sum(np.exp(x)[2:-5] * 2.0),
     lambda x: (torch.exp(x)[2:-5] * 2.0).sum(), (27,)),
    ("two inputs", lambda x, y: np.sum(np.cos(x * y) + (x - y) ** 2),
     lambda x, y: (torch.cos(x * y) + (x - y) ** 2).sum(), (23, 23)),
    ("an input unused", lambda x, y: np.sum(x * x), lambda x, y: (x * x + 0.0 * y).sum(), (12, 12)),
]


@pytest.mark.parametrize("name, f, tf, sizes", CASES, ids=[c[0] for c in CASES])
def test_tiled_cotangents_match_the_plain_sweep_and_pytorch(tiles, monkeypatch, name, f, tf, sizes):
    inputs = tuple(RNG.uniform(-1.0, 1.0, n) for n in sizes)
    out, grads = nb.vjp(f, inputs)
    assert tiles == [True]
    plain_out, plain = _untiled(monkeypatch, f, inputs)
    assert out == plain_out
    for g, p, t in zip(grads, plain, torch_vjp(tf, inputs, 1.0)[1]):
        # the same operations on the same values; only where several shifted reads of one
        # array meet at a tile edge may their cotangents be added in another order
        np.testing.assert_allclose(g, p, rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(g, t, rtol=1e-13, atol=1e-14)


def test_float32_and_a_seed_other_than_one(tiles, monkeypatch):
    x = RNG.uniform(-1.0, 1.0, 19).astype(np.float32)

    def f(x):
        return np.sum(np.sin(x[1:]) * x[:-1])
    _, g = nb.vjp(f, x, np.float32(-2.5))
    assert tiles == [True] and g.dtype == np.float32
    _, plain = _untiled(monkeypatch, f, x, np.float32(-2.5))
    np.testing.assert_allclose(g, plain, rtol=1e-6)
    xt = torch.tensor(x, requires_grad=True)
    (t,) = torch.autograd.grad((torch.sin(xt[1:]) * xt[:-1]).sum() * -2.5, xt)
    np.testing.assert_allclose(g, t.numpy(), rtol=1e-5, atol=1e-6)


def test_two_threads_split_the_tiles(tiles, monkeypatch):
    """The second half of the tiles runs on the worker thread, with windows of its own; the
    result is the one-thread sweep's, but for the order of additions at the halves' edge,
    and the same on every run. A shifted read of a base that an op made keeps to one thread."""
    submitted = count_worker_requests(monkeypatch)
    f = CASES[0][1]                    # Rosenbrock: shifted reads of the input
    x = RNG.uniform(-1.0, 1.0, 61)
    _, g = nb.vjp(f, x)
    assert submitted == [1]
    _, again = nb.vjp(f, x)
    assert g.tobytes() == again.tobytes()
    with monkeypatch.context() as m:
        m.setattr(sweeps, "THREADS", 1)
        _, one = nb.vjp(f, x)
    assert submitted == [1, 1]
    np.testing.assert_allclose(g, one, rtol=1e-15, atol=1e-15)
    nb.vjp(lambda x: np.sum(np.exp(x)[2:-5] * 2.0), x)
    assert submitted == [1, 1] and tiles == [True] * 4


NOT_TILED = [
    # a one-element input broadcast over the array: its cotangent sums over every tile
    ("a varying scalar", lambda x, a: np.sum(a * x * x), (np.linspace(0.0, 1.0, 12), 1.5)),
    # arrays too small for tiles beside the large one
    ("a small array", lambda x, w: np.sum(x * x) + np.sum(w * w), (np.linspace(0.0, 1.0, 12), np.ones(3))),
    ("a matmul", lambda x, m: np.sum(np.tanh(m @ x)), (np.linspace(0.0, 1.0, 9), np.eye(9))),
    ("a reduction along an axis", lambda x: np.sum(np.sum(x.reshape(3, 4) ** 2, axis=0)),
     (np.linspace(0.0, 1.0, 12),)),
    ("no sum at the end", lambda x: np.exp(x) * x, (np.linspace(0.0, 1.0, 12),)),
]


@pytest.mark.parametrize("name, f, inputs", NOT_TILED, ids=[c[0] for c in NOT_TILED])
def test_other_tapes_take_the_plain_sweep(tiles, monkeypatch, name, f, inputs):
    v = np.ones(12) if name == "no sum at the end" else None
    out, grads = nb.vjp(f, inputs, v)
    assert True not in tiles
    _, plain = _untiled(monkeypatch, f, inputs, v)
    for g, p in zip(grads, plain):
        np.testing.assert_array_equal(g, p)
    ts = [torch.tensor(np.asarray(x, float), requires_grad=True) for x in inputs]
    tf = {"a varying scalar": lambda x, a: (a * x * x).sum(),
          "a small array": lambda x, w: (x * x).sum() + (w * w).sum(),
          "a matmul": lambda x, m: torch.tanh(m @ x).sum(),
          "a reduction along an axis": lambda x: ((x.reshape(3, 4) ** 2).sum(0)).sum(),
          "no sum at the end": lambda x: (torch.exp(x) * x * torch.tensor(v)).sum()}[name]
    for g, t in zip(grads, torch.autograd.grad(tf(*ts), ts)):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-13, atol=1e-14)


def test_numbad_threads_setting():
    import os
    import subprocess
    import sys

    def threads(setting):
        env = dict(os.environ, NUMBAD_THREADS=setting)
        return subprocess.run([sys.executable, "-c", "import numbad.sweeps as s; print(s.THREADS)"],
                              env=env, capture_output=True, text=True)
    assert threads("1").stdout.strip() == "1"
    assert threads("0").stdout.strip() == "1"
    bad = threads("two")
    assert bad.returncode != 0 and "NUMBAD_THREADS must be a whole number of threads, not 'two'" in bad.stderr


def test_the_default_tiles_on_two_threads(monkeypatch):
    """Rosenbrock on an array of a few hundred thousand elements, at the default ``TILE`` and
    ``TILED_MIN``: tiled, split over two threads, and the plain sweep's cotangents (but for
    the order of additions at tile edges), which are the closed form's."""
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "SPLIT_NS", float("inf"))       # (the forward's ops: one thread)
    submitted = count_worker_requests(monkeypatch)
    ran = record_tiled_reverses(monkeypatch)
    f = CASES[0][1]
    x = RNG.uniform(-1.0, 1.0, 3 * sweeps.TWO_THREADS_MIN + 7)
    assert len(x) > 8 * sweeps.TILE
    _, g = nb.vjp(f, x)
    assert ran == [True] and len(submitted) == 1
    _, plain = _untiled(monkeypatch, f, x)
    np.testing.assert_allclose(g, plain, rtol=1e-15, atol=1e-13)
    closed = np.zeros_like(x)
    closed[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    closed[:-1] += -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    np.testing.assert_allclose(g, closed, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- random programs
# The random programs of test_random_programs.py never have the tiled form (a sum of
# elementwise ops and shifted reads of inputs): these do. Leaves are shifted reads of two
# inputs (x[2:], x[1:-1], x[:-2]) and numbers; inner nodes the ops below.
_UNARY = [(np.sin, torch.sin), (np.exp, torch.exp), (np.tanh, torch.tanh), (np.cos, torch.cos),
          (lambda a: np.log1p(a * a), lambda a: torch.log1p(a * a)),
          (lambda a: np.sqrt(a * a + 1.0), lambda a: torch.sqrt(a * a + 1.0)),
          (np.abs, torch.abs), (np.square, torch.square), (np.negative, torch.neg)]
_BINARY = [(np.add, torch.add), (np.subtract, torch.sub), (np.multiply, torch.mul),
           (lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
           (np.maximum, torch.maximum), (lambda a, b: np.where(a > b, a * b, a - b),
                                         lambda a, b: torch.where(a > b, a * b, a - b))]


def _tiled_program(rng):
    """A random ``sum(expression)`` over shifted reads of two inputs, as (numpy, torch) functions."""
    steps = []
    for _ in range(int(rng.integers(2, 9))):
        kind = rng.integers(3)
        if kind == 0:
            steps.append(("unary", int(rng.integers(len(_UNARY)))))
        elif kind == 1:
            steps.append(("binary", int(rng.integers(len(_BINARY))), int(rng.integers(7))))
        else:
            steps.append(("number", float(rng.uniform(-2.0, 2.0)), int(rng.integers(2))))

    def run(x, y, numpy):
        side = 0 if numpy else 1
        leaves = [x[2:], x[1:-1], x[:-2], y[2:], y[1:-1], y[:-2]]
        value = leaves[0]
        for step in steps:
            if step[0] == "unary":
                value = _UNARY[step[1]][side](value)
            elif step[0] == "binary":
                other = leaves[step[2]] if step[2] < len(leaves) else value
                value = _BINARY[step[1]][side](value, other)
            else:
                value = value * step[1] if step[2] else value + step[1]
        return value
    return (lambda x, y: np.sum(run(x, y, True))), (lambda x, y: run(x, y, False).sum()), steps


@pytest.mark.parametrize("deferred", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("seed", range(12))
def test_random_tiled_programs(tiles, monkeypatch, seed, threads, deferred):
    """A random program of the tiled form, swept in tiles (on one thread, or two; with the
    values of exact ops recomputed by each tile, or not): its gradients are the plain
    sweep's (but for the order of additions at tile edges) and PyTorch's; a second call on
    the same shapes keeps the first call's plan and gives the bits of a call that plans
    afresh; nb.jvp's tangent, swept in tiles, is the plain sweep's to the bit and PyTorch's;
    a recorded tape's tiled replay gives nb.vjp's values."""
    if threads == 1:
        monkeypatch.setattr(sweeps, "TWO_THREADS_MIN", 1 << 62)
    if deferred:
        monkeypatch.setattr(core, "BIG", 8)           # (large values: deferred, recomputed)
    rng = np.random.default_rng(seed)
    f, tf, steps = _tiled_program(rng)
    n = int(rng.integers(20, 60))
    inputs = (rng.uniform(-1.0, 1.0, n), rng.uniform(-1.0, 1.0, n))
    out, grads = nb.vjp(f, inputs)
    assert tiles == [True], steps
    plain_out, plain = _untiled(monkeypatch, f, inputs)
    assert out == plain_out
    for g, p, t in zip(grads, plain, torch_vjp(tf, inputs, 1.0)[1]):
        np.testing.assert_allclose(g, p, rtol=1e-14, atol=1e-14, err_msg=str(steps))
        np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-12, err_msg=str(steps))
    moved = tuple(a + rng.uniform(-0.05, 0.05, n) for a in inputs)
    _, kept = nb.vjp(f, moved)
    monkeypatch.setattr(sweeps, "_plans_of", lambda *args: None)
    _, fresh = nb.vjp(f, moved)
    for a, b in zip(kept, fresh):
        assert a.tobytes() == b.tobytes(), steps
    tangents = (rng.uniform(-1.0, 1.0, n), rng.uniform(-1.0, 1.0, n))
    tiled_tangents = record_tiled_tangents(monkeypatch)
    _, jv = nb.jvp(f, inputs, tangents)
    assert tiled_tangents == [True], steps
    with monkeypatch.context() as m:
        m.setattr(sweeps, "TILED_MIN", 1 << 62)
        _, plain_jv = nb.jvp(f, inputs, tangents)
    assert jv.tobytes() == plain_jv.tobytes(), steps                 # (element by element: the same bits)
    np.testing.assert_allclose(jv, torch.func.jvp(tf, tuple(map(torch.tensor, inputs)),
                                                  tuple(map(torch.tensor, tangents)))[1].numpy(),
                               rtol=1e-12, atol=1e-12, err_msg=str(steps))
    tape = nb.record(f, inputs)
    _, replayed = tape.vjp(moved, 1.0)
    assert tiles[-1] is True
    for a, b in zip(replayed, fresh):
        # (a replay computes exp, cos... in its sweeps, numpy's values may differ in the last bit)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=str(steps))


def test_a_tangent_through_a_view_of_a_computed_value_is_not_tiled(tiles, monkeypatch):
    """A view of a value that an op makes (``np.exp(x)[2:]``) reads elements of the next tile,
    which a tiled tangent sweep has not computed yet: the plain sweep takes that tape."""
    tiled_tangents = record_tiled_tangents(monkeypatch)
    x, t = RNG.uniform(-1.0, 1.0, 30), RNG.uniform(-1.0, 1.0, 30)
    _, jv = nb.jvp(lambda x: np.sum(np.exp(x)[2:] * x[:-2]), x, t)
    assert tiled_tangents == [False]
    expected = np.sum(np.exp(x[2:]) * t[2:] * x[:-2] + np.exp(x[2:]) * t[:-2])
    np.testing.assert_allclose(jv, expected, rtol=1e-13)
    _, jv = nb.jvp(lambda x: np.sum(np.exp(x[2:]) * x[:-2]), x, t)     # (views of the input: tiled)
    assert tiled_tangents == [False, True]
    np.testing.assert_allclose(jv, expected, rtol=1e-13)
