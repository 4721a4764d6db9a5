"""Second derivatives of scalar functions: ``nb.hessian``, ``nb.hvp`` and ``nb.vhp``.

``hvp`` and ``vhp`` record ``func`` once and run compiled sweeps only:
forward over reverse with the ops' second-derivative rules
(:func:`numbad.sweeps.hvp`). ``hessian``, and ``hvp``/``vhp`` where those rules
do not reach (``create_graph``, ``strict``, inside ``nb.record``, ops such as
``cumprod`` or ``solve``), record the gradient graph once as well (the
differentiable reverse sweep, :func:`numbad.tensor.backward.backward`); compiled
sweeps over that tape then give the second derivatives: a tangent sweep is
forward-over-reverse (``hvp``, and the Hessian's columns), a reverse sweep is
reverse-over-reverse (``vhp``, and its rows). No Python runs per operation
inside any of those sweeps.
"""
from __future__ import annotations

import numpy as np

from .. import sweeps
from ..tensor.core import Tensor
from ..tensor.backward import backward
from ._common import (OUTPUT_NOT_REQUIRING_GRAD, as_input_tuple, as_output_tuple, as_v_tuple, cast_tensor,
                      check_outputs_require_grad, const_tensor, cut, default_v, detach_value, finish,
                      graph_outputs, nested_postprocess, output_node, plain, postprocess, recorded,
                      requires_grad, seed_tensor, start_call, validate_v, value_shape, value_size)
