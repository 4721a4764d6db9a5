"""The tape: operations recorded as a struct of flat, typed arrays.

While a function runs, every operation on a :class:`numbad.Tensor` appends

* one op row ``(opcode, out, a, b, c, iattr)``: the result node, up to three
  operand nodes (``-1`` for none) and an offset into the integer attribute
  pool (axes, strides, gather indices; ``-1`` for none);
* one node: its values, written into a flat arena of the tape's floating
  dtype, with offset, size and shape.

Constants mixed into the computation (Python numbers, plain arrays) are nodes
too, so that a sweep needs nothing but these arrays. Recording appends to
Python lists (cheap per op); :meth:`Recording.arrays` turns them into numpy arrays
for the njit sweeps, converting only what was added since the last call.

Recording is thread-local: each thread has its own stack of active tapes.
"""
from __future__ import annotations

import struct
import threading
import weakref
from contextlib import contextmanager

import numpy as np

from . import buffers

OP_WIDTH = 6          # opcode, out, a, b, c, iattr
_INITIAL_ARENA = 256
_F64 = np.dtype(np.float64)
#: Nodes at least this large are computed by numpy straight into the arena (or into
#: recycled scratch memory, see ``defer_value``), not into a fresh array that is copied
#: there later; and growing the arena for one reserves room for several more: untouched
#: pages of an ``np.empty`` cost no memory, while every regrowth copies the arena. 2^14
#: float64 values are 128 KiB, from which glibc's malloc maps fresh pages for an array
#: (its default mmap threshold): at 3*10^4 and 6*10^4 elements, ``nb.vjp`` of the
#: Rosenbrock sum took 5-8% and 28% less time than with 2^16.
BIG = 1 << 14
#: :meth:`Recording.flush` writes waiting values of this many elements on average one by one
FLUSH_EACH = 1 << 10

_local = threading.local()


def _int64(values):
    """A list of Python ints as a writable int64 array. ``struct`` packs them two to three
    times faster than ``np.array`` converts them (a third faster for a list of 20)."""
    return np.frombuffer(bytearray(struct.pack(f"{len(values)}q", *values)), np.int64)


def _int64_joined(a, b, c, d):
    """``_int64(a + b + c + d)`` without building the joined list (a quarter faster)."""
    n = len(a) + len(b) + len(c) + len(d)
    return np.frombuffer(bytearray(struct.pack(f"{n}q", *a, *b, *c, *d)), np.int64)


#: The last small tape's lists (copies) and their int64 arrays. A function called again on
#: inputs of the same shapes records the same lists, and comparing them costs a tenth of
#: converting them (Recording.arrays). Shared by threads: one tuple, swapped whole; nobody
#: writes into the arrays (the sweeps read them; freezing a tape copies them).
_last_small = None


def _float64_number(key, fv):
    """The number ``fv`` as a float64 numpy scalar and as a read-only 0-d float64 array
    (Recording.const), kept across tapes: every call records on a fresh tape, which would
    make each of the function's constants again (three numpy calls each)."""
    known = _NUMBERS.get(key)
    if known is None:
        array = np.array(fv)
        array.flags.writeable = False
        known = (array[()], array)
        if len(_NUMBERS) >= 4096:
            _NUMBERS.clear()
        _NUMBERS[key] = known
    return known


#: (see _float64_number) float, or (0.0, sign) for a zero -> (scalar, 0-d array)
_NUMBERS = {}


def _remember_small(rec, arrays):
    global _last_small
    _last_small = (rec.ops[:], rec.node_off[:], rec.node_size[:], rec._ipool[:], arrays)


#: Op kinds whose reverse rules read no operand's value
_READS_NOTHING = frozenset({"nondiff", "copy", "gather", "scatter", "take", "put_add", "assemble",
                            "scan_sum"})
_VALUE_READS = None


def value_reads():
    """Per opcode: ``None`` (its reverse rule may read any operand), ``()`` (none), or, for an
    elementwise op, its operand names and the names each operand's partial reads."""
    global _VALUE_READS
    if _VALUE_READS is None:
        from .ops import OPS
        from .sweeps.codegen import _used      # what the generated rules read: the same test
        table = {}
        for op in OPS.values():
            if op.kind == "elementwise":
                table[op.code] = (op.operand_names(), tuple(
                    frozenset(_used(op, [d])) if d is not None else frozenset() for d in op.partials))
            else:
                table[op.code] = () if op.kind in _READS_NOTHING else None
        _VALUE_READS = table
    return _VALUE_READS


