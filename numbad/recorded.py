"""Recorded tapes: record a function once, replay it and its derivatives at compiled speed.

``nb.record(func, example_inputs)`` runs ``func`` once on Tensors and freezes
what it recorded: the op rows, node layout, integer pool, the value arena
(constants included) and the guards, i.e. every value-dependent decision
Python took. A replay writes the recorded constants and the new input values
into an arena and runs the njit interpreters over the frozen arrays, which
compute every other value: no Python per operation.

A replay whose inputs would decide a guard differently raises
:class:`BranchChanged` naming the recording site, or, with ``retrace=True``,
records the new branch beside the old ones and uses it. A replay never returns
values or derivatives of the wrong branch.
"""
from __future__ import annotations

import collections
import hashlib
import io
import math
import os
import zipfile

import numpy as np

from . import buffers, sweeps
from .functional._common import (FLOAT_DTYPES, Call, as_input_tuple, as_output_tuple, as_v_tuple,
                                 postprocess, validate_v)
from .ops import BY_CODE, OPS
from .ops.validate import validate_tape_arrays
from .sweeps import executor, interpreters, workspace
from .tensor.core import Tensor, _is_contiguous

__all__ = ["BranchChanged", "Tape", "record"]

FORMAT_VERSION = 1
MAX_BRANCHES = 64          # retraced branches kept per tape (least recently used go first)
MAX_LANES = 256            # cotangents/tangents per batched sweep in jacobian()
_GATHER, _VIEW = OPS["gather"].code, OPS["view"].code
_GUARD_KIND = {"truth": 0, "value": 1}


class BranchChanged(RuntimeError):
    """A replay's inputs decide a recorded branch differently (replay with ``retrace=True``).

    The message names the recording site (``file:line``) and the value recorded there.

    >>> import numpy as np, numbad as nb
    >>> tape = nb.record(lambda x: x * 2.0 if x > 0 else -x, np.array(1.0))
    >>> try:
    ...     tape(np.array(-1.0))
    ... except nb.BranchChanged as e:
    ...     print(e)
    a branch decided by a comparison at ... changed on replay: it was True when the tape was recorded and is False now. Replay with retrace=True to record this branch too.
    >>> tape(np.array(-1.0), retrace=True)        # records the other branch beside the first
    array(1.)
    """


def _constant_runs(ops, node_off, node_size, in_nodes):
    """The arena ranges a replay copies from the template, as ``[start, stop)`` pairs: the nodes
    that no op writes and that are not inputs (the constants; a replay loads the inputs and
    its forward sweep writes every op's result)."""
    written = np.zeros(node_off.shape[0], np.bool_)
    written[ops[:, 1]] = True
    written[in_nodes] = True
    const = np.flatnonzero(~written & (node_size > 0))
    starts = node_off[const]
    order = np.argsort(starts, kind="stable")
    starts, stops = starts[order], (starts + node_size[const])[order]
    if not starts.shape[0]:
        return np.zeros(0, np.int64)
    # one run for nodes that touch or overlap
    new = np.concatenate([[True], starts[1:] > np.maximum.accumulate(stops)[:-1]])
    firsts = np.flatnonzero(new)
    return np.column_stack([starts[firsts], np.maximum.reduceat(stops, firsts)]).astype(np.int64).ravel()


def _in_two_halves(run, tiles, largest, first=(), second=()):
    """``run(part, *args)`` over ``tiles``: the first half on the calling thread with ``first``,
    the second on the worker thread with ``second``, where two threads may run (as the tiled
    reverse sweep splits its tiles: arrays of ``sweeps.TWO_THREADS_MIN`` elements or more,
    the ``largest`` here); else all on the calling thread."""
    if sweeps.THREADS > 1 and len(tiles) >= 4 and largest >= sweeps.TWO_THREADS_MIN:
        m = len(tiles) // 2
        later = sweeps._worker().submit(run, tiles[m:], *second)
        try:
            run(tiles[:m], *first)
        finally:
            later.result()
    else:
        run(tiles, *first)


