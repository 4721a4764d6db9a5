"""The public API on the device: :class:`numbad.Tape` methods and ``nb.vjp`` with ``device="cuda"``.

:class:`numbad.Tape` hands its calls here when its device is ``"cuda"``. The
branch bookkeeping (guards, :class:`numbad.BranchChanged`, ``retrace``) is
the tape's own (:meth:`Tape._run`), run over :class:`~numbad.cuda.runtime.DeviceBranch`
objects instead of CPU branches; new branches are recorded on the CPU, as
always, and moved to the device when first replayed.

Results are numpy arrays by default. With ``to_host=False`` they are numba
device arrays (``numba.cuda.DeviceNDArray``, usable by CuPy and PyTorch through
``__cuda_array_interface__``) in the tape's floating dtype, and nothing is
copied back to the host.
"""
from __future__ import annotations

import numpy as np

from ..functional._common import postprocess
from . import require
from .runtime import as_device, device_branch, is_device_array


# ------------------------------------------------------------------------------ inputs
def _split(flat, rows):
    parts, p = [], 0
    for size in rows[:, 1].tolist():
        parts.append(flat[p:p + size])
        p += size
    return parts


def _flat_device(x, i, shape, dtype, what):
    """A CUDA array input checked against the recording, as a flat device view."""
    d = as_device(x)
    if tuple(d.shape) != tuple(shape) or d.dtype != dtype:
        raise ValueError(f"{what}: input {i} has shape {tuple(d.shape)} and dtype {d.dtype}, but the tape "
                         f"was recorded with shape {tuple(shape)} and dtype {dtype}")
    if not d.is_c_contiguous():
        raise ValueError(f"{what}: input {i} is a non-contiguous CUDA array; pass a contiguous copy")
    return d.reshape(int(np.prod(shape, dtype=np.int64)))


def _inputs(tape, inputs, what):
    """Per-input flat arrays (numpy or device) and a function giving host copies (for retracing)."""
    items = inputs if tape.is_inputs_tuple and isinstance(inputs, tuple) else (inputs,)
    if not any(is_device_array(x) for x in items):
        flat = tape._pack(inputs, what)
        return _split(flat, _in_rows(tape)), inputs
    if tape.is_inputs_tuple and not isinstance(inputs, tuple):
        raise TypeError(f"the tape was recorded with a tuple of {len(tape.in_shapes)} inputs; "
                        f"{what} got a {type(inputs).__name__}")
    if len(items) != len(tape.in_shapes):
        raise TypeError(f"the tape was recorded with {len(tape.in_shapes)} inputs; {what} got {len(items)}")
    xs, host = [], []
    for i, (x, shape, dt) in enumerate(zip(items, tape.in_shapes, tape.in_dtypes)):
        if is_device_array(x):
            xs.append(_flat_device(x, i, shape, dt, what))
            host.append(None)
        else:
            x = tape._check_input(x, i, shape, dt, what)
            xs.append(np.ascontiguousarray(x.reshape(-1), tape._dtype()))
            host.append(x)

    def host_inputs():
        """Host copies, for recording a new branch on the CPU."""
        vals = tuple(h if h is not None else x.copy_to_host().reshape(s)
                     for x, h, s in zip(xs, host, tape.in_shapes))
        return vals if tape.is_inputs_tuple else vals[0]
    return xs, host_inputs


def _in_rows(tape):
    sizes = [int(np.prod(s, dtype=np.int64)) for s in tape.in_shapes]
    return np.array([(0, s) for s in sizes], np.int64).reshape(-1, 2)


def _cotangents(tape, branch, v, what):
    """Per-output-node flat cotangents (numpy or device), PyTorch's rules for ``v``."""
    specs = branch.out_spec
    items = v if tape.is_outputs_tuple and isinstance(v, tuple) else (v,)
    if v is None or not any(is_device_array(x) for x in items):
        flat = tape._pack_v(branch, v, what)
        sizes = [int(np.prod(s[1], dtype=np.int64)) for s in specs if s[0] is not None]
        return _split(flat, np.array([(0, s) for s in sizes], np.int64).reshape(-1, 2))
    if len(items) != len(specs):
        raise RuntimeError(f"v is a tuple of invalid length: should be {len(specs)} but got {len(items)}.")
    out = []
    for i, (x, s) in enumerate(zip(items, specs)):
        if is_device_array(x):
            d = as_device(x)
            if tuple(d.shape) != tuple(s[1]):
                raise RuntimeError(f"Entry {i} in v has invalid size: should be {tuple(s[1])} but got "
                                   f"{tuple(d.shape)}.")
            if d.dtype != tape._dtype() or not d.is_c_contiguous():
                raise ValueError(f"{what}: entry {i} of v is a CUDA array of dtype {d.dtype}; the tape "
                                 f"needs a contiguous {tape._dtype()} array")
            flat = d.reshape(int(np.prod(s[1], dtype=np.int64)))
        else:
            x = np.asarray(x)
            if x.shape != tuple(s[1]):
                raise RuntimeError(f"Entry {i} in v has invalid size: should be {tuple(s[1])} but got "
                                   f"{x.shape}.")
            flat = np.ascontiguousarray(x, tape._dtype()).reshape(-1)
        if s[0] is not None:
            out.append(flat)
    return out


