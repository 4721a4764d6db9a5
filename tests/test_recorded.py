"""Recorded tapes: replay equals eager, guards, retrace, batches, persistence, validation."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import numbad as nb

from helpers import assert_close, count_worker_requests, record_calls, record_tiled_reverses

rng = np.random.default_rng(3)
W = rng.standard_normal((4, 4))

# the core corpus: (name, function, example inputs)
CORPUS = [
    ("elementwise", lambda x: np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2)), (rng.standard_normal(5),)),
    ("broadcast", lambda a, b: a * b + np.tanh(a - b), (rng.standard_normal((3, 1)), rng.standard_normal(4))),
    ("reductions", lambda x: (np.mean(x, axis=0) * np.sum(x ** 2, axis=1, keepdims=True)), (rng.standard_normal((3, 4)),)),
    ("matmul", lambda x: np.tanh(W @ x) * x, (rng.standard_normal(4),)),
    ("indexing", lambda x: x[1:3] * x[[0, 0]] + x[x.detach() > 0].sum() * 0, (rng.standard_normal(4),)),
    ("where/maximum", lambda x: np.where(x > 0, x ** 2, np.maximum(x, -0.5)), (rng.standard_normal(6),)),
    ("tuple out", lambda x, y: (x * y, (x - y).sum()), (rng.standard_normal(3), rng.standard_normal(3))),
    ("float32", lambda x: np.exp(x) * 2.0, (rng.standard_normal(3).astype(np.float32),)),
]


def _outputs_like(f, args):
    """Random cotangents shaped like ``f``'s outputs (a tuple when ``f`` returns one)."""
    from numbad.functional._common import Call
    out = Call(args, False).run(f)
    if isinstance(out, tuple):
        return tuple(rng.standard_normal(np.shape(o._v)).astype(o.dtype) for o in out)
    return rng.standard_normal(np.shape(out._v)).astype(out.dtype)


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


@pytest.mark.parametrize("name, f, example", CORPUS, ids=[c[0] for c in CORPUS])
def test_replay_equals_eager(name, f, example):
    one = len(example) == 1
    tape = nb.record(f, example[0] if one else example)
    new = example if name == "indexing" else tuple(      # keep the mask (a guard) the same
        (x + 0.01 * rng.standard_normal(x.shape)).astype(x.dtype) for x in example)
    args = new[0] if one else new
    v = _outputs_like(f, new)
    out_e, g_e = nb.vjp(f, args, v)
    out_r, g_r = tape.vjp(args, v)
    _compare(out_r, out_e)
    _compare(g_r, g_e)
    _compare(tape(args), out_e)
    # forward mode: u^T (J t) from the replayed tangent sweep equals (u^T J) t from eager reverse mode
    t = tuple(rng.standard_normal(x.shape).astype(x.dtype) for x in new)
    _, jv = tape.jvp(args, t[0] if one else t)
    lhs = sum(np.sum(a * b) for a, b in zip(_tuple(jv), _tuple(v)))
    rhs = sum(np.sum(a * b) for a, b in zip(_tuple(g_e), t))
    assert np.isclose(lhs, rhs, rtol=1e-5 if name == "float32" else 1e-12)


def _compare(a, b):
    if isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _compare(x, y)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    assert_close(a, b, rtol=1e-6 if a.dtype == np.float32 else 1e-13, atol=1e-12)


# ----------------------------------------------------------------------------- guards
def branchy(x):
    if x[0] > 0:
        return np.sum(x ** 2)
    return np.sum(np.sin(x))


def test_guard_holds_on_the_recorded_side():
    tape = nb.record(branchy, np.array([1.0, 2.0]))
    out, g = tape.vjp(np.array([3.0, -1.0]))
    assert_close(g, [6.0, -2.0])


def test_guard_raises_branch_changed_naming_the_site():
    tape = nb.record(branchy, np.array([1.0, 2.0]))
    with pytest.raises(nb.BranchChanged) as info:
        tape.vjp(np.array([-3.0, 1.0]))
    msg = str(info.value)
    assert "test_recorded.py:" in msg and "it was True when the tape was recorded and is False now" in msg
    line = int(msg.split("test_recorded.py:")[1].split()[0])
    assert "if x[0] > 0" in open(__file__).read().splitlines()[line - 1]
    with pytest.raises(nb.BranchChanged):
        tape(np.array([-3.0, 1.0]))
    with pytest.raises(nb.BranchChanged):
        tape.jvp(np.array([-3.0, 1.0]), np.ones(2))


def test_retrace_records_and_caches_the_new_branch():
    calls = []

    def f(x):
        calls.append(1)
        return branchy(x)
    tape = nb.record(f, np.array([1.0, 2.0]), retrace=True)
    out, g = tape.vjp(np.array([-3.0, 1.0]))
    assert_close(g, np.cos([-3.0, 1.0]))
    assert len(tape.branches) == 2 and len(calls) == 2
    out, g = tape.vjp(np.array([2.0, 1.0]))            # the first branch again: no new recording
    assert_close(g, [4.0, 2.0])
    out, g = tape.vjp(np.array([-1.0, 0.5]))           # the second branch, cached
    assert_close(g, np.cos([-1.0, 0.5]))
    assert len(calls) == 2
    # retrace per call overrides the tape's default
    strict = nb.record(branchy, np.array([1.0, 2.0]))
    _, g = strict.vjp(np.array([-3.0, 1.0]), retrace=True)
    assert_close(g, np.cos([-3.0, 1.0]))


def newton_sqrt(a):
    """A data-dependent trip count: Newton's iteration for sqrt(a) until converged."""
    x = a * 0.5 + 0.5
    while np.abs(x * x - a) > 1e-12:
        x = 0.5 * (x + a / x)
    return x


