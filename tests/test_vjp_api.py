"""``nb.vjp``'s contract: PyTorch's semantics point for point, the seed examples, errors."""
import threading

import numpy as np
import pytest
import torch

import numbad as nb

from helpers import assert_close, same_error


# ----------------------------------------------------------------------------- the seed examples
def exp_reducer(x):
    return x.exp().sum(dim=1)


def adder(x, y):
    return 2 * x + 3 * y


def test_seed_example_exp_reducer():
    inputs = np.random.rand(4, 4)
    v = np.ones(4)
    out, g = nb.vjp(exp_reducer, inputs, v)
    tout, tg = torch.autograd.functional.vjp(exp_reducer, torch.tensor(inputs), torch.ones(4, dtype=torch.float64))
    assert isinstance(out, np.ndarray) and isinstance(g, np.ndarray)
    assert_close(out, tout.numpy(), rtol=1e-15)
    assert_close(g, tg.numpy(), rtol=1e-15)


def test_seed_example_exp_reducer_create_graph():
    inputs = np.random.rand(4, 4)
    out, g = nb.vjp(exp_reducer, inputs, np.ones(4), create_graph=True)
    tout, tg = torch.autograd.functional.vjp(exp_reducer, torch.tensor(inputs),
                                             torch.ones(4, dtype=torch.float64), create_graph=True)
    assert isinstance(out, nb.Tensor) and isinstance(g, nb.Tensor)
    assert_close(out.detach(), tout.detach().numpy(), rtol=1e-15)
    assert_close(g.detach(), tg.detach().numpy(), rtol=1e-15)


def test_seed_example_adder():
    inputs = (np.random.rand(2), np.random.rand(2))
    out, (gx, gy) = nb.vjp(adder, inputs, np.ones(2))
    tout, tg = torch.autograd.functional.vjp(adder, tuple(torch.tensor(i) for i in inputs),
                                             torch.ones(2, dtype=torch.float64))
    assert_close(out, tout.numpy(), rtol=1e-15)
    assert_close(gx, [2.0, 2.0]) and assert_close(gy, [3.0, 3.0])
    assert isinstance(out, np.ndarray)


def test_seed_examples_float32_like_torch_rand():
    inputs = np.random.rand(4, 4).astype(np.float32)
    out, g = nb.vjp(exp_reducer, inputs, np.ones(4, np.float32))
    tout, tg = torch.autograd.functional.vjp(exp_reducer, torch.tensor(inputs), torch.ones(4))
    assert out.dtype == np.float32 and g.dtype == np.float32
    assert_close(g, tg.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------- tuples and shapes
def test_array_in_array_out_and_tuple_in_tuple_out():
    x = np.arange(3.0)
    out, g = nb.vjp(lambda x: x * 2, x, np.ones(3))
    assert isinstance(g, np.ndarray) and g.shape == (3,)
    out, g = nb.vjp(lambda x: x * 2, (x,), np.ones(3))
    assert isinstance(g, tuple) and len(g) == 1
    out, g = nb.vjp(lambda x: (x * 2,), x, (np.ones(3),))
    assert isinstance(out, tuple) and len(out) == 1 and isinstance(g, np.ndarray)


def test_multiple_outputs_and_inputs():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])
    out, (gx, gy) = nb.vjp(lambda x, y: (x * 2, (y ** 2).sum() * x[0]), (x, y), (np.ones(2), np.array(1.0)))
    assert_close(gx, [2.0 + 50.0, 2.0])
    assert_close(gy, 2 * y * 1.0)


def test_v_none_for_single_element_output():
    out, g = nb.vjp(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]))
    assert_close(g, [2.0, 4.0])
    out, g = nb.vjp(lambda x: (x ** 2).sum(keepdims=True), np.array([1.0, 2.0]))
    assert out.shape == (1,)


def test_v_may_be_a_python_or_numpy_scalar_for_single_element_outputs():
    x = np.array([1.0, 2.0])
    for v in (2.0, np.float64(2.0), np.float32(2.0), 2):
        _, g = nb.vjp(lambda x: (x ** 2).sum(), x, v)
        assert_close(g, [4.0, 8.0])