# ------------------------------------------------------------------------------ outputs
def _outputs(tape, branch, flat, to_host, batch=None, tangents=False):
    """Per-output results of a flat device result (``tangents``: constant outputs get zeros)."""
    if to_host:
        return tape._unpack_outputs(branch, flat.copy_to_host(), batch, tangents)
    cuda = require()
    lead = () if batch is None else (batch,)
    outs, pos = [], 0
    for node, shape, dt, const in branch.out_spec:
        if node is None:
            if tangents:
                outs.append(cuda.to_device(np.zeros(lead + shape, dt if dt.kind == "f" else flat.dtype)))
            else:
                outs.append(cuda.to_device(np.array(np.broadcast_to(const, lead + shape))))  # (0-d stays 0-d)
            continue
        n = int(np.prod(shape, dtype=np.int64))
        part = _part(flat, pos, n, batch)
        if tangents and dt.kind != "f":
            dt = flat.dtype               # tangents are floating (nb.jvp's rule)
        if dt != flat.dtype:              # boolean outputs of comparisons: converted on the host
            outs.append(cuda.to_device(part.copy_to_host().reshape(lead + shape).astype(dt)))
        else:
            outs.append(_reshaped(part, lead + shape))
        pos += n
    return postprocess(outs, tape.is_outputs_tuple)


def _per_input(tape, flat, to_host, batch=None):
    if to_host:
        return tape._unpack_inputs(flat.copy_to_host(), batch)
    lead = () if batch is None else (batch,)
    outs, pos = [], 0
    for shape, dt in zip(tape.in_shapes, tape.in_dtypes):
        n = int(np.prod(shape, dtype=np.int64))
        outs.append(_reshaped(_part(flat, pos, n, batch), lead + shape))
        pos += n
    return postprocess(outs, tape.is_inputs_tuple)


def _part(flat, pos, n, batch):
    """Elements [pos, pos + n) of a flat result, or those columns of a batch of results (a
    contiguous copy on the device)."""
    if batch is None:
        return flat[pos:pos + n]
    if n == flat.shape[1]:
        return flat
    from . import kernels as K
    cols = require().device_array((batch, n), flat.dtype)
    K.k_columns[K.blocks(batch * n), K.TPB](flat, pos, cols)
    return cols


def _reshaped(part, shape):
    return part.reshape(shape) if shape else part.reshape(1).reshape(())


# ------------------------------------------------------------------------------ Tape methods
def call(tape, inputs, retrace, to_host):
    xs, host = _inputs(tape, inputs, "the tape")
    branch, (out,) = tape._run("forward", xs, inputs=host, retrace=retrace, impl=device_branch)
    return _outputs(tape, branch, out, to_host)


def vjp(tape, inputs, v, retrace, to_host):
    xs, host = _inputs(tape, inputs, "tape.vjp")
    branch, (out, grad) = tape._run("vjp", xs, inputs=host, retrace=retrace, impl=device_branch,
                                    per_branch=lambda b: (_cotangents(tape, b, v, "vjp"),))
    return _outputs(tape, branch, out, to_host), _per_input(tape, grad, to_host)


def jvp(tape, inputs, v, retrace, to_host):
    xs, host = _inputs(tape, inputs, "tape.jvp")
    if v is None or not any(is_device_array(t) for t in (v if tape.is_inputs_tuple and isinstance(v, tuple)
                                                         else (v,))):
        ts = tape._tangents(v)          # host tangents: as tape.jvp on the CPU
    else:
        ts, _ = _inputs(tape, v, "the tangents of tape.jvp")
    branch, (out, jv) = tape._run("jvp", xs, ts, inputs=host, retrace=retrace, impl=device_branch)
    return _outputs(tape, branch, out, to_host), _outputs(tape, branch, jv, to_host, tangents=True)


