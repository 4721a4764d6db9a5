"""``nb.Tensor`` and the recording of one op.

Every op runs the same way: numpy computes the value (so eager results are
numpy's own, to the bit), the value is stored as a new tape node, and one op
row records how it was made. The functions here record one op of each kind;
:mod:`numbad.tensor.numpy_api` maps numpy's and PyTorch's spellings onto them.
"""
from __future__ import annotations

import itertools
import math
import time
import types

import numpy as np

from .. import buffers, sweeps
from ..ops import FIRST_NONDIFF_CODE, OPS
from ..tape import _F64, BIG, active_tapes, reads_value

_new = object.__new__

_GATHER = OPS["gather"].code
_VIEW = OPS["view"].code

#: Smallest contiguous read recorded as a view (no copy; see :func:`gather`): below it a copy
#: costs less than the reverse sweep's extra pass over the op rows (``prepare_views``).
VIEW_MIN_SIZE = 256
_SCATTER = OPS["scatter"].code
_TAKE = OPS["take"].code
_PUT_ADD = OPS["put_add"].code
_COPY = OPS["copy"].code
_MATMUL = OPS["matmul"].code
_ASSEMBLE = OPS["assemble"].code
_STOP_GRADIENT = OPS["stop_gradient"]
_TAKE_ALONG = OPS["take_along"].code
_ASSIGN = OPS["assign"].code


class Tensor:
    """An array value recorded on a tape; what ``func`` receives in place of its inputs.

    A Tensor behaves like a numpy array: numpy's ufuncs and array functions
    accept it, and so do PyTorch-style methods (``x.exp().sum(dim=1)``). Writes
    (``t[i] = v``, ``t += v``) record a new version of it. Reading a value out
    (``float(t)``, ``t.item()``, ``t.detach()``) gives a plain number or array
    through which no derivative flows.

    >>> import numpy as np, numbad as nb
    >>> out, g = nb.vjp(lambda x: (x.exp() * 2.0).sum(), np.zeros(3))
    >>> g
    array([2., 2., 2.])
    """

    # _base: (Tensor, how, writable, reread) for a result numpy would return as a view of that
    # Tensor (a basic index, a reshape, a transpose): a write into it is also made there (unless
    # numpy's view is read-only); _views: weak references to the Tensors that view this one,
    # read again (reread) after a write into it (shape.viewed, creation.rebind)
    __slots__ = ("_v", "_tape", "_node", "_base", "_views", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, value, tape, node):
        self._v = value
        self._tape = tape
        self._node = node

    # the protocol methods, arithmetic and methods are attached in numpy_api.py


def wrap(value, tape, node):
    t = _new(Tensor)
    t._v = value
    t._tape = tape
    t._node = node
    return t


# --------------------------------------------------------------------------- operands
def pick_tape(args):
    """The tape an op on ``args`` records on: the innermost active tape among theirs."""
    tape = None
    for x in args:
        if type(x) is Tensor:
            if tape is None:
                tape = x._tape
            elif x._tape is not tape:
                stack = active_tapes()
                for t in reversed(stack):
                    if any(type(y) is Tensor and y._tape is t for y in args):
                        return t
                return tape
    return tape


def as_constant(x, what="operand"):
    """A non-Tensor operand as a numpy value, rejecting what numbad cannot hold."""
    if isinstance(x, (np.ndarray, np.generic)):
        v = x
    elif isinstance(x, (float, int, bool)):
        return x
    else:
        try:
            v = np.asarray(x)
        except TypeError:
            v = None
        if v is None or v.dtype == object:
            raise TypeError(f"numbad: cannot use a {type(x).__name__} as a numeric {what}")
    if v.dtype.kind not in "fiub":
        raise TypeError(f"numbad: {what} of dtype {v.dtype} is not supported "
                        "(numbad differentiates real floating-point values)")
    if type(v) is np.ndarray and v.ndim == 0:
        v = v[()]
    return v


def operand(tape, x):
    """``(value, node)`` of an op operand on ``tape``; non-Tensors become constants."""
    if type(x) is Tensor:
        if x._tape is tape:
            return x._v, x._node
        return x._v, tape.const(x._v)      # a Tensor of another tape is a constant here
    if type(x) is float or type(x) is int:
        return x, tape.const(x)
    v = as_constant(x)
    return v, tape.const(v)


def _scalarize(value):
    if type(value) is np.ndarray and value.ndim == 0:
        return value[()]
    return value