def test_a_scalar_v_for_several_elements_is_both_pytorchs_type_error_and_a_size_error():
    # PyTorch refuses any v that is not a Tensor with a TypeError; numbad's v-size errors are
    # RuntimeErrors. A number for a many-element value is refused as both.
    with pytest.raises(TypeError, match=r"v has invalid size: should be \(2,\) but got a scalar"):
        nb.vjp(lambda x: x ** 2, np.array([1.0, 2.0]), 2.0)
    with pytest.raises(RuntimeError, match=r"Entry 1 in v has invalid size"):
        nb.vjp(lambda x: (x.sum(), x * 2), np.array([1.0, 2.0]), (1.0, 2.0))
    with pytest.raises(TypeError, match="got a scalar"):
        nb.jvp(lambda x: x * 3.0, np.array([1.0, 2.0]), np.float64(2.0))
    with pytest.raises(TypeError):                                  # PyTorch, for comparison
        torch.autograd.functional.vjp(lambda x: x ** 2, torch.ones(2), 2.0)


def test_0d_and_python_float_inputs():
    out, g = nb.vjp(lambda x: x * x, 3.0)
    assert isinstance(g, np.ndarray) and g.shape == () and g == 6.0
    out, g = nb.vjp(lambda x: np.sin(x), np.array(0.5))
    assert g.shape == () and np.isclose(g, np.cos(0.5))


def test_identity_and_repeated_output():
    x = np.array([1.0, 2.0])
    _, g = nb.vjp(lambda x: x, x, np.array([3.0, 4.0]))
    assert_close(g, [3.0, 4.0])
    _, g = nb.vjp(lambda x: (x, x), x, (np.array([1.0, 1.0]), np.array([2.0, 3.0])))
    assert_close(g, [3.0, 4.0])


def test_independent_input_gets_zeros_not_strict():
    out, (gx, gy) = nb.vjp(lambda x, y: x * 2, (np.ones(2), np.ones(3, np.float32)), np.ones(2))
    assert_close(gx, [2.0, 2.0])
    assert gy.dtype == np.float32 and np.array_equal(gy, np.zeros(3))


def test_constant_output_has_zero_derivative():
    c = np.array([1.0, 2.0])
    out, g = nb.vjp(lambda x: c, np.ones(2), np.ones(2))
    assert np.array_equal(out, c) and np.array_equal(g, np.zeros(2))
    out, g = nb.vjp(lambda x: 3.0, np.ones(2))
    assert out == 3.0 and np.array_equal(g, np.zeros(2))


def test_constant_outputs_are_tensors_with_create_graph():
    # SPEC: with create_graph=True every returned value is a differentiable Tensor
    c = np.array([1.0, 2.0])
    for fn in (nb.vjp, nb.jvp):
        out, d = fn(lambda x: c, np.ones(2), np.ones(2), create_graph=True)
        assert isinstance(out, nb.Tensor) and isinstance(d, nb.Tensor)
        assert np.array_equal(out.detach(), c) and not d.detach().any()
        (out, y), _ = fn(lambda x: (3.0, x * 2), np.ones(2), (np.ones(()), np.ones(2)) if fn is nb.vjp
                         else np.ones(2), create_graph=True)
        assert isinstance(out, nb.Tensor) and float(out) == 3.0 and isinstance(y, nb.Tensor)
    for fn in (nb.hvp, nb.vhp):
        out, p = fn(lambda x: 3.0, np.ones(2), np.ones(2), create_graph=True)
        assert isinstance(out, nb.Tensor) and float(out) == 3.0 and isinstance(p, nb.Tensor)
    # and they nest: the outer derivative through a constant output is zero
    g = nb.vjp(lambda x: nb.vjp(lambda z: c, x, np.ones(2), create_graph=True)[0] * x, np.ones(2), np.ones(2))[1]
    assert np.array_equal(g, c)


def test_inputs_are_never_modified():
    x = np.array([1.0, 2.0, 3.0])
    before = x.copy()
    nb.vjp(lambda x: (x * x).sum(), x)
    nb.vjp(lambda x: (x * x).sum(), x, create_graph=True)
    assert np.array_equal(x, before)


def test_float32_stays_float32():
    x = np.ones(3, np.float32)
    out, g = nb.vjp(lambda x: np.exp(x) * 2.5, x, np.ones(3, np.float32))
    assert out.dtype == np.float32 and g.dtype == np.float32


def test_mixed_precision_inputs_keep_their_dtypes():
    x32, x64 = np.ones(2, np.float32), np.ones(2)
    out, (g32, g64) = nb.vjp(lambda a, b: a * b, (x32, x64), np.ones(2))
    assert out.dtype == np.float64 and g32.dtype == np.float32 and g64.dtype == np.float64


# ----------------------------------------------------------------------------- errors, PyTorch's
T = lambda *s: torch.ones(*s, dtype=torch.float64)  # noqa: E731


def test_error_v_required():
    same_error(lambda: nb.vjp(lambda x: x * 2, np.ones(3)),
               lambda: torch.autograd.functional.vjp(lambda x: x * 2, T(3)))