from .jacobian import DEFAULT, check_strategy, jacobian


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy=DEFAULT):
    """The Hessian of a scalar ``func`` at ``inputs``, nested and shaped as PyTorch's.

    As ``torch.autograd.functional.hessian``, it is the Jacobian (strategy
    ``outer_jacobian_strategy``) of the gradient: one array of shape
    ``in.shape + in.shape`` for an array input; ``H[i][j]``, of shape
    ``in_i.shape + in_j.shape``, for a tuple. The gradient is recorded once on
    the tape; batched compiled sweeps over it give the rows (reverse over
    reverse) or the columns (forward over reverse). Left at its default, the
    strategy gives PyTorch's values in the direction :func:`numbad.jacobian`
    picks; forward mode is computed without ``vectorize`` and with
    ``create_graph`` too. ``vectorize`` changes nothing.

    >>> import numpy as np, numbad as nb
    >>> nb.hessian(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    is_inputs_tuple, inputs = as_input_tuple(inputs, "hessian")
    check_strategy(outer_jacobian_strategy)

    def ensure_single_output_function(*inp):
        out = func(*inp)
        is_out_tuple, t_out = as_output_tuple(out, "hessian")
        if strict:
            for i, y in enumerate(t_out):
                if not requires_grad(y):
                    raise RuntimeError(OUTPUT_NOT_REQUIRING_GRAD.format(i))
        if is_out_tuple:
            raise RuntimeError("The function given to hessian should return a single Tensor")
        if value_size(out) != 1:
            raise RuntimeError("The Tensor returned by the function given to hessian should contain "
                               "a single element")
        return out.reshape(()) if type(out) is Tensor else np.reshape(out, ())

    def jac_func(*inp):
        jac = jacobian(ensure_single_output_function, inp, create_graph=True)
        if strict:
            for i, g in enumerate(jac):
                if not requires_grad(g):
                    raise RuntimeError(_JACOBIAN_INDEPENDENT.format(i))
        return jac

    res = jacobian(jac_func, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize,
                   strategy=outer_jacobian_strategy)
    # ``inputs`` went in as a tuple and jac_func returns one: ``res`` is a tuple of tuples
    return nested_postprocess(res, is_inputs_tuple, is_inputs_tuple)


_JACOBIAN_INDEPENDENT = (
    "While computing the hessian, found that the jacobian of the user-provided function with respect "
    "to input {} is independent of the input. This is not allowed in strict mode. You should ensure "
    "that your function is twice differentiable and that the jacobian depends on the inputs (this "
    "would be violated by a linear function for example).")


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """The output of a scalar ``func`` and the vector-Hessian product ``v^T H``.

    Semantics are those of ``torch.autograd.functional.vhp`` (``v`` mirrors
    the inputs and may be omitted for a single one-element input). The Hessian
    of a scalar function is symmetric, so this is :func:`hvp`'s computation;
    where that falls back to the gradient graph, one compiled reverse sweep
    over it (reverse over reverse). ``create_graph=True`` returns
    differentiable Tensors.

    >>> import numpy as np, numbad as nb
    >>> out, vh = nb.vhp(lambda x: (x ** 3).sum(), np.array([1.0, 2.0]), np.ones(2))
    >>> vh
    array([ 6., 12.])
    """
    return _second_order("vhp", func, inputs, v, create_graph, strict)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """The output of a scalar ``func`` and the Hessian-vector product ``H v``.

    Semantics are those of ``torch.autograd.functional.hvp``. Computed
    forward over reverse in compiled sweeps (tangents, cotangents, each op's
    second-order share, cotangents again: :func:`numbad.sweeps.hvp`), with no
    gradient graph recorded (PyTorch needs a double backward here). With
    ``create_graph=True`` the product is built on the differentiable path
    (the double-backward trick, as PyTorch) and returned as Tensors.

    >>> import numpy as np, numbad as nb
    >>> out, hv = nb.hvp(lambda x, y: (x * x * y).sum(), (np.array([1.0]), np.array([2.0])),
    ...                  (np.array([1.0]), np.array([0.0])))
    >>> hv
    (array([4.]), array([2.]))
    """
    return _second_order("hvp", func, inputs, v, create_graph, strict)


class Gradient:
    """A scalar function recorded with its gradient graph: the start of every second derivative.

    ``grads[i]`` is the gradient of the output with respect to input ``i`` as
    a Tensor on the call's tape (``None`` where the output does not depend on
    it); ops ``[call.begin, end)`` compute the output and the gradient.
    """

    def __init__(self, fn, func, inputs, create_graph, strict, fused=False):
        self.call = call = start_call(inputs, create_graph)
        tape = call.tape
        outputs = call.run(func)
        self.is_outputs_tuple, outputs = as_output_tuple(outputs, fn)
        check_outputs_require_grad(call, outputs, strict)
        if self.is_outputs_tuple:
            raise RuntimeError(f"The function given to {fn} should return a single Tensor")
        out = outputs[0]
        if value_size(out) != 1:
            raise RuntimeError(f"The Tensor returned by the function given to {fn} should contain a "
                               "single element")
        self.output = out
        self.node = node = output_node(call, out)
        # fused: H v by compiled sweeps alone (sweeps.hvp), no gradient graph recorded; not
        # where the products must stay differentiable or be replayed (nb.record), nor in strict
        # mode (whose errors read the gradient graph), nor for ops without second-order rules
        self.fused = (fused and not create_graph and not strict and not tape.replayable
                      and sweeps.hvp_supported(tape, call.begin, tape.n_ops))
        if node is None:
            self.grads = [None] * len(inputs)
        elif self.fused:
            self.grads = None
        else:
            end = tape.n_ops
            one = const_tensor(tape, np.ones(tape.node_shape[node], tape.dtype))
            self.grads = call.run(lambda *_: backward(tape, call.begin, end, call.input_nodes,
                                                      [(node, one)]))
        self.end = tape.n_ops
        if strict:
            for i, g in enumerate(self.grads):
                if g is None:
                    raise RuntimeError("The output of the user-provided function is independent of "
                                       f"input {i}. This is not allowed in strict mode.")
                if not call.requires_grad([g._node])[0]:
                    raise RuntimeError(_JACOBIAN_INDEPENDENT.format(i))

    def hvp(self, v):
        """``H v`` as flat arrays (``None`` for zero blocks): forward over reverse."""
        call = self.call
        if self.grads is None:
            return sweeps.hvp(call.tape, call.begin, self.end, call.input_nodes, self.node,
                              [plain(t) for t in v])
        live = [g._node for g in self.grads if g is not None]
        raw = iter(sweeps.tangent(call.tape, call.begin, self.end, call.input_nodes,
                                  [plain(t) for t in v], live))
        return [None if g is None else next(raw) for g in self.grads]

    def vhp(self, v):
        """``v^T H`` as flat arrays (``None`` for zero blocks): reverse over reverse, one sweep;
        fused, ``H v`` (the Hessian of a scalar function is symmetric)."""
        call = self.call
        if self.grads is None:
            return self.hvp(v)
        seeds = [(g._node, plain(t)) for g, t in zip(self.grads, v) if g is not None]
        return sweeps.reverse(call.tape, call.begin, self.end, call.input_nodes, seeds)


def _second_order(fn, func, inputs, v, create_graph, strict):
    is_inputs_tuple, inputs = as_input_tuple(inputs, fn)
    if v is not None:
        v = validate_v(as_v_tuple(v, fn), inputs, is_inputs_tuple)
    else:
        v = default_v(inputs)
    grad = Gradient(fn, func, inputs, create_graph, strict, fused=True)
    call, tape = grad.call, grad.call.tape

    in_recording = recorded(call, create_graph)      # inside nb.record: see vjp
    if create_graph or in_recording:
        products = _differentiable(fn, grad, v)
    else:
        products = grad.hvp(v) if fn == "hvp" else grad.vhp(v)

    result = []
    for i, (p, x) in enumerate(zip(products, inputs)):
        if p is None:
            if strict:
                raise RuntimeError(
                    f"The hessian of the user-provided function is independent of entry {i} in the "
                    "grad_jacobian. This is not allowed in strict mode as it prevents from using the "
                    "double backward trick to replace forward mode AD." if fn == "hvp" else
                    "The jacobian of the user-provided function is independent of "
                    f"input {i}. This is not allowed in strict mode.")
            p = np.zeros(value_shape(x), x.dtype)
            if create_graph or in_recording:
                p = const_tensor(tape, p)
        elif create_graph or in_recording:
            if strict and create_graph and not call.requires_grad([p._node])[0]:
                raise RuntimeError("The hessian of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode when create_graph=True.")
            p = cast_tensor(p, x.dtype)
        else:
            p = p.reshape(value_shape(x)).astype(x.dtype, copy=False)
        result.append(p)
    if in_recording:
        (out,), result = cut([grad.output]), cut(result)
    elif create_graph:
        out = graph_outputs(tape, [grad.output])[0]
    else:
        out = detach_value(grad.output)
        finish(call)
    return postprocess([out], grad.is_outputs_tuple), postprocess(result, is_inputs_tuple)


def _differentiable(fn, grad, v):
    """``H v`` or ``v^T H`` as Tensors, on the differentiable path (as PyTorch computes them)."""
    call, tape = grad.call, grad.call.tape
    live = [(g._node, seed_tensor(tape, t)) for g, t in zip(grad.grads, v) if g is not None]
    if fn == "vhp":
        return call.run(lambda *_: backward(tape, call.begin, grad.end, call.input_nodes, live))
    # hvp: the double-backward trick, d/du <J_g^T u, v> with placeholder cotangents u
    u = [const_tensor(tape, np.zeros(tape.node_shape[n], tape.dtype)) for n, _ in live]
    back = call.run(lambda *_: backward(tape, call.begin, grad.end, call.input_nodes,
                                        [(n, ui) for (n, _), ui in zip(live, u)]))
    mid = tape.n_ops
    seeds = [(b._node, seed_tensor(tape, t)) for b, t in zip(back, v) if b is not None]
    hv = call.run(lambda *_: backward(tape, grad.end, mid, [ui._node for ui in u], seeds))
    hv = iter(hv)
    return [None if g is None else next(hv) for g in grad.grads]