def test_data_dependent_loop():
    tape = nb.record(newton_sqrt, np.array(2.0), retrace=True)
    n_guards = tape.branches[0].g_op.shape[0]
    assert n_guards >= 4
    out, g = tape.vjp(np.array(2.0))
    assert_close(out, np.sqrt(2.0)) and assert_close(g, 0.5 / np.sqrt(2.0), rtol=1e-9)
    out, g = tape.vjp(np.array(30.0))                  # more iterations: a new branch
    assert_close(out, np.sqrt(30.0)) and assert_close(g, 0.5 / np.sqrt(30.0), rtol=1e-9)
    assert len(tape.branches) == 2
    strict = nb.record(newton_sqrt, np.array(2.0))
    with pytest.raises(nb.BranchChanged, match="test_recorded.py"):
        strict.vjp(np.array(30.0))


def test_values_read_into_python_are_guards():
    def f(x):
        scale = float(x[0])                    # Python sees the value: a guard on it
        return x * scale

    tape = nb.record(f, np.array([2.0, 3.0]))
    out, g = tape.vjp(np.array([2.0, 5.0]), np.ones(2))
    assert_close(out, [4.0, 10.0]) and assert_close(g, [2.0, 2.0])   # no derivative through float()
    with pytest.raises(nb.BranchChanged, match="a value read into Python"):
        tape(np.array([3.0, 5.0]))

    def g_(x, i):
        return x[int(np.round(i))] * 2.0       # an index computed from data
    tape = nb.record(g_, (np.array([1.0, 2.0, 3.0]), np.array(1.0)))
    _, (gx, gi) = tape.vjp((np.array([5.0, 6.0, 7.0]), np.array(1.0)))
    assert_close(gx, [0.0, 2.0, 0.0])
    with pytest.raises(nb.BranchChanged):
        tape.vjp((np.array([5.0, 6.0, 7.0]), np.array(2.0)))


def test_select_ops_need_no_guard():
    f = lambda x: np.sum(np.where(x > 0, x, 0.0) + np.maximum(x, 0.5) + np.clip(x, -1, 1))  # noqa: E731
    tape = nb.record(f, np.array([1.0, -2.0, 0.3]))
    assert tape.branches[0].g_op.shape[0] == 0
    for x in (np.array([-1.0, 2.0, 0.9]), np.array([5.0, 5.0, -5.0])):
        out, g = tape.vjp(x)
        out_e, g_e = nb.vjp(f, x)
        assert_close(out, out_e) and assert_close(g, g_e)


def test_nested_vjp_inside_a_recording_replays():
    def f(y):
        _, gx = nb.vjp(lambda x: np.sum(x * y), np.array([1.0, 2.0]))   # gx == y, no derivative
        return np.sum(gx * y) + np.sum(y ** 2)
    tape = nb.record(f, np.array([1.0, 2.0]))
    out, g = tape.vjp(np.array([3.0, 4.0]))
    assert_close(out, 2 * (9.0 + 16.0))
    assert_close(g, [3.0 + 6.0, 4.0 + 8.0])          # d/dy (gx*y) with gx constant, + 2y


X0 = np.array([1.0, 2.0])
NESTED = {       # a function of y that differentiates an inner function of x (create_graph=False)
    "vjp": lambda y: nb.vjp(lambda x: np.sum(x ** 3 * y), X0)[1],
    "jvp": lambda y: nb.jvp(lambda x: x ** 3 * y, X0, y)[1],
    "jacobian": lambda y: nb.jacobian(lambda x: x ** 3 * y, X0).sum(axis=0),
    "jacobian forward": lambda y: nb.jacobian(lambda x: x ** 3 * y, X0, strategy="forward-mode").sum(axis=0),
    "hessian": lambda y: nb.hessian(lambda x: np.sum(x ** 3 * y), X0).sum(axis=0),
    "hvp": lambda y: nb.hvp(lambda x: np.sum(x ** 3 * y), X0, y)[1],
    "vhp": lambda y: nb.vhp(lambda x: np.sum(x ** 3 * y), X0, y)[1],
    "grad": lambda y: nb.grad(lambda x: np.sum(x ** 3 * y))(X0),
    "hessp": lambda y: nb.hessp(lambda x: np.sum(x ** 3 * y))(X0, y),
}
NESTED_VALUES = {    # what each gives, with x = X0: f = sum(x^3 y), so grad = 3 x^2 y, H = diag(6 x y)
    "vjp": lambda y: 3 * X0 ** 2 * y, "jvp": lambda y: 3 * X0 ** 2 * y * y,
    "jacobian": lambda y: 3 * X0 ** 2 * y, "jacobian forward": lambda y: 3 * X0 ** 2 * y,
    "hessian": lambda y: 6 * X0 * y, "hvp": lambda y: 6 * X0 * y * y, "vhp": lambda y: 6 * X0 * y * y,
    "grad": lambda y: 3 * X0 ** 2 * y, "hessp": lambda y: 6 * X0 * y * y,
}


@pytest.mark.parametrize("name", NESTED)
def test_every_derivative_inside_a_recording_replays(name):
    # inside nb.record a create_graph=False derivative is recorded, so that every replay
    # recomputes it (not answered once by the compiled sweeps at recording time), and no
    # derivative flows through it (create_graph=False)
    inner = NESTED[name]

    def f(y):
        return inner(y) * y
    tape = nb.record(f, np.array([1.0, 2.0]))
    for y in (np.array([3.0, -1.0]), np.array([0.5, 2.0])):
        expected = NESTED_VALUES[name](y)
        assert_close(tape(y), expected * y, what=f"{name} replayed")
        out, g = tape.vjp(y, np.ones(2))
        assert_close(out, expected * y)
        assert_close(g, expected, what=f"{name}: no derivative through the nested result")
        assert_close(nb.vjp(f, y, np.ones(2))[1], expected)


