"""Replaying a recorded tape: forward with guard checks, then a sweep, in one njit call.

TEMPLATE: ``codegen.py`` appends this file (below the ``# --- body`` line) to
``_generated.py``. These drivers call the generated interpreters, and Numba's
on-disk cache only notices changes to the file a function is defined in, so
they must live in the generated module. Do not import this file.

Inputs, cotangents, outputs and gradients travel packed: one flat array each,
the tape's input (or output) nodes laid end to end. A replay returns ``-1``,
or the index of the first guard whose decision changed (the caller raises
``nb.BranchChanged`` or retraces); values past a failed guard are not used.

``batch_vjp``/``batch_jvp`` replay an ensemble: rows of a leading batch axis
go through the batched interpreters L at a time (every value carries L lanes,
one per sample), without the GIL, so that :mod:`numbad.recorded` can spread
row ranges over threads (``parallel=True`` functions would not be cached).

Integers passed to another njit function here are typed ``int64`` (``ZERO``,
``ONE``, ``start = ZERO``), not as Numba's literal constants: a literal ``0``
(even one that type inference later widens) compiles the callee once more, for
that constant, and the interpreters are minutes of compiling each. Four calls
pass a literal ``0`` on purpose. ``vjp_one``'s reverse sweep and ``jvp_one``'s
tangent sweep, compiled for a tape walked from its first op, replay Lorenz's
14,000 scalar ops 7% faster than the ``int64`` versions that Python calls (worth
compiling those two twice). The batched sweeps are called from here alone, so
``batch_vjp`` and ``batch_jvp`` pass them the literal too: one version either way.
"""
import numpy as np
from .deferred import njit

# --- body
TRUTH, VALUE = 0, 1
_opts = dict(cache=True, nogil=True, error_model="numpy")
ZERO = np.int64(0)
ONE = np.int64(1)


@njit(**_opts)
def guard_holds(vals, node_off, node_size, node, kind, expected, eoff):
    off = node_off[node]
    if kind == TRUTH:
        return (vals[off] != 0.0) == (expected[eoff] != 0.0)
    for i in range(node_size[node]):
        a = vals[off + i]
        b = expected[eoff + i]
        if not (a == b or (a != a and b != b)):     # NaN read as NaN is the same value
            return False
    return True


@njit(**_opts)
def forward_guarded(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off, g_expected, ws):
    """Replay every op, checking each guard once the ops before it have run."""
    start = ZERO
    for gi in range(g_op.shape[0]):
        stop = g_op[gi]
        if stop > start:
            forward(ops, node_off, node_size, ip, vals, start, stop, ws)
            start = stop
        if not guard_holds(vals, node_off, node_size, g_node[gi], g_kind[gi], g_expected, g_off[gi]):
            return gi
    if ops.shape[0] > start:
        forward(ops, node_off, node_size, ip, vals, start, ops.shape[0], ws)
    return -1


@njit(**_opts)
def _fill(vals, template, fill):
    """``vals`` <- ``template`` on the runs ``fill`` (``[start, stop)`` pairs): the tape's
    constants. Every other value is an input, loaded next, or an op's result, which the forward
    replay writes in full (the CUDA replays rely on it too), so a replay of a large tape does
    not copy its whole arena first (10 ms of a 10^7-value arena on a Xeon)."""
    for k in range(0, fill.shape[0], 2):
        for i in range(fill[k], fill[k + 1]):
            vals[i] = template[i]


@njit(**_opts)
def _load(vals, node_off, node_size, nodes, flat):
    p = 0
    for k in range(nodes.shape[0]):
        o = node_off[nodes[k]]
        for i in range(node_size[nodes[k]]):
            vals[o + i] = flat[p]
            p += 1


@njit(**_opts)
def _store(buf, node_off, node_size, nodes, flat, L, present):
    """flat <- buf at ``nodes`` (L lanes per element); zeros where ``present`` is False."""
    p = 0
    for k in range(nodes.shape[0]):
        nd = nodes[k]
        o = node_off[nd] * L
        m = node_size[nd] * L
        if present[nd]:
            for i in range(m):
                flat[p + i] = buf[o + i]
        else:
            for i in range(m):
                flat[p + i] = 0.0
        p += m


@njit(**_opts)
def _outputs(vals, node_off, node_size, out_nodes, out_flat):
    p = 0
    for k in range(out_nodes.shape[0]):
        o = node_off[out_nodes[k]]
        for i in range(node_size[out_nodes[k]]):
            out_flat[p] = vals[o + i]
            p += 1


