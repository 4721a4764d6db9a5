"""CUDA code of the segment ops, the node-indexed ops and assign.

Segment ops (``extreme``, ``arg_extreme``, ``argsort``, ``scan_sum``,
``cumprod``) view their operand as ``(O, R, I)`` and work along ``R``
(:mod:`numbad.ops.structural`); ``take_along``/``put_along`` read their
indices from a node; ``assign`` overwrites positions of a copy.

* ``seg_*`` device functions do the work of one segment ``(o, i)`` in the
  order of their njit twins in :mod:`numbad.sweeps.kernels` (so the same
  bits). The ``lane_*`` functions (ensembles: one thread per sample,
  lanes-last arenas, ``buf[(off + i) * L + j]``) loop them over the
  segments for lane ``j``; the ``k_*_rows`` kernels (single replays) run one
  segment per thread with ``L = 1``. Both paths share the arithmetic.
* Single replays of few long segments take parallel forms instead:
  ``extreme``/``arg_extreme`` a two-pass reduction of (value, index) pairs
  (exact: the winner is the same element whatever the grouping); ``scan_sum``
  a chunked scan (chunk sums, their running sums, then each chunk rescanned:
  deterministic, not the CPU's summation order); ``argsort`` a stable merge
  sort whose every pass places each element by binary search (one thread per
  element, the ensembles run the same passes serially); ``put_along``
  atomic adds (exact where indices do not repeat).

An index found out of range is reported through :func:`report` (single
replays) or returned as :data:`numbad.cuda.errors.ERR_INDEX` (ensembles).
"""
import math

from numba import cuda, float64, int64

from .errors import ERR_INDEX, ROW_SHIFT
from .kernels import RED_TPB

_dev = cuda.jit(device=True)
_kernel = cuda.jit(cache=True)


@_dev
def report(err, row, entry, code):
    """Keep the first error of a single replay: the lowest key (numbad.cuda.errors.key)."""
    cuda.atomic.min(err, 0, (row << ROW_SHIFT) + (entry << 4) + code)


@_dev
def seg_dims(ip, ia):
    return ip[ia], ip[ia + 1], ip[ia + 2]


# =========================================================================== extreme, arg_extreme
@_dev
def _better(v, k, best, kb, sign):
    """Does element ``v`` (at ``k``) beat ``best`` (at ``kb``)? A NaN beats numbers, a larger
    (sign 1) or smaller (sign -1) number beats the others, and among equals the first one wins:
    the element the CPU's left-to-right scan keeps, whatever the grouping of a parallel one."""
    if best != best:
        return v != v and k < kb
    if v != v:
        return True
    if sign * v > sign * best:
        return True
    return v == best and k < kb


@_dev
def seg_extreme(src, soff, R, I, base, sign, L, j):
    """(value, index) of a segment's first NaN, else of its first largest (smallest) element."""
    best = src[(soff + base) * L + j]
    k = 0
    for r in range(1, R):
        v = src[(soff + base + r * I) * L + j]
        if _better(v, r, best, k, sign):
            best = v
            k = r
    return best, k


@_dev
def lane_extreme(src, soff, dst, doff, ip, ia, L, j, sign, want_index):
    """dst[o, i] = max (sign 1) or min over r of src[o, r, i], or its index (``want_index``)."""
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            v, k = seg_extreme(src, soff, R, I, o * R * I + i, sign, L, j)
            dst[(doff + o * I + i) * L + j] = k if want_index else v


@_dev
def _is_extreme(v, y):
    return v == y or (v != v and y != y)


@_dev
def _ties(vals, xo, y, base, R, I, L, j):
    c = 0
    for r in range(R):
        if _is_extreme(vals[(xo + base + r * I) * L + j], y):
            c += 1
    return c


@_dev
def lane_extreme_vjp(vals, xo, yo, adj, go, dxo, ip, ia, L, j, acc):
    """d(max) shared evenly among the elements equal to the result (extreme_vjp)."""
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            q = o * I + i
            base = o * R * I + i
            y = vals[(yo + q) * L + j]
            c = _ties(vals, xo, y, base, R, I, L, j)
            for r in range(R):
                p = base + r * I
                w = adj[(go + q) * L + j] / c if _is_extreme(vals[(xo + p) * L + j], y) else 0.0
                if acc:
                    adj[(dxo + p) * L + j] += w
                else:
                    adj[(dxo + p) * L + j] = w