def test_value_and_grad_inside_a_recording_reads_its_value_as_a_guard():
    def f(y):
        value, g = nb.value_and_grad(lambda x: np.sum(x ** 3 * y))(X0)
        return g * value
    tape = nb.record(f, np.array([1.0, 2.0]))
    y = np.array([3.0, -1.0])
    with pytest.raises(nb.BranchChanged, match="value read"):
        tape(y)
    assert_close(tape(y, retrace=True), 3 * X0 ** 2 * y * np.sum(X0 ** 3 * y))


def test_detach_inside_a_recording_is_guarded():
    def f(x):
        m = x.detach().max()
        return np.sum(x - m)
    tape = nb.record(f, np.array([1.0, 2.0]))
    assert_close(tape(np.array([1.0, 2.0])), -1.0)
    with pytest.raises(nb.BranchChanged):
        tape(np.array([1.0, 3.0]))


# ----------------------------------------------------------------------------- batches
def lorenz_short(x, y, z, sigma, rho, beta):
    for _ in range(50):
        x, y, z = (x + 0.01 * sigma * (y - x), y + 0.01 * (x * (rho - z) - y), z + 0.01 * (x * y - beta * z))
    return x + y + z


def test_batch_vjp_equals_a_loop():
    ex = tuple(np.array(v) for v in (1.0, 1.0, 1.0, 10.0, 28.0, 8 / 3))
    tape = nb.record(lorenz_short, ex)
    B = 37
    X = tuple(np.asarray(e) + 0.1 * rng.standard_normal(B) for e in ex)
    V = rng.standard_normal(B)
    out, grads = tape.batch_vjp(X, V)
    assert out.shape == (B,) and len(grads) == 6 and grads[0].shape == (B,)
    for b in range(B):
        o, g = tape.vjp(tuple(x[b] for x in X), V[b])
        assert_close(out[b], o)
        for k in range(6):
            assert_close(grads[k][b], g[k])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_a_forked_child_batches_on_threads_of_its_own():
    """The parent's pool threads are not in a forked child: the child makes its own pool
    (with the parent's executor the child's batch would wait forever). In a fresh
    process: this one has other libraries' threads (JAX's), which fork does not suit."""
    script = textwrap.dedent("""
        import os, signal, numpy as np, numbad as nb
        os.cpu_count = lambda: 2                       # (two chunks: the pool is used)
        tape = nb.record(lambda x: np.sum(np.sin(x) * x), np.ones(3))
        X = np.random.default_rng(0).standard_normal((200, 3))
        _, grads = tape.batch_vjp(X)                   # the parent's pool exists now
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)                           # (a hang ends as a failure)
            _, child = tape.batch_vjp(X)
            os._exit(0 if child.tobytes() == grads.tobytes() else 2)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["child", "0"]


def _small_net(W1, x):
    h = np.tanh(W1 @ x + x[:2].sum())
    return np.sum(h[::-1] * np.maximum(h, 0.1)) + W1.T[0] @ x


@pytest.mark.parametrize("lanes_interpreter", [True, False], ids=["batched values", "sample by sample"])
def test_batch_vjp_structural_ops(lanes_interpreter):
    ex = (rng.standard_normal((3, 3)), rng.standard_normal(3))
    tape = nb.record(_small_net, ex)
    tape.branches[0].batchable = lanes_interpreter
    B = 70                                  # more than one pass of lanes, and a partial one
    X = (rng.standard_normal((B, 3, 3)), rng.standard_normal((B, 3)))
    out, (gW, gx) = tape.batch_vjp(X)
    T = (rng.standard_normal((B, 3, 3)), rng.standard_normal((B, 3)))
    out2, jv = tape.batch_jvp(X, T)
    for b in range(0, B, 7):
        o, (w, x) = tape.vjp((X[0][b], X[1][b]))
        assert_close(out[b], o) and assert_close(gW[b], w) and assert_close(gx[b], x)
        o, j = tape.jvp((X[0][b], X[1][b]), (T[0][b], T[1][b]))
        assert_close(out2[b], o) and assert_close(jv[b], j)


def test_batch_jvp_equals_a_loop():
    tape = nb.record(lambda x: np.tanh(W @ x) * x, np.zeros(4))
    B = 9
    X = rng.standard_normal((B, 4))
    T = rng.standard_normal((B, 4))
    out, jv = tape.batch_jvp(X, T)
    for b in range(B):
        o, j = tape.jvp(X[b], T[b])
        assert_close(out[b], o) and assert_close(jv[b], j)


def test_batch_with_changed_branches():
    tape = nb.record(branchy, np.array([1.0, 2.0]))
    X = np.array([[1.0, 2.0], [-1.0, 2.0], [3.0, 0.5]])
    with pytest.raises(nb.BranchChanged, match="sample 1"):
        tape.batch_vjp(X)
    out, g = tape.batch_vjp(X, retrace=True)
    for b in range(3):
        _, ge = nb.vjp(branchy, X[b])
        assert_close(g[b], ge)


# ----------------------------------------------------------------------------- inputs
def test_inputs_must_match_the_recording():
    tape = nb.record(lambda x: x * 2, np.zeros(3))
    with pytest.raises(ValueError, match=r"input 0 has shape \(4,\).*recorded with shape \(3,\)"):
        tape(np.zeros(4))
    with pytest.raises(ValueError, match="dtype float32"):
        tape(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="input 0"):
        tape([0.0, 0.0, 0.0])
    tape2 = nb.record(lambda x, y: x * y, (np.zeros(2), np.zeros(2)))
    with pytest.raises(TypeError, match="2 inputs"):
        tape2((np.zeros(2),))
    # a 0-d input takes a number of its dtype, as nb.vjp does; another dtype is named
    with pytest.raises(ValueError, match=r"tangent 0 has shape \(2, 4\)"):
        tape.batch_jvp(np.zeros((2, 3)), np.zeros((2, 4)))
    scalar = nb.record(lambda x: x * 3.0, np.zeros((), np.float32))
    assert scalar(np.float32(2.0)) == np.float32(6.0)
    assert scalar.vjp(np.float32(2.0), np.float32(1.0))[1] == np.float32(3.0)
    with pytest.raises(ValueError, match=r"input 0 has shape \(\) and dtype float64, but the tape was "
                                         r"recorded with shape \(\) and dtype float32"):
        scalar(np.float64(2.0))


def test_tape_jacobian_matches_pytorch():
    f = lambda x: np.tanh(W @ x) * x  # noqa: E731
    x = rng.standard_normal(4)
    J = nb.record(f, x).jacobian(x)
    tJ = torch.autograd.functional.jacobian(lambda t: torch.tanh(torch.tensor(W) @ t) * t, torch.tensor(x))
    assert_close(J, tJ.numpy())
    g = lambda a, b: (a * b, np.sum(a ** 2 * b))  # noqa: E731
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    J = nb.record(g, (a, b)).jacobian((a, b))
    tJ = torch.autograd.functional.jacobian(lambda a, b: (a * b, torch.sum(a ** 2 * b)),
                                            (torch.tensor(a), torch.tensor(b)))
    for i in range(2):
        for j in range(2):
            assert_close(J[i][j], tJ[i][j].numpy())
    # more inputs than outputs and the other way round both work (reverse vs forward blocks)
    wide = lambda x: np.sum(x ** 2)  # noqa: E731
    x = rng.standard_normal(300)
    assert_close(nb.record(wide, x).jacobian(x), 2 * x)
    tall = lambda x: np.outer(x, np.ones(300)).ravel() if False else x * np.ones(300)  # noqa: E731
    x = np.array(0.5)
    assert_close(nb.record(tall, x).jacobian(x), np.ones(300))


# ----------------------------------------------------------------------------- persistence
def test_pickle_and_save_load_round_trip(tmp_path):
    ex = tuple(np.array(v) for v in (1.0, 1.0, 1.0, 10.0, 28.0, 8 / 3))
    tape = nb.record(lorenz_short, ex)
    expected = tape.vjp(ex)
    again = pickle.loads(pickle.dumps(tape))
    _compare(again.vjp(ex), expected)
    path = tmp_path / "lorenz.npz"
    tape.save(path)
    loaded = nb.Tape.load(path)
    _compare(loaded.vjp(ex), expected)
    assert loaded.summary().splitlines()[1] == tape.summary().splitlines()[1]
    tape.save(tmp_path / "bare")          # numpy's savez adds .npz; load finds it as save named it
    _compare(nb.Tape.load(tmp_path / "bare").vjp(ex), expected)
    _compare(nb.Tape.load(str(tmp_path / "bare")).vjp(ex), expected)


def test_loaded_tape_replays_in_a_fresh_process(tmp_path):
    path = tmp_path / "t.npz"
    tape = nb.record(lambda x: np.sum(np.sin(x) * x), np.zeros(3))
    tape.save(path)
    code = textwrap.dedent(f"""
        import numpy as np, numbad as nb
        tape = nb.Tape.load({str(path)!r})
        out, g = tape.vjp(np.array([0.0, 1.0, 2.0]))
        x = np.array([0.0, 1.0, 2.0])
        assert np.allclose(g, np.cos(x) * x + np.sin(x)), g
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def _saved(tmp_path, f=None, example=None):
    tape = nb.record(f or (lambda x: np.sum(x[1:] * np.sin(x[:-1])) + x @ x), example if example is not None
                     else np.arange(4.0))
    path = tmp_path / "t.npz"
    tape.save(path)
    with np.load(path) as d:
        return path, {k: d[k] for k in d.files}


def _write(path, arrays):
    """An edited file. Without its digest (the validators' tests): a file from before digests."""
    np.savez(path, **{k: v for k, v in arrays.items() if k != "digest"})
    return path


@pytest.mark.parametrize("edit", [
    lambda d: d.__setitem__("b0_ops", d["b0_ops"][:-1]),               # the last op cut off
    lambda d: d["b0_template"].__setitem__(0, 1.5),                    # a constant changed
    lambda d: d.__setitem__("digest", np.array("0" * 64)),
])
def test_a_file_that_is_not_the_tape_saved_is_rejected_by_its_digest(tmp_path, edit):
    # each edit leaves a well-formed tape that the validators accept: only the digest tells
    path, d = _saved(tmp_path)
    edit(d)
    np.savez(path, **d)
    with pytest.raises(ValueError, match="do not match the digest"):
        nb.Tape.load(path)
    with pytest.raises(ValueError, match="do not match the digest"):
        nb.Tape.__new__(nb.Tape).__setstate__(d)
    if "digest" in d and str(d["digest"]) != "0" * 64:
        d.pop("digest")
        nb.Tape.load(_write(path, d))      # (accepted without one: a file from an earlier numbad)


def test_truncated_file_is_rejected(tmp_path):
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable tape file"):
        nb.Tape.load(path)


@pytest.mark.parametrize("tamper, message", [
    (lambda d: d["b0_ops"].__setitem__((0, 0), 999), "unknown opcode 999"),
    (lambda d: d["b0_ops"].__setitem__((0, 2), 10 ** 6), "out of range"),
    (lambda d: d["b0_ops"].__setitem__((1, 1), 0), "written twice"),
    (lambda d: d["b0_node_off"].__setitem__(1, 10 ** 6), "outside the value arena"),
    (lambda d: d["b0_ip"].__setitem__(slice(None), d["b0_ip"] + 50), "map|outside|does not match"),
    (lambda d: d.pop("b0_node_size"), "missing"),
    (lambda d: d.__setitem__("b0_ops", d["b0_ops"].astype(np.int32)), "int64"),
    (lambda d: d["b0_out_nodes"].__setitem__(0, 10 ** 5), "out of range|output"),
    (lambda d: d.__setitem__("format_version", np.array(99, np.int64)), "format version"),
])
def test_tampered_files_are_rejected(tmp_path, tamper, message):
    path, d = _saved(tmp_path)
    tamper(d)
    _write(path, d)
    with pytest.raises(ValueError, match=message):
        nb.Tape.load(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path, d = _saved(tmp_path)
    d["b0_sites"] = np.array([object()], dtype=object)
    np.savez(path, **d)
    with pytest.raises(ValueError):
        nb.Tape.load(path)


# ----------------------------------------------------------------------------- inspection
def test_summary_shows_ops_arena_and_guards():
    tape = nb.record(branchy, np.array([1.0, 2.0]))
    s = tape.summary()
    assert "1 branch(es)" in s and "ops by kind:" in s and "square 1" in s and "greater 1" in s
    assert "guard 0: truth" in s and "test_recorded.py" in s and "arena" in s
    assert repr(tape).startswith("<numbad.Tape:")


def test_dead_code_is_not_replayed():
    def f(x):
        unused = np.exp(x) * 3          # noqa: F841 - never reaches the output
        return np.sum(x * 2)
    tape = nb.record(f, np.ones(3))
    names = tape.summary()
    assert "exp" not in names.split("ops by kind:")[1].splitlines()[0]


def test_every_op_kind_has_a_file_validator():
    from numbad.ops import OPS
    from numbad.ops.validate import VALIDATORS
    missing = {op.kind for op in OPS.values()} - set(VALIDATORS)
    assert not missing, f"op kinds that a loaded tape file could not be checked for: {missing}"


@pytest.mark.parametrize("f, example, entry", [
    (lambda x: np.sort(x) * 2.0, np.array([3.0, 1.0, 2.0]), "take_along"),
    (lambda x: np.max(x, axis=0), np.ones((3, 2)), "extreme"),
    (lambda A: np.linalg.slogdet(A)[1], np.eye(2) * 2.0, "logabsdet"),
])
def test_tampered_attributes_of_new_kinds_are_rejected(tmp_path, f, example, entry):
    path, d = _saved(tmp_path, f, example)
    from numbad.ops import BY_CODE
    ops = d["b0_ops"]
    k = next(i for i in range(ops.shape[0]) if BY_CODE[int(ops[i, 0])].kind == entry)
    d["b0_ip"][ops[k, 5]] += 7
    _write(path, d)
    with pytest.raises(ValueError, match="not a valid tape"):
        nb.Tape.load(path)


def test_node_held_indices_are_checked_on_replay():
    def f(x, k):
        idx = np.argsort(k) + (k[0] > 0.5)          # indices computed from data, recomputed on replay
        return np.take_along_axis(x, idx, axis=0)
    x, k = np.array([1.0, 2.0, 3.0]), np.array([0.3, 0.1, 0.2])
    tape = nb.record(f, (x, k))
    out, _ = tape.vjp((x, np.array([0.3, 0.2, 0.1])), np.ones(3))
    assert_close(out, [3.0, 2.0, 1.0])
    with pytest.raises(IndexError, match="out of range"):
        tape((x, np.array([0.9, 0.1, 0.2])))        # argsort + 1 reaches past the end


# ----------------------------------------------------------------------------- outputs that differ by branch
def _positive_or_constant(x):
    if (x > 0).all():
        return x.sum(), x * 2.0
    return x.sum(), np.ones(3)           # the second output is a constant on this branch


XA, XB = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 2.0, 3.0])
V2 = (1.0, np.array([1.0, 2.0, 3.0]))


