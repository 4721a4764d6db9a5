"""``nb.jvp``: Jacobian-vector products by true forward mode, with PyTorch's ``jvp`` semantics."""
from __future__ import annotations

import numpy as np

from .. import sweeps
from ..tensor.backward import backward
from ..tensor.core import Tensor
from ._common import (as_input_tuple, as_output_tuple, as_v_tuple, cast_tensor, check_outputs_require_grad,
                      const_tensor, cut, default_v, detach_value, finish, flat_array, graph_outputs,
                      output_node, plain, postprocess, reaches, recorded, result_dtype, seed_tensor,
                      start_call, validate_v, value_shape)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """The output of ``func(*inputs)`` and the Jacobian-vector product ``J v``.

    Semantics are those of ``torch.autograd.functional.jvp``: ``v`` matches the
    inputs (it may be omitted for a single one-element input), the product
    mirrors the outputs, ``strict=True`` rejects inputs that no output depends
    on (and outputs that depend on no input), and ``create_graph=True``
    returns differentiable :class:`numbad.Tensor` objects.

    With ``create_graph=False`` this is true forward mode: one compiled tangent
    sweep over the recorded tape, about the cost of one :func:`numbad.vjp`
    (PyTorch uses the double-backward trick, twice the work). With
    ``create_graph=True`` the product is built on the differentiable path by
    the double-backward trick (two differentiable reverse sweeps), which
    works for every op that ``vjp(create_graph=True)`` supports.

    >>> import numpy as np, numbad as nb
    >>> def exp_reducer(x):
    ...     return x.exp().sum(dim=1)
    >>> out, jv = nb.jvp(exp_reducer, np.zeros((2, 2)), np.ones((2, 2)))
    >>> jv
    array([2., 2.])
    >>> nb.jvp(lambda x, y: 2 * x + 3 * y, (np.ones(2), np.ones(2)), (np.ones(2), np.ones(2)))[1]
    array([5., 5.])
    """
    is_inputs_tuple, inputs = as_input_tuple(inputs, "jvp")
    if v is not None:
        v = validate_v(as_v_tuple(v, "jvp"), inputs, is_inputs_tuple)
    else:
        v = default_v(inputs)
    call = start_call(inputs, create_graph)
    tape = call.tape
    outputs = call.run(func)
    if (type(outputs) is Tensor and outputs._tape is tape and not (create_graph or strict or tape.replayable)
            and sweeps.fits_reverse_inputs(tape, call.input_nodes)):
        # the common call on a small tape: one compiled call for the tangent sweep (what the
        # general code below does for one output Tensor)
        p, _ = sweeps.tangent_inputs(tape, tape.n_ops, len(inputs), outputs._node, _flat(v, tape.dtype))
        yv = outputs._v
        if p.shape != yv.shape:
            p = p.reshape(yv.shape)                 # (a 0-d value is a numpy scalar: shape ())
        if p.dtype is not yv.dtype:
            p = p.astype(result_dtype(outputs, tape), copy=False)
        out = detach_value(outputs)
        del outputs
        finish(call)
        return out, p
    is_outputs_tuple, outputs = as_output_tuple(outputs, "jvp")
    end = tape.n_ops
    check_outputs_require_grad(call, outputs, strict)
    nodes = [output_node(call, y) for y in outputs]
    if strict:      # PyTorch's: every input reaches an output (outputs reaching no input: below)
        for i, n in enumerate(call.input_nodes):
            mask = reaches(call, [n], end)
            if not any(m is not None and mask[m] for m in nodes):
                raise RuntimeError("The output of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode.")

    in_recording = recorded(call, create_graph)      # inside nb.record: see vjp
    if create_graph or in_recording:
        products = DoubleBackward(call, end, nodes)(v)
    else:
        live = [n for n in nodes if n is not None]
        products = sweeps.tangent(tape, call.begin, end, call.input_nodes, [plain(t) for t in v], live)
        if len(live) < len(nodes):         # constant outputs: no product
            raw = iter(products)
            products = [None if n is None else next(raw) for n in nodes]

    result = []
    for i, (p, y) in enumerate(zip(products, outputs)):
        dtype = result_dtype(y, tape)
        if p is None:
            if strict:
                raise RuntimeError("The gradient with respect to the input is independent of entry "
                                   f"{i} in the grad_outputs when using the double backward trick to "
                                   "compute forward mode gradients. This is not allowed in strict mode.")
            p = np.zeros(value_shape(y), dtype)
            if create_graph or in_recording:
                p = const_tensor(tape, p)
        elif create_graph or in_recording:
            if strict and create_graph and not call.requires_grad([p._node])[0]:
                raise RuntimeError("The jacobian of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode when create_graph=True.")
            p = cast_tensor(p, dtype)
        else:
            p = p.reshape(value_shape(y)).astype(dtype, copy=False)
        result.append(p)

    if in_recording:
        outs, result = cut(outputs), cut(result)
    elif create_graph:
        outs = graph_outputs(tape, outputs)
    else:
        outs = [detach_value(y) for y in outputs]
        del outputs
        finish(call)
    return postprocess(outs, is_outputs_tuple), postprocess(result, is_outputs_tuple)


def _flat(v, dtype):
    """The tangents ``v`` (validated: one per input, of its shape) end to end, as one flat,
    C-contiguous, writable array of ``dtype`` (what ``sweeps.tangent_inputs`` reads)."""
    if len(v) == 1:
        return flat_array(plain(v[0]), dtype)
    return np.concatenate([np.ravel(plain(t)) for t in v], dtype=dtype, casting="unsafe")


class DoubleBackward:
    """``J v`` as differentiable Tensors: the reverse sweep of a reverse sweep.

    Constructing it records the first sweep, which pulls placeholder
    cotangents ``u`` (constant leaves) back to the inputs: ``g = J^T u``.
    Each call records the second, which differentiates ``<g, v>`` with
    respect to ``u``: that is ``J v``. It returns one Tensor (or ``None``
    where no input reaches) per output node.

    ``g`` is linear in ``u``, so any ``u`` gives the same ``J v``; PyTorch uses
    zeros. Here ``u`` is generic instead (distinct values in [1, 2), a fixed
    sequence): the rules that refuse a cotangent meeting a tie (eigenvectors
    of equal eigenvalues, singular vectors at a zero singular value) test the
    cotangent's value, and zeros, or ones, would pass where the product has
    no value.
    """

    def __init__(self, call, end, nodes):
        tape = self.tape = call.tape
        self.call, self.end, self.nodes = call, end, nodes
        self.u = {}
        for n in nodes:
            if n is not None and n not in self.u:
                self.u[n] = const_tensor(tape, _placeholder(tape.node_shape[n], tape.dtype))
        seeds = list(self.u.items())
        self.g = call.run(lambda *_: backward(tape, call.begin, end, call.input_nodes, seeds))
        self.mid = tape.n_ops

    def __call__(self, v):
        tape = self.tape
        seeds = [(gi._node, seed_tensor(tape, vi)) for gi, vi in zip(self.g, v) if gi is not None]
        u_nodes = [t._node for t in self.u.values()]
        jv = self.call.run(lambda *_: backward(tape, self.end, self.mid, u_nodes, seeds))
        by_node = dict(zip(self.u, jv))
        return [None if n is None else by_node[n] for n in self.nodes]


def _placeholder(shape, dtype):
    """Generic cotangent values: 1 + the fractional parts of k times the golden ratio."""
    k = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (1.0 + (k * 0.6180339887498949) % 1.0).reshape(shape).astype(dtype)