@_dev
def lane_extreme_jvp(vals, xo, yo, tan, txo, tyo, ip, ia, L, j):
    """Tangent of max: the mean of the tangents of the elements equal to the result."""
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            q = o * I + i
            base = o * R * I + i
            y = vals[(yo + q) * L + j]
            c = _ties(vals, xo, y, base, R, I, L, j)
            s = 0.0
            for r in range(R):
                p = base + r * I
                if _is_extreme(vals[(xo + p) * L + j], y):
                    s += tan[(txo + p) * L + j]
            tan[(tyo + q) * L + j] = s / c


@_kernel
def k_extreme_rows(src, soff, dst, doff, O, R, I, sign, want_index):
    """One thread per segment: its extreme value or index."""
    for t in range(cuda.grid(1), O * I, cuda.gridsize(1)):
        o = t // I
        v, k = seg_extreme(src, soff, R, I, o * R * I + t - o * I, sign, 1, 0)
        dst[doff + t] = k if want_index else v


@_kernel
def k_extreme_partial(src, soff, O, R, I, C, sign, pv, pk):
    """Block (t, c): the winner of chunk c of segment t's R elements, into pv/pk[t * C + c]."""
    shv = cuda.shared.array(RED_TPB, float64)
    shk = cuda.shared.array(RED_TPB, int64)
    blk = cuda.blockIdx.x
    t = blk // C
    c = blk - t * C
    o = t // I
    base = soff + o * R * I + t - o * I
    tid = cuda.threadIdx.x
    chunk = (R + C - 1) // C
    lo = c * chunk
    hi = min(R, lo + chunk)
    best = 0.0
    k = -1
    for r in range(lo + tid, hi, RED_TPB):
        v = src[base + r * I]
        if k < 0 or _better(v, r, best, k, sign):
            best = v
            k = r
    shv[tid] = best
    shk[tid] = k
    cuda.syncthreads()
    w = RED_TPB // 2
    while w > 0:
        if tid < w:
            k2 = shk[tid + w]
            if k2 >= 0 and (shk[tid] < 0 or _better(shv[tid + w], k2, shv[tid], shk[tid], sign)):
                shv[tid] = shv[tid + w]
                shk[tid] = k2
        cuda.syncthreads()
        w //= 2
    if tid == 0:
        pv[blk] = shv[0]
        pk[blk] = shk[0]


@_kernel
def k_extreme_finish(pv, pk, C, dst, doff, T, sign, want_index):
    """dst[t] = the winner among segment t's C chunk winners (its value or index)."""
    for t in range(cuda.grid(1), T, cuda.gridsize(1)):
        best = 0.0
        k = -1
        for c in range(C):
            k2 = pk[t * C + c]
            if k2 >= 0 and (k < 0 or _better(pv[t * C + c], k2, best, k, sign)):
                best = pv[t * C + c]
                k = k2
        dst[doff + t] = k if want_index else best


@_kernel
def k_extreme_hits(vals, xo, yo, O, R, I, out, ooff, masked, tan, txo):
    """out[p] = 1 where src[p] equals its segment's extreme; with ``masked`` also
    out[N + p] = the tangent there (else 0), for the tangent's mean."""
    N = O * R * I
    for p in range(cuda.grid(1), N, cuda.gridsize(1)):
        o = p // (R * I)
        i = p % I
        hit = _is_extreme(vals[xo + p], vals[yo + o * I + i])
        out[ooff + p] = 1.0 if hit else 0.0
        if masked:
            out[ooff + N + p] = tan[txo + p] if hit else 0.0


@_kernel
def k_extreme_vjp(vals, xo, yo, adj, go, dxo, O, R, I, count, coff, acc):
    """dx[p] (+)= g[t] / count[t] where x[p] is its segment t's extreme, else 0."""
    for p in range(cuda.grid(1), O * R * I, cuda.gridsize(1)):
        o = p // (R * I)
        t = o * I + p % I
        w = adj[go + t] / count[coff + t] if _is_extreme(vals[xo + p], vals[yo + t]) else 0.0
        if acc:
            adj[dxo + p] += w
        else:
            adj[dxo + p] = w