def test_tape_jvp_of_a_constant_output_is_zero():
    f = lambda x: (x.sum(), np.ones(3))  # noqa: E731
    tape = nb.record(f, XA)
    expected = nb.jvp(f, XA, np.ones(3))[1]
    got = tape.jvp(XA, np.ones(3))[1]
    assert np.array_equal(got[1], np.zeros(3)) and np.array_equal(got[1], expected[1])
    assert got[0] == expected[0] == 3.0
    _, (bs, bc) = tape.batch_jvp(XA[None], np.ones((1, 3)))
    assert np.array_equal(bc, np.zeros((1, 3))) and np.array_equal(bs, [3.0])


def test_cotangents_are_packed_for_the_branch_that_runs():
    tape = nb.record(_positive_or_constant, XA, retrace=True)
    for x in (XB, XA, XB):               # the most recently used branch is tried first
        out, g = tape.vjp(x, V2)
        eout, eg = nb.vjp(_positive_or_constant, x, V2)
        assert_close(g, eg)
        assert_close(out[1], eout[1])
    assert len(tape.branches) == 2

    def head(x):
        return x[int(x[0]):] * 2.0       # the output's shape depends on a read value
    tape = nb.record(head, XA, retrace=True)
    tape(np.array([2.0, 5.0, 6.0]))      # a second branch, output shape (1,)
    assert_close(tape.vjp(XA, np.ones(2))[1], [0.0, 2.0, 2.0])
    with pytest.raises(RuntimeError, match=r"should be \(2,\) but got \(1,\)"):
        tape.vjp(XA, np.ones(1))         # the branch that applies names its own shape


