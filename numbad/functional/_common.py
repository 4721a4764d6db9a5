"""Argument handling shared by the functional API, with PyTorch's semantics and messages.

The checks mirror ``torch/autograd/functional.py`` (``_as_tuple``,
``_validate_v``, ``_check_requires_grad``, ``_fill_in_zeros``) so that errors
read the same, with arrays in place of Tensors.
"""
from __future__ import annotations

import math

import numpy as np

from ..sweeps import varying_nodes
from ..tape import Recording, active_tapes, current_tape
from ..tensor.core import _SCALAR_FLOATS, Tensor, _new, stop_gradient, wrap

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_F32, _F64 = FLOAT_DTYPES


def _shape_str(shape):
    return str(tuple(shape))


def as_input_tuple(inputs, fn):
    """``(is_tuple, inputs)`` with every input a float32/float64 array, number or Tensor."""
    if type(inputs) is np.ndarray:
        dt = inputs.dtype
        if dt is _F64 or dt is _F32:
            return False, (inputs,)
    elif type(inputs) is tuple:
        for x in inputs:                # (the common case: float arrays, nothing to check)
            if type(x) is not np.ndarray or (x.dtype is not _F64 and x.dtype is not _F32):
                break
        else:
            return True, inputs
    is_tuple = isinstance(inputs, tuple)
    items = inputs if is_tuple else (inputs,)
    out = []
    for i, x in enumerate(items):
        where = f"the value at index {i}" if is_tuple else "the given inputs"
        if type(x) is Tensor:
            if x.dtype not in FLOAT_DTYPES:
                raise TypeError(f"The inputs given to {fn} must be floating-point, but {where} is a "
                                f"Tensor of dtype {x.dtype}.")
            out.append(x)
            continue
        if isinstance(x, bool) or isinstance(x, np.bool_):
            raise TypeError(f"The inputs given to {fn} must be float32 or float64 arrays or "
                            f"Python floats, but input {i} is a bool: it has no derivative.")
        if isinstance(x, int) or isinstance(x, np.integer):
            raise TypeError(f"The inputs given to {fn} must be float32 or float64 arrays or "
                            f"Python floats, but input {i} is an integer ({type(x).__name__}): "
                            "integers have no derivative; pass a float.")
        if isinstance(x, float):
            x = np.asarray(x, np.float64)
        elif isinstance(x, np.generic):
            x = np.asarray(x)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"The inputs given to {fn} must be either an array or a tuple of arrays "
                            f"but {where} has type {type(x)}.")
        if x.dtype not in FLOAT_DTYPES:
            kind = {"b": "boolean", "i": "integer", "u": "unsigned integer", "c": "complex",
                    "O": "object"}.get(x.dtype.kind, "unsupported")
            raise TypeError(f"The inputs given to {fn} must be float32 or float64 arrays, but input "
                            f"{i} has {kind} dtype {x.dtype}: numbad differentiates real "
                            "floating-point inputs.")
        out.append(x)
    return is_tuple, tuple(out)


def as_output_tuple(outputs, fn):
    """``(is_tuple, outputs)``: Tensors, or arrays/numbers that act as constants."""
    if type(outputs) is Tensor:
        return False, (outputs,)
    is_tuple = isinstance(outputs, tuple)
    items = outputs if is_tuple else (outputs,)
    out = []
    for i, y in enumerate(items):
        if type(y) is Tensor:
            out.append(y)
            continue
        ok = isinstance(y, (np.ndarray, np.generic, float, int)) and not isinstance(y, (bool, np.bool_))
        if ok:
            y = np.asarray(y)
            ok = y.dtype.kind in "fiu"
        if not ok:
            where = f"the value at index {i}" if is_tuple else \
                "the given outputs of the user-provided function"
            raise TypeError(f"The outputs of the user-provided function given to {fn} must be either "
                            f"a Tensor or a tuple of Tensors but {where} has type {type(y)}.")
        out.append(y)
    return is_tuple, tuple(out)