def reads_value(code, operands, name, const_nodes):
    """Will the reverse sweep of op ``code`` on ``operands`` read the value named ``name``
    (an operand's name, or ``"y"`` for its result)? Only partials towards operands that may
    depend on an input run (a constant is never varying)."""
    rules = value_reads()[code]
    if rules is None:
        return True
    if not rules:
        return False
    for x, used in zip(operands, rules[1]):
        if name in used and x >= 0 and x not in const_nodes:
            return True
    return False


def active_tapes():
    """The calling thread's stack of tapes that are recording (innermost last)."""
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


def current_tape():
    stack = active_tapes()
    return stack[-1] if stack else None


def _finished():
    return RuntimeError(
        "numbad: this Tensor belongs to a numbad call that has finished (its tape is released): "
        "compute with it inside the function being differentiated, or read its values with "
        "t.detach()")


class Guard:
    """A value-dependent decision Python control flow took while recording."""

    __slots__ = ("op_index", "node", "kind", "expected", "site")

    def __init__(self, op_index, node, kind, expected, site):
        self.op_index = op_index      # guards are checked after this many ops have replayed
        self.node = node
        self.kind = kind              # "truth" (bool of a boolean) or "value" (a read number)
        self.expected = expected
        self.site = site              # "file:line" of the user code that decided

    def __repr__(self):
        return f"Guard({self.kind} of node {self.node} == {self.expected!r} at {self.site})"