def test_a_batch_mixes_branches_with_other_constant_outputs():
    tape = nb.record(_positive_or_constant, XA, retrace=True)
    X = np.stack([XA, XB, XA * 2, XB * 3])
    V = (np.ones(4), np.arange(12.0).reshape(4, 3))
    T = np.arange(12.0).reshape(4, 3) / 7.0
    (s, second), g = tape.batch_vjp(X, V)
    _, (js, jsecond) = tape.batch_jvp(X, T)
    for b in range(4):
        eout, eg = nb.vjp(_positive_or_constant, X[b], (V[0][b], V[1][b]))
        assert_close(g[b], eg)
        assert_close(second[b], eout[1])
        _, ejv = nb.jvp(_positive_or_constant, X[b], T[b])
        assert_close(js[b], ejv[0])
        assert_close(jsecond[b], ejv[1])
    # outputs whose shapes differ between samples cannot form a batch
    tape = nb.record(lambda x: x[int(x[0]):] * 2.0, XA, retrace=True)
    X = np.array([XA, [2.0, 5.0, 6.0]])
    with pytest.raises(nb.BranchChanged, match="sample 1 of the batch took a branch whose result 0 "
                                               r"has shape \(1,\), not \(2,\)"):
        tape.batch_jvp(X, np.ones((2, 3)))
    with pytest.raises(nb.BranchChanged, match=r"sample 1 of the batch took a branch with other output "
                                               r"shapes: v has invalid size: should be \(1,\)"):
        tape.batch_vjp(X, np.ones((2, 2)))


