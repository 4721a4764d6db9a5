"""The tape's value arena: small values written late (Recording.flush) land where their nodes say."""
import numpy as np
import pytest

import numbad as nb
import numbad.tape as tape_module
from numbad.functional._common import Call, finish
from numbad.tensor.core import Tensor


def _record(func, *inputs):
    """Record ``func`` on a fresh call; return the call and every Tensor it made (func appends them)."""
    made = []
    call = Call(inputs, False)
    call.run(lambda *xs: func(made, *xs))
    return call, made


def _assert_arena_holds(call, tensors):
    """Every node's stored values are its Tensor's values, exactly (bools and ints as floats)."""
    tape = call.tape
    _, off, size, _, vals = tape.arrays()
    assert not tape.pending
    for t in tensors:
        stored = vals[off[t._node]:off[t._node] + size[t._node]]
        expected = np.ravel(np.asarray(t._v)).astype(vals.dtype)
        np.testing.assert_array_equal(stored, expected)
        np.testing.assert_array_equal(tape.value(t._node), np.asarray(t._v).astype(vals.dtype))


def mixed(made, x, m):
    """Arrays, scalars, booleans, integers, constants and 2-D values in one recording."""
    y = np.sin(x) * 2.0                       # small arrays: pending
    s = np.sum(y)                             # a scalar: written at once, after the pending ones
    z = y + s
    big = x > 0.5                             # a boolean array
    w = np.where(big, z, -z)
    k = np.argmax(w)                          # an integer
    p = m @ x[:4]                             # a constant matrix times a slice
    q = np.tanh(m) * 3.0                      # a 2-D value
    r = np.sum(q * q, axis=0)                 # a sum along an axis: pending as well
    made += [y, s, z, big, w, k, p, q, r]
    return np.sum(q) + np.sum(p) + w[0] + np.sum(r * r)


def test_every_node_is_stored_where_it_says():
    rng = np.random.default_rng(0)
    x, m = rng.standard_normal(7), rng.standard_normal((4, 4))
    call, made = _record(mixed, x, m)
    assert all(type(t) is Tensor for t in made)
    _assert_arena_holds(call, made + list(call.inputs))
    finish(call)


def test_a_small_sum_along_an_axis_waits_as_an_elementwise_value_does():
    def f(made, m):
        q = m * 2.0
        r = np.sum(q, axis=1)
        pending = r._tape.pending                        # (both written by one flush)
        assert pending[-2] is q._v and pending[-1] is r._v
        made += [q, r]
        return np.sum(r * r)
    call, made = _record(f, np.arange(12.0).reshape(3, 4))
    _assert_arena_holds(call, made)
    finish(call)


def test_the_arena_grows_while_values_wait():
    # hundreds of small arrays exceed the first arena (256 values) before anything reads it
    def chain(made, x):
        y = x
        for _ in range(200):
            y = np.cos(y) * 0.5 + 0.25
            made.append(y)
        return np.sum(y)
    x = np.linspace(-1.0, 1.0, 16)
    call, made = _record(chain, x)
    assert call.tape.top > 200 * 16 * 3
    _assert_arena_holds(call, made)
    finish(call)


def test_a_float64_value_widens_a_float32_tape_with_values_waiting():
    def f(made, x):
        y = np.exp(x) * np.float32(2.0)       # float32 values, pending
        z = y * np.float64(3.0)               # numpy gives float64: the tape widens
        made += [y, z]
        return np.sum(z)
    x = np.linspace(0.0, 1.0, 5, dtype=np.float32)
    call, made = _record(f, x)
    assert call.tape.dtype == np.float64
    _assert_arena_holds(call, made)
    finish(call)


def test_gradients_through_late_written_values_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, m = rng.standard_normal(7), rng.standard_normal((4, 4))

    def f(x, m):
        return mixed([], x, m)

    def ft(x, m):
        y = torch.sin(x) * 2.0
        z = y + torch.sum(y)
        w = torch.where(x > 0.5, z, -z)
        q = torch.tanh(m) * 3.0
        return torch.sum(q) + torch.sum(m @ x[:4]) + w[0] + torch.sum(torch.sum(q * q, 0) ** 2)

    _, (gx, gm) = nb.vjp(f, (x, m))
    xt, mt = (torch.tensor(a, requires_grad=True) for a in (x, m))
    tx, tm = torch.autograd.grad(ft(xt, mt), (xt, mt))
    np.testing.assert_allclose(gx, tx.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gm, tm.numpy(), rtol=1e-13, atol=1e-15)


