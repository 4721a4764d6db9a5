"""The device API: nb.vjp/nb.record(device="cuda"), tape.to, device arrays in and out, guards, ensembles."""
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import cuda

import numbad as nb
from numbad.cuda import runtime

from cuda_helpers import assert_matches

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from workloads import lorenz, lorenz_inputs  # noqa: E402


def f(x, y):
    return np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2)) * y


X = np.linspace(-1.0, 1.0, 7)
Yv = np.array(0.5)


def test_functional_vjp_on_the_device():
    out, g = nb.vjp(f, (X, Yv), 2.0)
    d_out, d_g = nb.vjp(f, (X, Yv), 2.0, device="cuda")
    assert isinstance(d_out, np.ndarray) and isinstance(d_g, tuple)
    assert_matches(d_out, out, what="value")
    assert_matches(d_g, g, what="vjp")
    # single input, v omitted, a Python float input
    assert_matches(nb.vjp(lambda x: x * x, 3.0, device="cuda"), nb.vjp(lambda x: x * x, 3.0), exact=True)


def test_functional_vjp_errors():
    with pytest.raises(RuntimeError, match="The vector v can only be None"):
        nb.vjp(lambda x: x * 2.0, X, device="cuda")
    with pytest.raises(RuntimeError, match="independent of input 1"):
        nb.vjp(lambda x, y: np.sum(x * x), (X, Yv), strict=True, device="cuda")
    with pytest.raises(RuntimeError, match="Output 0 of the user-provided function does not require"):
        nb.vjp(lambda x: np.ones(2), X, np.ones(2), strict=True, device="cuda")
    with pytest.raises(ValueError, match="create_graph=True needs device='cpu'"):
        nb.vjp(f, (X, Yv), 1.0, create_graph=True, device="cuda")
    with pytest.raises(ValueError, match="'cpu', 'cuda'"):
        nb.vjp(f, (X, Yv), 1.0, device="gpu")
    with pytest.raises(ValueError, match="'cpu', 'cuda'"):
        nb.record(f, (X, Yv), device="tpu")
    with pytest.raises(ValueError, match="cannot run inside a function"):
        nb.vjp(lambda x: nb.vjp(lambda y: np.sum(y), x, device="cuda")[1], X, np.ones(7))


def test_tape_to_cuda_replays():
    tape = nb.record(f, (X, Yv))
    dev = tape.to("cuda")
    assert dev.device == "cuda" and tape.device == "cpu" and dev.to("cuda") is dev
    assert "on cuda" in repr(dev)
    x2 = X * 0.7
    assert_matches(dev((x2, Yv)), tape((x2, Yv)))
    assert_matches(dev.vjp((x2, Yv), 1.5), tape.vjp((x2, Yv), 1.5))
    t = (np.ones(7), np.array(2.0))
    assert_matches(dev.jvp((x2, Yv), t), tape.jvp((x2, Yv), t))
    assert_matches(dev.jacobian((x2, Yv)), tape.jacobian((x2, Yv)))
    g = nb.record(lambda x: np.sin(x[:2]) * x[2], X[:3])
    assert_matches(g.to("cuda").jacobian(X[:3]), g.jacobian(X[:3]))    # fewer inputs than outputs too
    assert_matches(nb.record(f, (X, Yv), device="cuda").vjp((X, Yv), 1.0), tape.vjp((X, Yv), 1.0))


def test_device_arrays_in_and_out():
    tape = nb.record(f, (X, Yv))
    dev = tape.to("cuda")
    out, (gx, gy) = dev.vjp((cuda.to_device(X), Yv), cuda.to_device(np.array(1.5)), to_host=False)
    for a in (out, gx, gy):
        assert runtime.is_device_array(a) and not isinstance(a, np.ndarray)
    assert gx.shape == (7,) and gy.shape == () and out.shape == ()
    o, (ex, ey) = tape.vjp((X, Yv), 1.5)
    assert_matches(gx.copy_to_host(), ex)
    assert_matches(gy.copy_to_host(), ey)
    assert_matches(out.copy_to_host(), o)
    with pytest.raises(ValueError, match=r"input 0 has shape \(6,\)"):
        dev.vjp((cuda.to_device(X[:6]), Yv), 1.0)
    with pytest.raises(TypeError, match="to_host must be True or False"):
        dev.vjp((X, Yv), 1.0, to_host="no")