def test_an_empty_batch_gives_empty_results():
    tape = nb.record(lambda x, y: (np.sum(x * y), x * 2.0), (XA, XA))
    (s, d), (gx, gy) = tape.batch_vjp((np.zeros((0, 3)), np.zeros((0, 3))), (np.zeros(0), np.zeros((0, 3))))
    assert s.shape == (0,) and d.shape == (0, 3) and gx.shape == gy.shape == (0, 3)
    _, (js, jd) = tape.batch_jvp((np.zeros((0, 3)), np.zeros((0, 3))), (np.zeros((0, 3)), np.zeros((0, 3))))
    assert js.shape == (0,) and jd.shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_replay_sums_as_numpy_does_so_a_read_sum_holds_its_guard(dtype):
    # numpy's pairwise summation, reproduced by the replay to the bit: a tape that reads a sum
    # (a value guard) replays at its recording input, and other sums agree with numpy exactly
    rng = np.random.default_rng(0)
    for n in (5, 40, 129, 1000, 5003):
        x = rng.standard_normal(n).astype(dtype)
        f = lambda x: x * float(np.sum(x))               # noqa: E731 (no transcendental: exact)
        tape = nb.record(f, x)
        assert np.array_equal(tape(x), f(x))
        assert np.array_equal(tape.batch_vjp(x[None], np.ones((1, n), dtype))[0], f(x)[None])
        m = rng.standard_normal((3, n)).astype(dtype)
        sums = lambda a: np.sum(a, axis=1) + np.sum(a[:, None], axis=(1, 2)) * 0.5 + np.sum(a)  # noqa: E731
        assert np.array_equal(nb.record(sums, m)(m * 2), sums(m * 2))


def test_replayed_results_are_each_calls_own():
    """A replay returns its outputs and gradients as parts of the arrays it filled: each
    keeps to its own values, and the next replay's results are new arrays."""
    def f(x, y):
        return (x * y, np.sum((x - y) ** 2))
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    tape = nb.record(f, (x, y))
    v = (np.ones(3), np.array(2.0))
    (o1, s1), (gx1, gy1) = tape.vjp((x, y), v)
    (o2, s2), (gx2, gy2) = tape.vjp((2 * x, y), v)
    np.testing.assert_array_equal(o1, x * y)
    assert s1.shape == () and s1 == np.sum((x - y) ** 2)
    np.testing.assert_allclose(gx1, y + 4.0 * (x - y), rtol=1e-15)
    np.testing.assert_allclose(gy1, x - 4.0 * (x - y), rtol=1e-15)
    o1[...] = gx1[...] = 0.0                      # writing one result leaves the others
    assert s1 == np.sum((x - y) ** 2)
    np.testing.assert_allclose(gy1, x - 4.0 * (x - y), rtol=1e-15)
    np.testing.assert_array_equal(o2, 2 * x * y)
    np.testing.assert_allclose(gx2, y + 4.0 * (2 * x - y), rtol=1e-15)
    assert not np.shares_memory(gx1, gx2) and not np.shares_memory(o1, o2)