def test_error_v_wrong_shape():
    same_error(lambda: nb.vjp(lambda x: x * 2, np.ones(4), np.ones(3)),
               lambda: torch.autograd.functional.vjp(lambda x: x * 2, T(4), T(3)))


def test_error_v_wrong_shape_in_tuple():
    same_error(lambda: nb.vjp(lambda x: (x, x * 2), np.ones(4), (np.ones(4), np.ones(3))),
               lambda: torch.autograd.functional.vjp(lambda x: (x, x * 2), T(4), (T(4), T(3))))


def test_error_v_wrong_count():
    same_error(lambda: nb.vjp(lambda x: (x, x), np.ones(2), (np.ones(2),)),
               lambda: torch.autograd.functional.vjp(lambda x: (x, x), T(2), (T(2),)))
    same_error(lambda: nb.vjp(lambda x: x, np.ones(2), (np.ones(2), np.ones(2))),
               lambda: torch.autograd.functional.vjp(lambda x: x, T(2), (T(2), T(2))))


def test_error_strict_independent_input():
    same_error(lambda: nb.vjp(lambda x, y: x * 2, (np.ones(2), np.ones(2)), np.ones(2), strict=True),
               lambda: torch.autograd.functional.vjp(lambda x, y: x * 2, (T(2), T(2)), T(2), strict=True))


def test_error_strict_output_not_requiring_grad():
    c = np.ones(2)
    same_error(lambda: nb.vjp(lambda x: c, np.ones(2), np.ones(2), strict=True),
               lambda: torch.autograd.functional.vjp(lambda x: T(2), T(2), T(2), strict=True))


def test_error_strict_create_graph_linear():
    same_error(lambda: nb.vjp(lambda x: x * 2, np.ones(2), np.ones(2), strict=True, create_graph=True),
               lambda: torch.autograd.functional.vjp(lambda x: x * 2, T(2), T(2), strict=True,
                                                     create_graph=True))


def test_strict_passes_when_connected():
    _, g = nb.vjp(lambda x: (x ** 2).sum(), np.ones(2), strict=True)
    assert_close(g, [2.0, 2.0])
    _, g = nb.vjp(lambda x: (x ** 2).sum(), np.ones(2), strict=True, create_graph=True)
    assert_close(g.detach(), [2.0, 2.0])


def test_error_non_array_output():
    for bad in (None, [1.0], "x", {"a": 1}):
        with pytest.raises(TypeError, match="The outputs of the user-provided function given to vjp "
                                            "must be either a Tensor or a tuple of Tensors"):
            nb.vjp(lambda x: bad, np.ones(2), np.ones(2))


@pytest.mark.parametrize("bad, what", [
    (np.ones(3, np.int64), "integer"), (np.ones(3, bool), "boolean"), (np.ones(3, complex), "complex"),
    (np.array([object()]), "object"), (3, "integer"), (True, "bool"), ([1.0, 2.0], "list"),
])
def test_error_bad_inputs_name_the_input(bad, what):
    with pytest.raises(TypeError, match="input"):
        nb.vjp(lambda x: x, bad)
    with pytest.raises(TypeError, match="index 1|input 1"):
        nb.vjp(lambda x, y: x, (np.ones(2), bad))


def test_asarray_of_tensor_raises():
    with pytest.raises(TypeError, match="np.asarray"):
        nb.vjp(lambda x: np.asarray(x).sum(), np.ones(2))
    with pytest.raises(TypeError, match="np.asarray"):
        nb.vjp(lambda x: np.array(x), np.ones(2), np.ones(2))


def test_calls_that_turn_a_tensor_into_a_python_float_raise():
    import math
    with pytest.raises(TypeError, match=r"math\.exp\(\) reads a Tensor as a plain Python float"):
        nb.vjp(lambda x: math.exp(x) * x, 1.0)
    with pytest.raises(TypeError, match=r"math\.sqrt\(\) reads"):
        nb.vjp(lambda x: x * math.sqrt(     # a call written over two lines
            x), 1.0)
    out = np.zeros(2)

    def fill(x):
        out.fill(x)
        return x * out.sum()
    with pytest.raises((TypeError, ValueError)) as info:      # numpy wraps it in a ValueError
        nb.vjp(fill, 1.0)
    err = info.value if isinstance(info.value, TypeError) else info.value.__cause__
    assert "out.fill() reads a Tensor as a plain Python float" in str(err)
    # explicit reads, and reads whose result carries no derivative, stay allowed
    for f, expected in ((lambda x: x * float(x), 2.0), (lambda x: x * np.float64(x), 2.0),
                        (lambda x: x * int(x), 2.0), (lambda x: x * (1.0 if math.isfinite(x) else 0.0), 1.0),
                        (lambda x: x * math.floor(x), 2.0), (lambda x: x * f"{float(x):.1f}".count("2"), 1.0),
                        (lambda x: x * x.item(), 2.0)):
        assert nb.vjp(f, 2.0)[1] == expected


