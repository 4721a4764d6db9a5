"""The sweeps over a tape: thin drivers around the generated njit interpreters.

``_generated.py`` (made by ``codegen.py`` from the op registry) holds the
interpreters: ``forward`` (replay values), ``reverse``/``reverse_lanes``
(cotangents, one or ``L`` lanes per element), ``tangent``/``tangent_lanes``
(forward mode) and ``mark_varying`` (which nodes depend on the requested
inputs). The drivers here allocate the adjoint/tangent arena once per sweep
and read results back out; no Python runs per operation.
"""
from __future__ import annotations

import importlib.util
import os
import py_compile
import sys
import threading

import numpy as np

from .. import buffers

WORKSPACE = 80        # ints: walk counters (up to 64 dims) and BLAS scalars

_G = None
_local = threading.local()


def interpreters():
    """The generated module (imported on first use: importing it loads Numba)."""
    global _G
    if _G is None:
        from . import _generated
        _G = _generated
        _keep_bytecode(_generated)
    return _G


def _keep_bytecode(module):
    """Write ``module``'s byte code where Python would, even under PYTHONDONTWRITEBYTECODE.

    Compiling the generated module's source (12,000 lines) takes 0.1 s, a
    fifth of a fresh process's first call; its compiled interpreters are
    cached beside it by Numba in any case. Unwritable folders are left alone.
    """
    if not sys.dont_write_bytecode:
        return
    source = module.__file__
    cached = importlib.util.cache_from_source(source)
    try:
        if os.path.getmtime(cached) >= os.path.getmtime(source):
            return
    except OSError:
        pass
    py_compile.compile(source, cfile=cached, doraise=False, quiet=2)


def workspace():
    """The calling thread's scratch integers for the kernels (never shared across threads)."""
    try:
        return _local.ws
    except AttributeError:
        _local.ws = np.zeros(WORKSPACE, np.int64)
        return _local.ws


def varying_nodes(tape, input_nodes, begin, end):
    """Boolean mask of nodes that depend on ``input_nodes`` through ops [begin, end)."""
    ops, off, size, ip, _ = tape.arrays()
    varying = np.zeros(off.shape[0], np.bool_)
    for n in input_nodes:
        varying[n] = True
    interpreters().mark_varying(ops, ip, varying, begin, end)
    return varying


def _read(arena, lo, n):
    """A result out of a sweep arena, as a copy: the arena goes back to the buffer cache."""
    return arena[lo:lo + n].copy()


def reverse(tape, begin, end, input_nodes, seeds, lanes=0):
    """Cotangents of ``input_nodes`` given ``seeds``: ``[(node, cotangent array), ...]``.

    With ``lanes = L > 0`` every seed carries a trailing axis of ``L`` cotangents
    (a block of VJPs in one sweep) and so does every result. Returns one flat
    array per input node (``size`` or ``size * L`` values), or ``None`` where no
    cotangent reached the input.
    """
    ops, off, size, ip, vals = tape.arrays()
    n_nodes = off.shape[0]
    L = max(lanes, 1)
    flags = np.zeros(2 * n_nodes, np.bool_)
    varying, adj_set = flags[:n_nodes], flags[n_nodes:]
    for n in input_nodes:
        varying[n] = True
    adj = buffers.take(vals.shape[0] * L, vals.dtype)
    for node, v in seeds:
        lo, hi = off[node] * L, (off[node] + size[node]) * L
        if adj_set[node]:
            adj[lo:hi] += np.ravel(v)
        else:
            adj[lo:hi] = np.ravel(v) if type(v) is np.ndarray else v
            adj_set[node] = True
    g = interpreters()
    if lanes:
        g.reverse_lanes(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, workspace(), L)
    else:
        g.reverse(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, workspace())
    result = [_read(adj, off[n] * L, size[n] * L) if adj_set[n] and varying[n] else None
              for n in input_nodes]
    buffers.give(adj)
    return result


def tangent(tape, begin, end, input_nodes, tangents, output_nodes, lanes=0):
    """Tangents of ``output_nodes`` given ``tangents`` of ``input_nodes`` (forward mode).

    Returns one flat array per output node, or ``None`` for outputs that do not
    depend on the inputs.
    """
    ops, off, size, ip, vals = tape.arrays()
    L = max(lanes, 1)
    varying = np.zeros(off.shape[0], np.bool_)
    tan = buffers.take(vals.shape[0] * L, vals.dtype)
    for node, t in zip(input_nodes, tangents):
        varying[node] = True
        tan[off[node] * L:(off[node] + size[node]) * L] = np.ravel(t)
    g = interpreters()
    if lanes:
        g.tangent_lanes(ops, off, size, ip, vals, tan, varying, begin, end, workspace(), L)
    else:
        g.tangent(ops, off, size, ip, vals, tan, varying, begin, end, workspace())
    result = [_read(tan, off[n] * L, size[n] * L) if varying[n] else None for n in output_nodes]
    buffers.give(tan)
    return result