@_kernel
def k_divide(num, noff, den, doff, dst, off, T):
    """dst[t] = num[t] / den[t] (the mean of the tied tangents)."""
    for t in range(cuda.grid(1), T, cuda.gridsize(1)):
        dst[off + t] = num[noff + t] / den[doff + t]


# =========================================================================== scan_sum
@_dev
def seg_scan_sum(src, soff, dst, doff, R, I, base, rev, acc, L, j):
    """Running sums along one segment, from its end when ``rev`` (scan_sum)."""
    s = 0.0
    for t in range(R):
        p = base + (R - 1 - t if rev else t) * I
        s += src[(soff + p) * L + j]
        if acc:
            dst[(doff + p) * L + j] += s
        else:
            dst[(doff + p) * L + j] = s


@_dev
def lane_scan_sum(src, soff, dst, doff, ip, ia, L, j, rev, acc):
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            seg_scan_sum(src, soff, dst, doff, R, I, o * R * I + i, rev, acc, L, j)


@_kernel
def k_scan_rows(src, soff, dst, doff, O, R, I, rev, acc):
    for t in range(cuda.grid(1), O * I, cuda.gridsize(1)):
        o = t // I
        seg_scan_sum(src, soff, dst, doff, R, I, o * R * I + t - o * I, rev, acc, 1, 0)


@_dev
def _chunk(R, C, c):
    """Scan positions [lo, hi) of chunk c of a segment of R elements."""
    size = (R + C - 1) // C
    lo = min(R, c * size)
    return lo, min(R, lo + size)


@_kernel
def k_scan_partial(src, soff, O, R, I, C, rev, part):
    """part[t * C + c] = the sum of chunk c of segment t (in scan order)."""
    for q in range(cuda.grid(1), O * I * C, cuda.gridsize(1)):
        t = q // C
        c = q - t * C
        o = t // I
        base = soff + o * R * I + t - o * I
        lo, hi = _chunk(R, C, c)
        s = 0.0
        for u in range(lo, hi):
            s += src[base + (R - 1 - u if rev else u) * I]
        part[q] = s


@_kernel
def k_scan_offsets(part, T, C):
    """part[t, :] <- its exclusive running sums: what precedes each chunk."""
    for t in range(cuda.grid(1), T, cuda.gridsize(1)):
        s = 0.0
        for c in range(C):
            v = part[t * C + c]
            part[t * C + c] = s
            s += v


@_kernel
def k_scan_chunks(src, soff, dst, doff, O, R, I, C, rev, acc, part):
    """Each chunk rescanned from the sum of the chunks before it."""
    for q in range(cuda.grid(1), O * I * C, cuda.gridsize(1)):
        t = q // C
        c = q - t * C
        o = t // I
        base = o * R * I + t - o * I
        lo, hi = _chunk(R, C, c)
        s = part[q]
        for u in range(lo, hi):
            p = base + (R - 1 - u if rev else u) * I
            s += src[soff + p]
            if acc:
                dst[doff + p] += s
            else:
                dst[doff + p] = s


# =========================================================================== cumprod
@_dev
def _first_zero(vals, xo, base, R, I, L, j):
    for r in range(R):
        if vals[(xo + base + r * I) * L + j] == 0.0:
            return r
    return R


@_dev
def seg_cumprod(src, soff, dst, doff, R, I, base, L, j):
    s = 1.0
    for r in range(R):
        p = base + r * I
        s *= src[(soff + p) * L + j]
        dst[(doff + p) * L + j] = s


@_dev
def seg_cumprod_vjp(vals, xo, yo, adj, go, dxo, R, I, base, acc, L, j):
    """cumprod_vjp on one segment: exact at zeros, O(R)."""
    z = _first_zero(vals, xo, base, R, I, L, j)
    at_z = 0.0
    if z < R:
        w = 1.0
        for k in range(z, R):
            if k > z:
                w *= vals[(xo + base + k * I) * L + j]
            at_z += adj[(go + base + k * I) * L + j] * w
        if z > 0:
            at_z *= vals[(yo + base + (z - 1) * I) * L + j]
    s = 0.0
    for t in range(R):
        r = R - 1 - t
        p = base + r * I
        if r < z:
            s += adj[(go + p) * L + j] * vals[(yo + p) * L + j]
            d = s / vals[(xo + p) * L + j]
        elif r == z:
            d = at_z
        else:
            d = 0.0
        if acc:
            adj[(dxo + p) * L + j] += d
        else:
            adj[(dxo + p) * L + j] = d