def as_v_tuple(v, fn):
    """``v`` as a tuple of arrays (or Tensors, kept for ``create_graph``)."""
    if (type(v) is np.ndarray and v.dtype.kind == "f") or type(v) is float:
        return (v,)
    is_tuple = isinstance(v, tuple)
    items = v if is_tuple else (v,)
    out = []
    for i, x in enumerate(items):
        if type(x) is Tensor:
            out.append(x)
            continue
        if isinstance(x, (bool, np.bool_)):
            raise TypeError(f"The v given to {fn} must be numeric, but entry {i} is a bool.")
        if isinstance(x, (float, int, np.number)):
            out.append(x)           # a scalar: allowed where the matching value has one element
            continue
        if not isinstance(x, np.ndarray):
            where = f"the value at index {i}" if is_tuple else "the given v"
            raise TypeError(f"The v given to {fn} must be either an array or a tuple of arrays but "
                            f"{where} has type {type(x)}.")
        if x.dtype.kind not in "fiu":
            raise TypeError(f"The v given to {fn} must be real-valued, but entry {i} has dtype {x.dtype}.")
        out.append(x)
    return tuple(out)


def value_shape(x):
    v = x._v if type(x) is Tensor else x
    return v.shape if type(v) is np.ndarray else np.shape(v)


def value_size(x):
    v = x._v if type(x) is Tensor else x
    return v.size if type(v) is np.ndarray else math.prod(np.shape(v))


class ScalarVError(TypeError, RuntimeError):
    """A number given as ``v`` for a value of more than one element.

    PyTorch refuses every ``v`` that is not a Tensor with a ``TypeError``; numbad accepts a
    number where the value has one element (SPEC §1) and refuses it elsewhere with this, which
    is both PyTorch's ``TypeError`` and a ``RuntimeError``, as v's other size errors are."""


