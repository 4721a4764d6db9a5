"""The sweeps over a tape: thin drivers around the generated njit interpreters.

``_generated.py`` (made by ``codegen.py`` from the op registry) holds the
interpreters: ``forward`` (replay values), ``reverse``/``reverse_lanes``
(cotangents, one or ``L`` lanes per element), ``tangent``/``tangent_lanes``
(forward mode) and ``mark_varying`` (which nodes depend on the requested
inputs). The drivers here allocate the adjoint/tangent arena once per sweep
and read results back out; no Python runs per operation.
"""
from __future__ import annotations

import numpy as np

WORKSPACE = 80        # ints: walk counters (up to 64 dims) and BLAS scalars

_G = None


def interpreters():
    """The generated module (imported on first use: importing it loads Numba)."""
    global _G
    if _G is None:
        from . import _generated
        _G = _generated
    return _G


def varying_nodes(tape, input_nodes, begin, end):
    """Boolean mask of nodes that depend on ``input_nodes`` through ops [begin, end)."""
    ops, nodes, ip, _ = tape.arrays()
    varying = np.zeros(nodes.shape[1], np.bool_)
    for n in input_nodes:
        varying[n] = True
    interpreters().mark_varying(ops, ip, varying, begin, end)
    return varying


def reverse(tape, begin, end, input_nodes, seeds, lanes=0):
    """Cotangents of ``input_nodes`` given ``seeds``: ``[(node, cotangent array), ...]``.

    With ``lanes = L > 0`` every seed carries a trailing axis of ``L`` cotangents
    (a block of VJPs in one sweep) and so does every result. Returns one flat
    array per input node (``size`` or ``size * L`` values), or ``None`` where no
    cotangent reached the input.
    """
    ops, nodes, ip, vals = tape.arrays()
    n_nodes = nodes.shape[1]
    off, size = nodes[0], nodes[1]
    L = max(lanes, 1)
    varying = np.zeros(n_nodes, np.bool_)
    for n in input_nodes:
        varying[n] = True
    adj = np.empty(vals.shape[0] * L, vals.dtype)
    adj_set = np.zeros(n_nodes, np.bool_)
    for node, v in seeds:
        lo, hi = off[node] * L, (off[node] + size[node]) * L
        if adj_set[node]:
            adj[lo:hi] += np.ravel(v)
        else:
            adj[lo:hi] = np.ravel(v)
            adj_set[node] = True
    ws = np.zeros(WORKSPACE, np.int64)
    g = interpreters()
    if lanes:
        g.reverse_lanes(ops, nodes, ip, vals, adj, adj_set, varying, begin, end, ws, L)
    else:
        g.reverse(ops, nodes, ip, vals, adj, adj_set, varying, begin, end, ws)
    return [_read(adj, off[n] * L, size[n] * L) if adj_set[n] and varying[n] else None
            for n in input_nodes]


def _read(arena, lo, n):
    """A result out of a sweep arena: a view when it is most of the arena, else a copy
    (so that a small gradient does not keep a large arena alive)."""
    view = arena[lo:lo + n]
    return view if 2 * n >= arena.shape[0] else view.copy()


def tangent(tape, begin, end, input_nodes, tangents, output_nodes, lanes=0):
    """Tangents of ``output_nodes`` given ``tangents`` of ``input_nodes`` (forward mode).

    Returns one flat array per output node, or ``None`` for outputs that do not
    depend on the inputs.
    """
    ops, nodes, ip, vals = tape.arrays()
    off, size = nodes[0], nodes[1]
    L = max(lanes, 1)
    varying = np.zeros(nodes.shape[1], np.bool_)
    tan = np.empty(vals.shape[0] * L, vals.dtype)
    for node, t in zip(input_nodes, tangents):
        varying[node] = True
        tan[off[node] * L:(off[node] + size[node]) * L] = np.ravel(t)
    ws = np.zeros(WORKSPACE, np.int64)
    g = interpreters()
    if lanes:
        g.tangent_lanes(ops, nodes, ip, vals, tan, varying, begin, end, ws, L)
    else:
        g.tangent(ops, nodes, ip, vals, tan, varying, begin, end, ws)
    return [_read(tan, off[n] * L, size[n] * L) if varying[n] else None for n in output_nodes]