# --------------------------------------------------------------------------- elementwise
_ND = np.ndarray
_SCALAR_FLOATS = (np.float64, np.float32)


def _check_value(op, value):
    """Reject results numbad cannot hold (complex; booleans from arithmetic)."""
    kind = value.dtype.kind
    if kind in "fiu" or (kind == "b" and op.dtype_out == "bool"):
        return
    if kind == "b":
        raise TypeError(f"numbad: np.{op.name} of boolean Tensors is not supported; "
                        "use logical ops (&, |) or cast with .astype(float)")
    raise TypeError(f"numbad: np.{op.name} produced dtype {value.dtype}, "
                    "numbad differentiates real floating-point values")


def _push(tape, value, n, shape, code, a, b=-1, c=-1, iattr=-1):
    """Append the node of an ``n``-element array ``value`` (at least 1-d, of the tape's dtype,
    operands needing no broadcast) and the op row making it: the end of :func:`_emit`, and
    what the fast paths of :func:`unary`, :func:`binary` and ``np.sum`` call when they know
    that much (``iattr``: the op's attributes, a sum's map).
    The value waits in ``tape.pending``, whose flush copies raw bytes: hence the dtype."""
    off = tape.top
    end = off + n
    pending = tape.pending
    if not pending:                # (None once the tape is released: _reserve says so)
        if end > tape.cap:
            tape._reserve(n)
        tape.pending_from = off
    pending.append(value)          # written with its neighbours by tape.flush()
    tape.top = end
    tape.node_shape.append(shape)
    tape.node_off.append(off)
    sizes = tape.node_size
    out = len(sizes)
    sizes.append(n)
    tape.ops += (code, out, a, b, c, iattr)
    t = _new(Tensor)
    t._v = value
    t._tape = tape
    t._node = out
    return t


def _emit(tape, op, value, a, b=-1, c=-1):
    """Append the node holding an elementwise result and the op row making it.

    This is the per-op hot path of recording: scalars and small arrays take a
    few attribute writes; operands whose size differs from the result's (and
    is not 1) are broadcast by an explicit gather first.
    """
    tv = type(value)
    if tv is _ND and value.ndim:
        n = value.size
        if value.dtype is not tape.dtype:
            if value.dtype.kind != "f":
                _check_value(op, value)
            elif value.dtype.itemsize > tape.dtype.itemsize:
                tape.promote(value.dtype)
        sizes = tape.node_size
        sa = sizes[a]
        if sa != n and sa != 1:
            a = broadcast_node(tape, a, value.shape)
        if b >= 0:
            sb = sizes[b]
            if sb != n and sb != 1:
                b = broadcast_node(tape, b, value.shape)
            if c >= 0:
                sc = sizes[c]
                if sc != n and sc != 1:
                    c = broadcast_node(tape, c, value.shape)
        if tape._deferred and n >= BIG:      # (a smaller result has no deferred operand)
            tape.consume(op.code, (a, b, c))
        if value.dtype is tape.dtype:
            return _push(tape, value, n, value.shape, op.code, a, b, c)
        out = tape.add_node(value)   # booleans, integers, float32 on a float64 tape: cast now
    else:
        if tv is _ND:
            value = value[()]
            tv = type(value)
        elif tv is float:
            value = np.float64(value)
            tv = np.float64
        if tv not in _SCALAR_FLOATS:
            _check_value(op, value)
        # a one-element result: every operand has one element too
        if tape.pending:
            tape.flush()
        off = tape.top
        if off >= tape.cap:
            tape._reserve(1)
        if tv is np.float64 and tape.narrow:
            tape.promote(np.float64)
        tape.arena[off] = value
        tape.top = off + 1
        tape.node_shape.append(())
        tape.node_off.append(off)
        tape.node_size.append(1)
        out = len(tape.node_off) - 1
    tape.ops += (op.code, out, a, b, c, -1)
    t = _new(Tensor)
    t._v = value
    t._tape = tape
    t._node = out
    return t


def finish_elementwise(tape, op, value, nodes):
    """Record ``value``, computed elementwise from the operand ``nodes``."""
    return _emit(tape, op, value, *nodes)


