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

#: Per-thread scratch of the kernels, int64: [0, 64) walk counters (up to 64 dims), [64, 320)
#: the pairwise-summation stack (``kernels._sum_run``), the last 10 BLAS arguments
#: (``kernels.gemm``).
WORKSPACE = 330

_G = None
_local = threading.local()


def interpreters():
    """The generated module (imported on first use: importing it loads Numba)."""
    global _G
    if _G is None:
        from . import _generated
        _keep_bytecode()
        _load_caches_lightly(_generated)
        _G = _generated
    return _G


def _keep_bytecode(sources=None):
    """Write numbad's byte code where Python would, even under PYTHONDONTWRITEBYTECODE.

    An editable install ships no ``.pyc`` files, and with that variable set
    Python compiles every numbad module from source in every process (the
    generated module's 17,000 lines alone take 0.1 s, a fifth of a fresh
    process's first call). ``sources``: the ``.py`` files; by default those of
    the numbad modules imported so far (a later process that imports more
    writes theirs: globbing the whole package would cost 0.01 s). Unwritable
    folders are left alone.
    """
    if not sys.dont_write_bytecode:
        return
    if sources is None:
        sources = [m.__file__ for name, m in list(sys.modules.items())
                   if (name == "numbad" or name.startswith("numbad.")) and getattr(m, "__file__", None)]
    for source in sources:
        cached = importlib.util.cache_from_source(source)
        try:
            if os.path.getmtime(cached) >= os.path.getmtime(source):
                continue
        except OSError:
            pass
        py_compile.compile(source, cfile=cached, doraise=False, quiet=2)


def _load_caches_lightly(module):
    """Let ``module``'s njit functions load from Numba's cache without a full context refresh.

    Before each cache load Numba refreshes its whole CPU context: it imports
    and installs every typing and lowering registry (about 0.07 s, a sixth of
    a fresh process's first call), which only compiling needs; running
    cached machine code needs the NRT alone. So a load here initialises the
    NRT and reads the cache as Numba's ``load_overload`` would otherwise do;
    a cache miss compiles as usual (Numba's compiler refreshes the context
    itself). Numba versions without these internals keep the normal path.
    """
    try:
        from numba.core.dispatcher import Dispatcher
        from numba.core.runtime import rtsys
    except ImportError:
        return
    for obj in vars(module).values():
        cache = getattr(obj, "_cache", None) if isinstance(obj, Dispatcher) else None
        if all(hasattr(cache, a) for a in ("load_overload", "_load_overload",
                                            "_guard_against_spurious_io_errors")):
            cache.load_overload = _light_loader(cache, rtsys)


def _light_loader(cache, rtsys):
    def load_overload(sig, target_context):
        rtsys.initialize(target_context)
        with cache._guard_against_spurious_io_errors():
            return cache._load_overload(sig, target_context)
    return load_overload


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