# ------------------------------------------------------------------------------- one branch
class Branch:
    """One recorded path through the function: frozen tape arrays, I/O layout and guards."""

    ARRAYS = ("ops", "node_off", "node_size", "ip", "template", "in_nodes", "out_nodes",
              "g_op", "g_node", "g_kind", "g_off", "g_expected")

    def __init__(self, arrays, node_shape, out_spec, sites):
        for k in self.ARRAYS:
            setattr(self, k, arrays[k])
        self.node_shape = node_shape          # list of tuples (for summaries and checks)
        self.out_spec = out_spec              # per output: (node index or None, shape, dtype, const)
        self.sites = sites                    # per guard: "file:line"
        self.arena_size = self.template.shape[0]
        self.fill = _constant_runs(self.ops, self.node_off, self.node_size, self.in_nodes)
        self._tiles = None                    # the tiled forward's plan, made on first use
        self._reverse_plans = {}              # the tiled reverse sweep's (sweeps._reverse_in_tiles)
        # (the output and input values, counted once: every replay allocates them)
        self._totals = (int(self.node_size[self.out_nodes].sum()), int(self.node_size[self.in_nodes].sum()))
        # arrays shaped like the outputs, for validate_v's shape checks (never written)
        self.output_shapes = tuple(np.empty(s[1], s[2]) for s in out_spec)
        from .sweeps.codegen import BATCH_KINDS
        self.batchable = all(BY_CODE[c].kind in BATCH_KINDS for c in set(self.ops[:, 0].tolist()))

    @classmethod
    def freeze(cls, rec, input_nodes, outputs):
        """Freeze a :class:`Recording`: keep only ops the outputs or guards need."""
        ops, off, size, ip, vals = rec.arrays()
        out_spec = []
        for y in outputs:
            if type(y) is Tensor and y._tape is rec:
                out_spec.append((y._node, np.shape(y._v), y.dtype, None))
            else:
                c = np.array(y._v if type(y) is Tensor else y)
                out_spec.append((None, c.shape, c.dtype, c))
        out_nodes = np.array([s[0] for s in out_spec if s[0] is not None], np.int64)
        guards = rec.guards
        keep = _live_ops(ops, ip, list(out_nodes) + [g.node for g in guards])
        new_index = np.concatenate([[0], np.cumsum(keep)])
        g_expected, g_off = [], []
        pos = 0
        for g in guards:
            e = np.ravel(np.asarray(g.expected, np.float64))
            g_off.append(pos)
            g_expected.append(e)
            pos += e.size
        arrays = dict(
            ops=np.ascontiguousarray(ops[keep]), node_off=off.copy(), node_size=size.copy(),
            ip=ip.copy(), template=vals.copy(), in_nodes=np.array(input_nodes, np.int64),
            out_nodes=out_nodes,
            g_op=np.array([new_index[g.op_index] for g in guards], np.int64),
            g_node=np.array([g.node for g in guards], np.int64),
            g_kind=np.array([_GUARD_KIND[g.kind] for g in guards], np.int64),
            g_off=np.array(g_off, np.int64),
            g_expected=(np.concatenate(g_expected) if g_expected else np.zeros(0)).astype(vals.dtype))
        return cls(arrays, list(rec.node_shape), out_spec, [g.site for g in guards])

    # ----------------------------------------------------------------------- replays
    def _common(self):
        return (self.ops, self.node_off, self.node_size, self.ip, self.template, self.fill, self.in_nodes,
                self.out_nodes, self.g_op, self.g_node, self.g_kind, self.g_off, self.g_expected)

    def out_total(self):
        return self._totals[0]

    def in_total(self):
        return self._totals[1]

    # The arenas of a replay are internal to it (its results are the separate ``out``, ``grad``
    # and ``jv``): large ones come from the thread's buffer cache and go back to it, since fresh
    # memory costs a page fault per 4 KiB on first touch (9 ms of a 10^7-value arena on a
    # Xeon). A replay whose guard failed keeps its ``vals``, for the message. (Small ones are
    # not given: the cache keeps one small arena, for the next recording.)
    def forward(self, x):
        if self.arena_size >= sweeps.TILED_MIN and self._tile_plan():
            return self._tiled_forward(x)
        vals = buffers.take(self.arena_size, self.template.dtype)
        out = np.empty(self.out_total(), self.template.dtype)
        status = interpreters().forward_one(*self._common(), x, vals, workspace(), out)
        if status < 0 and vals.shape[0] >= buffers.MIN_FLOATS:
            buffers.give(vals)
            vals = None
        return status, vals, out

    def vjp(self, x, v, lanes=1):
        if lanes == 1 and self.arena_size >= sweeps.TILED_MIN and self._tile_plan():
            return self._tiled_vjp(x, v)
        n = self.node_off.shape[0]
        vals = buffers.take(self.arena_size, self.template.dtype)
        adj = buffers.take(self.arena_size * lanes, self.template.dtype)
        flags = np.empty(2 * n, np.bool_)
        out = np.empty(self.out_total(), self.template.dtype)
        grad = np.empty(self.in_total() * lanes, self.template.dtype)
        if lanes == 1:
            status = interpreters().vjp_one(*self._common(), x, v, vals, adj, flags, workspace(), out, grad)
        else:
            status = interpreters().vjp_lanes(*self._common(), x, v, lanes, vals, adj, flags, workspace(),
                                              out, grad)
        if adj.shape[0] >= buffers.MIN_FLOATS:
            buffers.give(adj)
        del adj
        if status < 0 and vals.shape[0] >= buffers.MIN_FLOATS:
            buffers.give(vals)
            vals = None
        return status, vals, out, grad

    def _tile_plan(self):
        """For a large tape of the tiled sweeps' form (``sweeps._reverse_in_tiles``: the sum of
        elementwise ops over large arrays and contiguous reads of them, here without guards),
        ``(ops, node_off, one-element rows, other rows, tiles, largest)``: the tape's arrays
        with those reads as views (:meth:`_views_for_tiles`), then ``sweeps.elementwise_tiles``
        of them (two threads take the tiles from ``sweeps.TWO_THREADS_MIN`` on); ``False`` for
        any other tape. Made once."""
        plan = self._tiles
        if plan is None:
            plan = self._tiles = self._make_tile_plan() or False
        return plan

    def _make_tile_plan(self):
        if self.g_op.shape[0] or self.ops.shape[0] < 2 or self.out_nodes.shape[0] != 1:
            return None
        ops, off = self._views_for_tiles()
        if ops is None:
            return None
        plan = sweeps.elementwise_tiles(ops, off, self.node_size, 0, ops.shape[0], self.out_nodes[0])
        return None if plan is None else (ops, off, *plan)

    def _views_for_tiles(self):
        """``(ops, node_off)`` for the tiled sweeps: each large gather reading a contiguous run
        of a node that no op writes (``x[1:]`` of an input: ``nb.record`` records gathers, as the
        ensemble and GPU replays know no views) becomes a view, its node moved onto that run,
        as on an eager tape; ``(None, None)`` where a gather remains (strided, broadcast, of a
        computed node or of one element), since the tiles would not hold it."""
        ops, off, size, ip = self.ops, self.node_off, self.node_size, self.ip
        gathers = np.flatnonzero(ops[:-1, 0] == _GATHER)
        if not gathers.shape[0]:
            return ops, off
        ops, off = ops.copy(), off.copy()
        written = set(ops[:, 1].tolist())
        for k in gathers.tolist():
            y, a, ia = int(ops[k, 1]), int(ops[k, 2]), int(ops[k, 5])
            nd = int(ip[ia])
            shape, strides = ip[ia + 1:ia + 1 + nd].tolist(), ip[ia + 1 + nd:ia + 1 + 2 * nd].tolist()
            if a in written or size[y] < sweeps.TILED_MIN or not _is_contiguous(shape, strides):
                return None, None
            ops[k, 0] = _VIEW
            off[y] = off[a] + ip[ia + 1 + 2 * nd]
        return ops, off

    def _tiled_forward(self, x, keep=False):
        """:meth:`forward` of a tape with a :meth:`_tile_plan`: the values of each tile stay
        in the processor's cache from op to op, and two threads take the tiles of large arrays
        (:func:`_in_two_halves`). The same operations on the same values as the plain replay.
        ``keep``: return the arena."""
        g = interpreters()
        ops, off, scalar_rows, big_rows, tiles, largest = self._tile_plan()
        size, ip = self.node_size, self.ip
        vals = buffers.take(self.arena_size, self.template.dtype)
        fill, template = self.fill, self.template
        for k in range(0, fill.shape[0], 2):
            vals[fill[k]:fill[k + 1]] = template[fill[k]:fill[k + 1]]
        self._put_inputs(vals, x)
        if scalar_rows.shape[0]:
            g.forward(scalar_rows, off, size, ip, vals, 0, scalar_rows.shape[0], workspace())
        n_big = big_rows.shape[0]

        def run(part):
            ws = workspace()
            for tile_off, tile_size in part:
                g.forward(big_rows, tile_off, tile_size, ip, vals, 0, n_big, ws)

        _in_two_halves(run, tiles, largest)
        g.forward(ops, off, size, ip, vals, ops.shape[0] - 1, ops.shape[0], workspace())
        y = int(self.out_nodes[0])
        out = vals[off[y]:off[y] + 1].copy()
        if keep:
            return -1, vals, out
        buffers.give(vals)
        return -1, None, out

    def _put_inputs(self, arena, flat):
        """Write ``flat`` (the inputs' values or tangents, end to end) into ``arena`` at the
        input nodes (``_load`` of the njit replays)."""
        off, size = self.node_off, self.node_size
        pos = 0
        for node in self.in_nodes.tolist():
            m = int(size[node])
            buffers.copy_into(arena[off[node]:off[node] + m], flat[pos:pos + m])
            pos += m

    def _tiled_vjp(self, x, v):
        """:meth:`vjp` of a tape with a :meth:`_tile_plan`: the tiled forward replay, then the
        tiled reverse sweep, as an eager ``nb.vjp`` sweeps it."""
        g = interpreters()
        ops, off = self._tile_plan()[:2]
        size = self.node_size
        n, y = off.shape[0], int(self.out_nodes[0])
        status, vals, out = self._tiled_forward(x, keep=True)
        adj = buffers.take(self.arena_size, self.template.dtype)
        flags = np.zeros(2 * n, np.bool_)
        varying, adj_set = flags[:n], flags[n:]
        varying[self.in_nodes] = True
        adj[off[y]] = v[0]
        adj_set[y] = True
        if not sweeps._reverse_in_tiles(g, ops, off, size, self.ip, vals, adj, adj_set, varying, 0,
                                        ops.shape[0], [(y, v)], plans=self._reverse_plans):
            g.reverse(ops, off, size, self.ip, vals, adj, adj_set, varying, 0, ops.shape[0], workspace())
        grad = np.zeros(self.in_total(), self.template.dtype)
        pos = 0
        for node in self.in_nodes.tolist():
            m = int(size[node])
            if adj_set[node]:
                buffers.copy_into(grad[pos:pos + m], adj[off[node]:off[node] + m])
            pos += m
        buffers.give(adj)
        del adj
        buffers.give(vals)
        return status, None, out, grad

    def _tiled_jvp(self, x, t):
        """:meth:`jvp` of a tape with a :meth:`_tile_plan`: the tiled forward replay, then the
        tangent sweep in the same tiles, on two threads as the forward (each with its own
        varying flags, which the sweep writes), and the sum's tangent last, over the whole
        arrays."""
        g = interpreters()
        ops, off, scalar_rows, big_rows, tiles, largest = self._tile_plan()
        size, ip = self.node_size, self.ip
        status, vals, out = self._tiled_forward(x, keep=True)
        tan = buffers.take(self.arena_size, self.template.dtype)
        self._put_inputs(tan, t)
        varying = np.zeros(off.shape[0], np.bool_)
        varying[self.in_nodes] = True
        g.mark_varying(ops, ip, varying, 0, ops.shape[0])
        if scalar_rows.shape[0]:
            g.tangent(scalar_rows, off, size, ip, vals, tan, varying, 0, scalar_rows.shape[0], workspace())
        n_big = big_rows.shape[0]

        def run(part, flags):
            ws = workspace()
            for tile_off, tile_size in part:
                g.tangent(big_rows, tile_off, tile_size, ip, vals, tan, flags, 0, n_big, ws)

        _in_two_halves(run, tiles, largest, (varying,), (varying.copy(),))
        g.tangent(ops, off, size, ip, vals, tan, varying, ops.shape[0] - 1, ops.shape[0], workspace())
        y = int(self.out_nodes[0])
        jv = tan[off[y]:off[y] + 1].copy() if varying[y] else np.zeros(1, self.template.dtype)
        buffers.give(tan)
        buffers.give(vals)
        return status, None, out, jv

    def jvp(self, x, t, lanes=1):
        if lanes == 1 and self.arena_size >= sweeps.TILED_MIN and self._tile_plan():
            return self._tiled_jvp(x, t)
        vals = buffers.take(self.arena_size, self.template.dtype)
        tan = buffers.take(self.arena_size * lanes, self.template.dtype)
        varying = np.empty(self.node_off.shape[0], np.bool_)
        out = np.empty(self.out_total(), self.template.dtype)
        jv = np.empty(self.out_total() * lanes, self.template.dtype)
        if lanes == 1:
            status = interpreters().jvp_one(*self._common(), x, t, vals, tan, varying, workspace(), out, jv)
        else:
            status = interpreters().jvp_lanes(*self._common(), x, t, lanes, vals, tan, varying, workspace(),
                                              out, jv)
        if tan.shape[0] >= buffers.MIN_FLOATS:
            buffers.give(tan)
        del tan
        if status < 0 and vals.shape[0] >= buffers.MIN_FLOATS:
            buffers.give(vals)
            vals = None
        return status, vals, out, jv

    def describe_failure(self, gi, vals):
        node = self.g_node[gi]
        o, n = self.node_off[node], self.node_size[node]
        e0 = self.g_off[gi]
        if self.g_kind[gi] == 0:
            was, now = bool(self.g_expected[e0] != 0), bool(vals[o] != 0)
            what = "a branch decided by a comparison"
        else:
            was = self.g_expected[e0:e0 + n].tolist()
            now = vals[o:o + n].tolist()
            was, now = (was[0], now[0]) if n == 1 else (was, now)
            what = "a value read into Python (float(), int(), .item(), .detach() or an index)"
        return (f"{what} at {self.sites[gi]} changed on replay: it was {was!r} when the tape was "
                f"recorded and is {now!r} now. Replay with retrace=True to record this branch too.")

    # ----------------------------------------------------------------------- serialisation
    def to_arrays(self, prefix):
        d = {prefix + k: getattr(self, k) for k in self.ARRAYS}
        d[prefix + "node_ndim"] = np.array([len(s) for s in self.node_shape], np.int64)
        d[prefix + "node_dims"] = np.array([x for s in self.node_shape for x in s], np.int64)
        d[prefix + "out_node"] = np.array([-1 if s[0] is None else s[0] for s in self.out_spec], np.int64)
        d[prefix + "out_ndim"] = np.array([len(s[1]) for s in self.out_spec], np.int64)
        d[prefix + "out_dims"] = np.array([x for s in self.out_spec for x in s[1]], np.int64)
        d[prefix + "out_dtype"] = np.array([s[2].str for s in self.out_spec])
        consts = [np.ravel(s[3]).astype(np.float64) for s in self.out_spec if s[3] is not None]
        d[prefix + "out_consts"] = np.concatenate(consts) if consts else np.zeros(0)
        d[prefix + "sites"] = np.array(self.sites, dtype=str)
        return d

    @classmethod
    def from_arrays(cls, d, prefix):
        get = _Reader(d, prefix)
        arrays = {k: get.ints(k) for k in cls.ARRAYS if k not in ("template", "g_expected")}
        arrays["template"] = get.floats("template")
        arrays["g_expected"] = get.floats("g_expected")
        node_shape = _split_shapes(get.ints("node_ndim"), get.ints("node_dims"), "node shapes")
        out_nodes, out_shapes = get.ints("out_node"), _split_shapes(get.ints("out_ndim"),
                                                                     get.ints("out_dims"), "output shapes")
        dtypes = get.strings("out_dtype")
        consts = get.floats("out_consts")
        if not (len(out_nodes) == len(out_shapes) == len(dtypes)):
            raise ValueError("the output descriptions disagree in length")
        out_spec, pos = [], 0
        for nd, shape, dt in zip(out_nodes.tolist(), out_shapes, dtypes):
            dt = np.dtype(dt)
            if dt.kind not in "fiub":
                raise ValueError(f"an output has dtype {dt}")
            if nd < 0:
                n = int(math.prod(shape))
                if pos + n > consts.size:
                    raise ValueError("the constant outputs are truncated")
                out_spec.append((None, shape, dt, consts[pos:pos + n].reshape(shape).astype(dt)))
                pos += n
            else:
                out_spec.append((nd, shape, dt, None))
        sites = get.strings("sites").tolist()
        validate_tape_arrays(arrays, node_shape, out_spec, sites)
        return cls(arrays, node_shape, out_spec, sites)