def test_a_nested_call_sees_the_values_recorded_so_far():
    # the inner create_graph call sweeps the outer tape while it is still recording
    def f(x):
        y = np.sin(x) * x
        _, g = nb.vjp(lambda z: np.sum(z * z * y), x, create_graph=True)
        return np.sum(g * y)
    x = np.linspace(0.1, 0.9, 9)
    out, g = nb.vjp(f, x)
    # f(x) = sum(2 x y^2) with y = x sin x: df/dx = 2 y^2 + 4 x y y'
    y, dy = x * np.sin(x), np.sin(x) + x * np.cos(x)
    np.testing.assert_allclose(out, np.sum(2 * x * y * y), rtol=1e-14)
    np.testing.assert_allclose(g, 2 * y * y + 4 * x * y * dy, rtol=1e-13)


def test_interpreters_borrow_their_array_arguments():
    # (numbad.sweeps.kernels.borrowed: no reference counting on the arrays inside a sweep)
    from numbad.sweeps import codegen
    text = codegen.TARGET.read_text()
    for name in ("forward", "reverse", "reverse_lanes", "tangent", "tangent_lanes", "second_order",
                 "mark_varying", "forward_batch", "reverse_batch", "tangent_batch"):
        head = text[text.index(f"def {name}("):]
        head = head[:head.index("    for k in range(")]
        assert "vals = K.borrowed(vals)" in head or name == "mark_varying", name
        assert "ops = K.borrowed(ops)" in head, name


def test_a_constant_changed_after_use_keeps_the_value_it_had():
    # numpy computes when called: a buffer the function refills later was used with its old
    # values, and the derivative must use those too (constants are copied when recorded)
    def f(x):
        buf = np.empty(3)
        A = np.eye(3)
        total = 0.0
        for i in range(3):
            buf[:] = i + 1.0
            total = total + np.sum(x * buf)
        y = A @ x
        A[:] = 7.0
        return total + np.sum(y)
    out, g = nb.vjp(f, np.ones(3))
    assert out == 6.0 * 3 + 3.0
    np.testing.assert_array_equal(g, [7.0, 7.0, 7.0])


def test_an_input_changed_by_the_function_keeps_the_value_it_had():
    x = np.array([1.0, 2.0, 3.0])

    def f(t):
        y = t * t
        x[:] = 0.0                       # the caller's array, changed behind numbad's back
        return np.sum(y)
    _, g = nb.vjp(f, x)
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])


@pytest.mark.parametrize("layout", ["strided", "transposed", "reversed", "read-only", "float32",
                                    "past the first arena"])
def test_an_input_in_any_layout_waits_as_its_bytes_in_c_order(layout):
    """The input of a fresh tape waits as a copy of its bytes (Recording.add_input), in C
    order: the tape holds its values, and the gradients are those of a C-contiguous copy
    (that the function changes the caller's array as it runs changes neither)."""
    base = np.random.default_rng(5).uniform(-1.0, 1.0, (6, 8))
    x = {"strided": base[::2, 1::3], "transposed": base.T, "reversed": base[::-1, ::-1],
         "read-only": base.copy(), "float32": base.astype(np.float32),
         "past the first arena": np.random.default_rng(6).uniform(-1.0, 1.0, (40, 30))}[layout]
    if layout == "read-only":
        x.flags.writeable = False
    kept = x.copy(order="K")                # (numpy's sum of a transpose adds in its own order)
    seen = []

    def f(t):
        y = np.sum(np.sin(t) * t, axis=0)
        if x.flags.writeable:
            x[...] = 9.0                    # the caller's array, changed behind numbad's back
        seen.append(t._tape.value(0).copy())        # (written to the arena now)
        return y
    v = np.linspace(-1.0, 1.0, kept.shape[1]).astype(kept.dtype)
    out, g = nb.vjp(f, x, v)
    np.testing.assert_array_equal(seen[0], kept)
    out0, g0 = nb.vjp(lambda t: np.sum(np.sin(t) * t, axis=0), np.ascontiguousarray(kept), v)
    assert out.dtype == g.dtype == kept.dtype and g.shape == kept.shape
    np.testing.assert_array_equal(out, np.sum(np.sin(kept) * kept, axis=0))
    np.testing.assert_allclose(out, out0, rtol=1e-6 if layout == "float32" else 1e-15)
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_allclose(g, v * (np.cos(kept) * kept + np.sin(kept)), rtol=1e-6 if layout == "float32" else 1e-14)


def test_waiting_values_in_any_layout_land_in_c_order():
    # flush joins the waiting values' bytes; a value that is not C-contiguous (a transpose
    # passed on as it is, as stop_gradient does) makes it copy them as arrays instead
    from numbad.tape import Recording
    from numbad.tensor.core import _push
    tape = Recording(np.float64)
    m = np.arange(6.0).reshape(2, 3)
    values = [np.linspace(0.0, 1.0, 4), m.T, m[:, ::2], np.full(5, 7.0)]
    nodes = [_push(tape, v, v.size, v.shape, 1, 0)._node for v in values]
    tape.flush()
    for v, n in zip(values, nodes):
        np.testing.assert_array_equal(tape.value(n), v)
    contiguous = [np.linspace(0.0, 1.0, 4), np.full((2, 2), 3.0), np.arange(3.0)]
    nodes = [_push(tape, v, v.size, v.shape, 1, 0)._node for v in contiguous]
    tape.flush()                      # (the joined bytes)
    for v, n in zip(contiguous, nodes):
        np.testing.assert_array_equal(tape.value(n), v)