@_dev
def seg_cumprod_jvp(vals, xo, yo, tan, txo, tyo, R, I, base, L, j):
    """cumprod_jvp on one segment."""
    z = _first_zero(vals, xo, base, R, I, L, j)
    s = 0.0
    w = 0.0
    for r in range(R):
        p = base + r * I
        if r < z:
            s += tan[(txo + p) * L + j] / vals[(xo + p) * L + j]
            d = vals[(yo + p) * L + j] * s
        elif r == z:
            w = tan[(txo + p) * L + j]
            if z > 0:
                w *= vals[(yo + p - I) * L + j]
            d = w
        else:
            w *= vals[(xo + p) * L + j]
            d = w
        tan[(tyo + p) * L + j] = d


@_dev
def lane_cumprod(src, soff, dst, doff, ip, ia, L, j):
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            seg_cumprod(src, soff, dst, doff, R, I, o * R * I + i, L, j)


@_dev
def lane_cumprod_vjp(vals, xo, yo, adj, go, dxo, ip, ia, L, j, acc):
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            seg_cumprod_vjp(vals, xo, yo, adj, go, dxo, R, I, o * R * I + i, acc, L, j)


@_dev
def lane_cumprod_jvp(vals, xo, yo, tan, txo, tyo, ip, ia, L, j):
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            seg_cumprod_jvp(vals, xo, yo, tan, txo, tyo, R, I, o * R * I + i, L, j)


@_kernel
def k_cumprod_rows(src, soff, dst, doff, O, R, I):
    for t in range(cuda.grid(1), O * I, cuda.gridsize(1)):
        o = t // I
        seg_cumprod(src, soff, dst, doff, R, I, o * R * I + t - o * I, 1, 0)


@_kernel
def k_cumprod_vjp_rows(vals, xo, yo, adj, go, dxo, O, R, I, acc):
    for t in range(cuda.grid(1), O * I, cuda.gridsize(1)):
        o = t // I
        seg_cumprod_vjp(vals, xo, yo, adj, go, dxo, R, I, o * R * I + t - o * I, acc, 1, 0)


@_kernel
def k_cumprod_jvp_rows(vals, xo, yo, tan, txo, tyo, O, R, I):
    for t in range(cuda.grid(1), O * I, cuda.gridsize(1)):
        o = t // I
        seg_cumprod_jvp(vals, xo, yo, tan, txo, tyo, R, I, o * R * I + t - o * I, 1, 0)


# =========================================================================== argsort
@_dev
def _less(a, b):
    """numpy's sort order: NaN after every number."""
    return a < b or (b != b and a == a)