def branchy(x):
    if np.sum(x) > 0:
        return np.sum(x ** 2)
    return np.sum(np.sin(x))


def test_guards_on_the_device():
    tape = nb.record(branchy, np.ones(3), device="cuda")
    with pytest.raises(nb.BranchChanged, match="changed on replay"):
        tape.vjp(-np.ones(3))
    out, g = tape.vjp(-np.ones(3), retrace=True)
    assert_matches(g, np.cos(-np.ones(3)))
    assert len(tape.branches) == 2
    # an ensemble over both branches: the failing samples are replayed on their own branch
    Xb = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, 0.5], [0.1, 0.2, 0.3]])
    o, G = tape.batch_vjp(Xb, np.ones(3))
    assert_matches(G, np.stack([2 * Xb[0], np.cos(Xb[1]), 2 * Xb[2]]))
    o2, G2 = tape.batch_vjp(Xb, np.ones(3), to_host=False)
    assert_matches(G2.copy_to_host(), G)
    fresh = nb.record(branchy, np.ones(3))
    with pytest.raises(nb.BranchChanged, match="sample 1 of the batch"):
        fresh.batch_vjp(Xb, np.ones(3), device="cuda")


def test_value_reads_are_guarded_on_the_device():
    # a value read (float(), .item(), an index) is a guard checked on every device replay
    f = lambda x: np.sin(x) * float(np.sum(x))       # noqa: E731
    x = np.array([0.5, -0.2, 0.3])
    for tape in (nb.record(f, x, device="cuda"), nb.record(f, x).to("cuda")):
        with pytest.raises(nb.BranchChanged, match="value read"):
            tape.vjp(x + 0.1, np.ones(3))
        out, g = tape.vjp(x + 0.1, np.ones(3), retrace=True)
        assert_matches(out, f(x + 0.1))
        assert_matches(g, np.cos(x + 0.1) * np.sum(x + 0.1))
    with pytest.raises(nb.BranchChanged):
        nb.record(lambda x: x * x[int(x[0] > 0)].item(), x, device="cuda")(-x)


def test_constant_outputs_keep_their_shape_on_the_device():
    tape = nb.record(lambda x: (np.sum(x), np.array(3.0), np.ones((2, 1))), np.ones(3), device="cuda")
    for to_host in (True, False):
        _, c0, c2 = tape(np.ones(3), to_host=to_host)
        assert c0.shape == () and c2.shape == (2, 1)


def test_device_tangents_follow_the_cpu_rules():
    for x, t in ((np.ones(3), np.ones(3, np.float32)), (np.array(1.0, np.float32), 1.0),
                 (np.array(1.0), np.float32(1.0)), (np.ones(3), np.ones(3, np.int64))):
        cpu = nb.record(np.sin, x).jvp(x, t)[1]
        assert_matches(nb.record(np.sin, x, device="cuda").jvp(x, t)[1], cpu)
    with pytest.raises(RuntimeError, match=r"v has invalid size: should be \(3,\) but got \(2,\)"):
        nb.record(np.sin, np.ones(3), device="cuda").jvp(np.ones(3), np.ones(2))


def test_device_vjp_errors_read_as_vjps():
    with pytest.raises(TypeError, match="The inputs given to vjp"):
        nb.vjp(lambda x: x, 3, device="cuda")
    with pytest.raises(TypeError, match="function given to vjp must be either a Tensor"):
        nb.vjp(lambda x: [x], np.ones(2), np.ones(2), device="cuda")
    with pytest.raises(TypeError, match="to_host must be True or False"):
        nb.record(np.sin, np.ones(2), device="cuda")(np.ones(2), to_host=1)


def positive_or_constant(x):
    if (x > 0).all():
        return x.sum(), x * 2.0
    return x.sum(), np.ones(3)           # the second output is a constant on this branch