def test_large_waiting_values_are_written_one_by_one_where_their_nodes_say():
    # waiting values of FLUSH_EACH elements or more on average are copied one by one (not
    # joined), in any layout, and a recording of such values holds each where its node says
    from numbad.tape import FLUSH_EACH, Recording
    from numbad.tensor.core import _push
    tape = Recording(np.float64)
    rng = np.random.default_rng(3)
    m = rng.standard_normal((40, FLUSH_EACH // 20))
    values = [rng.standard_normal(FLUSH_EACH + 3), m.T, m[:, ::2], rng.standard_normal((3, FLUSH_EACH))]
    nodes = [_push(tape, v, v.size, v.shape, 1, 0)._node for v in values]
    assert tape.top - tape.pending_from >= FLUSH_EACH * len(tape.pending)
    tape.flush()
    for v, n in zip(values, nodes):
        np.testing.assert_array_equal(tape.value(n), v)

    def f(made, x):
        y = np.sin(x) * 2.0
        z = np.exp(-y) + y * x
        made += [y, z]
        return np.sum(z * z)
    n = 3 * FLUSH_EACH
    assert n < tape_module.BIG                  # (small values: they wait)
    call, made = _record(f, rng.standard_normal(n))
    _assert_arena_holds(call, made + list(call.inputs))
    finish(call)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_python_number_operands_give_numpys_values_to_the_bit(dtype):
    # a float64 tape computes with a Python number as a 0-d float64 array (Recording.const):
    # 0.0 and -0.0 are one dict key, so they must not share one; NaN, infinities, huge and
    # inexact ints, and float32 operands (where numpy keeps float32) take the number itself
    x = np.array([-0.0, 0.0, 1.5, -2.25, np.inf, np.nan, 3e38], dtype)
    numbers = [0.0, -0.0, 0, 1.5, -3, 0.1, 2 ** 60, 2 ** 53 + 1, 10 ** 400, np.nan, np.inf, -1e308]
    ops = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
           lambda a, b: a ** b, lambda a, b: np.maximum(a, b), lambda a, b: a > b]

    def f(t):
        got = []
        for c in numbers * 2:            # (twice: the second use finds the tape's cached constant)
            for op in ops:
                for a, b in ((t, c), (c, t)):
                    try:
                        got.append(op(a, b))
                    except OverflowError:
                        got.append(None)
        made.extend(got)
        return np.sum(t)

    made = []
    with np.errstate(all="ignore"):
        nb.vjp(f, x, np.ones((), dtype))
        i = 0
        for c in numbers * 2:
            for op in ops:
                for a, b in ((x, c), (c, x)):
                    try:
                        want = op(a, b)
                    except OverflowError:
                        want = None
                    got = made[i]
                    i += 1
                    if want is None:
                        assert got is None
                        continue
                    got = got.detach()
                    assert got.dtype == want.dtype, (c, a is x)
                    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
                    np.testing.assert_array_equal(got, want)


def test_a_repeated_small_tape_reuses_its_int64_arrays_and_a_changed_one_does_not(monkeypatch):
    # Recording.arrays keeps the last small tape's converted arrays: the same lists give the same
    # arrays (no conversion); a tape that differs in an opcode, node sizes (and so offsets) or
    # attributes alone gets its own, equal to a conversion from scratch.
    def arrays_of(func, x):
        call = Call((x,), False)
        call.run(func)
        return call.tape.arrays()[:4]

    x, X = np.array([0.3, 0.7, 1.1]), np.array([[0.3, 0.7], [1.1, 1.3]])
    sin_sum = lambda x: np.sum(np.sin(x))      # noqa: E731
    for first, second, x1, x2, shared in (
            (sin_sum, sin_sum, x, x + 0.5, True),                             # new values only
            (sin_sum, lambda x: np.sum(np.cos(x)), x, x, False),              # an opcode
            (sin_sum, sin_sum, x, x[:2], False),                              # node sizes
            (lambda x: np.sum(np.sin(x), axis=0), lambda x: np.sum(np.sin(x), axis=1), X, X, False)):
        kept = arrays_of(first, x1)
        mine = arrays_of(second, x2)
        assert all(a is b for a, b in zip(kept, mine)) == shared
        monkeypatch.setattr(tape_module, "_last_small", None)
        assert all(np.array_equal(a, b) for a, b in zip(mine, arrays_of(second, x2)))

    # alternating two functions of one op count each time gives each its own derivative
    for _ in range(3):
        assert np.array_equal(nb.vjp(lambda x: np.sum(np.sin(x)), x)[1], np.cos(x))
        assert np.array_equal(nb.vjp(lambda x: np.sum(np.cos(x)), x)[1], -np.sin(x))
