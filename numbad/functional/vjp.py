"""``nb.vjp``: vector-Jacobian products with ``torch.autograd.functional.vjp``'s semantics."""
from __future__ import annotations

import numpy as np

from .. import sweeps
from ..tensor.backward import backward
from ..tensor.core import _SCALAR_FLOATS, Tensor
from ._common import (as_input_tuple, as_output_tuple, as_v_tuple, cast_tensor, check_outputs_require_grad,
                      const_tensor, cut, detach_value, finish, flat_array, graph_outputs, output_node,
                      postprocess, recorded, seed_tensor, start_call, validate_v, value_shape, value_size)


def vjp(func, inputs, v=None, create_graph=False, strict=False, device="cpu", to_host=True):
    """The output of ``func(*inputs)`` and the vector-Jacobian product ``v^T J``.

    Semantics are those of ``torch.autograd.functional.vjp``: ``inputs`` is an
    array or a tuple of arrays (results mirror that), ``v`` matches the
    outputs and may be omitted when ``func`` returns a single element,
    ``strict=True`` rejects inputs that the outputs do not depend on, and
    ``create_graph=True`` returns differentiable :class:`numbad.Tensor` objects.

    ``device="cuda"`` records ``func`` on the CPU as usual, then replays the
    tape and runs the reverse sweep as numba.cuda kernels (``docs/cuda.md``);
    ``to_host=False`` then returns device arrays. To differentiate the same
    function many times, record it once: ``nb.record(func, x, device="cuda")``.

    >>> import numpy as np, numbad as nb
    >>> def exp_reducer(x):
    ...     return x.exp().sum(dim=1)
    >>> out, g = nb.vjp(exp_reducer, np.zeros((2, 2)), np.ones(2))
    >>> out
    array([2., 2.])
    >>> g
    array([[1., 1.],
           [1., 1.]])
    """
    if type(device) is not str or device != "cpu":
        from ..cuda import check_device
        if check_device(device) == "cuda":
            from ..cuda.api import functional_vjp
            return functional_vjp(func, inputs, v, create_graph, strict, to_host)
    is_inputs_tuple, inputs = as_input_tuple(inputs, "vjp")
    call = start_call(inputs, create_graph, defer=not create_graph)
    tape = call.tape
    outputs = call.run(func)
    seed = None if create_graph else _common_seed(outputs, v, tape, call.input_nodes)
    if seed is not None:
        # the common call on a small tape: what the general code below does, without its
        # checks of what _common_seed has seen to
        if strict:
            check_outputs_require_grad(call, (outputs,), strict)
        result = _small_reverse(tape, tape.n_ops, outputs._node, seed, inputs, strict)
        out = detach_value(outputs)
        del outputs
        finish(call)
        return out, (tuple(result) if is_inputs_tuple else result[0])
    is_outputs_tuple, outputs = as_output_tuple(outputs, "vjp")
    end = tape.n_ops
    if strict:
        check_outputs_require_grad(call, outputs, strict)

    if v is not None:
        v = validate_v(as_v_tuple(v, "vjp"), outputs, is_outputs_tuple)
    else:
        if len(outputs) != 1 or value_size(outputs[0]) != 1:
            raise RuntimeError("The vector v can only be None if the user-provided function returns "
                               "a single Tensor with a single element.")
        v = (np.ones(value_shape(outputs[0]), tape.dtype),)

    seeds = []
    for y, vi in zip(outputs, v):
        node = output_node(call, y)
        if node is not None:
            seeds.append((node, vi))
    # inside nb.record a nested call stays on the tape (so that replays recompute it),
    # with its results cut from the enclosing derivative as create_graph=False asks
    in_recording = recorded(call, create_graph)
    if not (create_graph or in_recording):
        if len(seeds) == 1 and sweeps.fits_reverse_inputs(tape, call.input_nodes):
            node, vi = seeds[0]
            result = _small_reverse(tape, end, node, _flat_seed(vi, tape, node), inputs, strict)
        else:
            result = _reverse(tape, call, end, seeds, inputs, strict)
        outs = [detach_value(y) for y in outputs]
        del outputs
        finish(call)
        return postprocess(outs, is_outputs_tuple), postprocess(result, is_inputs_tuple)

    grads = call.run(lambda *_: backward(tape, call.begin, end, call.input_nodes,
                                         [(n, seed_tensor(tape, vi)) for n, vi in seeds]))
    result = []
    for i, (g, x) in enumerate(zip(grads, inputs)):
        if g is None:
            if strict:
                raise RuntimeError(_INDEPENDENT.format(i))
            g = const_tensor(tape, np.zeros(value_shape(x), x.dtype))
        else:
            g = cast_tensor(g, x.dtype)
            if strict and create_graph and not call.requires_grad([g._node])[0]:
                raise RuntimeError("The jacobian of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode when create_graph=True.")
        result.append(g)
    if in_recording:
        return postprocess(cut(outputs), is_outputs_tuple), postprocess(cut(result), is_inputs_tuple)
    return postprocess(graph_outputs(tape, outputs), is_outputs_tuple), postprocess(result, is_inputs_tuple)