def elementwise(op, args, compute=None):
    """Record elementwise ``op`` over ``args`` (at least one a Tensor).

    ``compute`` (default ``op.ufunc``) computes the value from the operand values.
    """
    tape = pick_tape(args)
    vals, nodes = [], []
    for x in args:
        v, nd = operand(tape, x)
        vals.append(v)
        nodes.append(nd)
    if compute is None:
        big = _into_arena(tape, op, vals, nodes)
        if big is not None:
            return big
        compute = op.ufunc
    return _emit(tape, op, compute(*vals), *nodes)


def _into_arena(tape, op, vals, nodes):
    """Large results: let the ufunc write straight into the arena (no second copy).

    The same op on the same nodes is recorded once (``x ** 2`` written twice): nodes
    never change, so the second result is the first, to the bit, and the tape holds,
    replays and sweeps one large node fewer (small ones are not looked up: the lookup
    would cost more than it saves)."""
    if max(tape.node_size[nd] for nd in nodes) < BIG or op.ufunc is None:
        return None
    for v in vals:
        if type(v) is _ND and v.ndim > 1 and not v.flags.c_contiguous:
            # numpy's result keeps the operand's layout (a transpose's F order), on which a
            # later matrix-vector product adds in another order than on the arena's C order:
            # the result is numpy's own array, as for a small value
            return None
    shape = None
    for v in vals:          # (operands of one shape, the common case: np.broadcast_shapes is slow)
        if isinstance(v, _ND) and v.ndim:
            if shape is None:
                shape = v.shape
            elif v.shape != shape:
                shape = None
                break
    if shape is None:
        shape = np.broadcast_shapes(*(np.shape(v) for v in vals))
    if np.result_type(*vals) != tape.dtype or op.dtype_out == "bool":
        return None
    key = (op.code, tape.dtype, *nodes)
    if tape._elementwise is None:
        tape._elementwise = {}
    node = tape._elementwise.get(key)
    n = 1
    for d in shape:
        n *= d
    if node is not None:
        if not (tape._deferred and node in tape._deferred):
            return wrap(tape.value(node), tape, node)
        value = tape.live_value(node)
        if value is None and op.exact:
            # its Tensor is gone, but exact arithmetic gives the same values again
            value = _in_scratch(op, vals, n, shape, tape.dtype)
            tape.revive(node, value)
        if value is not None:
            return wrap(value, tape, node)
    nodes = [broadcast_node(tape, nd, shape) if tape.node_size[nd] not in (n, 1) else nd
             for nd in nodes]
    nodes += [-1] * (3 - len(nodes))
    # (deferred: see Recording.defer_value; only float64, whose values no later promotion widens)
    defer = tape.defer and tape.dtype == _F64 and not reads_value(op.code, nodes, "y", tape._const_nodes)
    if defer:
        out = tape.alloc(shape, view=False)
        view = _in_scratch(op, vals, n, shape, tape.dtype)
    else:
        out, view = tape.alloc(shape)
        _ufunc_into(op.ufunc, vals, view)
        view.flags.writeable = False
    row = tape.n_ops
    tape.add_op(op.code, out, nodes[0], nodes[1], nodes[2])
    if defer:
        tape.defer_value(out, view, row, op.exact)
    tape._elementwise[key] = out
    return wrap(view, tape, out)


def _in_scratch(op, vals, n, shape, dtype):
    """``op``'s read-only value computed into a recycled scratch buffer (a deferred value)."""
    value = buffers.scratch(n, dtype).reshape(shape)
    _ufunc_into(op.ufunc, vals, value)
    value.flags.writeable = False
    return value


#: The least work, in nanoseconds on one thread, that :func:`_ufunc_into` splits over two
#: threads: handing a block to the worker thread and waiting for it costs 20-90 µs, which
#: an addition of 10^5 elements does not win back and a tanh of 10^4 does.
SPLIT_NS = 200_000
#: After a matrix product large enough for numpy's BLAS to run on several threads (OpenBLAS
#: splits from 2^18 multiply-adds), its threads spin for about 0.1 s (OpenBLAS: 2^28 cycles;
#: MKL's OpenMP threads 0.2 s) waiting for more work, and a second thread of ours competes
#: with them for the cores: in the MLP benchmark a split tanh of 131,072 elements took 2.7 ms
#: there, against 1.9 ms on one thread. So :func:`_ufunc_into` does not split for that long.
THREADED_GEMM = 1 << 18
BLAS_SPIN_S = 0.1
_blas_spins_until = 0.0
#: (ufunc, dtype) -> [nanoseconds per element on one thread, the least of the calls timed;
#: large calls seen]. The first ``_TIMED`` large calls of each ufunc, and every ``_RETIME``-th
#: after them, run on one thread and are timed. A call that writes fresh memory (a new tape's
#: arena) also pays for its pages: recording a tape at 3*10^4 elements timed a subtraction
#: at 2.8 ns an element, ten times its cost, and without the later timings every later
#: subtraction of 10^5 elements was split at a loss (``nb.vjp`` of the Rosenbrock sum at
#: 10^5 took 2.2 ms instead of 1.3 ms). One call in ``_RETIME`` on one thread costs a split
#: op a few percent at most.
_ONE_THREAD_NS = {}
_TIMED = 3
_RETIME = 16