def test_branches_with_other_constant_outputs_on_the_device():
    xa, xb = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 2.0, 3.0])
    v = (1.0, np.array([1.0, 2.0, 3.0]))
    tape = nb.record(positive_or_constant, xa, retrace=True, device="cuda")
    for x in (xb, xa):                   # cotangents packed for the branch that runs
        assert_matches(tape.vjp(x, v)[1], nb.vjp(positive_or_constant, x, v)[1])
    _, (_, jc) = tape.jvp(xb, np.ones(3))
    assert np.array_equal(jc, np.zeros(3))            # a constant output's tangent is zero
    X = np.stack([xa, xb, 2 * xb])
    V = (np.ones(3), np.arange(9.0).reshape(3, 3))
    T = np.arange(9.0).reshape(3, 3) / 7.0
    for to_host in (True, False):
        (_, second), G = tape.batch_vjp(X, V, to_host=to_host)
        _, (_, jsecond) = tape.batch_jvp(X, T, to_host=to_host)
        if not to_host:
            second, G, jsecond = second.copy_to_host(), G.copy_to_host(), jsecond.copy_to_host()
        for b in range(3):
            eout, eg = nb.vjp(positive_or_constant, X[b], (V[0][b], V[1][b]))
            assert_matches(G[b], eg)
            assert_matches(second[b], eout[1])
            assert_matches(jsecond[b], nb.jvp(positive_or_constant, X[b], T[b])[1][1])


def test_lorenz_ensemble_bit_for_bit_and_chunked(monkeypatch):
    args, _ = lorenz_inputs(np.random.default_rng(0))
    tape = nb.record(lambda *a: lorenz(*a, steps=4), args)
    B = 21
    rng = np.random.default_rng(1)
    Xb = tuple(np.full(B, float(a)) + 0.1 * rng.standard_normal(B) for a in args)
    V = rng.standard_normal(B)
    cpu = tape.batch_vjp(Xb, V)
    monkeypatch.setattr(runtime, "MAX_LANES", 8)        # three launches: 8, 8 and 5 samples
    assert_matches(tape.batch_vjp(Xb, V, device="cuda"), cpu, exact=True)
    T = tuple(rng.standard_normal(B) for _ in args)
    assert_matches(tape.to("cuda").batch_jvp(Xb, T), tape.batch_jvp(Xb, T), exact=True)
    out, G = tape.batch_vjp(Xb, V, device="cuda", to_host=False)
    assert len(G) == 6 and G[0].shape == (B,)
    assert_matches(G[3].copy_to_host(), cpu[1][3], exact=True)


def test_lanes_fit_in_memory(monkeypatch):
    tape = nb.record(lambda x: np.sum(x * x), np.ones(1000))
    db = runtime.device_branch(tape.branches[0])
    monkeypatch.setattr(runtime, "MEMORY_FRACTION", 1e-6)
    assert 1 <= db.lanes(10 ** 6) < 10 ** 6


def test_selects_give_the_unselected_operand_zero_on_the_device():
    # Op.times in the CUDA kernels: the operand a select did not take gets 0 even from an
    # infinite derivative (sqrt'(0)), as on the CPU and in PyTorch, not inf * 0 = NaN
    def g(a):
        return np.sqrt(np.maximum(a, 0.0)) + np.sqrt(np.clip(a, 0.0, None)) * 2.0

    x, v, t = np.array([-1.0, 4.0]), np.array([1.0, 2.0]), np.ones(2)
    expected = nb.vjp(g, x, v)[1]
    assert np.array_equal(expected, [0.0, 1.5])
    assert_matches(nb.vjp(g, x, v, device="cuda")[1], expected, what="eager vjp")
    tape = nb.record(g, x, device="cuda")
    assert_matches(tape.vjp(x, v)[1], expected, what="tape.vjp")
    _, G = tape.batch_vjp(np.stack([x, x, x]), np.stack([v, v, v]))
    assert_matches(G[2], expected, what="batch_vjp")

    def h(a):                           # forward mode: sqrt's infinite tangent at 0, not taken
        return np.where(a > 0, np.sqrt(a), 0.0)

    x0 = np.array([0.0, 4.0])
    expected = nb.jvp(h, x0, t)[1]
    assert np.array_equal(expected, [0.0, 0.25])
    tape = nb.record(h, x0, device="cuda")
    assert_matches(tape.jvp(x0, t)[1], expected, what="tape.jvp")
    _, JV = tape.batch_jvp(np.stack([x0, x0]), np.stack([t, t]))
    assert_matches(JV[1], expected, what="batch_jvp")