class Recording:
    """Operations recorded while a function runs: op rows, nodes, an integer pool, a value arena.

    ``nb.vjp`` and friends record into a fresh one and sweep it once; ``nb.record``
    freezes one into a replayable :class:`numbad.Tape`.
    """

    #: (opcode, dtype, operand nodes) -> node, for large results (``core._into_arena``);
    #: a tape's own dict is made by the first large op
    _elementwise = None
    #: (offset, position in the small pool, int64 array) for large index blocks (add_attrs)
    _ipool_chunks = ()
    #: value-dependent decisions (nb.record's guards), a list once there is one
    guards = ()
    #: (node, shape, strides, base) -> node: x[1:] read twice is one node (core.gather)
    _gathers = None
    #: may large elementwise results wait outside the arena (see :meth:`defer_value`)? Set by
    #: ``nb.vjp`` on a tape that only its reverse sweep will read; cleared when a
    #: ``create_graph`` call joins the tape (its differentiable sweep reads values itself)
    defer = False
    #: node -> (weak reference to its value, its op row, recomputable) for results not (yet)
    #: written to the arena; nodes whose values the reverse sweep recomputes (redo_rows)
    _deferred = None
    _redo = None
    #: input nodes given as 0-d arrays (held as numpy scalars, as every one-element value is):
    #: numpy computes ``**`` on those by its ufunc (``numpy_api.power``)
    zero_d = None

    def __init__(self, dtype=_F64):
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self.narrow = self.dtype.itemsize < 8      # a float32 arena (widened if float64 values come)
        arena = buffers.take_small(self.dtype)
        self.arena = np.empty(_INITIAL_ARENA, self.dtype) if arena is None else arena
        self.cap = self.arena.shape[0]
        self.top = 0
        # small array values (or an input's bytes) waiting to be written at [pending_from, top)
        # (see flush)
        self.pending = []
        self.pending_from = 0
        self.node_off = []            # per node: offset of its values in the arena
        self.node_size = []           # per node: number of values
        self.node_shape = []
        self.ops = []                 # flat: OP_WIDTH ints per op
        self._ipool = []              # small integer attributes (Python ints)
        self._ipool_len = 0
        self.input_nodes = []         # every node created as a function input
        self.replayable = False       # nb.record sets this: guards are kept, nested calls record here
        self._consts = {}
        self._number_arrays = {}      # float -> the same value as a 0-d float64 array (see const)
        self._const_nodes = set()     # nodes made by const(): never varying
        self.view_root = {}           # view node -> the node whose storage it shares (core.gather)
        self._cache = None            # arrays converted so far (see arrays())

    # ------------------------------------------------------------------ nodes
    @property
    def n_nodes(self):
        return len(self.node_shape)


    @property
    def n_ops(self):
        return len(self.ops) // OP_WIDTH

    def _reserve(self, n):
        if self.arena is None:
            raise _finished()
        end = self.top + n
        if end > self.arena.shape[0]:
            cap = max(end, 2 * self.arena.shape[0])
            if n >= BIG:
                cap = max(cap, end + 8 * n + BIG)     # and room for small nodes after them
            else:
                cap = max(cap, 2 * end)      # a constant matrix, say: leave room for what follows
            try:
                # an arena the size of the buffer cache's (the last large tape's, say) comes from
                # it: the largest spare, so that a call like the last one grows it no further
                grown = (buffers.take(cap, self.dtype, at_least=True) if cap >= buffers.MIN_FLOATS
                         else np.empty(cap, self.dtype))
            except MemoryError:
                grown = np.empty(end, self.dtype)
            written = self.pending_from if self.pending else self.top     # (flush writes the rest)
            grown[:written] = self.arena[:written]
            self.arena = grown
            self.cap = grown.shape[0]
        return end

    def flush(self):
        """Write the pending small array values into the arena, in one copy.

        Recording appends a small array result of an elementwise op to ``pending`` instead
        of copying it into the arena on its own (a slice assignment per op, the largest
        cost of recording one): the values of consecutive nodes lie end to end, so one
        call writes them all. Everything that reads the arena or writes it otherwise
        flushes first. Only results numbad computed wait: nothing else holds them, so
        they cannot change before they are written (the caller's inputs and constants,
        which the caller may change later, are copied by :meth:`add_node` at once, or
        wait as a copy of their bytes: :meth:`add_input`).
        """
        pending = self.pending
        if self.top > self.cap:
            self._reserve(0)
        lo, hi = self.pending_from, self.top
        if len(pending) == 1:
            v = pending[0]
            self.arena[lo:hi] = np.frombuffer(v, self.dtype) if type(v) is bytes else v.ravel()
        elif hi - lo >= FLUSH_EACH * len(pending):
            # values of this size are written one by one: a join would copy them twice
            # (eight of 2^14 values: 37 against 92 us; eight of 2^10: the same 3.2 us)
            arena = self.arena
            for v in pending:
                v = np.frombuffer(v, self.dtype) if type(v) is bytes else v.reshape(-1)
                n = v.size
                arena[lo:lo + n] = v
                lo += n
        else:
            # Every waiting value has the tape's dtype (core._push's callers see to it), so
            # their bytes, end to end, are the values: bytes.join copies them three times
            # faster than np.concatenate (which checks each array). It accepts C-contiguous
            # buffers only (a TypeError otherwise), so a value in another layout, or bytes
            # of the wrong length, falls back to concatenate, never to misplaced values.
            try:
                raw = b"".join(pending)
            except TypeError:
                raw = None
            size = self.arena.itemsize
            if raw is not None and len(raw) == (hi - lo) * size:
                # bytes into the arena's bytes: a third of the time of numpy's slice assignment
                memoryview(self.arena).cast("B")[lo * size:hi * size] = raw
            else:
                np.concatenate([np.frombuffer(v, self.dtype) if type(v) is bytes else v for v in pending],
                               axis=None, out=self.arena[lo:hi], casting="unsafe")
        pending.clear()

    def alloc(self, shape, view=True):
        """Reserve a node of ``shape`` and return ``(node, writable view)`` for numpy to fill
        (``view=False``: the node alone; its values are written later)."""
        if self.pending:
            self.flush()
        n = 1
        for d in shape:
            n *= d
        off = self.top
        self.top = self._reserve(n)
        self.node_shape.append(tuple(shape))
        self.node_off.append(off)
        self.node_size.append(n)
        if not view:
            return len(self.node_shape) - 1
        return len(self.node_shape) - 1, self.arena[off: self.top].reshape(shape)

    def add_node(self, value):
        """Store ``value`` (ndarray or numpy scalar) as a new node; return its index."""
        if self.pending:
            self.flush()
        dt = value.dtype
        if dt is not self.dtype and dt.kind == "f" and dt.itemsize > self.dtype.itemsize:
            self.promote(dt)
        off = self.top
        if type(value) is np.ndarray and value.ndim:
            n = value.size
            end = off + n
            if end > self.cap:
                self._reserve(n)
            if n >= buffers.SPLIT_COPY:
                buffers.copy_into(self.arena[off:end], value.reshape(-1))
            else:
                self.arena[off:end] = value if value.ndim == 1 else value.ravel()
            self.node_shape.append(value.shape)
        else:
            n = 1
            end = off + 1
            if end > self.cap:
                self._reserve(1)
            self.arena[off] = value
            self.node_shape.append(())
        self.top = end
        self.node_off.append(off)
        self.node_size.append(n)
        return len(self.node_shape) - 1

    def add_input(self, x):
        """:meth:`add_node` for the input array of a fresh tape (node 0). A small one waits in
        ``pending`` as a copy of its bytes (``x.tobytes()``, in C order), to be written with
        the first values the function computes (:meth:`flush`): an eighth of the time of
        writing it into the arena on its own (0.04 against 0.34 us for 16 values). The copy
        is taken now, as add_node's is: the function may change the caller's array as it
        runs."""
        n = x.size
        if self.top or n >= BIG or x.dtype is not self.dtype:
            return self.add_node(x)
        self.pending.append(x.tobytes())
        self.pending_from = 0
        self.top = n
        self.node_shape.append(x.shape)
        self.node_off.append(0)
        self.node_size.append(n)
        return 0

    def add_view(self, root, offset, shape):
        """A node for the ``shape``-shaped run of ``root``'s values from ``offset`` on, sharing
        its storage (no values are copied); return its index."""
        n = 1
        for d in shape:
            n *= d
        self.node_shape.append(tuple(shape))
        self.node_off.append(self.node_off[root] + offset)
        self.node_size.append(n)
        node = len(self.node_shape) - 1
        self.view_root[node] = root
        return node

    def release(self):
        """The recording is finished with: offer its arena for reuse by the next one."""
        arena = self.arena
        self.arena = None
        self.pending = None           # (nothing more is written)
        self.cap = -1                 # every later write reaches _reserve, which explains
        buffers.give(arena)

    def promote(self, dtype):
        """Widen the arena (float32 values met a float64 value): exact for stored values."""
        if self.pending:
            self.flush()
        self.dtype = np.dtype(dtype)
        self.narrow = self.dtype.itemsize < 8
        wide = np.empty(self.arena.shape[0], self.dtype)
        wide[: self.top] = self.arena[: self.top]      # only what was written: the rest is garbage
        self.arena = wide

    def const(self, value):
        """Node for a constant; Python and numpy scalars are shared per tape."""
        if type(value) is np.ndarray and value.ndim:
            node = self.add_node(value)
            self._const_nodes.add(node)
            return node
        if type(value) is float and value != 0.0:
            node = self._consts.get(value)
            if node is not None:
                return node
        if isinstance(value, (float, int, np.floating, np.integer, np.bool_, bool)):
            fv = float(value)
            key = (fv, np.copysign(1.0, fv)) if fv == 0.0 else fv
            node = self._consts.get(key)
            if node is None:
                if self.dtype is _F64 and fv == fv:
                    scalar, array = _float64_number(key, fv)
                else:
                    scalar, array = np.asarray(fv, self.dtype)[()], None
                node = self.add_node(scalar)
                self._const_nodes.add(node)
                if fv != fv:               # NaN never equals itself: not kept
                    return node
                self._consts[key] = node
                if array is not None and fv != 0.0:
                    # A numpy ufunc takes a float64 array with a 0-d float64 array in
                    # two thirds of the time it takes it with the Python number (NumPy
                    # 2's promotion of Python scalars), to the same result: numpy
                    # converts the number to float64 either way. core._binary computes
                    # with this array. (Not zero: 0.0 and -0.0 are one dict key.)
                    self._number_arrays[fv] = array
            return node
        node = self.add_node(np.asarray(value))
        self._const_nodes.add(node)
        return node

    def value(self, node):
        """The stored values of ``node`` (a read-only view; numpy scalar when 0-d)."""
        if self.arena is None:
            raise _finished()
        if self.pending:
            self.flush()
        if self._deferred and node in self._deferred:
            self.materialize(node)
        off = self.node_off[node]
        shape = self.node_shape[node]
        if not shape:
            return self.arena[off]
        v = self.arena[off: off + self.node_size[node]].reshape(shape)
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------------ ops
    def add_op(self, code, out, a=-1, b=-1, c=-1, iattr=-1):
        if self._deferred:
            self.consume(code, (a, b, c))
        self.ops.extend((code, out, a, b, c, iattr))

    # ------------------------------------------------------------------ deferred values
    # Large elementwise results are computed by numpy into recycled scratch memory
    # (buffers.scratch) rather than into the arena, where most of them would be written
    # once and never read: in ``np.sum(100 * (x[1:] - x[:-1]**2)**2 + (1 - x[:-1])**2)``
    # no derivative rule reads five of the seven results. Writing each to fresh arena
    # memory made recording such a function slower than numpy. A deferred value is
    # written to the arena (materialize) when an op that reads it is recorded (its
    # Tensor is alive then); a value that exact arithmetic made from values in the arena
    # is not even copied: the sweep recomputes it, to the bit (redo_rows).
    def defer_value(self, node, value, row, exact):
        """``node``'s values are ``value`` (alive while its Tensor is), not yet in the arena."""
        d = self._deferred
        if d is None:
            d = self._deferred = {}
            self._redo = set()
        if exact:
            ops = self.ops
            for x in ops[row * OP_WIDTH + 2: row * OP_WIDTH + 5]:
                if x in d and not d[x][2]:
                    exact = False
        d[node] = (weakref.ref(value), row, exact)

    def consume(self, code, operands):
        """An op reading ``operands`` is being recorded: write to the arena (or schedule
        for recomputation) each deferred operand whose value the reverse sweep will read."""
        d = self._deferred
        for k, x in enumerate(operands):
            if x >= 0 and x in d:
                rules = value_reads()[code] if self.defer else None
                if rules is None:       # (a view shares its storage: read at once, as by any op)
                    self.materialize(x)
                elif rules and reads_value(code, operands, rules[0][k], self._const_nodes):
                    if d[x][2]:
                        self._redo.add(x)      # an elementwise rule: read by the sweep alone
                    else:
                        self.materialize(x)

    def materialize(self, node):
        """Write a deferred node's values into the arena."""
        ref, _, _ = self._deferred.pop(node)
        self._redo.discard(node)
        value = ref()
        if value is None:           # (an op reading a value holds its Tensor: never reached)
            raise RuntimeError(f"numbad: internal error: the value of node {node} was released "
                               "before an op that reads it was recorded")
        off = self.node_off[node]
        self.arena[off:off + self.node_size[node]] = value.reshape(-1)

    def live_value(self, node):
        """A deferred node's value while its Tensor lives, else ``None``."""
        return self._deferred[node][0]()

    def revive(self, node, value):
        """A deferred node's values, computed again after its Tensor was gone."""
        _, row, exact = self._deferred[node]
        self._deferred[node] = (weakref.ref(value), row, exact)

    def redo_rows(self):
        """Indices of the op rows that recompute every value the reverse sweep reads and
        the arena lacks, in recording order (``None`` if there are none)."""
        if not self._redo:
            return None
        d, ops, rows = self._deferred, self.ops, set()
        stack = list(self._redo)
        while stack:
            _, row, exact = d[stack.pop()]
            if not exact:
                raise RuntimeError("numbad: internal error: a value to recompute depends on "
                                   "one that cannot be recomputed exactly")
            if row not in rows:
                rows.add(row)
                stack += [x for x in ops[row * OP_WIDTH + 2: row * OP_WIDTH + 5] if x in d]
        return np.array(sorted(rows), np.int64)

    def add_attrs(self, ints):
        """Append integer attributes; return their offset in the pool."""
        off = self._ipool_len
        if type(ints) is tuple:                 # (the common case: a few Python ints)
            self._ipool.extend(ints)
            self._ipool_len = off + len(ints)
            return off
        if isinstance(ints, np.ndarray) and ints.size > 64:
            if not self._ipool_chunks:
                self._ipool_chunks = []
            self._ipool_chunks.append((off, len(self._ipool), ints.astype(np.int64, copy=False).ravel()))
            self._ipool_len += ints.size
            return off
        self._ipool.extend(ints.tolist() if isinstance(ints, np.ndarray) else ints)
        self._ipool_len += len(ints)
        return off

    def attrs(self, ia, n):
        """``n`` integers of the pool from offset ``ia`` (one block added by add_attrs)."""
        shift = 0
        for off, _, chunk in self._ipool_chunks:
            if ia >= off + chunk.size:
                shift += chunk.size
            elif ia >= off:
                return chunk[ia - off: ia - off + n].tolist()
            else:
                break
        return self._ipool[ia - shift: ia - shift + n]

    def add_guard(self, node, kind, expected, site):
        if not self.guards:
            self.guards = []
        self.guards.append(Guard(self.n_ops, node, kind, expected, site))

    # ------------------------------------------------------------------ arrays for the sweeps
    def ipool(self):
        if not self._ipool_chunks:
            return _int64(self._ipool)
        parts, prev = [], 0
        for _, at, chunk in self._ipool_chunks:
            parts.append(_int64(self._ipool[prev:at]))
            parts.append(chunk)
            prev = at
        parts.append(_int64(self._ipool[prev:]))
        return np.concatenate(parts)

    def arrays(self):
        """``(ops, node_off, node_size, ipool, vals)`` as numpy arrays for the sweeps.

        ``ops`` is ``(n_ops, 6)``. Converts only what was recorded since the
        previous call (a nested ``vjp`` sweeps a tape that is still growing).
        """
        if self.pending:
            self.flush()
        n_ops, n_nodes, n_ip = len(self.ops) // OP_WIDTH, len(self.node_off), self._ipool_len
        c = self._cache
        if c is not None and c[0] == n_ops and c[1] == n_nodes and c[2] == n_ip:
            ops, off, size, ip = c[3:]
        elif c is not None and not self._ipool_chunks:
            o0, n0 = c[0], c[1]
            ops = np.concatenate([c[3], _int64(self.ops[o0 * OP_WIDTH:]).reshape(-1, OP_WIDTH)])
            off = np.concatenate([c[4], _int64(self.node_off[n0:])])
            size = np.concatenate([c[5], _int64(self.node_size[n0:])])
            ip = np.concatenate([c[6], _int64(self._ipool[c[2]:])])
        elif n_ops * OP_WIDTH + 2 * n_nodes + n_ip < 1 << 16 and not self._ipool_chunks:
            last = _last_small
            if (last is not None and last[0] == self.ops and last[1] == self.node_off
                    and last[2] == self.node_size and last[3] == self._ipool):
                ops, off, size, ip = last[4]
            else:
                # small tapes: one conversion, then views
                flat = _int64_joined(self.ops, self.node_off, self.node_size, self._ipool)
                a, b = n_ops * OP_WIDTH, n_ops * OP_WIDTH + n_nodes
                ops = flat[:a].reshape(-1, OP_WIDTH)
                off, size, ip = flat[a:b], flat[b:b + n_nodes], flat[b + n_nodes:]
                _remember_small(self, (ops, off, size, ip))
        else:
            ops = _int64(self.ops).reshape(-1, OP_WIDTH)
            off = _int64(self.node_off)
            size = _int64(self.node_size)
            ip = self.ipool()
        self._cache = (n_ops, n_nodes, n_ip, ops, off, size, ip)
        return ops, off, size, ip, self.arena[: self.top]

    # ------------------------------------------------------------------ recording
    @contextmanager
    def recording(self):
        """Make this tape the calling thread's innermost active tape."""
        stack = active_tapes()
        stack.append(self)
        try:
            yield self
        finally:
            stack.pop()

    def __repr__(self):
        return (f"<numbad.Recording: {self.n_ops} ops, {self.n_nodes} nodes, "
                f"{self.top} {self.dtype.name} values>")
