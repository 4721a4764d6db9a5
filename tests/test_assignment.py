"""Writing into Tensors: ``t[idx] = v``, ``t += v``, creation functions, and their documented semantics."""
import numpy as np
import pytest
import torch

import numbad as nb

from check import check_derivatives
from helpers import assert_close

rng = np.random.default_rng(3)
X = rng.standard_normal((4, 3))
V = rng.uniform(0.5, 1.5, 6)


def test_fill_an_empty_array_in_a_loop():
    def f(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = np.sin(x[i]) * (i + 1)
        return out

    def tf(x):
        return torch.stack([torch.sin(x[i]) * (i + 1) for i in range(x.shape[0])])
    check_derivatives(f, (X,), tf)


def test_recurrence_reads_what_it_wrote():
    def f(x):
        out = nb.zeros(x.shape)
        out[0] = x[0]
        for i in range(1, x.shape[0]):
            out[i] = out[i - 1] * x[i] + x[i - 1]
        return out

    def tf(x):
        rows = [x[0]]
        for i in range(1, x.shape[0]):
            rows.append(rows[-1] * x[i] + x[i - 1])
        return torch.stack(rows)
    check_derivatives(f, (V,), tf)


def test_in_place_arithmetic():
    def f(x):
        y = x * 1.0
        y += x ** 2
        y -= 0.5
        y *= x
        y /= 2.0
        y **= 2
        return y
    check_derivatives(f, (V,), f)


def test_in_place_rebinds_every_name_of_the_object():
    def f(x):
        y = x * 1.0
        alias = y
        y += 1.0
        assert alias is y
        return alias * x
    _, g = nb.vjp(f, V, np.ones(6))
    assert_close(g, 2 * V + 1.0)


def test_overwritten_positions_pass_no_derivative():
    def f(x):
        y = x * 2.0
        y[1] = 7.0
        y[3:5] = x[0]
        return y
    out, g = nb.vjp(f, V, np.ones(6))
    assert_close(out, [2 * V[0], 7.0, 2 * V[2], V[0], V[0], 2 * V[5]])
    assert_close(g, [2.0 + 2.0, 0.0, 2.0, 0.0, 0.0, 2.0])


def test_writing_a_constant_equal_to_the_old_value_still_cuts_the_derivative():
    def f(x):
        y = x * 1.0
        y[0] = float(V[0])
        return y
    _, g = nb.vjp(f, V, np.ones(6))
    assert g[0] == 0.0 and np.all(g[1:] == 1.0)


INDEXES = [
    ("int", 2, lambda x: x[0] * 3),
    ("negative int", -1, lambda x: x[1] * x[0]),
    ("slice with step", (slice(None, None, 2), 1), lambda x: x[::2, 0] * 2),
    ("ellipsis and None", (Ellipsis, None, 0), lambda x: x[:, :1] * 0.5),
    ("int arrays in two axes", (np.array([0, 3]), np.array([2, 1])), lambda x: x[1, :2] ** 2),
    ("boolean mask", X > 0, lambda x: x.sum() * 0.1),
    ("list", [3, 0], lambda x: x[1:3] - 1.0),
]


@pytest.mark.parametrize("name, key, make", INDEXES, ids=[i[0] for i in INDEXES])
def test_every_index_form_can_be_written(name, key, make):
    def f(x):
        y = np.copy(x)
        y[key] = make(x)
        return y

    def tf(x):
        y = x.clone()
        k = torch.tensor(key) if isinstance(key, np.ndarray) else \
            tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in key) if isinstance(key, tuple) else key
        y[k] = make(x)
        return y
    check_derivatives(f, (X,), tf)


