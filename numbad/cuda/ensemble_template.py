"""Ensemble kernels: one thread per sample replays the whole tape.

TEMPLATE: ``codegen.py`` appends this file (below the ``# --- body`` line) to
``_generated.py``, next to the ``ens_*_op`` functions these kernels call (Numba's
on-disk cache only notices changes to the file a kernel is defined in). Do not
import this file.

Arenas are lanes-last, as in the CPU's ``forward_batch``/``reverse_batch``:
element ``i`` of the node at offset ``off`` is ``vals[(off + i) * L + j]`` for
lane ``j``, and the lane is the thread index, so that a warp's 32 loads of one
element are 32 neighbouring addresses. The op tables (``plan.py``) are staged
through shared memory ``TILE_OPS`` rows at a time: every thread of a block
reads the same row, so one copy per block serves them all, whatever the
length of the tape. A thread whose sample fails a guard, or whose op fails
(an index out of range, a singular matrix: :mod:`numbad.cuda.errors`), stops
computing but keeps taking part in the block's barriers; its ``status`` says
which guard, its ``errs`` which error. ``wk`` is lanes-last float64 scratch
(``plan.scratch`` elements per lane) for the ops that need some (linear
algebra, argsort).
"""
from numba import cuda, int64  # noqa: F401

from . import kernels as K  # noqa: F401
from .plan import GUARD, W  # noqa: F401

# --- body
#: Rows of an op table staged in shared memory at once, and threads per block.
TILE_OPS = 16 if K.SIMULATOR else 128
ENS_TPB = 8 if K.SIMULATOR else 128


@_dev
def _stage(tab, t0, cnt, tile):
    """The block's threads copy rows [t0, t0 + cnt) of an op table into shared memory."""
    for q in range(cuda.threadIdx.x, cnt * W, cuda.blockDim.x):
        r = q // W
        tile[r, q - r * W] = tab[t0 + r, q - r * W]


@_dev
def _start_lane(vals, cidx, cval, in_rows, X, b, L, j):
    """Lane j of the arena: the tape's constants, then sample b's inputs (packed in row b of X)."""
    for q in range(cidx.shape[0]):
        vals[cidx[q] * L + j] = cval[q]
    p = 0
    for r in range(in_rows.shape[0]):
        o = in_rows[r, 0]
        for i in range(in_rows[r, 1]):
            vals[(o + i) * L + j] = X[b, p]
            p += 1


@_dev
def _forward_lane(fwd, tile, vals, node_off, ip, gexp, wk, L, j, live):
    """The forward table on lane j; returns (the first failed guard or -1, an error code or 0)."""
    failed = -1
    err = 0
    for t0 in range(0, fwd.shape[0], TILE_OPS):
        cnt = min(TILE_OPS, fwd.shape[0] - t0)
        cuda.syncthreads()
        _stage(fwd, t0, cnt, tile)
        cuda.syncthreads()
        if live and failed < 0 and err == 0:
            for k in range(cnt):
                code = tile[k, 0]
                if code == GUARD:
                    if not K.lane_guard_holds(vals, tile[k, 1], tile[k, 2], tile[k, 4], gexp, tile[k, 9], L, j):
                        failed = tile[k, 11]
                        break
                else:
                    err = ens_forward_op(code, tile[k, 1], tile[k, 2], tile[k, 3], tile[k, 4], tile[k, 5],
                                         tile[k, 6], tile[k, 7], tile[k, 8], tile[k, 9], tile[k, 10],
                                         tile[k, 11], vals, node_off, ip, wk, L, j)
                    if err != 0:
                        break
    return failed, err


@_dev
def _store_rows(buf, rows, Y, b, L, j, present_col):
    """Row b of Y <- lane j of the nodes in ``rows`` (zeros where column ``present_col`` is 0)."""
    p = 0
    for r in range(rows.shape[0]):
        o = rows[r, 0]
        on = present_col < 0 or rows[r, present_col] != 0
        for i in range(rows[r, 1]):
            Y[b, p] = buf[(o + i) * L + j] if on else 0.0
            p += 1