def test_format_specs_work_on_zero_dimensional_tensors_as_on_numpy_arrays():
    seen = []

    def f(x):
        seen.append((f"{x:.3f}", format(x, "8.2e"), f"{np.sum(x * 2.0):.1f}"))
        return x * 2.0
    assert nb.vjp(f, 1.5)[1] == 2.0
    assert seen == [("1.500", "1.50e+00", "3.0")]
    with pytest.raises(TypeError, match="unsupported format string"):      # numpy's rule: 0-d only
        nb.vjp(lambda x: (f"{x:.3f}", x)[1], np.ones(2), np.ones(2))
    # on a recorded tape a formatted value is a read like float(t): a guard
    tape = nb.record(lambda x: (f"{x:.1f}", x * 2.0)[1], np.array(1.0))
    assert tape(np.array(1.0)) == 2.0
    with pytest.raises(nb.BranchChanged):
        tape(np.array(2.0))


def test_unsupported_numpy_function_names_itself():
    with pytest.raises(TypeError, match=r"numpy\.linalg\.eig"):
        nb.vjp(lambda x: np.linalg.eig(x.reshape(2, 2))[0].sum(), np.ones(4))
    with pytest.raises(TypeError, match=r"numpy\.gcd"):
        nb.vjp(lambda x: np.gcd(x, x), np.ones(2), np.ones(2))


def test_writing_a_tensor_into_a_numpy_array_raises():
    def whole(x):
        out = np.zeros(2)
        out[:] = x
        return out
    with pytest.raises(TypeError, match="cannot become a plain numpy array"):
        nb.vjp(whole, np.ones(2), np.ones(2))

    def element(x):
        out = np.zeros(2)
        out[0] = x[0]
        return out
    # numpy reports a failed element write as ValueError, caused by numbad's TypeError
    with pytest.raises((TypeError, ValueError)) as info:
        nb.vjp(element, np.ones(2), np.ones(2))
    err = info.value if isinstance(info.value, TypeError) else info.value.__cause__
    assert isinstance(err, TypeError) and "cannot become a plain numpy array" in str(err)
    with pytest.raises(TypeError, match="out="):
        nb.vjp(lambda x: np.exp(x, out=np.empty(2)), np.ones(2), np.ones(2))


def test_building_an_array_from_tensors_points_to_stack():
    # the ODE right-hand side written as np.array([...]) of Tensors: np.stack carries the derivative
    with pytest.raises((TypeError, ValueError)) as info:
        nb.vjp(lambda s: np.array([s[1], -s[0]]), np.ones(2), np.ones(2))
    err = info.value if isinstance(info.value, TypeError) else info.value.__cause__
    assert "np.stack([a, b]) in place of np.array([a, b])" in str(err)
    _, g = nb.vjp(lambda s: np.stack([s[1], -s[0]]), np.ones(2), np.array([1.0, 2.0]))
    assert np.array_equal(g, [-2.0, 1.0])


def test_numba_errors_do_not_leak():
    # a complex constant mixed in is a clear TypeError, not a typing traceback
    with pytest.raises(TypeError, match="numbad"):
        nb.vjp(lambda x: x * (1 + 2j), np.ones(2), np.ones(2))


# ----------------------------------------------------------------------------- higher order
def test_vjp_of_vjp_is_a_hessian_vector_product():
    def f(x):
        return (np.sin(x) * x ** 2).sum()

    def grad(x):
        return nb.vjp(f, x, create_graph=True)[1]
    x = np.array([0.3, -1.2, 2.0])
    u = np.array([1.0, 0.5, -2.0])
    _, hv = nb.vjp(grad, x, u)
    _, thv = torch.autograd.functional.vhp(lambda t: (torch.sin(t) * t ** 2).sum(), torch.tensor(x),
                                           torch.tensor(u))
    assert_close(hv, thv.numpy(), rtol=1e-13)


def test_third_order_by_nesting():
    def f(x):
        return (x ** 4).sum()

    def d1(x):
        return nb.vjp(f, x, create_graph=True)[1]

    def d2(x):
        return nb.vjp(d1, x, np.ones_like(x.detach()), create_graph=True)[1]
    x = np.array([1.0, 2.0])
    _, d3 = nb.vjp(d2, x, np.ones(2))
    assert_close(d3, 24 * x)