@_dev
def _sort_dest(src, sb, sI, keys, kb, kI, r, R, width, L, j):
    """Where the index at position r of a sorted run goes when the run merges with its
    neighbour, and that index. Indices are read at keys[kb + r * kI], the values they point
    at at src[sb + index * sI] (lanes-last). Stable: of equal values, the left run's go first."""
    x_idx = int(keys[(kb + r * kI) * L + j])
    x = src[(sb + x_idx * sI) * L + j]
    start = (r // (2 * width)) * (2 * width)
    mid = min(start + width, R)
    end = min(start + 2 * width, R)
    if r < mid:             # left run: after the right run's elements that are strictly smaller
        lo, hi = mid, end
        while lo < hi:
            m = (lo + hi) // 2
            if _less(src[(sb + int(keys[(kb + m * kI) * L + j]) * sI) * L + j], x):
                lo = m + 1
            else:
                hi = m
        return start + (r - start) + (lo - mid), x_idx
    lo, hi = start, mid     # right run: after the left run's elements that are not larger
    while lo < hi:
        m = (lo + hi) // 2
        if _less(x, src[(sb + int(keys[(kb + m * kI) * L + j]) * sI) * L + j]):
            hi = m
        else:
            lo = m + 1
    return start + (r - mid) + (lo - start), x_idx


@_dev
def lane_argsort(src, soff, dst, doff, ip, ia, wk, L, j):
    """Stable argsort along r, NaN last (numpy's mergesort): the passes of k_sort_pass, one
    element after another, with two index buffers of R elements at wk[0] and wk[R]."""
    O, R, I = seg_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            sb = soff + o * R * I + i
            for r in range(R):
                wk[r * L + j] = r
            a = 0
            width = 1
            while width < R:
                for r in range(R):
                    pos, idx = _sort_dest(src, sb, I, wk, a, 1, r, R, width, L, j)
                    wk[(R - a + pos) * L + j] = idx
                a = R - a
                width *= 2
            for r in range(R):
                dst[(doff + o * R * I + r * I + i) * L + j] = wk[(a + r) * L + j]


@_kernel
def k_sort_init(keys, O, R, I):
    """keys[o, r, i] = r: every segment starts as runs of one element."""
    for p in range(cuda.grid(1), O * R * I, cuda.gridsize(1)):
        keys[p] = (p // I) % R


@_kernel
def k_sort_pass(src, soff, keys, kin, kout, O, R, I, width):
    """One merge pass over every segment: each element placed by binary search in its neighbour run."""
    for p in range(cuda.grid(1), O * R * I, cuda.gridsize(1)):
        base = (p // (R * I)) * R * I + p % I
        r = (p // I) % R
        pos, idx = _sort_dest(src, soff + base, I, keys, kin + base, I, r, R, width, 1, 0)
        keys[kout + base + pos * I] = idx


# =========================================================================== take_along, put_along
@_dev
def along_index(v, R):
    """An index held by a node, checked as the CPU's _along_index does; -1 when out of range."""
    if not (v >= -R and v < R):          # also NaN
        return -1
    k = int(v)
    if k != v:
        return -1
    return k + R if k < 0 else k


@_dev
def lane_take_along(src, soff, vals, kof, dst, doff, ip, ia, L, j, acc):
    """dst[o, q, i] (+)= src[o, idx[o, q, i], i]; returns ERR_INDEX for an index out of range."""
    O, R, I = seg_dims(ip, ia)
    Q = ip[ia + 3]
    for o in range(O):
        for q in range(Q):
            for i in range(I):
                t = o * Q * I + q * I + i
                k = along_index(vals[(kof + t) * L + j], R)
                if k < 0:
                    return ERR_INDEX
                v = src[(soff + o * R * I + k * I + i) * L + j]
                if acc:
                    dst[(doff + t) * L + j] += v
                else:
                    dst[(doff + t) * L + j] = v
    return 0


@_dev
def seg_put_along(src, soff, vals, kof, dst, doff, o, i, R, I, Q, L, j):
    """dst[o, idx[o, q, i], i] += src[o, q, i] for q in order; returns ERR_INDEX or 0."""
    for q in range(Q):
        t = o * Q * I + q * I + i
        k = along_index(vals[(kof + t) * L + j], R)
        if k < 0:
            return ERR_INDEX
        dst[(doff + o * R * I + k * I + i) * L + j] += src[(soff + t) * L + j]
    return 0


@_dev
def lane_put_along(src, soff, vals, kof, dst, doff, ip, ia, L, j, acc):
    """put_along: dst zeroed unless ``acc``, then the segments in the CPU's order."""
    O, R, I = seg_dims(ip, ia)
    Q = ip[ia + 3]
    if not acc:
        for p in range(O * R * I):
            dst[(doff + p) * L + j] = 0.0
    for o in range(O):
        for q in range(Q):
            for i in range(I):
                t = o * Q * I + q * I + i
                k = along_index(vals[(kof + t) * L + j], R)
                if k < 0:
                    return ERR_INDEX
                dst[(doff + o * R * I + k * I + i) * L + j] += src[(soff + t) * L + j]
    return 0


@_kernel
def k_take_along(src, soff, vals, kof, dst, doff, O, R, I, Q, acc, err, row):
    for t in range(cuda.grid(1), O * Q * I, cuda.gridsize(1)):
        o = t // (Q * I)
        i = t % I
        k = along_index(vals[kof + t], R)
        if k < 0:
            report(err, row, 0, ERR_INDEX)
            continue
        v = src[soff + o * R * I + k * I + i]
        if acc:
            dst[doff + t] += v
        else:
            dst[doff + t] = v


@_kernel
def k_put_along_rows(src, soff, vals, kof, dst, doff, O, R, I, Q, err, row):
    """One thread per segment, adding in the CPU's order (dst zeroed before, unless accumulating)."""
    for t in range(cuda.grid(1), O * I, cuda.gridsize(1)):
        o = t // I
        if seg_put_along(src, soff, vals, kof, dst, doff, o, t - o * I, R, I, Q, 1, 0) != 0:
            report(err, row, 0, ERR_INDEX)


@_kernel
def k_put_along_atomic(src, soff, vals, kof, dst, doff, O, R, I, Q, err, row):
    """One thread per element, atomic adds: for few, long segments."""
    for t in range(cuda.grid(1), O * Q * I, cuda.gridsize(1)):
        o = t // (Q * I)
        i = t % I
        k = along_index(vals[kof + t], R)
        if k < 0:
            report(err, row, 0, ERR_INDEX)
            continue
        cuda.atomic.add(dst, doff + o * R * I + k * I + i, src[soff + t])


# =========================================================================== assign (t[idx] = v)
@_dev
def lane_assign(base, boff, part, poff, psize, dst, doff, n, ip, ia, L, j):
    """dst = base, then dst[idx[t]] = part[t] (one part element broadcasts)."""
    for i in range(n):
        dst[(doff + i) * L + j] = base[(boff + i) * L + j]
    for t in range(ip[ia]):
        s = poff + (t if psize > 1 else 0)
        dst[(doff + ip[ia + 2 + t]) * L + j] = part[s * L + j]


@_dev
def lane_assign_tangent(tan, base_on, boff, part_on, poff, psize, doff, n, ip, ia, L, j):
    for i in range(n):
        tan[(doff + i) * L + j] = tan[(boff + i) * L + j] if base_on else 0.0
    for t in range(ip[ia]):
        s = poff + (t if psize > 1 else 0)
        tan[(doff + ip[ia + 2 + t]) * L + j] = tan[s * L + j] if part_on else 0.0


@_dev
def lane_assign_vjp(adj, goff, n, part_on, poff, psize, part_acc, base_on, boff, base_acc, ip, ia, L, j):
    """The part gets the cotangent at the written positions, the base the rest (assign_vjp)."""
    count = ip[ia]
    if part_on and not part_acc:
        for i in range(psize):
            adj[(poff + i) * L + j] = 0.0
    for t in range(count):
        p = (goff + ip[ia + 2 + t]) * L + j
        if part_on:
            adj[(poff + (t if psize > 1 else 0)) * L + j] += adj[p]
        adj[p] = 0.0
    if base_on:
        for i in range(n):
            if base_acc:
                adj[(boff + i) * L + j] += adj[(goff + i) * L + j]
            else:
                adj[(boff + i) * L + j] = adj[(goff + i) * L + j]


@_kernel
def k_assign_place(part, poff, psize, on, dst, doff, ip, ia):
    """dst[idx[t]] = part[t] (or part[0], or 0 where the part is not ``on``), one thread per t."""
    for t in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        dst[doff + ip[ia + 2 + t]] = part[poff + (t if psize > 1 else 0)] if on else 0.0


@_kernel
def k_assign_part_vjp(adj, goff, poff, acc, ip, ia):
    """part[t] (+)= g[idx[t]]: a part of one element per written position."""
    for t in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        q = poff + t
        adj[q] = (adj[q] if acc else 0.0) + adj[goff + ip[ia + 2 + t]]


@_kernel
def k_assign_zero(adj, goff, ip, ia):
    """g[idx[t]] = 0: the written positions pass nothing to the base."""
    for t in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        adj[goff + ip[ia + 2 + t]] = 0.0


def scan_chunks(R):
    """Chunks per segment of the chunked scan: about sqrt(R), so both passes stay short."""
    return max(1, min(4096, math.isqrt(R)))