class Identity:
    """A seed block equal to the identity (``n`` elements by ``n`` lanes): a Jacobian's
    seed, written straight into the sweep's arena instead of copied from ``np.eye``."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n


def _write_seed(buf, lo, hi, v, L, acc):
    """buf[lo:hi] (+)= v, a seed or tangent block (an array, a number or an Identity)."""
    if type(v) is Identity:
        if acc:
            buf[lo:hi:L + 1] += 1.0
        else:
            buf[lo:hi] = 0.0
            buf[lo:hi:L + 1] = 1.0
    elif acc:
        buf[lo:hi] += np.ravel(v)
    else:
        buf[lo:hi] = v.reshape(-1) if type(v) is np.ndarray else v


def _seed(tape, adj, adj_set, node, v, L):
    """``adj[node] (+)= v`` before a reverse sweep (``L`` lanes per element).

    A view (:func:`numbad.tensor.core.gather`) shares its base's storage, where the
    sweep adds the cotangents of the base and of all its views: as ``prepare_views``
    does for the views inside the sweep, the base first gets a zeroed cotangent, and the
    view's seed adds to it (as does a later seed of the base).
    """
    noff, nsize = tape.node_off, tape.node_size
    root = tape.view_root.get(node) if tape.view_root else None
    if root is not None and not adj_set[root]:
        adj[noff[root] * L:(noff[root] + nsize[root]) * L] = 0.0
        adj_set[root] = True
    _write_seed(adj, noff[node] * L, (noff[node] + nsize[node]) * L, v, L, adj_set[node] or root is not None)
    adj_set[node] = True


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
    noff, nsize = tape.node_off, tape.node_size        # Python ints: cheaper than numpy's here
    for node, v in seeds:
        _seed(tape, adj, adj_set, node, v, L)
    g = interpreters()
    if lanes:
        g.reverse_lanes(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, workspace(), L)
    else:
        g.reverse(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, workspace())
    result = [_read(adj, noff[n] * L, nsize[n] * L) if adj_set[n] and varying[n] else None
              for n in input_nodes]
    buffers.give(adj)
    return result


#: Op kinds whose second-order share the generated ``second_order`` sweep knows: elementwise
#: ops (their Hessian rules, :mod:`numbad.sweeps.second_order`), matmul (bilinear), and the
#: linear or piecewise-linear kinds (no share). A tape holding any other kind (cumprod, the
#: factorizations) takes the differentiable path instead.
SECOND_ORDER_KINDS = frozenset({
    "elementwise", "nondiff", "matmul", "copy", "gather", "view", "scatter", "take", "put_add", "assemble",
    "extreme", "scan_sum", "take_along", "put_along", "assign", "arg_extreme", "argsort", "det_sign"})
_SECOND_ORDER = None          # per opcode: is its kind in SECOND_ORDER_KINDS?


def hvp_supported(tape, begin, end):
    """Can :func:`hvp` sweep ops [begin, end) (every op of a kind ``second_order`` knows)?"""
    global _SECOND_ORDER
    if _SECOND_ORDER is None:
        from ..ops import OPS
        known = np.zeros(max(op.code for op in OPS.values()) + 1, np.bool_)
        for op in OPS.values():
            known[op.code] = op.kind in SECOND_ORDER_KINDS
        _SECOND_ORDER = known
    codes = tape.arrays()[0][begin:end, 0]
    return bool(np.all(_SECOND_ORDER[codes])) if codes.size else True


def hvp(tape, begin, end, input_nodes, output_node, tangents):
    """``H v`` for the one-element ``output_node``, forward over reverse, all in compiled sweeps.

    A tangent sweep gives every node's tangent (``v`` at the inputs); a reverse
    sweep, every node's cotangent; ``second_order`` adds, per op, the tangent of
    its reverse rule with the cotangent held fixed; a second reverse sweep
    seeded with those sources carries them back to the inputs (the tangent of
    the cotangents obeys the cotangents' own linear recursion). Requires
    :func:`hvp_supported`. Returns one flat array per input, ``None`` where zero.
    """
    ops, off, size, ip, vals = tape.arrays()
    n_nodes = off.shape[0]
    flags = np.zeros(3 * n_nodes, np.bool_)
    varying, adj_set, src_set = flags[:n_nodes], flags[n_nodes:2 * n_nodes], flags[2 * n_nodes:]
    g, ws = interpreters(), workspace()
    noff, nsize = tape.node_off, tape.node_size        # Python ints, as in reverse()
    tan = buffers.take(vals.shape[0], vals.dtype)
    for node, t in zip(input_nodes, tangents):
        varying[node] = True
        _write_seed(tan, noff[node], noff[node] + nsize[node], t, 1, False)
    g.tangent(ops, off, size, ip, vals, tan, varying, begin, end, ws)
    adj = buffers.take(vals.shape[0], vals.dtype)
    _seed(tape, adj, adj_set, output_node, 1.0, 1)
    g.reverse(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, ws)
    # the sources overwrite the cotangents in place: visiting ops in recording order, an op
    # reads its output's cotangent before any later op (its consumers) writes that node's
    # source, and writes only its operands' sources, whose cotangents were already read
    g.second_order(ops, off, size, ip, vals, tan, adj, adj_set, adj, src_set, varying, begin, end, ws)
    buffers.give(tan)
    del tan
    g.reverse(ops, off, size, ip, vals, adj, src_set, varying, begin, end, ws)
    result = [_read(adj, noff[n], nsize[n]) if src_set[n] and varying[n] else None for n in input_nodes]
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
    noff, nsize = tape.node_off, tape.node_size        # Python ints: cheaper than numpy's here
    for node, t in zip(input_nodes, tangents):
        varying[node] = True
        _write_seed(tan, noff[node] * L, (noff[node] + nsize[node]) * L, t, L, False)
    g = interpreters()
    if lanes:
        g.tangent_lanes(ops, off, size, ip, vals, tan, varying, begin, end, workspace(), L)
    else:
        g.tangent(ops, off, size, ip, vals, tan, varying, begin, end, workspace())
    result = [_read(tan, noff[n] * L, nsize[n] * L) if varying[n] else None for n in output_nodes]
    buffers.give(tan)
    return result