def test_repeated_positions_keep_the_last_write():
    def f(x):
        y = nb.zeros(4)
        y[[1, 2, 1]] = x[:3] * np.array([1.0, 2.0, 3.0])
        return y
    out, g = nb.vjp(f, V, np.ones(4))
    assert_close(out, [0.0, 3 * V[2], 2 * V[1], 0.0])
    assert_close(g, [0.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    check_derivatives(f, (V,))


def test_value_broadcasts_like_numpy():
    def f(x):
        y = nb.zeros((2, 3))
        y[:] = x[:3].reshape(1, 1, 3)          # numpy drops leading unit dimensions
        y[:, 0] = x[5]
        return y
    check_derivatives(f, (V,))


def test_add_at_with_repeated_indices():
    def f(x):
        y = x * 1.0
        np.add.at(y, [0, 2, 0], x[3:6])
        return y
    out, g = nb.vjp(f, V, np.ones(6))
    expected = V.copy()
    np.add.at(expected, [0, 2, 0], V[3:6])
    assert_close(out, expected)
    check_derivatives(f, (V,))


# ----------------------------------------------------------------------------- views and copies
def test_writes_through_a_basic_index_reach_the_array():
    def f(x):
        y = np.copy(x)
        y[0][1] = 5.0             # numpy: y[0] is a view, so y changes
        row = y[2]
        row *= x[3]               # likewise
        for r in y[1:2]:
            r += 1.0
        return y
    out, _ = nb.vjp(f, X, np.ones(X.shape))
    expected = X.copy()
    expected[0][1] = 5.0
    expected[2] *= X[3]
    expected[1] += 1.0
    assert_close(out, expected)
    check_derivatives(f, (X,))


def _views_see_later_writes(x, xp=np):
    """Named views into a state array updated in place (simulation code): numpy's views
    see every later write into their base, and so must numbad's."""
    y = xp.copy(x) if xp is np else x.copy()
    row, col, flat, tr = y[0], y[:, 1], y.reshape(-1), y.T
    sub = row[1:]                                   # a view of a view
    y[0, 1] = 100.0 * x[1, 2]                       # seen by row, col, flat, tr and sub
    y += 0.5 * x                                    # all of them again
    col[2] = x[0, 0] ** 2                           # a write through a view: y, then the others
    sub *= 3.0                                      # through a view of a view
    return [row * 1.0, col * 1.0, flat * 1.0, tr * 1.0, sub * 1.0, y * 1.0]


def test_views_see_later_writes_into_their_base_as_in_numpy():
    def f(x):
        return np.concatenate([np.ravel(p) for p in _views_see_later_writes(x)])
    expected = np.concatenate([np.ravel(p) for p in _views_see_later_writes(X.copy())])
    out, _ = nb.vjp(f, X, np.ones(expected.shape))
    assert np.array_equal(out, expected)
    check_derivatives(f, (X,))


def test_fancy_index_results_are_copies_as_in_numpy():
    def f(x):
        y = np.copy(x)
        y[[0, 1]][0] = 9.0        # writes into a copy: y is unchanged (numpy too)
        return y
    out, _ = nb.vjp(f, X, np.ones(X.shape))
    assert_close(out, X)


def test_the_callers_input_is_not_modified():
    x = V.copy()

    def f(x):
        x[0] = 3.0
        x += 1.0
        return x
    out, g = nb.vjp(f, x, np.ones(6))
    assert np.array_equal(x, V)
    assert_close(out, np.r_[4.0, V[1:] + 1.0])
    assert_close(g, np.r_[0.0, np.ones(5)])


# ----------------------------------------------------------------------------- creation, dtypes, errors
def test_creation_outside_recording_gives_numpy_arrays():
    for arr in (nb.zeros(3), nb.ones((2, 2)), nb.empty(2), nb.full(3, 2.5)):
        assert type(arr) is np.ndarray
    assert np.array_equal(nb.full((2,), 1.5), [1.5, 1.5])


def test_creation_while_recording_gives_constant_tensors():
    def f(x):
        for t in (nb.zeros(3), nb.ones((2, 2)), nb.empty(2), nb.full(3, 2.5), np.zeros_like(x),
                  np.empty_like(x), np.full_like(x, 3.0), np.ones_like(x, dtype=np.float32)):
            assert isinstance(t, nb.Tensor)
        assert np.all(nb.empty(2).detach() == 0.0) and np.empty_like(x).dtype == x.dtype
        assert np.ones_like(x, dtype=np.float32).dtype == np.float32
        return x
    nb.vjp(f, V, np.ones(6))


def test_float32_target_keeps_its_dtype():
    def f(x):
        y = nb.zeros(3, dtype=np.float32)
        y[0] = x[0] * 2.0
        y += x[:3]
        assert y.dtype == np.float32
        return y
    out, g = nb.vjp(f, V, np.ones(3))
    assert out.dtype == np.float32
    assert_close(g, [3.0, 1.0, 1.0, 0.0, 0.0, 0.0])


def test_fill_and_zero_methods():
    def f(x):
        y = x * 2.0
        y[:2].fill_(x[5])
        y[4:].zero_()
        return y
    out, g = nb.vjp(f, V, np.ones(6))
    assert_close(out, [V[5], V[5], 2 * V[2], 2 * V[3], 0.0, 0.0])
    assert_close(g, [0.0, 0.0, 2.0, 2.0, 0.0, 2.0])


def test_writing_a_tensor_into_an_integer_tensor_raises():
    def f(x):
        y = nb.zeros(3, dtype=np.int64)
        y[0] = x[0]
        return x
    with pytest.raises(TypeError, match="drop its derivative"):
        nb.vjp(f, V, np.ones(6))


def test_in_place_that_numpy_refuses_is_refused():
    def f(x):
        y = nb.zeros(3, dtype=np.int64)
        y += x[:3]
        return x
    with pytest.raises(TypeError, match="same_kind"):
        nb.vjp(f, V, np.ones(6))
    with pytest.raises(ValueError, match="non-broadcastable"):
        nb.vjp(lambda x: x[:1].__iadd__(x), V, np.ones(1))


def test_a_write_from_a_nested_call_keeps_the_target_on_its_tape():
    def outer(y):
        z = y * 1.0

        def inner(x):
            z[0] = x[0] * 5.0       # x belongs to the inner call: a constant for the outer one
            z[1] += x[1]
            return x.sum()
        nb.vjp(inner, np.array([1.0, 2.0]))
        return z * y
    out, g = nb.vjp(outer, np.array([3.0, 4.0, 5.0]), np.ones(3))
    assert_close(out, [5.0 * 3.0, 6.0 * 4.0, 25.0])
    assert_close(g, [5.0, 2 * 4.0 + 2.0, 10.0])


def test_writes_through_reshapes_transposes_and_flips_reach_the_array():
    def f(x):
        y = np.copy(x)
        y.T[0] = x[:, 2]          # column 0 of y
        y.reshape(-1)[-1] = 9.0
        np.flip(y, 0)[0, 1] = x[0, 0]   # y[3, 1]
        flat = y.flatten()        # a copy in numpy: the write stays there
        flat[0] = -5.0
        return y
    out, _ = nb.vjp(f, X, np.ones(X.shape))
    expected = X.copy()
    expected.T[0] = X[:, 2]
    expected.reshape(-1)[-1] = 9.0
    np.flip(expected, 0)[0, 1] = X[0, 0]
    assert_close(out, expected)
    check_derivatives(f, (X,))


def test_the_same_read_twice_is_one_node_until_a_write():
    from numbad.functional._common import Call
    call = Call((V,), False)
    a, b, c = call.run(lambda x: (x[1:], x[1:], x[:-1]))
    assert a._node == b._node != c._node           # recorded once: one copy, one op
    y = call.run(lambda x: nb.Tensor.__getitem__(x, slice(1, None)))
    assert y._node == a._node

    def f(x):
        y = np.copy(x)
        first = np.sum(y[1:] * 2.0) + np.sum(y[1:] ** 2)
        before = y[1:]
        node = before._node
        y[2] = 7.0 * y[0]                          # a write: y is a new node ...
        after = y[1:]                              # ... so this read is a new one
        assert after._node != node and after.detach()[1] == 7.0 * x.detach()[0]
        assert before._node == after._node         # (the view taken before is read again)
        return first + np.sum(np.sin(after))
    check_derivatives(f, (V,))
    _, grad = nb.vjp(lambda x: np.sum(x[1:] * 2.0) + np.sum(x[1:] ** 2), np.arange(4.0))
    assert np.array_equal(grad, [0.0, 4.0, 6.0, 8.0])


def test_the_same_large_op_twice_is_one_node_until_a_write():
    from numbad.functional._common import Call
    from numbad.tape import BIG
    x = np.random.default_rng(3).standard_normal(BIG + 5)
    call = Call((x,), False)
    a, b, c, d = call.run(lambda t: (t ** 2, np.square(t), t * 2.0, t * 2))
    assert a._node == b._node and c._node == d._node != a._node
    assert np.array_equal(b.detach(), x ** 2)

    def f(t):
        y = np.copy(t)
        first = y ** 2
        y[0] = 3.0                                 # a write: y is a new node ...
        second = y ** 2                            # ... so this square is a new one
        assert second._node != first._node and second.detach()[0] == 9.0
        return np.sum(np.sin(t) * np.exp(-t ** 2) + np.log1p(t ** 2)) + np.sum(first * second)
    y = x.copy()
    y[0] = 3.0
    _, grad = nb.vjp(f, x)
    expected = (np.cos(x) * np.exp(-x ** 2) - 2 * x * np.sin(x) * np.exp(-x ** 2)
                + 2 * x / (1 + x ** 2) + 2 * x * y ** 2 + x ** 2 * 2 * y)
    expected[0] -= x[0] ** 2 * 2 * y[0]            # x[0] reaches `second` no more
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)
    # a float32 tape widened by a float64 operand does not reuse a float32 result
    x32 = x.astype(np.float32)
    call = Call((x32,), False)
    p, q = call.run(lambda t: (t * 3.0, t * np.float64(3.0)))
    assert p._node != q._node and q.detach().dtype == np.float64
    assert np.array_equal(q.detach(), x32.astype(np.float64) * 3.0)


@pytest.mark.parametrize("read", [np.flip, lambda t: t[()], lambda t: np.flip(t, axis=None)[...]])
def test_views_of_a_zero_dimensional_tensor_read_its_element(read):
    # numpy copies here rather than viewing (np.flip of a 0-d array is a new scalar): the read's
    # geometry comes from element indices, not from a pointer into unrelated memory
    x = np.array(0.7)
    out, g = nb.vjp(lambda t: read(t) * 2.0, x)
    assert out == 1.4 and g == 2.0
    assert nb.jvp(lambda t: read(t) * 2.0, x, np.array(1.0))[1] == 2.0
    tape = nb.record(lambda t: read(t) * 2.0, x)
    assert tape.vjp(np.array(-3.0))[1] == 2.0


def test_add_at_with_repeated_indices_gives_numpys_value():
    # numpy adds repeated entries one at a time: (1 + 1e-16) + 1e-16 stays 1.0
    def f(x):
        y = x.copy()
        np.add.at(y, [0, 0], [1e-16, 1e-16])
        np.add.at(y.T, ([1, 1], [0, 0]), x[0] * 1e-16)    # through a transposed view too
        return y
    x = np.array([[1.0, 0.0], [0.5, 2.0]])
    expected = x.copy()
    np.add.at(expected, [0, 0], [1e-16, 1e-16])
    np.add.at(expected.T, ([1, 1], [0, 0]), x[0] * 1e-16)
    out, g = nb.vjp(f, x, np.ones((2, 2)))
    assert np.array_equal(out, expected)
    assert_close(g, [[1.0 + 2e-16, 1.0], [1.0, 1.0]])


ALIASED_WRITES = {
    "v[1:] = v[:-1]": lambda v: v.__setitem__(slice(1, None), v[:-1]),
    "v[::-1] = v": lambda v: v.__setitem__(slice(None, None, -1), v),
    "v[...] = v.T": lambda v: v.__setitem__(Ellipsis, v.T),
    "v[...] = np.flip(v, 0)": lambda v: v.__setitem__(Ellipsis, np.flip(v, 0)),
    "v[0] = v[0][::-1]": lambda v: v.__setitem__(0, v[0][::-1]),
    "v[[0, 1]] = v[1::-1]": lambda v: v.__setitem__([0, 1], v[1::-1]),
    "v += v.T": lambda v: v.__iadd__(v.T),
}


@pytest.mark.parametrize("write", ALIASED_WRITES.values(), ids=ALIASED_WRITES.keys())
def test_writes_through_a_view_whose_value_reads_the_same_memory(write):
    # the written value is taken before the write re-reads the views it may be one of
    def f(x):
        y = x * 1.0
        v = y[:]
        out = write(v)
        if out is not None and out is not v:            # (an in-place operator's result)
            v = out
        return y
    x = np.arange(9.0).reshape(3, 3) - 4.5
    out, _ = nb.vjp(f, x, np.ones((3, 3)))
    assert np.array_equal(out, f(x))
    check_derivatives(f, (x,))


def test_reshapes_that_numpy_copies_are_copies():
    # numpy copies where the layout allows no view: writes then stay apart, both ways
    def f(x):
        y = x * 1.0
        parts = [y.T.ravel(), y[:, ::2].reshape(-1), y.reshape(-1), y[1:].reshape(-1)]
        parts[0][0] = 100.0          # a copy: y is unchanged
        parts[2][1] = -1.0           # a view: y[0, 1] changes
        y[1, 1] = -7.0               # seen by the views parts[2] and parts[3] only
        return np.concatenate([y.reshape(-1)] + parts)
    x = np.arange(6.0).reshape(2, 3)
    out, _ = nb.vjp(f, x, np.ones(6 + 6 + 4 + 6 + 3))
    assert np.array_equal(out, f(x))


def test_numpys_read_only_views_see_writes_and_refuse_them():
    def f(x):
        y = x * 1.0
        d, b = np.diagonal(y), np.broadcast_to(y[0], (2, 3))
        y[0, 0] = 100.0
        return np.concatenate([d * 1.0, np.ravel(b) * 1.0])
    x = np.arange(9.0).reshape(3, 3)
    assert np.array_equal(nb.vjp(f, x, np.ones(9))[0], f(x))
    for write in (lambda d: d.__setitem__(0, 1.0), lambda d: d.__iadd__(1.0),
                  lambda d: d[1:].__setitem__(0, 1.0)):
        with pytest.raises(ValueError, match="read-only"):
            write(np.diagonal(x.copy()))                 # numpy's own refusal
        with pytest.raises(ValueError, match="read-only"):
            nb.vjp(lambda t: (write(np.diagonal(t * 1.0)), t)[1], x, np.ones((3, 3)))


LAYOUT_CASES = {
    "y[::2].ravel() is a copy": lambda y: (y[::2].ravel(), lambda v: v.__setitem__(0, 100.0)),
    "y[:, 0].ravel() is a copy": lambda y: (y[:, 0].ravel(), lambda v: y.__setitem__((1, 0), 100.0)),
    "y[1].ravel() is a view": lambda y: (y[1].ravel(), lambda v: v.__setitem__(0, 100.0)),
    "y.T.ravel('F') is a view": lambda y: (y.T.ravel("F"), lambda v: v.__setitem__(1, 100.0)),
    "np.copy(y.T) keeps F order": lambda y: ((c := np.copy(y.T)), lambda v: (
        v.__setitem__((0, 0), 5.0), r := v.reshape(-1), v.__setitem__((1, 1), 100.0), r)[-1]),
    "y.T.copy() is C order": lambda y: ((c := y.T.copy()), lambda v: (
        r := v.reshape(-1), v.__setitem__((0, 0), 100.0), r)[0]),
    "broadcast_to(y, y.shape) is read-only": lambda y: (np.broadcast_to(y, y.shape), None),
}


@pytest.mark.parametrize("case", LAYOUT_CASES.values(), ids=LAYOUT_CASES.keys())
def test_views_and_copies_follow_numpys_memory_layout(case):
    def run(x):
        y = x * 1.0
        v, act = case(y)
        if act is None:
            try:
                v[0] = 7.0
                return np.zeros(1)
            except ValueError:                  # numpy's read-only view
                return np.ones(1)
        out = act(v)
        parts = [y, v] if out is None else [y, v, out]
        return np.concatenate([np.ravel(p) * 1.0 for p in parts])
    x = np.arange(6.0).reshape(2, 3)
    expected = run(x)
    out, _ = nb.vjp(run, x, np.ones(expected.shape))
    assert np.array_equal(out, expected)