def jacobian(tape, inputs, retrace):
    """One device sweep per output element (or per input element, when there are fewer inputs)."""
    xs, host = _inputs(tape, inputs, "tape.jacobian")
    branch, _ = tape._run("forward", xs, inputs=host, retrace=retrace, impl=device_branch)
    db = device_branch(branch)
    n_in, n_out = branch.in_total(), branch.out_total()
    dtype = tape._dtype()
    J = np.zeros((n_out, n_in), dtype)
    if n_out <= n_in:
        sizes = [int(branch.node_size[nd]) for nd in branch.out_nodes.tolist()]
        for r in range(n_out):
            e = np.zeros(n_out, dtype)
            e[r] = 1.0
            _, _, _, grad = db.vjp(xs, _split(e, np.array([(0, s) for s in sizes]).reshape(-1, 2)))
            J[r] = grad.copy_to_host()
    else:
        for c in range(n_in):
            e = np.zeros(n_in, dtype)
            e[c] = 1.0
            _, _, _, jv = db.jvp(xs, _split(e, db.plan.in_rows))
            J[:, c] = jv.copy_to_host()
    return tape._split_jacobian(branch, J)


def _batch_inputs(tape, inputs):
    """Batched inputs on the host (CUDA arrays are copied back: ensembles pack on the host)."""
    if isinstance(inputs, tuple):
        return tuple(np.asarray(x.copy_to_host()) if is_device_array(x) else x for x in inputs)
    return np.asarray(inputs.copy_to_host()) if is_device_array(inputs) else inputs


def batch(tape, method, inputs, v, retrace, to_host):
    """``batch_vjp``/``batch_jvp`` on the GPU: one thread per sample (see ensemble_template.py)."""
    inputs = _batch_inputs(tape, inputs)
    B = tape._batch_size(inputs)
    X = tape._pack(inputs, f"tape.batch_{method}", batch=B)
    branch = tape.branches[0]
    if method == "vjp":
        branch, S = tape._batch_branch(v, B)
    else:
        v = _batch_inputs(tape, v)
        S = tape._pack(v, "the tangents of tape.batch_jvp", batch=B)
    out, res, status = device_branch(branch).ensemble(method, X, S)
    status = status.copy_to_host()
    if (status >= 0).any():
        # samples on another branch: replayed one by one on the CPU (or retraced), as on the CPU
        outs = tape._unpack_outputs(branch, out.copy_to_host(), B)
        vjp = method == "vjp"
        res = (tape._unpack_inputs(res.copy_to_host(), B) if vjp
               else tape._unpack_outputs(branch, res.copy_to_host(), B, tangents=True))
        tape._redo_failed(status, branch, inputs, v, retrace, method, outs, res)
        if to_host:
            return outs, res
        cuda = require()
        to_device = lambda r, is_tuple: (tuple(cuda.to_device(a) for a in r) if is_tuple  # noqa: E731
                                         else cuda.to_device(r))
        return (to_device(outs, tape.is_outputs_tuple),
                to_device(res, tape.is_inputs_tuple if vjp else tape.is_outputs_tuple))
    outs = _outputs(tape, branch, out, to_host, B)
    if method == "vjp":
        return outs, _per_input(tape, res, to_host, B)
    return outs, _outputs(tape, branch, res, to_host, B, tangents=True)


# ------------------------------------------------------------------------------ nb.vjp(device="cuda")
def functional_vjp(func, inputs, v, create_graph, strict, to_host):
    """``nb.vjp`` on the GPU: record on the CPU, then forward replay and reverse sweep on the device."""
    from ..recorded import _record
    from ..tape import current_tape
    if create_graph:
        raise ValueError("nb.vjp(device='cuda') computes plain values: create_graph=True needs "
                         "device='cpu'")
    if current_tape() is not None:
        raise ValueError("nb.vjp(device='cuda') cannot run inside a function that numbad is "
                         "differentiating or recording; use device='cpu' there")
    tape = _record(func, inputs, False, "cuda", "vjp")      # (its errors read as nb.vjp's)
    branch = tape.branches[0]
    if strict:
        plan = device_branch(branch).plan
        for i, (node, *_rest) in enumerate(branch.out_spec):
            if node is None or not plan.varying[node]:
                raise RuntimeError(f"Output {i} of the user-provided function does not require gradients."
                                   " The outputs must be computed in a differentiable manner from the input"
                                   " when running in strict mode.")
        for i, present in enumerate(plan.grad_rows[:, 2].tolist()):
            if not present:
                raise RuntimeError("The output of the user-provided function is independent of "
                                   f"input {i}. This is not allowed in strict mode.")
    return tape.vjp(tape_inputs(tape, inputs), v, to_host=to_host)


def tape_inputs(tape, inputs):
    """``inputs`` as a replay takes them: Python floats and 0-d numbers as arrays of the recorded dtype."""
    items = inputs if tape.is_inputs_tuple else (inputs,)
    fixed = tuple(x if isinstance(x, np.ndarray) or is_device_array(x) else np.asarray(x, dt)
                  for x, dt in zip(items, tape.in_dtypes))
    return fixed if tape.is_inputs_tuple else fixed[0]