def test_closure_over_outer_tensor_with_create_graph():
    # d/dy [ d/dx (x*y)^2 ] at x, y: d/dx = 2 x y^2, then d/dy = 4 x y
    def outer(y):
        return nb.vjp(lambda x: ((x * y) ** 2).sum(), np.array([3.0]), create_graph=True)[1]
    _, g = nb.vjp(outer, np.array([2.0]), np.ones(1))
    assert_close(g, [4 * 3.0 * 2.0])


def test_nested_vjp_without_create_graph_is_a_constant_inside():
    def f(y):
        _, gx = nb.vjp(lambda x: (x * y).sum(), np.array([1.0, 2.0]))
        assert isinstance(gx, np.ndarray)
        return (y * y).sum() + (gx * 0 + 1).sum()
    _, g = nb.vjp(f, np.array([3.0, 4.0]))
    assert_close(g, [6.0, 8.0])


# ----------------------------------------------------------------------------- threads, exceptions
def test_exception_in_func_leaves_numbad_clean():
    from numbad.tape import active_tapes

    def bad(x):
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        nb.vjp(bad, np.ones(2), np.ones(2))
    assert active_tapes() == []
    _, g = nb.vjp(lambda x: x * 3, np.ones(2), np.ones(2))
    assert_close(g, [3.0, 3.0])


def test_exception_in_nested_create_graph_call():
    from numbad.tape import active_tapes

    def f(x):
        try:
            nb.vjp(lambda y: 1 / 0, x, create_graph=True)
        except ZeroDivisionError:
            pass
        return (x * x).sum()
    _, g = nb.vjp(f, np.array([1.0, 2.0]))
    assert_close(g, [2.0, 4.0])
    assert active_tapes() == []


def test_four_threads_concurrently():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(200):
                x = rng.standard_normal(5)
                _, g = nb.vjp(lambda x: (np.sin(x) * x).sum(), x)
                assert np.allclose(g, np.cos(x) * x + np.sin(x))
                _, h = nb.vjp(lambda x: nb.vjp(lambda y: (y ** 3).sum(), x, create_graph=True)[1], x,
                              np.ones(5))
                assert np.allclose(h, 6 * x)
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_tensor_reads_are_explicit_and_plain():
    seen = {}

    def f(x):
        seen["float"] = float(x[0])
        seen["item"] = x[1].item()
        seen["detach"] = x.detach()
        seen["bool"] = bool(x[0] > 0)
        return x * 2
    nb.vjp(f, np.array([1.5, -2.0]), np.ones(2))
    assert seen["float"] == 1.5 and seen["item"] == -2.0 and type(seen["item"]) is float
    assert isinstance(seen["detach"], np.ndarray) and seen["bool"] is True


def test_tensor_attributes():
    def f(x):
        assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float64
        assert x.size() == (2, 3) and x.size(1) == 3 and x.T.shape == (3, 2) and len(x) == 2
        assert repr(x).startswith("Tensor(")
        return x
    nb.vjp(f, np.ones((2, 3)), np.ones((2, 3)))


def test_membership_and_round_as_numpy_scalars_and_arrays():
    def f(x):
        assert 2.0 in x and 5.0 not in x                    # numpy's (x == v).any()
        s = np.sum(x)                                       # a numpy scalar in numpy: round() works
        assert round(s) == 6 and isinstance(round(s), int)
        return round(s * 1.23456, 2) * x
    out, g = nb.vjp(f, np.array([1.0, 2.0, 3.0]), np.ones(3))
    assert np.allclose(out, 7.41 * np.array([1.0, 2.0, 3.0])) and np.allclose(g, 7.41)
    with pytest.raises(TypeError, match="__round__"):
        nb.vjp(lambda x: round(x, 1), np.ones(2), np.ones(2))


def test_view_tolist_and_real_as_numpy():
    def f(x):
        assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and x.view() is x and x.real is x
        return x.view() * 2.0
    assert np.array_equal(nb.vjp(f, np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 2)))[1],
                          np.full((2, 2), 2.0))


def test_a_tensor_used_after_its_call_has_finished_says_so():
    kept = []
    nb.vjp(lambda x: (kept.append(x * 2.0), x.sum())[1], np.ones(3))
    assert np.array_equal(kept[0].detach(), [2.0, 2.0, 2.0])        # reading it still works
    for use in (lambda t: t + 1.0, lambda t: np.exp(t), lambda t: t[1:] * t[:-1], lambda t: t + np.ones((2, 3))):
        with pytest.raises(RuntimeError, match="belongs to a numbad call that has finished"):
            use(kept[0])