@njit(**_opts)
def _replay_and_seed(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                     g_op, g_node, g_kind, g_off, g_expected, x, v, L, vals, adj, flags, ws, out_flat):
    """Forward replay, then seed the cotangents ``v`` (L lanes) of the outputs."""
    _fill(vals, template, fill)
    _load(vals, node_off, node_size, in_nodes, x)
    failed = forward_guarded(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off,
                             g_expected, ws)
    if failed >= 0:
        return failed
    _outputs(vals, node_off, node_size, out_nodes, out_flat)
    n = node_off.shape[0]
    flags[:] = False
    for k in range(in_nodes.shape[0]):
        flags[in_nodes[k]] = True            # flags[:n] are the varying marks
    p = 0
    for k in range(out_nodes.shape[0]):
        nd = out_nodes[k]
        o = node_off[nd] * L
        m = node_size[nd] * L
        if flags[n + nd]:                     # flags[n:] are the adjoint-set marks
            for i in range(m):
                adj[o + i] += v[p + i]
        else:
            for i in range(m):
                adj[o + i] = v[p + i]
            flags[n + nd] = True
        p += m
    return -1


@njit(**_opts)
def _gradients(node_off, node_size, in_nodes, adj, flags, L, grad_flat):
    n = node_off.shape[0]
    for k in range(in_nodes.shape[0]):       # an input no cotangent reached has a zero gradient
        if not flags[in_nodes[k]]:
            flags[n + in_nodes[k]] = False
    _store(adj, node_off, node_size, in_nodes, grad_flat, L, flags[n:])


@njit(**_opts)
def vjp_one(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
            g_op, g_node, g_kind, g_off, g_expected,
            x, v, vals, adj, flags, ws, out_flat, grad_flat):
    """Forward replay from packed inputs ``x``, then the reverse sweep seeded with packed ``v``."""
    failed = _replay_and_seed(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes, g_op,
                              g_node, g_kind, g_off, g_expected, x, v, ONE, vals, adj, flags, ws, out_flat)
    if failed >= 0:
        return failed
    n = node_off.shape[0]
    reverse(ops, node_off, node_size, ip, vals, adj, flags[n:], flags[:n], 0, ops.shape[0], ws)   # (literal: see top)
    _gradients(node_off, node_size, in_nodes, adj, flags, ONE, grad_flat)
    return -1


@njit(**_opts)
def vjp_lanes(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
              g_op, g_node, g_kind, g_off, g_expected,
              x, v, L, vals, adj, flags, ws, out_flat, grad_flat):
    """``vjp_one`` with ``L`` cotangents per output element (lanes last): a block of VJPs."""
    failed = _replay_and_seed(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes, g_op,
                              g_node, g_kind, g_off, g_expected, x, v, L, vals, adj, flags, ws, out_flat)
    if failed >= 0:
        return failed
    n = node_off.shape[0]
    reverse_lanes(ops, node_off, node_size, ip, vals, adj, flags[n:], flags[:n], ZERO, ops.shape[0], ws, L)
    _gradients(node_off, node_size, in_nodes, adj, flags, L, grad_flat)
    return -1


@njit(**_opts)
def _replay_and_load_tangents(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                              g_op, g_node, g_kind, g_off, g_expected, x, t, L, vals, tan, varying,
                              ws, out_flat):
    _fill(vals, template, fill)
    _load(vals, node_off, node_size, in_nodes, x)
    failed = forward_guarded(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off,
                             g_expected, ws)
    if failed >= 0:
        return failed
    _outputs(vals, node_off, node_size, out_nodes, out_flat)
    varying[:] = False
    p = 0
    for k in range(in_nodes.shape[0]):
        nd = in_nodes[k]
        varying[nd] = True
        o = node_off[nd] * L
        for i in range(node_size[nd] * L):
            tan[o + i] = t[p + i]
        p += node_size[nd] * L
    return -1


@njit(**_opts)
def jvp_one(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
            g_op, g_node, g_kind, g_off, g_expected,
            x, t, vals, tan, varying, ws, out_flat, tan_flat):
    """Forward replay from packed inputs ``x``, then the tangent sweep from packed tangents ``t``."""
    failed = _replay_and_load_tangents(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                                       g_op, g_node, g_kind, g_off, g_expected, x, t, ONE, vals, tan,
                                       varying, ws, out_flat)
    if failed >= 0:
        return failed
    tangent(ops, node_off, node_size, ip, vals, tan, varying, 0, ops.shape[0], ws)   # (literal: see top)
    _store(tan, node_off, node_size, out_nodes, tan_flat, ONE, varying)
    return -1