_INDEPENDENT = ("The output of the user-provided function is independent of input {}. This is not "
                "allowed in strict mode.")


def _reverse(tape, call, end, seeds, inputs, strict):
    """The gradients of a ``create_graph=False`` call, by the njit reverse sweep."""
    raw = sweeps.reverse(tape, call.begin, end, call.input_nodes,
                         [(n, vi._v if type(vi) is Tensor else vi) for n, vi in seeds])
    result = []
    for i, (r, x) in enumerate(zip(raw, inputs)):
        if r is None:
            if strict:
                raise RuntimeError(_INDEPENDENT.format(i))
            result.append(np.zeros(value_shape(x), x.dtype))
        else:
            r = r.reshape(x.shape if type(x) is np.ndarray else value_shape(x))
            result.append(r if r.dtype is x.dtype else r.astype(x.dtype))
    return result


def _common_seed(y, v, tape, input_nodes):
    """The seed of the common call as :func:`_small_reverse` takes it, ``None`` for any other:
    ``func`` returned one Tensor of this call's fresh, small tape (not inside ``nb.record``)
    and ``v`` is a float array of its shape, or ``None`` for a 0-d output."""
    if type(y) is not Tensor or y._tape is not tape or tape.replayable:
        return None
    yv = y._v
    if type(v) is np.ndarray:
        if not (type(yv) is np.ndarray and v.shape == yv.shape and v.dtype.kind == "f"):
            return None
        v = flat_array(v, tape.dtype)
    elif v is None and type(yv) in _SCALAR_FLOATS:         # (a 0-d value is a numpy scalar)
        v = sweeps.seed_one(tape.dtype)
    else:
        return None
    return v if sweeps.fits_reverse_inputs(tape, input_nodes) else None


def _flat_seed(v, tape, node):
    """``v`` as :func:`_small_reverse` takes it: flat, C-contiguous, writable, of the tape's
    dtype (the njit call takes one array type per dtype), with ``node``'s number of values."""
    v = flat_array(v._v if type(v) is Tensor else v, tape.dtype)
    if v.size != tape.node_size[node]:  # (validate_v saw to it; the njit call reads v unchecked)
        raise RuntimeError(f"numbad: internal error: a seed of {v.size} values for a node of "
                           f"{tape.node_size[node]}")
    return v


def _small_reverse(tape, end, node, v, inputs, strict):
    """:func:`_reverse` for one seed ``v`` (see :func:`_flat_seed`) of ``node`` on a small
    fresh tape, in one njit call (``sweeps.reverse_inputs``): the gradients are views of one
    array."""
    k = len(inputs)
    grad, reached = sweeps.reverse_inputs(tape, end, k, node, v)
    result = []
    pos = 0
    for i, x in enumerate(inputs):
        if strict and not reached >> i & 1:
            raise RuntimeError(_INDEPENDENT.format(i))
        shape = x.shape if type(x) is np.ndarray else value_shape(x)
        if k == 1:
            r = grad.reshape(shape)
        else:
            n = tape.node_size[i]
            r = grad[pos:pos + n].reshape(shape)
            pos += n
        result.append(r if r.dtype is x.dtype else r.astype(x.dtype))
    return result
