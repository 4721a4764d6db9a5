"""``nb.jacobian``: whole Jacobians from one recording, swept for blocks of rows or columns at once."""
from __future__ import annotations

import math

import numpy as np

from .. import sweeps
from ..tensor import core
from ..tensor.backward import backward
from ._common import (as_input_tuple, as_output_tuple, cast_tensor, check_outputs_require_grad, const_tensor,
                      cut, finish, nested_postprocess, output_node, reaches, recorded, result_dtype,
                      start_call, value_shape, value_size)
from .jvp import DoubleBackward

STRATEGIES = ("forward-mode", "reverse-mode")

#: Most floats one batched sweep may hold in its adjoint/tangent arena (its
#: values arena times the lanes): 2**23 is 64 MiB of float64.
LANE_BUDGET = 1 << 23


class _DefaultStrategy(str):
    """The default ``strategy``: it reads "reverse-mode" (PyTorch's default), and
    :func:`jacobian` computes PyTorch's reverse-mode values in whichever
    direction needs fewer sweeps."""

    __slots__ = ()


DEFAULT = _DefaultStrategy("reverse-mode")


def check_strategy(strategy):
    if strategy not in STRATEGIES:
        raise ValueError(f'Expected strategy to be either "forward-mode" or "reverse-mode", but got '
                         f'{strategy!r}. Hint: If your function has more outputs than inputs, '
                         '"forward-mode" tends to be more performant. Otherwise, prefer to use '
                         '"reverse-mode".')


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy=DEFAULT):
    """The Jacobian of ``func`` at ``inputs``, nested and shaped as PyTorch's.

    Semantics are those of ``torch.autograd.functional.jacobian``: one array
    of shape ``out.shape + in.shape`` for an array input and output, a tuple
    over inputs (or outputs) when one of them is a tuple, and a tuple over
    outputs of tuples over inputs when both are. The dtype is the input's
    (the output's with ``strategy="forward-mode"``), as in PyTorch.

    ``func`` runs once; compiled sweeps then push blocks of cotangents
    (``strategy="reverse-mode"``, rows) or tangents (``"forward-mode"``,
    columns) through the tape, many per sweep. ``vectorize`` is accepted and
    changes nothing: numbad always sweeps in blocks. Left at its default,
    ``strategy`` gives PyTorch's reverse-mode values but sweeps in the
    direction with fewer rows or columns; should a forward-mode result hold a
    non-finite entry (an infinite partial derivative, where the two
    directions place NaNs differently), the rows are recomputed in reverse
    mode (an infinite partial whose result ``func`` drops, by indexing, gives
    reverse mode's NaN only in the rows: the columns' 0 is kept; see
    ``docs/functional.md``). An explicit strategy is honoured, also where PyTorch refuses it
    (forward mode without ``vectorize``, with ``strict`` or with
    ``create_graph``). ``create_graph=True`` returns differentiable
    :class:`numbad.Tensor` blocks, built one row (reverse) or one column
    (forward) at a time on the differentiable path.

    >>> import numpy as np, numbad as nb
    >>> nb.jacobian(lambda x: x ** 2, np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    >>> jx, jy = nb.jacobian(lambda x, y: x * y, (np.array([3.0]), np.array([5.0])))
    >>> jx, jy
    (array([[5.]]), array([[3.]]))
    """
    check_strategy(strategy)
    is_inputs_tuple, inputs = as_input_tuple(inputs, "jacobian")
    call = start_call(inputs, create_graph)
    tape = call.tape
    outputs = call.run(func)
    is_outputs_tuple, outputs = as_output_tuple(outputs, "jacobian")
    end = tape.n_ops
    check_outputs_require_grad(call, outputs, strict)
    nodes = [output_node(call, y) for y in outputs]
    forward = strategy == "forward-mode"

    in_recording = recorded(call, create_graph)      # inside nb.record: see vjp
    if create_graph or in_recording:
        if in_recording and strict:
            _check_strict(call, end, outputs, nodes)     # create_graph=False's strict checks
        differentiable = _columns_differentiable if forward else _rows_differentiable
        blocks = differentiable(call, end, inputs, outputs, nodes, strict and create_graph)
        if in_recording:
            blocks = [cut(row) for row in blocks]
    else:
        if strict:
            _check_strict(call, end, outputs, nodes)
        rows = [value_size(y) for y in outputs]
        cols = [value_size(x) for x in inputs]
        if strategy is DEFAULT:
            # a tangent sweep costs less than a reverse sweep of as many lanes (no zeroing
            # and accumulating of cotangents): forward mode wins ties
            if sum(cols) <= sum(rows):
                J = _columns(call, end, nodes, rows, cols)
                flat = J.reshape(-1)
                if not math.isfinite(flat @ flat):    # (overflow only redoes it needlessly)
                    J = _rows(call, end, nodes, rows, cols)
            else:
                J = _rows(call, end, nodes, rows, cols)
        else:
            J = (_columns if forward else _rows)(call, end, nodes, rows, cols)
        blocks = _split(J, outputs, inputs, rows, cols, forward, tape)
        del outputs
        finish(call)
    return nested_postprocess(blocks, is_outputs_tuple, is_inputs_tuple)