@njit(**_opts)
def jvp_lanes(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
              g_op, g_node, g_kind, g_off, g_expected,
              x, t, L, vals, tan, varying, ws, out_flat, tan_flat):
    """``jvp_one`` with ``L`` tangents per input element (lanes last)."""
    failed = _replay_and_load_tangents(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                                       g_op, g_node, g_kind, g_off, g_expected, x, t, L, vals, tan,
                                       varying, ws, out_flat)
    if failed >= 0:
        return failed
    tangent_lanes(ops, node_off, node_size, ip, vals, tan, varying, ZERO, ops.shape[0], ws, L)
    _store(tan, node_off, node_size, out_nodes, tan_flat, L, varying)
    return -1


@njit(**_opts)
def forward_one(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                g_op, g_node, g_kind, g_off, g_expected, x, vals, ws, out_flat):
    _fill(vals, template, fill)
    _load(vals, node_off, node_size, in_nodes, x)
    failed = forward_guarded(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off,
                             g_expected, ws)
    if failed >= 0:
        return failed
    _outputs(vals, node_off, node_size, out_nodes, out_flat)
    return -1


# ------------------------------------------------------------------------ ensembles (batched values)
@njit(**_opts)
def _fill_lanes(vals, template, fill, L):
    """:func:`_fill`, each value on ``L`` lanes."""
    for k in range(0, fill.shape[0], 2):
        for i in range(fill[k], fill[k + 1]):
            t = template[i]
            for j in range(L):
                vals[i * L + j] = t


@njit(**_opts)
def _to_lanes(buf, node_off, node_size, nodes, X, c, L):
    """Lane j of ``nodes`` in ``buf`` <- row c + j of ``X`` (packed per sample)."""
    p = 0
    for k in range(nodes.shape[0]):
        o = node_off[nodes[k]]
        for i in range(node_size[nodes[k]]):
            for j in range(L):
                buf[(o + i) * L + j] = X[c + j, p]
            p += 1


@njit(**_opts)
def _from_lanes(buf, node_off, node_size, nodes, present, Y, c, L):
    """Row c + j of ``Y`` <- lane j of ``nodes`` in ``buf`` (zeros where not ``present``)."""
    p = 0
    for k in range(nodes.shape[0]):
        nd = nodes[k]
        o = node_off[nd]
        for i in range(node_size[nd]):
            for j in range(L):
                Y[c + j, p] = buf[(o + i) * L + j] if present[nd] else 0.0
            p += 1


@njit(**_opts)
def _forward_guarded_lanes(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off,
                           g_expected, ws, L, status, c):
    """``forward_guarded`` over L samples; a sample whose guard fails gets its index in ``status``."""
    start = ZERO
    for gi in range(g_op.shape[0]):
        stop = g_op[gi]
        if stop > start:
            forward_batch(ops, node_off, node_size, ip, vals, start, stop, ws, L)
            start = stop
        off = node_off[g_node[gi]]
        e0 = g_off[gi]
        for j in range(L):
            if status[c + j] >= 0:
                continue
            if g_kind[gi] == TRUTH:
                ok = (vals[off * L + j] != 0.0) == (g_expected[e0] != 0.0)
            else:
                ok = True
                for i in range(node_size[g_node[gi]]):
                    a = vals[(off + i) * L + j]
                    b = g_expected[e0 + i]
                    if not (a == b or (a != a and b != b)):
                        ok = False
            if not ok:
                status[c + j] = gi
    if ops.shape[0] > start:
        forward_batch(ops, node_off, node_size, ip, vals, start, ops.shape[0], ws, L)