def validate_v(v, other, is_other_tuple):
    """PyTorch's ``_validate_v``: ``v`` matches ``other`` in count and shapes."""
    if len(v) == 1 == len(other):
        y = other[0]._v if type(other[0]) is Tensor else other[0]
        if type(v[0]) is np.ndarray and v[0].shape == (y.shape if type(y) is np.ndarray else np.shape(y)):
            return v
        if type(v[0]) is float and type(y) in _SCALAR_FLOATS:     # (v=1.0 for a 0-d output)
            return (np.array(v[0]),)
    if len(other) != len(v):
        if is_other_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(other)} but got {len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    out = []
    for idx, (el_v, el_other) in enumerate(zip(v, other)):
        shape = np.shape(el_other._v if type(el_other) is Tensor else el_other)
        if isinstance(el_v, (float, int, np.number)) and not isinstance(el_v, np.ndarray):
            if math.prod(shape) != 1:
                prepend = f"Entry {idx} in " if is_other_tuple else ""
                raise ScalarVError(f"{prepend}v has invalid size: should be {_shape_str(shape)} but "
                                   "got a scalar (a number is accepted only where the value has one "
                                   "element).")
            el_v = np.array(el_v) if shape == () else np.full(shape, el_v)    # (np.full costs 15x more)
        vshape = np.shape(el_v._v if type(el_v) is Tensor else el_v)
        if vshape != shape:
            prepend = f"Entry {idx} in " if is_other_tuple else ""
            raise RuntimeError(f"{prepend}v has invalid size: should be {_shape_str(shape)} but got "
                               f"{_shape_str(vshape)}.")
        out.append(el_v)
    return tuple(out)


def flat_array(v, dtype):
    """``v`` (an array or a number) as one flat, C-contiguous, writable array of ``dtype``: the
    one array type per dtype that the small njit calls take (``v`` itself where it is one)."""
    if type(v) is np.ndarray and v.ndim == 1 and v.dtype is dtype and v.flags.carray:
        return v
    return np.array(v, dtype).reshape(-1)


def tape_dtype(inputs):
    """float32 when every input is float32 (the tape widens itself if float64 values appear)."""
    for x in inputs:
        if x.dtype != _F32:
            return _F64
    return _F32 if inputs else _F64


def start_call(inputs, create_graph, defer=False):
    """``Call(inputs, create_graph, defer=defer)``. The common call, one array recorded on a
    fresh tape, is made here without the general case's checks and calls: with the leaner
    common path of ``nb.vjp`` that made the seed example's ``nb.vjp`` 8% faster."""
    stack = active_tapes()
    x = inputs[0] if len(inputs) == 1 else None
    if type(x) is np.ndarray and x.ndim and not (stack and (create_graph or stack[-1].replayable)):
        call = _new(Call)
        call._stack = stack
        dt = x.dtype
        call.tape = tape = Recording(dt if dt is _F64 or dt is _F32 else tape_dtype(inputs))
        tape.defer = defer
        t = _new(Tensor)
        t._v = x
        t._tape = tape
        t._node = tape.add_input(x)
        call.inputs = (t,)
        call.input_nodes = [0]
        tape.input_nodes.append(0)
        call.begin = 0
        return call
    return Call(inputs, create_graph, defer=defer)


class Call:
    """One functional-API call's recording: which tape, where it starts, its input Tensors.

    With ``create_graph`` inside an active recording, the call records on that
    tape, so that its results stay differentiable by the enclosing call (a
    Hessian is a ``vjp`` of a ``vjp``). Inside ``nb.record`` every nested call
    records on the replayable tape, so that a replay recomputes it. Otherwise
    it records on a fresh tape (inputs from other tapes become constants, as
    their derivatives are not wanted). ``defer``: only the njit reverse sweep will
    read the fresh tape (``Recording.defer``).
    """

    __slots__ = ("tape", "inputs", "input_nodes", "begin", "_stack")

    def __init__(self, inputs, create_graph, replayable=False, defer=False):
        self._stack = stack = active_tapes()        # (this thread's: a Call stays in it)
        outer = stack[-1] if stack else None
        if outer is not None and (create_graph or outer.replayable) and not replayable:
            tape = outer
            tape.defer = False      # this call's own sweep reads values the njit one would not
        else:
            tape = Recording(tape_dtype(inputs))
            tape.replayable = replayable
            tape.defer = defer
        self.tape = tape
        tensors = []
        nodes = []
        for x in inputs:
            if type(x) is Tensor and x._tape is tape:
                # a differentiable copy: the enclosing call differentiates through it
                from ..tensor.core import copy
                t = copy(x, x._v, share=False)
            else:
                # like PyTorch's detach(): the Tensor shares the caller's (never modified) data
                v = x._v if type(x) is Tensor else x
                zero_d = type(v) is np.ndarray and v.ndim == 0
                if zero_d:
                    v = v[()]
                t = wrap(v, tape, tape.add_node(v))
                if zero_d:
                    if tape.zero_d is None:
                        tape.zero_d = set()
                    tape.zero_d.add(t._node)
            nodes.append(t._node)
            tensors.append(t)
        tape.input_nodes += nodes
        self.inputs = tuple(tensors)
        self.input_nodes = nodes
        self.begin = 0 if tape is not outer else tape.n_ops     # (a fresh tape has no op yet)

    def run(self, func):
        """``func(*inputs)`` with this call's tape recording."""
        stack = self._stack
        stack.append(self.tape)
        try:
            return func(*self.inputs)
        finally:
            stack.pop()

    def requires_grad(self, nodes):
        """For each node: does it depend on any input of any call on this tape (PyTorch's requires_grad)?"""
        tape = self.tape
        mask = varying_nodes(tape, tape.input_nodes, 0, tape.n_ops)
        return [n is not None and n >= 0 and bool(mask[n]) for n in nodes]


def output_node(call, y):
    """The node of an output on the call's tape, or ``None`` for a constant output."""
    if type(y) is Tensor and y._tape is call.tape:
        return y._node
    return None


def check_outputs_require_grad(call, outputs, strict):
    if not strict:
        return
    nodes = [output_node(call, y) for y in outputs]
    for i, ok in enumerate(call.requires_grad(nodes)):
        if not ok:
            raise RuntimeError(OUTPUT_NOT_REQUIRING_GRAD.format(i))


OUTPUT_NOT_REQUIRING_GRAD = (
    "Output {} of the user-provided function does not require gradients. The outputs must be "
    "computed in a differentiable manner from the input when running in strict mode.")


def requires_grad(y):
    """Does ``y`` depend on an input of a call recording on the current tape (PyTorch's requires_grad)?"""
    tape = current_tape()
    if type(y) is not Tensor or tape is None or y._tape is not tape:
        return False
    return bool(varying_nodes(tape, tape.input_nodes, 0, tape.n_ops)[y._node])


def reaches(call, from_nodes, end):
    """Mask of the nodes that depend on ``from_nodes`` through the call's ops ``[begin, end)``."""
    return varying_nodes(call.tape, from_nodes, call.begin, end)


def plain(v):
    """A seed/tangent as plain numbers (a Tensor's values; no derivative is wanted through it)."""
    return v._v if type(v) is Tensor else v


def result_dtype(y, tape):
    """The floating dtype of a derivative shaped like ``y`` (its own dtype; the tape's for ints)."""
    v = plain(y)
    dt = v.dtype if isinstance(v, (np.ndarray, np.generic)) else np.result_type(v)
    if dt is _F64 or dt is _F32:       # (the common case, without comparing dtypes)
        return dt
    return dt if dt in FLOAT_DTYPES else tape.dtype


def const_tensor(tape, value):
    """``value`` as a constant node of ``tape`` (a Tensor through which nothing flows)."""
    value = value[()] if type(value) is np.ndarray and value.ndim == 0 else value
    return wrap(value, tape, tape.add_node(value))


def graph_outputs(tape, outputs):
    """``create_graph=True``'s outputs: all Tensors, a constant one where ``func`` returned an
    array or a number (SPEC: every returned value is a differentiable Tensor)."""
    return [y if type(y) is Tensor else const_tensor(tape, np.asarray(y)) for y in outputs]


def seed_tensor(tape, v):
    """A seed for the differentiable sweep: ``v`` itself when on ``tape``, else a constant."""
    if type(v) is Tensor:
        return v if v._tape is tape else const_tensor(tape, v._v)
    return const_tensor(tape, np.asarray(v, tape.dtype))


def cast_tensor(g, dtype):
    if g.dtype == dtype:
        return g
    from ..tensor.numpy_api import astype
    return astype(g, dtype)


def default_v(inputs):
    """``v`` when omitted (jvp, hvp, vhp): allowed for one input with one element only."""
    if len(inputs) != 1 or value_size(inputs[0]) != 1:
        raise RuntimeError("The vector v can only be None if the input to the user-provided function "
                           "is a single Tensor with a single element.")
    return (np.ones(value_shape(inputs[0]), inputs[0].dtype),)


def detach_value(y):
    """A returned value as a plain ndarray (``create_graph=False``).

    A value that is a view into the tape's arena is copied: the arena is
    reused by the next call, and a small output must not keep it alive.
    """
    v = y._v if type(y) is Tensor else y
    if not isinstance(v, np.ndarray):
        return np.array(v)
    return v.copy() if type(y) is Tensor and v.base is not None else v


def recorded(call, create_graph):
    """Is this a ``create_graph=False`` call inside ``nb.record``? Its products are then built on
    the differentiable path, so that they are recorded and every replay recomputes them, and
    returned through :func:`cut` (``create_graph=False``: no derivative flows through them)."""
    return call.tape.replayable and not create_graph


def cut(values):
    """The results of a :func:`recorded` call: recorded values through which no derivative flows."""
    return [stop_gradient(v) if type(v) is Tensor else v for v in values]


def finish(call):
    """A ``create_graph=False`` call is done: offer its tape's arena for reuse by the next call.

    Not a tape that an enclosing call is still recording on. Reuse is refused while
    anything still views the arena (:func:`numbad.buffers.give`), so a Tensor the
    function kept elsewhere stays valid; the caller drops its own references first.
    """
    tape = call.tape
    stack = call._stack
    if not (stack and stack[-1] is tape) and not tape.replayable:
        tape.release()


def postprocess(values, is_tuple):
    return tuple(values) if is_tuple else values[0]


def nested_postprocess(rows, is_outer_tuple, is_inner_tuple):
    """PyTorch's ``_tuple_postprocess(res, (outer, inner))`` for a list of lists."""
    res = [tuple(r) if is_inner_tuple else r[0] for r in rows]
    return tuple(res) if is_outer_tuple else res[0]