def _ufunc_into(ufunc, vals, out):
    """``ufunc(*vals, out=out)`` for a large ``out``: on two threads where that pays (as
    PyTorch splits its large elementwise ops over the cores; numpy's loops release the GIL).

    Each thread runs numpy's own loop over contiguous blocks of elements, cut at multiples
    of 64 elements, so every element gets the bits that one call gives it (the tests check
    every numpy ufunc). Whether it pays is measured: some large calls of each ufunc run on
    one thread and are timed (``_ONE_THREAD_NS``); and no op splits while numpy's BLAS
    threads spin after a large matrix product (``BLAS_SPIN_S``). Operands must be of the result's shape
    (C-contiguous) or single numbers; others (a broadcast row) take one call. A
    floating-point error (``log(0)``) is not reported from the blocks: where one occurred
    that the caller's ``np.errstate`` does not ignore, the one call runs again, so that it
    warns, raises or calls as numpy does.
    """
    n = out.size
    timed = _ONE_THREAD_NS.get((ufunc, out.dtype))
    if timed is None:
        timed = _ONE_THREAD_NS[(ufunc, out.dtype)] = [math.inf, 0]
    timed[1] += 1
    if timed[1] <= _TIMED or timed[1] % _RETIME == 0:
        t0 = time.perf_counter_ns()
        ufunc(*vals, out=out)
        timed[0] = min(timed[0], (time.perf_counter_ns() - t0) / n)
        return
    if (n * timed[0] < SPLIT_NS or sweeps.THREADS < 2 or not out.flags.c_contiguous
            or time.perf_counter() < _blas_spins_until):
        ufunc(*vals, out=out)
        return
    step = max(-(-n // _BLOCKS) + 63 & ~63, 1 << 12)
    shape = out.shape
    flats = []
    for v in vals:
        if isinstance(v, _ND) and v.ndim:
            if type(v) is not _ND or v.shape != shape or not v.flags.c_contiguous:
                ufunc(*vals, out=out)
                return
            flats.append(v.reshape(-1))
        else:                               # (a number or a 0-d array: the same in every block)
            flats.append(v)
    flat = out.reshape(-1)
    blocks = [([v[lo:lo + step] if type(v) is _ND and v.ndim else v for v in flats], flat[lo:lo + step])
              for lo in range(0, n, step)]
    taken = itertools.count()                   # (next() on it is atomic: each block is run once)
    errors = []
    # (noted: the errors the caller's np.errstate does not ignore; underflow, by default)
    watch = {kind: "ignore" if action == "ignore" else "call" for kind, action in np.geterr().items()}
    job = sweeps._worker().submit(_ufunc_blocks, ufunc, blocks, taken, errors, watch)
    try:
        _ufunc_blocks(ufunc, blocks, taken, errors, watch)
    finally:
        if not job.cancel():        # (a worker that had not started never will)
            job.result()
    if errors:
        ufunc(*vals, out=out)


#: Blocks a large op is cut into for :func:`_ufunc_into`: the calling thread and the worker
#: take them in turn, so that a worker that starts late (its core busy: OpenBLAS's threads
#: spin for a while after a matrix product) leaves more of them to the caller.
_BLOCKS = 16


def _ufunc_blocks(ufunc, blocks, taken, errors, watch):
    """The blocks of :func:`_ufunc_into` that this thread takes; floating-point errors of
    the kinds ``watch`` says to call for are noted in ``errors`` (not reported)."""
    with np.errstate(**watch, call=lambda kind, flag: errors.append(kind)):
        for i in taken:
            if i >= len(blocks):
                return
            args, out = blocks[i]
            ufunc(*args, out=out)


def unary(op, x):
    """Fast path of :func:`elementwise` for one Tensor operand.

    The common case, a small array result of ``x``'s shape and the tape's dtype, appends its
    node and op row here: what :func:`_emit` would check is known, and skipping the checks
    and the call saves a fifth of recording such an op."""
    tape = x._tape
    a = x._node
    sizes = tape.node_size
    n = sizes[a]
    if n >= BIG:
        return elementwise(op, (x,))
    value = op.ufunc(x._v)
    if n == 1 or type(value) is not _ND or value.dtype is not tape.dtype:
        return _emit(tape, op, value, a)
    return _push(tape, value, n, tape.node_shape[a], op.code, a)


def binary(op, a, b, pyop=None):
    """Fast path of :func:`elementwise` for two operands; ``pyop`` is the Python operator.

    On one-element values ``pyop`` (numpy scalar arithmetic) gives the ufunc's
    IEEE result ten times faster than calling the ufunc.
    """
    return _binary(a, b, op, pyop)


def binary_method(op, pyop=None):
    """``binary`` for one op as a function of ``(a, b)``: ``Tensor.__mul__`` and friends.

    It is :func:`_binary`'s code with ``op`` and ``pyop`` as default arguments, not a
    wrapper calling it: a Python call is a fifth of the cost of recording a small op."""
    return types.FunctionType(_binary.__code__, _binary.__globals__, f"binary_{op.name}", (op, pyop))


def _binary(a, b, op, pyop):
    if type(a) is Tensor:
        tape = a._tape
        av = a._v
        an = a._node
        tb = type(b)
        if tb is Tensor and b._tape is tape:
            bv = b._v
            bn = b._node
        elif tb is float or tb is int:
            bv = b
            bn = tape._consts.get(b)        # (tape.const's own first look, without the call)
            if bn is None:
                bn = tape.const(b)
            if type(av) is _ND and av.dtype is _F64:
                bv = tape._number_arrays.get(b, b)      # (see Recording.const)
        else:
            tape = pick_tape((a, b))
            av, an = operand(tape, a)
            bv, bn = operand(tape, b)
    else:
        tape = b._tape
        bv = b._v
        bn = b._node
        ta = type(a)
        if ta is float or ta is int:
            av = a
            an = tape._consts.get(a)
            if an is None:
                an = tape.const(a)
            if type(bv) is _ND and bv.dtype is _F64:
                av = tape._number_arrays.get(a, a)
        else:
            av, an = operand(tape, a)
    sizes = tape.node_size
    sa = sizes[an]
    sb = sizes[bn]
    if sa >= BIG or sb >= BIG:
        big = _into_arena(tape, op, [av, bv], [an, bn])
        if big is not None:
            return big
    if pyop is not None and type(av) is not _ND and type(bv) is not _ND:
        value = pyop(av, bv)
    else:
        value = op.ufunc(av, bv)
        if type(value) is _ND and value.dtype is tape.dtype:
            # a small array whose operands need no broadcasting gather: as in unary() (a large
            # one, which _into_arena left to numpy, may read deferred operands: _emit)
            n = value.size
            if 1 < n < BIG and (sa == n or sa == 1) and (sb == n or sb == 1):
                return _push(tape, value, n, value.shape, op.code, an, bn)
    return _emit(tape, op, value, an, bn)


def stop_gradient(x):
    """``x``'s value, recorded as an op through which no derivative flows."""
    return _emit(x._tape, _STOP_GRADIENT, x._v, x._node)


# --------------------------------------------------------------------------- structural
def contiguous_strides(shape):
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return tuple(reversed(strides))


def strided_map(tape, shape, strides, base, other_size):
    return tape.add_attrs((len(shape), *shape, *strides, base, other_size))


def record(tape, code, value, a=-1, b=-1, c=-1, iattr=-1):
    value = _scalarize(value)
    out = tape.add_node(value)
    tape.add_op(code, out, a, b, c, iattr)
    return wrap(value, tape, out)


def broadcast_node(tape, node, shape):
    """A node holding ``node``'s values broadcast to ``shape`` (a gather with zero strides)."""
    src_shape = tape.node_shape[node]
    src_strides = contiguous_strides(src_shape)
    pad = len(shape) - len(src_shape)
    strides = [0] * pad + [0 if d == 1 else s for d, s in zip(src_shape, src_strides)]
    ia = strided_map(tape, shape, strides, 0, tape.node_size[node])
    value = np.broadcast_to(tape.value(node), shape)
    out = tape.add_node(value)
    tape.add_op(_GATHER, out, node, -1, -1, ia)
    return out


def broadcast_to(x, shape):
    """Tensor ``x`` broadcast to ``shape``."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    tape = x._tape
    node = broadcast_node(tape, x._node, shape)
    return wrap(_scalarize(np.broadcast_to(x._v, shape)), tape, node)


def gather(x, value, strides, base):
    """Record ``value`` (of shape S) as ``x.flat[base + sum(i*strides)]`` for i over S.

    The same read of the same node (``x[:-1]`` written twice) is recorded once: nodes
    never change (a write makes a new one), so the second read shares the first's node,
    and the tape holds, replays and sweeps one copy fewer.

    A read of a contiguous run of ``x``'s values (``x[1:]``, ``m[2]``, ``m[1:3]``) of at
    least ``VIEW_MIN_SIZE`` elements is a ``view``: its node shares the storage of ``x``
    (or of the node whose storage ``x`` shares), so nothing is copied when recording nor
    moved in the sweeps. Replayable tapes (``nb.record``) record a gather instead: the
    ensemble and GPU replays know no views."""
    tape = x._tape
    if type(value) is _ND:
        if value.ndim:
            shape, size = value.shape, value.size
        else:
            value, shape, size = value[()], (), 1
    elif isinstance(value, np.generic):
        shape, size = (), 1
    else:
        shape, size = np.shape(value), np.size(value)
    key = (x._node, shape, tuple(strides), base)
    if tape._gathers is None:
        tape._gathers = {}
    node = tape._gathers.get(key)
    if node is not None:
        return wrap(value, tape, node)
    if size >= VIEW_MIN_SIZE and not tape.replayable and _is_contiguous(shape, strides):
        node = tape._gathers[key] = _view(x, shape, strides, base)
        return wrap(value, tape, node)
    ia = strided_map(tape, shape, strides, base, tape.node_size[x._node])
    out = record(tape, _GATHER, value, x._node, iattr=ia)
    tape._gathers[key] = out._node
    return out


def _view(x, shape, strides, base):
    """Record a ``view`` node: the contiguous run of ``x``'s values that the strided map
    (``shape``, ``strides``, ``base``) walks, in the storage of the node ``x`` shares its own
    with (a view of a view is one of the first's base), at the summed offset."""
    tape = x._tape
    root = tape.view_root.get(x._node, x._node)
    base += tape.node_off[x._node] - tape.node_off[root]
    ia = strided_map(tape, shape, strides, base, tape.node_size[root])
    node = tape.add_view(root, base, shape)
    tape.add_op(_VIEW, node, root, -1, -1, ia)
    return node


def _is_contiguous(shape, strides):
    """Does a strided map of ``shape`` walk consecutive elements (C order)?"""
    step = 1
    for d, s in zip(reversed(shape), reversed(strides)):
        if d != 1 and s != step:
            return False
        step *= d
    return True


def scatter(x, value, strides, base):
    """Record ``value`` (size N) as zeros(N) with ``x[i]`` added at ``base + sum(i*strides)``."""
    tape = x._tape
    ia = strided_map(tape, x.shape, strides, base, np.size(value))
    return record(tape, _SCATTER, value, x._node, iattr=ia)


def take(x, value, flat_index):
    """Record ``value`` as ``x.flat[flat_index]`` (shape of ``value``)."""
    tape = x._tape
    idx = np.asarray(flat_index, np.int64).ravel()
    ia = tape.add_attrs(np.concatenate(([idx.size, tape.node_size[x._node]], idx)))
    return record(tape, _TAKE, value, x._node, iattr=ia)


def put_add(x, flat_index, size, value):
    """Record ``value`` (``size`` elements): zeros with ``x``'s elements added at ``flat_index``."""
    tape = x._tape
    idx = np.asarray(flat_index, np.int64).ravel()
    ia = tape.add_attrs(np.concatenate(([idx.size, size], idx)))
    return record(tape, _PUT_ADD, value, x._node, iattr=ia)


def numpys_layout(t, value):
    """Give the Tensor ``t`` numpy's own array ``value`` where it holds the same bits in another
    memory layout (a sort of a transpose, column-major; a product along an axis, contiguous
    where numbad's is a strided view): numpy's later sums and matrix-vector products add in
    memory order, so the layout decides their last bits. Otherwise ``t`` is left alone."""
    if (type(value) is _ND and type(t._v) is _ND and value.shape == t._v.shape
            and value.dtype == t._v.dtype and value.tobytes() == t._v.tobytes()):
        t._v = value
    return t

def copy(x, value, share=True):
    """Record ``value`` with the same flat data as ``x`` (reshape, ravel).

    Large enough (``VIEW_MIN_SIZE``) on a fresh recording, the result is a view of all of
    ``x``'s values, as :func:`gather` makes (nodes never change, so sharing their storage
    is safe). ``share=False`` for a node of its own: a call's input (its sweeps tell its
    inputs apart by node), or values that are not ``x``'s (``astype`` rounds them)."""
    tape = x._tape
    if share and not tape.replayable and np.size(value) >= VIEW_MIN_SIZE:
        shape = np.shape(value)
        return wrap(_scalarize(value), tape, _view(x, shape, contiguous_strides(shape), 0))
    return record(tape, _COPY, value, x._node)


def matmul(a, b, tA, tB, Bt, M, K, N, sA, sB, value):
    """Record ``value = op(a) @ op(b)`` as ``Bt`` products (see :mod:`numbad.ops.structural`)."""
    tape = pick_tape((a, b))
    _, an = operand(tape, a)
    _, bn = operand(tape, b)
    ia = tape.add_attrs((Bt, M, K, N, tA, tB, sA, sB))
    if Bt * M * K * N >= THREADED_GEMM:
        global _blas_spins_until
        _blas_spins_until = time.perf_counter() + BLAS_SPIN_S
    return record(tape, _MATMUL, value, an, bn, iattr=ia)


def assemble(parts, value):
    """Record ``value`` built from ``parts``: a list of ``(operand, strides, base)``."""
    tape = pick_tape([p[0] for p in parts])
    size = np.size(value)
    blocks = []
    for x, strides, base in parts:
        _, nd = operand(tape, x)
        ia = strided_map(tape, tape.node_shape[nd], strides, base, size)
        blocks += (nd, ia)
    if tape._deferred:
        tape.consume(_ASSEMBLE, blocks[::2])
    ia = tape.add_attrs((len(parts), size, *blocks))
    return record(tape, _ASSEMBLE, value, iattr=ia)


def _check_indices(tape, R):
    """Integer results live in the tape's float arena: float32 holds integers exactly to 2**24."""
    if tape.narrow and R > 1 << 24:
        raise ValueError(f"numbad: indices up to {R} cannot be held exactly by a float32 tape; "
                         "differentiate with float64 inputs")


def segment(code, x, value, O, R, I):
    """Record a segment op (see :mod:`numbad.ops.structural`) on ``x`` viewed as ``(O, R, I)``."""
    tape = x._tape
    if code >= FIRST_NONDIFF_CODE:
        _check_indices(tape, R)
    ia = tape.add_attrs((O, R, I))
    return record(tape, code, value, x._node, iattr=ia)


def take_along(x, idx, value, O, R, I, Q):
    """Record ``value[o, q, i] = x[o, idx[o, q, i], i]``; ``idx`` is a Tensor (recomputed on replay)."""
    tape = pick_tape((x, idx))
    _check_indices(tape, R)
    _, xn = operand(tape, x)
    _, kn = operand(tape, idx)
    ia = tape.add_attrs((O, R, I, Q))
    return record(tape, _TAKE_ALONG, value, xn, kn, iattr=ia)


def assign(base, part, positions, value):
    """Record ``value``: ``base`` with the distinct flat ``positions`` overwritten by ``part``.

    ``part`` (a Tensor or constant) has one element per position, or one
    element for all of them.
    """
    tape = pick_tape((base, part))
    _, bn = operand(tape, base)
    _, pn = operand(tape, part)
    if pn == bn:          # both operands' cotangents would share one slot: read a copy
        pn = copy(wrap(base._v, tape, bn), base._v)._node
    idx = np.asarray(positions, np.int64).ravel()
    ia = tape.add_attrs(np.concatenate(([idx.size, tape.node_size[bn]], idx)))
    return record(tape, _ASSIGN, value, bn, pn, iattr=ia)


def structural_op(code, operands, value, attrs):
    """Record ``value`` made by structural op ``code`` from ``operands`` with integer ``attrs``."""
    tape = pick_tape(operands)
    nodes = [operand(tape, x)[1] for x in operands]
    ia = tape.add_attrs(attrs)
    return record(tape, code, value, *nodes, iattr=ia)