@njit(**_opts)
def batch_vjp(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
              g_op, g_node, g_kind, g_off, g_expected, X, V, OUT, GRAD, status, lo, hi, L):
    """``vjp_one`` for rows [lo, hi) of ``X``/``V``, L samples per pass over the tape.

    ``status[b]`` is -1, or the first guard sample b fails (its results are then
    meaningless). Releases the GIL: the caller runs row ranges on several threads.
    """
    m = template.shape[0]
    n = node_off.shape[0]
    vals = np.empty(m * L, template.dtype)
    adj = np.empty(m * L, template.dtype)
    flags = np.zeros(2 * n, np.bool_)
    ws = np.zeros(WORKSPACE, np.int64)
    for c in range(lo, hi, L):
        Lc = min(L, hi - c)
        for j in range(Lc):
            status[c + j] = -1
        _fill_lanes(vals, template, fill, Lc)
        _to_lanes(vals, node_off, node_size, in_nodes, X, c, Lc)
        _forward_guarded_lanes(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off,
                               g_expected, ws, Lc, status, c)
        flags[:] = True
        _from_lanes(vals, node_off, node_size, out_nodes, flags, OUT, c, Lc)
        flags[:] = False
        for k in range(in_nodes.shape[0]):
            flags[in_nodes[k]] = True
        p = 0
        for k in range(out_nodes.shape[0]):
            nd = out_nodes[k]
            o = node_off[nd]
            for i in range(node_size[nd]):
                for j in range(Lc):
                    q = (o + i) * Lc + j
                    adj[q] = (adj[q] if flags[n + nd] else 0.0) + V[c + j, p]
                p += 1
            flags[n + nd] = True
        reverse_batch(ops, node_off, node_size, ip, vals, adj, flags[n:], flags[:n], 0, ops.shape[0], ws, Lc)
        for k in range(in_nodes.shape[0]):
            if not flags[in_nodes[k]]:
                flags[n + in_nodes[k]] = False
        _from_lanes(adj, node_off, node_size, in_nodes, flags[n:], GRAD, c, Lc)


@njit(**_opts)
def batch_jvp(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
              g_op, g_node, g_kind, g_off, g_expected, X, T, OUT, TAN, status, lo, hi, L):
    """``jvp_one`` for rows [lo, hi) of ``X``/``T``, L samples per pass (GIL released)."""
    m = template.shape[0]
    n = node_off.shape[0]
    vals = np.empty(m * L, template.dtype)
    tan = np.empty(m * L, template.dtype)
    varying = np.zeros(n, np.bool_)
    ws = np.zeros(WORKSPACE, np.int64)
    for c in range(lo, hi, L):
        Lc = min(L, hi - c)
        for j in range(Lc):
            status[c + j] = -1
        _fill_lanes(vals, template, fill, Lc)
        _to_lanes(vals, node_off, node_size, in_nodes, X, c, Lc)
        _forward_guarded_lanes(ops, node_off, node_size, ip, vals, g_op, g_node, g_kind, g_off,
                               g_expected, ws, Lc, status, c)
        varying[:] = True
        _from_lanes(vals, node_off, node_size, out_nodes, varying, OUT, c, Lc)
        varying[:] = False
        for k in range(in_nodes.shape[0]):
            varying[in_nodes[k]] = True
        _to_lanes(tan, node_off, node_size, in_nodes, T, c, Lc)
        tangent_batch(ops, node_off, node_size, ip, vals, tan, varying, 0, ops.shape[0], ws, Lc)
        _from_lanes(tan, node_off, node_size, out_nodes, varying, TAN, c, Lc)


@njit(**_opts)
def batch_vjp_rows(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                   g_op, g_node, g_kind, g_off, g_expected, X, V, OUT, GRAD, status, lo, hi):
    """``vjp_one`` for rows [lo, hi), one sample at a time (tapes the batched interpreters
    do not cover)."""
    vals = np.empty(template.shape[0], template.dtype)
    adj = np.empty(template.shape[0], template.dtype)
    flags = np.zeros(2 * node_off.shape[0], np.bool_)
    ws = np.zeros(WORKSPACE, np.int64)
    for b in range(lo, hi):
        status[b] = vjp_one(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                            g_op, g_node, g_kind, g_off, g_expected, X[b], V[b],
                            vals, adj, flags, ws, OUT[b], GRAD[b])


@njit(**_opts)
def batch_jvp_rows(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                   g_op, g_node, g_kind, g_off, g_expected, X, T, OUT, TAN, status, lo, hi):
    """``jvp_one`` for rows [lo, hi), one sample at a time."""
    vals = np.empty(template.shape[0], template.dtype)
    tan = np.empty(template.shape[0], template.dtype)
    varying = np.zeros(node_off.shape[0], np.bool_)
    ws = np.zeros(WORKSPACE, np.int64)
    for b in range(lo, hi):
        status[b] = jvp_one(ops, node_off, node_size, ip, template, fill, in_nodes, out_nodes,
                            g_op, g_node, g_kind, g_off, g_expected, X[b], T[b],
                            vals, tan, varying, ws, OUT[b], TAN[b])