def test_a_replay_copies_only_the_constants_and_reuses_large_arenas():
    """A replay writes the template's constants into its arena, loads the inputs, and leaves
    every other value to its forward sweep; large arenas come from the buffer cache, so a
    replay may start on another tape's leftovers. Replays of two large tapes, interleaved,
    each equal the eager vjp and jvp, and their forward sweeps too."""
    from numbad import buffers
    from numbad.recorded import _constant_runs

    n = 200_000                          # (above buffers.MIN_FLOATS: arenas are reused)
    c = rng.standard_normal(n)           # a large constant, and small ones (2.0, 0.5, 100.0)

    def f(x):
        return np.sum(np.sin(x) * c + 2.0 * np.exp(-x ** 2) * 0.5)

    def g(x, y):
        return np.sum(100.0 * (y[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    x, y = rng.standard_normal(n), rng.standard_normal(n)
    tf, tg = nb.record(f, x), nb.record(g, (x, y))
    branch = tf.branches[0]
    runs = branch.fill.reshape(-1, 2)
    assert runs.shape[0] >= 1 and np.all(runs[:, 1] > runs[:, 0]) and np.all(runs[1:, 0] > runs[:-1, 1])
    assert (runs[:, 1] - runs[:, 0]).sum() < n + 10          # the constants alone, not the arena
    buffers.clear()
    for k in range(3):
        xk, yk = x + 0.1 * k, y - 0.2 * k
        out_g, grads_g = tg.vjp((xk, yk))
        out_f, grad_f = tf.vjp(xk)
        ref_f, ref_grad_f = nb.vjp(f, xk)
        ref_g, ref_grads_g = nb.vjp(g, (xk, yk))
        # (a replay's sin and exp are Numba's, not numpy's: the last bits may differ)
        np.testing.assert_allclose(out_f, ref_f, rtol=1e-12)
        np.testing.assert_allclose(out_g, ref_g, rtol=1e-12)
        np.testing.assert_allclose(grad_f, ref_grad_f, rtol=1e-12, atol=1e-13)     # (cancellation)
        for a, b in zip(grads_g, ref_grads_g):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(tf(xk), ref_f, rtol=1e-12)
        np.testing.assert_allclose(tf.jvp(xk, yk)[1], nb.jvp(f, xk, yk)[1], rtol=1e-12)
    assert len(buffers._spares(np.dtype(np.float64))) >= 2     # the arenas went back for reuse
    # runs that touch or overlap merge into one
    ops = np.array([[0, 3, 0, -1, -1, -1]], np.int64)
    off, size = np.array([0, 4, 6, 10, 2]), np.array([4, 2, 3, 5, 3])
    np.testing.assert_array_equal(_constant_runs(ops, off, size, np.array([0])), [2, 9])


def test_a_large_replay_sweeps_in_tiles_as_an_eager_vjp(monkeypatch):
    """A large tape of the tiled form (a sum of elementwise ops) replays tile by tile on two
    threads: its forward and tangent sweeps (the same bits as the plain replay's) and its
    reverse sweep (as nb.vjp's); an input that the output does not use gets zeros, and a
    one-element input (ops on it run once, before the tiles; the reverse sweep is then the
    plain one) its gradient."""
    from numbad import sweeps
    taken = record_tiled_reverses(monkeypatch)

    def f(x, y, a):
        return np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2) * (a * a + 1.0))

    def expected_grad(x, a):
        return 2 * (np.cos(x) * np.exp(-x ** 2) - 2 * x * np.sin(x) * np.exp(-x ** 2)
                    + 2 * x / (1 + x ** 2) * (a * a + 1.0))

    n = sweeps.TWO_THREADS_MIN + 5
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    for a_is_input in (False, True):
        args = (x, y, np.array(0.5)) if a_is_input else (x, y)
        g = f if a_is_input else (lambda x, y: f(x, y, 0.5))
        tape = nb.record(g, args)
        branch = tape.branches[0]
        assert branch._tile_plan()
        moved = (x + 0.1,) + args[1:]
        taken.clear()
        out, grads = tape.vjp(moved, np.array(2.0))
        assert taken == [not a_is_input]          # (a varying one-element node: the plain sweep)
        value = tape(moved)
        tangents = tuple(rng.standard_normal(np.shape(a)) for a in args)
        _, jv = tape.jvp(moved, tangents)
        monkeypatch.setattr(branch, "_tiles", False)               # the plain replay
        plain_out, plain_grads = tape.vjp(moved, np.array(2.0))
        assert value == plain_out == out == tape(moved)              # the same bits
        for a, b in zip(grads, plain_grads):
            np.testing.assert_array_equal(a, b)
        assert jv == tape.jvp(moved, tangents)[1]
        monkeypatch.setattr(branch, "_tiles", None)
        np.testing.assert_allclose(jv, nb.jvp(g, moved, tangents)[1], rtol=1e-12)
        np.testing.assert_allclose(jv, sum(np.sum(a * t) for a, t in zip(grads, tangents)) / 2.0, rtol=1e-10)
        _, eager = nb.vjp(g, moved, np.array(2.0))
        np.testing.assert_allclose(out, g(*moved), rtol=1e-12)
        np.testing.assert_allclose(grads[0], eager[0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(grads[0], expected_grad(x + 0.1, 0.5), rtol=1e-9, atol=1e-12)
        assert grads[1].shape == (n,) and not grads[1].any()
        if a_is_input:
            np.testing.assert_allclose(grads[2], 2 * np.sum(np.log1p((x + 0.1) ** 2)) * 2 * 0.5, rtol=1e-12)


def test_a_tiled_replay_plans_its_reverse_sweep_once(monkeypatch):
    """A recorded tape keeps the tiled reverse sweep's plan (``sweeps._plan_tiles``) between
    replays, and each replay gives nb.vjp's gradient at its point, bit for bit; a tape outside
    the form keeps that answer too."""
    from numbad import sweeps
    taken = record_tiled_reverses(monkeypatch)

    def rosenbrock(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    n = sweeps.TWO_THREADS_MIN + 9
    x = rng.uniform(-1.0, 1.0, n)
    tape = nb.record(rosenbrock, x)
    plans = record_calls(monkeypatch, sweeps, "_plan_tiles")
    for point in (x + 0.01, x - 0.02, x + 0.01):
        _, grad = tape.vjp(point, np.array(1.5))
        np.testing.assert_array_equal(grad, nb.vjp(rosenbrock, point, np.array(1.5))[1])
    assert taken == [True] * 6 and len(plans) == 1 + 1      # (the tape's one, and nb.vjp's)

    def scaled(x, a):                           # a varying one-element node: not of the form
        return np.sum(np.sin(x) * (a * a + 1.0))
    tape = nb.record(scaled, (x, np.array(0.5)))
    taken.clear()
    for a in (0.5, -0.25):
        _, (gx, ga) = tape.vjp((x, np.array(a)), 1.0)
        np.testing.assert_allclose(gx, np.cos(x) * (a * a + 1.0), rtol=1e-13)
        np.testing.assert_allclose(ga, np.sum(np.sin(x)) * 2 * a, rtol=1e-11)
    assert taken == [False, False]


def test_nb_vjp_keeps_the_tiles_plan_of_a_tape_like_the_last(monkeypatch):
    """An nb.vjp call that records the same ops as the last (the same function on inputs of
    the same shapes: ``Recording.arrays`` gives it the same arrays) sweeps in the last call's
    tiles without planning them again; another function, or other shapes, plan their own.
    Every call gives the gradient of its point, as a call with no plan kept does."""
    from numbad import sweeps
    plans = record_calls(monkeypatch, sweeps, "_plan_tiles")
    taken = record_tiled_reverses(monkeypatch)

    def rosenbrock(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    def other(x):
        return np.sum(np.sin(x) * np.exp(-x ** 2) + np.log1p(x ** 2))

    n = sweeps.EAGER_TILED_MIN + 7
    x = rng.uniform(-1.0, 1.0, n)
    calls = [(rosenbrock, x), (rosenbrock, x - 0.3), (other, x), (other, x + 0.1),
             (rosenbrock, x[:-3]), (rosenbrock, x + 0.2)]
    grads = [nb.vjp(f, p)[1] for f, p in calls]
    assert taken == [True] * 6 and len(plans) == 4      # (the second of each pair reuses a plan)
    monkeypatch.setattr(sweeps, "_plans_of", lambda *args: None)
    for (f, p), g in zip(calls, grads):
        np.testing.assert_array_equal(g, nb.vjp(f, p)[1])
    assert len(plans) == 4 + 6


@pytest.mark.parametrize("size", ["mid", "large"])
def test_shifted_reads_of_an_input_replay_in_tiles_as_views(monkeypatch, size):
    """``nb.record`` records ``x[1:]`` as a gather (the ensemble and GPU replays know no
    views); the tiled replay reads such contiguous runs of an input as views, as the eager
    tape does: Rosenbrock's replay then takes the tiles, its value and tangent are the plain
    replay's and its gradient nb.vjp's, bit for bit (arithmetic alone: the same operations in
    the same order), and the closed form's. Arrays from ``TILED_MIN`` up to
    ``TWO_THREADS_MIN`` elements take the tiles on the calling thread alone, larger ones on
    two. A strided read, or one of a computed array, keeps the plain replay."""
    from numbad import sweeps
    from numbad.ops import OPS
    from numbad.tensor import core
    monkeypatch.setattr(sweeps, "THREADS", 2)
    monkeypatch.setattr(core, "SPLIT_NS", float("inf"))       # (nb.vjp's forward ops: one thread)
    taken = record_tiled_reverses(monkeypatch)
    submitted = count_worker_requests(monkeypatch)

    def rosenbrock(x):
        return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    # (mid: four tiles and a bit, which two threads could take)
    n = 4 * sweeps.TILE + 9 if size == "mid" else 3 * sweeps.TWO_THREADS_MIN + 7
    assert (sweeps.TILED_MIN < n < sweeps.TWO_THREADS_MIN) == (size == "mid")
    x = rng.uniform(-1.0, 1.0, n)
    tape = nb.record(rosenbrock, x)
    branch = tape.branches[0]
    assert branch._tile_plan() and (branch.ops[:, 0] == OPS["gather"].code).sum() == 2
    moved = x + 0.01
    out, grad = tape.vjp(moved, np.array(1.5))
    tangent = rng.standard_normal(n)
    value, jv = tape.jvp(moved, tangent)
    _, eager = nb.vjp(rosenbrock, moved, np.array(1.5))
    # (nb.vjp's reverse tiles from EAGER_TILED_MIN; two threads: tape.vjp's forward and reverse,
    # tape.jvp's forward and tangent, nb.vjp's reverse)
    assert taken == [True, size == "large"] and len(submitted) == (0 if size == "mid" else 5)
    np.testing.assert_array_equal(grad, eager)
    closed = np.zeros(n)
    closed[1:] += 200.0 * (moved[1:] - moved[:-1] ** 2)
    closed[:-1] += -400.0 * moved[:-1] * (moved[1:] - moved[:-1] ** 2) - 2.0 * (1.0 - moved[:-1])
    np.testing.assert_allclose(grad, 1.5 * closed, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(branch, "_tiles", False)                   # the plain replay
    plain_out, plain_grad = tape.vjp(moved, np.array(1.5))
    assert out == value == plain_out == tape(moved)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-13, atol=1e-13)    # (its gathers add in its order)
    assert jv == tape.jvp(moved, tangent)[1]
    np.testing.assert_allclose(jv, np.dot(closed, tangent), rtol=1e-10)
    for f in (lambda x: np.sum(x[:-1:2] * x[1::2]), lambda x: np.sum(np.exp((2.0 * x)[1:]) * x[:-1])):
        other = nb.record(f, x)
        assert not other.branches[0]._tile_plan()
        np.testing.assert_allclose(other.vjp(moved, 1.0)[1], nb.vjp(f, moved)[1], rtol=1e-12, atol=1e-12)