#: Samples per pass of the batched interpreters (lanes of every value).
ENSEMBLE_LANES = 64


def _ensemble(branch, kernel_name, single, args, B):
    """Replay an ensemble of B samples: batched interpreters on all cores.

    Tapes with an op kind the batched interpreters do not cover replay sample
    by sample instead (still on all cores, still without Python per op).
    """
    G = interpreters()
    if branch.batchable:
        kernel, extra = getattr(G, kernel_name), (ENSEMBLE_LANES,)
        chunk = ENSEMBLE_LANES
    else:
        kernel, extra = getattr(G, kernel_name + "_rows"), ()
        chunk = 8
    n = min(os.cpu_count() or 1, max(1, -(-B // chunk)))
    common = branch._common()
    if n == 1:
        kernel(*common, *args, 0, B, *extra)
        return
    pool = executor("numbad", os.cpu_count())
    bounds = np.linspace(0, B, n + 1).astype(int)
    futures = [pool.submit(kernel, *common, *args, int(lo), int(hi), *extra)
               for lo, hi in zip(bounds[:-1], bounds[1:])]
    for f in futures:
        f.result()


def _digest(d):
    """SHA-256 over every entry of a tape's arrays (name, dtype, shape, bytes) but the digest:
    the validation proves a tape well formed, the digest that it is the tape that was saved."""
    h = hashlib.sha256()
    for key in sorted(k for k in d if k != "digest"):
        a = np.ascontiguousarray(d[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class _Reader:
    """Typed access to a loaded ``.npz``: clear errors for missing or mistyped entries."""

    def __init__(self, d, prefix):
        self.d, self.prefix = d, prefix

    def _get(self, key):
        try:
            return self.d[self.prefix + key]
        except KeyError:
            raise ValueError(f"the entry {self.prefix + key!r} is missing") from None

    def ints(self, key):
        a = self._get(key)
        if a.dtype != np.int64:
            raise ValueError(f"the entry {self.prefix + key!r} has dtype {a.dtype}, expected int64")
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def floats(self, key):
        a = self._get(key)
        if a.dtype not in FLOAT_DTYPES or a.ndim != 1:
            raise ValueError(f"the entry {self.prefix + key!r} is not a 1-d float32/float64 array")
        return np.ascontiguousarray(a)

    def strings(self, key):
        a = self._get(key)
        if a.dtype.kind != "U":
            raise ValueError(f"the entry {self.prefix + key!r} is not text")
        return a


def _split_shapes(ndim, dims, what):
    if np.any(ndim < 0) or np.any(ndim > 64) or int(ndim.sum()) != dims.size or np.any(dims < 0):
        raise ValueError(f"the {what} are inconsistent")
    shapes, pos = [], 0
    for k in ndim.tolist():
        shapes.append(tuple(dims[pos:pos + k].tolist()))
        pos += k
    return shapes


def _live_ops(ops, ip, roots):
    """Boolean mask of ops that the ``roots`` nodes depend on (dead code is not replayed)."""
    live = set(int(r) for r in roots)
    keep = np.zeros(ops.shape[0], bool)
    assemble = OPS["assemble"].code
    for k in range(ops.shape[0] - 1, -1, -1):
        code, out, a, b, c, ia = ops[k].tolist()
        if out not in live:
            continue
        keep[k] = True
        live.update(x for x in (a, b, c) if x >= 0)
        if code == assemble:
            live.update(int(ip[ia + 2 + 2 * p]) for p in range(int(ip[ia])))
    return keep


# ------------------------------------------------------------------------------- the tape
class Tape:
    """A function recorded once, replayed with new input values at compiled speed.

    Made by :func:`record`. Calling it replays the function; ``vjp``, ``jvp``,
    ``jacobian``, ``batch_vjp`` and ``batch_jvp`` replay it with its derivatives.
    Inputs must have the recorded shapes and dtypes.

    >>> import numpy as np, numbad as nb
    >>> tape = nb.record(lambda x: np.sum(np.sin(x) * x), np.zeros(3))
    >>> out, g = tape.vjp(np.array([0.0, 1.0, 2.0]))
    >>> np.allclose(g, np.cos([0, 1, 2]) * [0, 1, 2] + np.sin([0, 1, 2]))
    True
    """

    def __init__(self, branches, in_shapes, in_dtypes, is_inputs_tuple, is_outputs_tuple,
                 func=None, retrace=False, device="cpu"):
        self._branches = collections.OrderedDict((id(b), b) for b in branches)
        self.in_shapes = [tuple(s) for s in in_shapes]
        self.in_dtypes = [np.dtype(d) for d in in_dtypes]
        self.is_inputs_tuple = is_inputs_tuple
        self.is_outputs_tuple = is_outputs_tuple
        self.func = func
        self.retrace = retrace
        self.device = device          # "cpu", or "cuda": replays run as numba.cuda kernels

    def to(self, device):
        """This tape on ``device`` (``"cpu"`` or ``"cuda"``): the same recorded branches, replayed there.

        On ``"cuda"`` every replay runs as numba.cuda kernels (``docs/cuda.md``);
        inputs may then be numpy or CUDA arrays, and results are numpy arrays, or
        device arrays with ``to_host=False``. Raises :class:`numbad.cuda.CudaUnavailable`
        saying why where CUDA cannot run.

        >>> import numpy as np, numbad as nb
        >>> tape = nb.record(lambda x: np.sum(np.sin(x)), np.zeros(3))
        >>> tape.to("cpu") is tape
        True
        """
        from .cuda import check_device
        if check_device(device) == self.device:
            return self
        if device == "cuda":
            from .cuda import require
            from .cuda.runtime import device_branch
            require()
            device_branch(self.branches[0])     # upload now: errors surface here, not mid-replay
        other = Tape([], self.in_shapes, self.in_dtypes, self.is_inputs_tuple, self.is_outputs_tuple,
                     func=self.func, retrace=self.retrace, device=device)
        other._branches = self._branches        # shared: a branch retraced on one serves both
        return other

    def _on_device(self, to_host):
        if not isinstance(to_host, (bool, np.bool_)):
            raise TypeError(f"to_host must be True or False, got {to_host!r}")
        if self.device == "cpu":
            return None
        from .cuda import api
        return api

    # ----------------------------------------------------------------------- inputs and outputs
    @property
    def branches(self):
        """The recorded branches, most recently used first."""
        return list(reversed(self._branches.values()))

    def _pack(self, inputs, what, batch=None):
        """Validate ``inputs`` against the recording; return them packed flat (per sample)."""
        items = inputs if self.is_inputs_tuple else (inputs,)
        if self.is_inputs_tuple and not isinstance(inputs, tuple):
            raise TypeError(f"the tape was recorded with a tuple of {len(self.in_shapes)} inputs; "
                            f"{what} got a {type(inputs).__name__}")
        if len(items) != len(self.in_shapes):
            raise TypeError(f"the tape was recorded with {len(self.in_shapes)} inputs; {what} got "
                            f"{len(items)}")
        flat = []
        for i, (x, shape, dt) in enumerate(zip(items, self.in_shapes, self.in_dtypes)):
            x = self._check_input(x, i, shape, dt, what, batch)
            flat.append(x.reshape(-1) if batch is None else x.reshape(batch, int(math.prod(shape))))
        dtype = self._dtype()
        if batch is None:
            return np.concatenate(flat).astype(dtype, copy=False) if len(flat) != 1 \
                else flat[0].astype(dtype, copy=False)
        return np.ascontiguousarray(np.concatenate(flat, axis=1), dtype)

    @staticmethod
    def _check_input(x, i, shape, dt, what, batch=None):
        """Input ``i`` as a numpy array of the recorded shape and dtype, or a clear error."""
        if shape == () and batch is None and (isinstance(x, np.generic) or
                                             (isinstance(x, float) and dt == np.float64)):
            x = np.asarray(x)           # a number for a 0-d input (its dtype is checked below)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"input {i} must be a numpy array of shape {shape} and dtype {dt} "
                            f"(as recorded), got {type(x).__name__}")
        want = shape if batch is None else (batch,) + shape
        if x.shape != want or x.dtype != dt:
            rec = f"shape {shape} and dtype {dt}"
            got = f"shape {x.shape} and dtype {x.dtype}"
            if batch is not None:
                rec = f"a leading batch axis of {batch} then {rec}"
            noun = "tangent" if "tangent" in what else "input"
            raise ValueError(f"{noun} {i} has {got}, but the tape was recorded with {rec}")
        return x

    def _dtype(self):
        return next(iter(self._branches.values())).template.dtype

    def _unpack_outputs(self, branch, flat, batch=None, tangents=False):
        """Per-output arrays from a flat result. ``tangents``: a constant output's tangent is
        zero, and tangents are floating (the tape's dtype for integer and boolean outputs)."""
        outs, pos = [], 0
        lead = () if batch is None else (batch,)
        for node, shape, dt, const in branch.out_spec:
            if tangents and dt not in FLOAT_DTYPES:
                dt = self._dtype()
            if node is None:
                if tangents:
                    outs.append(np.zeros(lead + shape, dt))
                else:
                    outs.append(np.array(const if batch is None else np.broadcast_to(const, lead + shape)))
                continue
            n = math.prod(shape)
            part = flat[pos:pos + n] if batch is None else flat[:, pos:pos + n]
            # (flat is the call's own: its contiguous parts are returned as they are; a batch's
            # parts are strided columns, copied contiguous)
            outs.append(part.reshape(lead + shape).astype(dt, copy=batch is not None))
            pos += n
        return postprocess(outs, self.is_outputs_tuple)

    def _unpack_inputs(self, flat, batch=None):
        outs, pos = [], 0
        lead = () if batch is None else (batch,)
        for shape, dt in zip(self.in_shapes, self.in_dtypes):
            n = math.prod(shape)
            part = flat[pos:pos + n] if batch is None else flat[:, pos:pos + n]
            # (flat is the call's own: its contiguous parts are returned as they are; a batch's
            # parts are strided columns, copied contiguous)
            outs.append(part.reshape(lead + shape).astype(dt, copy=batch is not None))
            pos += n
        return postprocess(outs, self.is_inputs_tuple)

    def _pack_v(self, branch, v, what):
        """The cotangents for the outputs that are nodes, packed flat (PyTorch's v rules)."""
        specs = branch.out_spec
        outs = branch.output_shapes
        if v is None:
            if len(specs) != 1 or int(math.prod(specs[0][1])) != 1:
                raise RuntimeError("The vector v can only be None if the user-provided function returns "
                                   "a single Tensor with a single element.")
            v = (np.ones(specs[0][1]),)
        else:
            v = validate_v(as_v_tuple(v, what), outs, self.is_outputs_tuple)
        parts = [np.ravel(vi) for vi, s in zip(v, specs) if s[0] is not None]
        dtype = self._dtype()
        if len(parts) == 1:
            return np.array(parts[0], dtype)       # (a copy, as concatenate's: writable, C order)
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    # ----------------------------------------------------------------------- running branches
    def _run(self, method, x, *args, inputs=None, retrace=None, impl=None, per_branch=None):
        """Run ``method`` on the branch whose guards hold; retrace or raise otherwise.

        ``impl(branch)`` gives the object that runs the branch (default: the CPU
        branch itself; :mod:`numbad.cuda` passes its device twin); ``inputs`` may be a
        function returning them (host copies are only needed to retrace).
        ``per_branch(branch)``, if given, makes the arguments after ``x`` for each
        branch tried (cotangents are packed by the branch's own outputs, which may
        differ between branches); where it raises, the error stands only if that
        branch's guards hold.
        """
        retrace = self.retrace if retrace is None else retrace
        impl = impl or (lambda b: b)
        first_failure = None
        for key, branch in reversed(list(self._branches.items())):
            try:
                bargs = args if per_branch is None else per_branch(branch)
            except (RuntimeError, ValueError, TypeError):
                status, vals = impl(branch).forward(x)[:2]
                if status < 0:
                    raise              # the branch that applies rejects them
                bargs = None
            if bargs is not None:
                result = getattr(impl(branch), method)(x, *bargs)
                status, vals = result[0], result[1]
                if status < 0:
                    self._branches.move_to_end(key)
                    return branch, result[2:]
            if first_failure is None:
                first_failure = branch.describe_failure(status, vals)
        if not retrace:
            raise BranchChanged(first_failure)
        if self.func is None:
            raise BranchChanged(first_failure + " (this tape was loaded from a file, so it cannot "
                                "record new branches)")
        branch = self._record_branch(inputs() if callable(inputs) else inputs)
        result = getattr(impl(branch), method)(x, *(args if per_branch is None else per_branch(branch)))
        if result[0] >= 0:      # pragma: no cover - a fresh recording holds its own guards
            raise BranchChanged(branch.describe_failure(result[0], result[1]))
        return branch, result[2:]

    def _record_branch(self, inputs):
        _, inputs = as_input_tuple(inputs if self.is_inputs_tuple else inputs, "record")
        branch, _ = _record_branch(self.func, inputs)
        self._branches[id(branch)] = branch
        while len(self._branches) > MAX_BRANCHES:
            self._branches.popitem(last=False)
        return branch

    # ----------------------------------------------------------------------- public replays
    def __call__(self, inputs, retrace=None, to_host=True):
        """Replay the function: its outputs for new input values."""
        api = self._on_device(to_host)
        if api:
            return api.call(self, inputs, retrace, to_host)
        x = self._pack(inputs, "the tape")
        branch, (out,) = self._run("forward", x, inputs=inputs, retrace=retrace)
        return self._unpack_outputs(branch, out)

    def vjp(self, inputs, v=None, retrace=None, to_host=True):
        """``(outputs, v^T J)`` like :func:`numbad.vjp`, from one njit replay.

        On a CUDA tape (:meth:`to`) ``to_host=False`` returns device arrays.
        """
        api = self._on_device(to_host)
        if api:
            return api.vjp(self, inputs, v, retrace, to_host)
        x = self._pack(inputs, "tape.vjp")
        branch, (out, grad) = self._run("vjp", x, inputs=inputs, retrace=retrace,
                                        per_branch=lambda b: (self._pack_v(b, v, "vjp"),))
        return self._unpack_outputs(branch, out), self._unpack_inputs(grad)

    def jvp(self, inputs, v=None, retrace=None, to_host=True):
        """``(outputs, J v)`` like :func:`numbad.jvp`, by the njit tangent sweep."""
        api = self._on_device(to_host)
        if api:
            return api.jvp(self, inputs, v, retrace, to_host)
        x = self._pack(inputs, "tape.jvp")
        t = np.concatenate(self._tangents(v))
        branch, (out, jv) = self._run("jvp", x, t, inputs=inputs, retrace=retrace)
        outs = self._unpack_outputs(branch, out)
        return outs, self._unpack_outputs(branch, jv, tangents=True)

    def _tangents(self, v):
        """Host tangents by PyTorch's rules for ``v``: one flat array per input, the tape's dtype."""
        if v is None:
            if len(self.in_shapes) != 1 or int(math.prod(self.in_shapes[0])) != 1:
                raise RuntimeError("The vector v can only be None if the input to the user-provided "
                                   "function is a single Tensor with a single element.")
            return [np.ones(1, self._dtype())]
        dummies = tuple(np.empty(s, d) for s, d in zip(self.in_shapes, self.in_dtypes))
        v = validate_v(as_v_tuple(v, "jvp"), dummies, self.is_inputs_tuple)
        return [np.ascontiguousarray(np.ravel(vi), self._dtype()) for vi in v]

    def jacobian(self, inputs, retrace=None):
        """The Jacobian with PyTorch's nesting: ``J[i][j]`` has shape ``out_i.shape + in_j.shape``.

        One replay sweeps blocks of up to 256 cotangents (or tangents, when the
        inputs are fewer than the outputs) at once.
        """
        api = self._on_device(True)
        if api:
            return api.jacobian(self, inputs, retrace)
        x = self._pack(inputs, "tape.jacobian")
        branch, _ = self._run("forward", x, inputs=inputs, retrace=retrace)
        n_in, n_out = branch.in_total(), branch.out_total()
        dtype = self._dtype()
        J = np.zeros((n_out, n_in), dtype)
        if n_out <= n_in:
            for lo in range(0, n_out, MAX_LANES):
                L = min(MAX_LANES, n_out - lo)
                v = np.zeros((n_out, L), dtype)
                v[lo + np.arange(L), np.arange(L)] = 1.0
                status, vals, _, grad = branch.vjp(x, v.ravel(), L)
                J[lo:lo + L] = grad.reshape(n_in, L).T
        else:
            for lo in range(0, n_in, MAX_LANES):
                L = min(MAX_LANES, n_in - lo)
                t = np.zeros((n_in, L), dtype)
                t[lo + np.arange(L), np.arange(L)] = 1.0
                status, vals, _, jv = branch.jvp(x, t.ravel(), L)
                J[:, lo:lo + L] = jv.reshape(n_out, L)
        return self._split_jacobian(branch, J)

    def _split_jacobian(self, branch, J):
        rows, pos = [], 0
        for node, shape, dt, const in branch.out_spec:
            n = int(math.prod(shape))
            block = J[pos:pos + n] if node is not None else np.zeros((n, J.shape[1]), J.dtype)
            pos += n if node is not None else 0
            cols, cpos = [], 0
            for ishape, idt in zip(self.in_shapes, self.in_dtypes):
                m = int(math.prod(ishape))
                cols.append(block[:, cpos:cpos + m].reshape(shape + ishape).astype(idt))
                cpos += m
            rows.append(postprocess(cols, self.is_inputs_tuple))
        return postprocess(rows, self.is_outputs_tuple)

    def batch_vjp(self, inputs, v=None, retrace=None, device=None, to_host=True):
        """``vjp`` for every sample of a leading batch axis, replayed in parallel.

        Every input and every cotangent carries the batch axis first; the result
        equals a loop of ``tape.vjp`` calls. ``device="cuda"`` (or a tape moved
        with :meth:`to`) runs one GPU thread per sample.
        """
        api = self._batch_device(device, to_host)
        if api:
            return api.batch(self, "vjp", inputs, v, retrace, to_host)
        B = self._batch_size(inputs)
        X = self._pack(inputs, "tape.batch_vjp", batch=B)
        branch, V = self._batch_branch(v, B)
        out = np.empty((B, branch.out_total()), X.dtype)
        grad = np.empty((B, branch.in_total()), X.dtype)
        status = np.empty(B, np.int64)
        _ensemble(branch, "batch_vjp", "vjp", (X, V, out, grad, status), B)
        outs, grads = self._unpack_outputs(branch, out, B), self._unpack_inputs(grad, B)
        self._redo_failed(status, branch, inputs, v, retrace, "vjp", outs, grads)
        return outs, grads

    def batch_jvp(self, inputs, v, retrace=None, device=None, to_host=True):
        """``jvp`` for every sample of a leading batch axis, replayed in parallel (see :meth:`batch_vjp`)."""
        api = self._batch_device(device, to_host)
        if api:
            return api.batch(self, "jvp", inputs, v, retrace, to_host)
        B = self._batch_size(inputs)
        X = self._pack(inputs, "tape.batch_jvp", batch=B)
        T = self._pack(v, "the tangents of tape.batch_jvp", batch=B)
        branch = self.branches[0]
        out = np.empty((B, branch.out_total()), X.dtype)
        jv = np.empty((B, branch.out_total()), X.dtype)
        status = np.empty(B, np.int64)
        _ensemble(branch, "batch_jvp", "jvp", (X, T, out, jv, status), B)
        outs, jvs = self._unpack_outputs(branch, out, B), self._unpack_outputs(branch, jv, B, tangents=True)
        self._redo_failed(status, branch, inputs, v, retrace, "jvp", outs, jvs)
        return outs, jvs

    def _batch_device(self, device, to_host):
        if device is None:
            return self._on_device(to_host)
        from .cuda import check_device
        return self.to(check_device(device))._on_device(to_host)

    def _batch_size(self, inputs):
        first = inputs[0] if self.is_inputs_tuple and isinstance(inputs, tuple) else inputs
        if not isinstance(first, np.ndarray) or first.ndim != len(self.in_shapes[0]) + 1:
            raise ValueError(f"batched inputs need a leading batch axis: input 0 should have shape "
                             f"(batch,) + {self.in_shapes[0]}")
        return first.shape[0]

    def _batch_branch(self, v, B):
        """The branch a batch of cotangents ``v`` runs on first, and ``v`` packed for it: the most
        recently used branch whose outputs ``v`` fits (branches may differ in output shapes)."""
        error = None
        for branch in self.branches:
            try:
                return branch, self._pack_batch_v(branch, v, B)
            except RuntimeError as e:
                error = error or e
        raise error

    def _pack_batch_v(self, branch, v, B):
        specs = [s for s in branch.out_spec]
        if v is None:
            if len(specs) != 1 or int(math.prod(specs[0][1])) != 1:
                raise RuntimeError("The vector v can only be None if the user-provided function returns "
                                   "a single Tensor with a single element.")
            return np.ones((B, 1), self._dtype())
        items = v if self.is_outputs_tuple else (v,)
        if len(items) != len(specs):
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(specs)} but got {len(items)}.")
        parts = []
        for i, (vi, s) in enumerate(zip(items, specs)):
            vi = np.asarray(vi)
            if vi.shape != (B,) + tuple(s[1]):
                raise RuntimeError(f"Entry {i} in v has invalid size: should be {(B,) + tuple(s[1])} "
                                   f"but got {vi.shape}.")
            if s[0] is not None:
                parts.append(vi.reshape(B, int(math.prod(s[1]))))
        return np.ascontiguousarray(np.concatenate(parts, axis=1), self._dtype())

    def _redo_failed(self, status, branch, inputs, v, retrace, method, outs, res):
        """Samples whose guards failed: replay them one by one (other branches, or retrace).

        ``outs`` and ``res`` are the batch's unpacked results (arrays with the batch axis
        first, or tuples of them), written in place for those samples. Another branch
        may hold other outputs constant; outputs of other shapes cannot join the batch.
        """
        failed = np.flatnonzero(status >= 0)
        if failed.size == 0:
            return
        retrace = self.retrace if retrace is None else retrace
        if not retrace and len(self._branches) == 1:
            b = int(failed[0])
            sample = self._sample(inputs, b)
            _, vals = branch.forward(self._pack(sample, "tape"))[:2]
            raise BranchChanged(f"sample {b} of the batch: " + branch.describe_failure(int(status[b]), vals))
        for b in failed.tolist():
            sample = self._sample(inputs, b)
            x = self._pack(sample, "tape")
            if method == "vjp":
                vb = None if v is None else (tuple(np.asarray(vi)[b] for vi in v)
                                             if self.is_outputs_tuple else np.asarray(v)[b])
                try:
                    other, (o, g) = self._run("vjp", x, inputs=sample, retrace=retrace,
                                              per_branch=lambda br: (self._pack_v(br, vb, "batch_vjp"),))
                except BranchChanged:
                    raise
                except RuntimeError as e:      # its cotangent does not fit the branch it takes
                    raise BranchChanged(f"sample {b} of the batch took a branch with other output "
                                        f"shapes: {e}") from None
                g, res_tuple = self._unpack_inputs(g), self.is_inputs_tuple
            else:
                tb = tuple(np.asarray(vi)[b] for vi in v) if self.is_inputs_tuple else np.asarray(v)[b]
                t = self._pack(tb, "the tangents of tape.batch_jvp")
                other, (o, g) = self._run("jvp", x, t, inputs=sample, retrace=retrace)
                g, res_tuple = self._unpack_outputs(other, g, tangents=True), self.is_outputs_tuple
            _put_sample(outs, self._unpack_outputs(other, o), b, self.is_outputs_tuple)
            _put_sample(res, g, b, res_tuple)

    def _sample(self, inputs, b):
        if self.is_inputs_tuple:
            return tuple(np.ascontiguousarray(x[b]) for x in inputs)
        return np.ascontiguousarray(inputs[b])

    # ----------------------------------------------------------------------- inspection
    def summary(self):
        """A text summary: inputs, outputs, per branch the op counts by kind, arena size, guards."""
        lines = []
        ins = ", ".join(f"{d}{s}" for s, d in zip(self.in_shapes, self.in_dtypes))
        b0 = self.branches[0]
        outs = ", ".join(f"{s[2]}{s[1]}" + ("" if s[0] is not None else " constant") for s in b0.out_spec)
        lines.append(f"numbad.Tape: ({ins}) -> ({outs}); {len(self._branches)} branch(es)")
        for i, b in enumerate(self.branches):
            counts = collections.Counter(BY_CODE[c].name for c in b.ops[:, 0].tolist())
            nbytes = b.template.nbytes
            lines.append(f"  branch {i}: {b.ops.shape[0]} ops, {b.node_off.shape[0]} nodes, arena "
                         f"{b.arena_size} {b.template.dtype} values ({nbytes / 1024:.1f} KiB), "
                         f"{b.g_op.shape[0]} guards")
            lines.append("    ops by kind: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
            for gi in range(b.g_op.shape[0]):
                kind = "truth" if b.g_kind[gi] == 0 else "value"
                e0 = b.g_off[gi]
                n = b.node_size[b.g_node[gi]]
                exp = bool(b.g_expected[e0]) if kind == "truth" else b.g_expected[e0:e0 + n].tolist()
                lines.append(f"    guard {gi}: {kind} of node {b.g_node[gi]} after op {b.g_op[gi]} "
                             f"== {exp} ({b.sites[gi]})")
        lines.append("  layout (struct of arrays): ops (n_ops, 6) int64 = opcode, out, a, b, c, iattr; "
                     "node_off, node_size (n_nodes,) int64; ip (integer attributes) int64; "
                     "template (arena) " + str(b0.template.dtype))
        return "\n".join(lines)

    def __repr__(self):
        b = self.branches[0]
        on = "" if self.device == "cpu" else f", on {self.device}"
        return (f"<numbad.Tape: {b.ops.shape[0]} ops, {len(self.in_shapes)} inputs, "
                f"{len(self._branches)} branch(es), {b.g_op.shape[0]} guards{on}>")

    # ----------------------------------------------------------------------- persistence
    def _to_arrays(self):
        d = {"format_version": np.array(FORMAT_VERSION, np.int64),
             "n_branches": np.array(len(self._branches), np.int64),
             "in_ndim": np.array([len(s) for s in self.in_shapes], np.int64),
             "in_dims": np.array([x for s in self.in_shapes for x in s], np.int64),
             "in_dtype": np.array([d.str for d in self.in_dtypes]),
             "tuples": np.array([self.is_inputs_tuple, self.is_outputs_tuple], np.int64)}
        for i, b in enumerate(self.branches):
            d.update(b.to_arrays(f"b{i}_"))
        d["digest"] = np.array(_digest(d))
        return d

    @classmethod
    def _from_arrays(cls, d):
        get = _Reader(d, "")
        if "digest" in d:         # (files written before the digest was added have none)
            digest = get.strings("digest")
            if digest.shape != () or str(digest) != _digest(d):
                raise ValueError("its contents do not match the digest saved with them (a damaged "
                                 "or edited file)")
        version = get.ints("format_version")
        if version.shape != () or int(version) != FORMAT_VERSION:
            raise ValueError(f"format version {version!r} is not {FORMAT_VERSION}")
        nb = get.ints("n_branches")
        if nb.shape != () or not 1 <= int(nb) <= MAX_BRANCHES:
            raise ValueError("the number of branches is invalid")
        in_shapes = _split_shapes(get.ints("in_ndim"), get.ints("in_dims"), "input shapes")
        in_dtypes = [np.dtype(s) for s in get.strings("in_dtype").tolist()]
        tuples = get.ints("tuples")
        if len(in_dtypes) != len(in_shapes) or tuples.shape != (2,) or \
                any(dt not in FLOAT_DTYPES for dt in in_dtypes):
            raise ValueError("the input descriptions are invalid")
        branches = [Branch.from_arrays(d, f"b{i}_") for i in range(int(nb))]
        for b in branches:
            if [tuple(b.node_shape[n]) for n in b.in_nodes.tolist()] != in_shapes:
                raise ValueError("a branch's input nodes do not have the input shapes")
            if b.template.dtype != branches[0].template.dtype:
                raise ValueError("the branches disagree on the arena dtype")
        return cls(list(reversed(branches)), in_shapes, in_dtypes, bool(tuples[0]), bool(tuples[1]))

    def save(self, path):
        """Write the tape to ``path`` as numpy ``.npz`` (plain arrays, no pickled objects); like
        ``np.savez``, a file name without the ``.npz`` suffix gets it."""
        np.savez(path, **self._to_arrays())

    @classmethod
    def load(cls, path):
        """Read a tape saved by :meth:`save`; the file is validated before any sweep can touch it.

        Every array is checked (opcodes, node ranges, index maps, guards), and the
        SHA-256 digest that :meth:`save` stores must match the contents: an edit that
        leaves a well-formed tape (a cut-off op, a changed constant) is refused too.
        Files without a digest (from numbad before it) are validated only.

        As with :meth:`save` (numpy's ``savez``), a path without the ``.npz`` suffix
        names the file with it when no file has that very name."""
        if isinstance(path, (str, os.PathLike)) and not os.path.exists(path) \
                and not os.fspath(path).endswith(".npz") and os.path.exists(os.fspath(path) + ".npz"):
            path = os.fspath(path) + ".npz"
        try:
            with np.load(path, allow_pickle=False) as f:
                d = {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
            raise ValueError(f"numbad: {os.fspath(path) if not isinstance(path, io.IOBase) else 'the file'}"
                             f" is not a readable tape file ({e})") from None
        try:
            return cls._from_arrays(d)
        except ValueError as e:
            raise ValueError(f"numbad: {path} is not a valid tape: {e}") from None

    def __getstate__(self):
        return self._to_arrays()

    def __setstate__(self, d):
        try:
            other = self._from_arrays(d)
        except ValueError as e:
            raise ValueError(f"numbad: not a valid tape: {e}") from None
        self.__dict__.update(other.__dict__)


def _put_sample(batch, sample, b, is_tuple):
    """Write one sample's results (an array or a tuple of them) at index ``b`` of the batch's."""
    for i, (whole, one) in enumerate(zip(batch if is_tuple else (batch,), sample if is_tuple else (sample,))):
        if whole.shape[1:] != np.shape(one):
            raise BranchChanged(f"sample {b} of the batch took a branch whose result {i} has shape "
                                f"{np.shape(one)}, not {whole.shape[1:]} as the other samples': "
                                "replay it on its own")
        whole[b] = one


# ------------------------------------------------------------------------------- recording
def _record_branch(func, inputs, fn="record"):
    call = Call(inputs, create_graph=False, replayable=True)
    outputs = call.run(func)
    is_outputs_tuple, outputs = as_output_tuple(outputs, fn)
    return Branch.freeze(call.tape, call.input_nodes, outputs), is_outputs_tuple


def record(func, example_inputs, retrace=False, device="cpu"):
    """Run ``func`` once on ``example_inputs`` and return the replayable :class:`Tape`.

    Python control flow is recorded as the branch taken, each value-dependent
    decision as a guard; ``retrace=True`` makes replays record new branches
    instead of raising :class:`BranchChanged`. The recording runs on the CPU;
    ``device="cuda"`` returns the tape moved to the GPU (``tape.to("cuda")``).

    >>> import numpy as np, numbad as nb
    >>> def f(x):
    ...     return np.sum(x ** 2) if x[0] > 0 else np.sum(-x)
    >>> tape = nb.record(f, np.array([1.0, 2.0]))
    >>> tape(np.array([3.0, 1.0]))
    array(10.)
    >>> tape.vjp(np.array([-1.0, 1.0]))
    Traceback (most recent call last):
    ...
    numbad.recorded.BranchChanged: a branch decided by a comparison at ...
    """
    return _record(func, example_inputs, retrace, device, "record")


def _record(func, example_inputs, retrace, device, fn):
    """:func:`record`, its errors naming ``fn`` (``nb.vjp(device="cuda")`` records too)."""
    from .cuda import check_device
    check_device(device)
    is_inputs_tuple, inputs = as_input_tuple(example_inputs, fn)
    branch, is_outputs_tuple = _record_branch(func, inputs, fn)
    shapes = [np.shape(x._v if type(x) is Tensor else x) for x in inputs]
    dtypes = [x.dtype for x in inputs]
    tape = Tape([branch], shapes, dtypes, is_inputs_tuple, is_outputs_tuple, func=func, retrace=retrace)
    return tape.to(device)