# ----------------------------------------------------------------------------- the fast path
def _lanes(tape, total):
    """How many rows/columns one batched sweep takes: all of them when memory allows."""
    n_vals = max(tape.top, 1)
    return max(1, min(total, LANE_BUDGET // n_vals))


def _unit_block(size, first, start, count):
    """Rows ``[start, start + count)`` of the identity, restricted to the ``size`` entries
    of one argument whose first entry is global index ``first``: shape ``(size, count)``."""
    if first == start and size == count:
        return sweeps.Identity(size)
    block = np.zeros((size, count))
    lo, hi = max(first, start), min(first + size, start + count)
    if lo < hi:
        idx = np.arange(lo, hi)
        block[idx - first, idx - start] = 1.0
    return block


def _offsets(sizes):
    out = [0]
    for s in sizes:
        out.append(out[-1] + s)
    return out


def _rows(call, end, nodes, rows, cols):
    """The whole Jacobian ``(sum(rows), sum(cols))`` by reverse sweeps, a block of rows each."""
    tape = call.tape
    M, N = sum(rows), sum(cols)
    J = np.zeros((M, N), tape.dtype)
    if M == 0 or N == 0:
        return J
    L = _lanes(tape, M)
    row0, col0 = _offsets(rows), _offsets(cols)
    for start in range(0, M, L):
        count = min(L, M - start)
        seeds = [(n, _unit_block(rows[i], row0[i], start, count)) for i, n in enumerate(nodes)
                 if n is not None and row0[i] < start + count and row0[i + 1] > start]
        if not seeds:
            continue
        res = sweeps.reverse(tape, call.begin, end, call.input_nodes, seeds,
                             lanes=count if count > 1 else 0)
        for j, r in enumerate(res):
            if r is not None:
                J[start:start + count, col0[j]:col0[j + 1]] = r.reshape(cols[j], count).T
    return J


def _columns(call, end, nodes, rows, cols):
    """The whole Jacobian ``(sum(rows), sum(cols))`` by tangent sweeps, a block of columns each."""
    tape = call.tape
    M, N = sum(rows), sum(cols)
    live = [i for i, n in enumerate(nodes) if n is not None]
    if M == 0 or N == 0 or not live:
        return np.zeros((M, N), tape.dtype)
    L = _lanes(tape, N)
    row0, col0 = _offsets(rows), _offsets(cols)
    J = None
    for start in range(0, N, L):
        count = min(L, N - start)
        active = [j for j in range(len(cols)) if col0[j] < start + count and col0[j + 1] > start]
        res = sweeps.tangent(tape, call.begin, end, [call.input_nodes[j] for j in active],
                             [_unit_block(cols[j], col0[j], start, count) for j in active],
                             [nodes[i] for i in live], lanes=count if count > 1 else 0)
        if count == N and len(nodes) == 1 and res[0] is not None:
            return res[0].reshape(M, N)         # the whole Jacobian, lanes-last: already (M, N)
        if J is None:
            J = np.zeros((M, N), tape.dtype)
        for i, r in zip(live, res):
            if r is not None:
                J[row0[i]:row0[i + 1], start:start + count] = r.reshape(rows[i], count)
    return J


def _split(J, outputs, inputs, rows, cols, forward, tape):
    """The blocks ``[[J_ij]]`` of the whole Jacobian, shaped ``out_i.shape + in_j.shape``."""
    row0, col0 = _offsets(rows), _offsets(cols)
    if len(outputs) == 1 and len(inputs) == 1:
        dtype = result_dtype(outputs[0], tape) if forward else inputs[0].dtype
        return [[J.reshape(value_shape(outputs[0]) + value_shape(inputs[0])).astype(dtype, copy=False)]]
    blocks = []
    for i, y in enumerate(outputs):
        row = []
        for j, x in enumerate(inputs):
            dtype = result_dtype(y, tape) if forward else x.dtype
            b = J[row0[i]:row0[i + 1], col0[j]:col0[j + 1]]
            row.append(b.reshape(value_shape(y) + value_shape(x)).astype(dtype))
        blocks.append(row)
    return blocks


def _check_strict(call, end, outputs, nodes):
    """PyTorch's strict check: every output (with elements) depends on every input."""
    masks = [reaches(call, [n], end) for n in call.input_nodes]
    for i, (y, n) in enumerate(zip(outputs, nodes)):
        if value_size(y) == 0:
            continue
        for j, mask in enumerate(masks):
            if n is None or not mask[n]:
                raise RuntimeError(f"Output {i} of the user-provided function is independent of "
                                   f"input {j}. This is not allowed in strict mode.")


# ----------------------------------------------------------------------------- create_graph=True
def _rows_differentiable(call, end, inputs, outputs, nodes, strict):
    """Differentiable blocks, one differentiable reverse sweep per row (PyTorch's loop)."""
    tape = call.tape
    blocks = []
    for i, (y, n) in enumerate(zip(outputs, nodes)):
        shape = value_shape(y)
        m = math.prod(shape)
        per_input = [[] for _ in inputs]
        for r in range(m):
            seed = np.zeros(shape, tape.dtype)
            seed.flat[r] = 1.0
            vj = ([None] * len(inputs) if n is None else
                  call.run(lambda *_: backward(tape, call.begin, end, call.input_nodes,
                                               [(n, const_tensor(tape, seed))])))
            for j, g in enumerate(vj):
                if g is not None:
                    if strict and not call.requires_grad([g._node])[0]:
                        raise RuntimeError("The jacobian of the user-provided function is independent "
                                           f"of input {i}. This is not allowed in strict mode when "
                                           "create_graph=True.")
                elif strict:
                    raise RuntimeError(f"Output {i} of the user-provided function is independent of "
                                       f"input {j}. This is not allowed in strict mode.")
                per_input[j].append(g)
        blocks.append([_assemble(tape, parts, shape, value_shape(x), x.dtype, by_row=True)
                       for parts, x in zip(per_input, inputs)])
    return blocks


def _columns_differentiable(call, end, inputs, outputs, nodes, strict):
    """Differentiable blocks, one column at a time by the double-backward trick (forward mode)."""
    tape = call.tape
    per_block = [[[] for _ in inputs] for _ in outputs]
    jvp = DoubleBackward(call, end, nodes)
    for j, x in enumerate(inputs):
        for c in range(value_size(x)):
            v = [np.zeros(value_shape(z), tape.dtype) for z in inputs]
            v[j].flat[c] = 1.0
            for i, col in enumerate(jvp(v)):
                per_block[i][j].append(col)
    if strict:
        # PyTorch's order (output, then input); whether a block depends on the inputs is
        # judged on its columns: an error when none of them does
        masks = [reaches(call, [n], end) for n in call.input_nodes]
        for i, (y, n) in enumerate(zip(outputs, nodes)):
            if value_size(y) == 0:
                continue
            for j, mask in enumerate(masks):
                if n is None or not mask[n]:
                    raise RuntimeError(f"Output {i} of the user-provided function is independent of "
                                       f"input {j}. This is not allowed in strict mode.")
                cols = [col._node for col in per_block[i][j] if col is not None]
                if cols and not any(call.requires_grad(cols)):
                    raise RuntimeError("The jacobian of the user-provided function is independent of "
                                       f"input {i}. This is not allowed in strict mode when "
                                       "create_graph=True.")
    return [[_assemble(tape, per_block[i][j], value_shape(y), value_shape(x), result_dtype(y, tape),
                       by_row=False) for j, x in enumerate(inputs)] for i, y in enumerate(outputs)]


def _assemble(tape, parts, out_shape, in_shape, dtype, by_row):
    """One Jacobian block as a Tensor of shape ``out_shape + in_shape`` from its rows
    (Tensors of ``in_shape``) or columns (Tensors of ``out_shape``); ``None`` parts are zeros."""
    shape = tuple(out_shape) + tuple(in_shape)
    if len(parts) == 1 and parts[0] is not None:       # one row or column: the block itself
        from ..tensor.numpy_api import reshape
        p = parts[0]
        return cast_tensor(p if p.shape == shape else reshape(p, shape), dtype)
    n_in = math.prod(in_shape)
    value = np.zeros(shape, tape.dtype)
    flat = value.reshape(-1)
    placed = []
    for k, p in enumerate(parts):
        if p is None:
            continue
        if by_row:      # row k: elements k * n_in + e
            strides, base = core.contiguous_strides(in_shape), k * n_in
            flat[base:base + n_in] = np.ravel(p._v)
        else:           # column k: elements o * n_in + k
            strides = tuple(s * n_in for s in core.contiguous_strides(out_shape))
            base = k
            flat[base::n_in] = np.ravel(p._v)
        placed.append((p, strides, base))
    if not placed:
        return const_tensor(tape, np.zeros(shape, dtype))
    return cast_tensor(core.assemble(placed, value), dtype)