@_kernel
def ensemble_vjp(fwd, rev, ip, node_off, cidx, cval, in_rows, seed_rows, grad_rows, gexp,
                 X, V, OUT, GRAD, status, errs, vals, adj, wk, c0, L):
    """Samples c0 .. c0 + L - 1: forward replay with guards, outputs, reverse sweep, gradients."""
    tile = cuda.shared.array((TILE_OPS, W), int64)
    j = cuda.grid(1)
    live = j < L
    b = c0 + j
    if live:
        _start_lane(vals, cidx, cval, in_rows, X, b, L, j)
    failed, err = _forward_lane(fwd, tile, vals, node_off, ip, gexp, wk, L, j, live)
    ok = live and failed < 0 and err == 0
    if live:
        status[b] = failed
        _store_rows(vals, seed_rows, OUT, b, L, j, -1)
    if ok:
        p = 0
        for r in range(seed_rows.shape[0]):
            o = seed_rows[r, 0]
            for i in range(seed_rows[r, 1]):
                q = (o + i) * L + j
                adj[q] = (adj[q] if seed_rows[r, 2] else 0.0) + V[b, p]
                p += 1
    for t0 in range(0, rev.shape[0], TILE_OPS):
        cnt = min(TILE_OPS, rev.shape[0] - t0)
        cuda.syncthreads()
        _stage(rev, t0, cnt, tile)
        cuda.syncthreads()
        if ok:
            for k in range(cnt):
                err = ens_reverse_op(tile[k, 0], tile[k, 1], tile[k, 2], tile[k, 3], tile[k, 4], tile[k, 5],
                                     tile[k, 6], tile[k, 7], tile[k, 8], tile[k, 9], tile[k, 10], tile[k, 11],
                                     vals, adj, ip, wk, L, j)
                if err != 0:
                    ok = False
                    break
    if live:
        errs[b] = err
    if ok:
        _store_rows(adj, grad_rows, GRAD, b, L, j, 2)


@_kernel
def ensemble_jvp(fwd, tanrows, ip, node_off, varying, cidx, cval, in_rows, out_rows, gexp,
                 X, T, OUT, TAN, status, errs, vals, tan, wk, c0, L):
    """Samples c0 .. c0 + L - 1: forward replay with guards, outputs, tangent sweep."""
    tile = cuda.shared.array((TILE_OPS, W), int64)
    j = cuda.grid(1)
    live = j < L
    b = c0 + j
    if live:
        _start_lane(vals, cidx, cval, in_rows, X, b, L, j)
    failed, err = _forward_lane(fwd, tile, vals, node_off, ip, gexp, wk, L, j, live)
    ok = live and failed < 0 and err == 0
    if live:
        status[b] = failed
        _store_rows(vals, out_rows, OUT, b, L, j, -1)
    if ok:
        p = 0
        for r in range(in_rows.shape[0]):
            o = in_rows[r, 0]
            for i in range(in_rows[r, 1]):
                tan[(o + i) * L + j] = T[b, p]
                p += 1
    for t0 in range(0, tanrows.shape[0], TILE_OPS):
        cnt = min(TILE_OPS, tanrows.shape[0] - t0)
        cuda.syncthreads()
        _stage(tanrows, t0, cnt, tile)
        cuda.syncthreads()
        if ok:
            for k in range(cnt):
                err = ens_tangent_op(tile[k, 0], tile[k, 1], tile[k, 2], tile[k, 3], tile[k, 4], tile[k, 5],
                                     tile[k, 6], tile[k, 7], tile[k, 8], tile[k, 9], tile[k, 10], tile[k, 11],
                                     vals, tan, node_off, varying, ip, wk, L, j)
                if err != 0:
                    ok = False
                    break
    if live:
        errs[b] = err
    if ok:
        _store_rows(tan, out_rows, TAN, b, L, j, 3)
