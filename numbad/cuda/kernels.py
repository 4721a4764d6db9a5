"""Hand-written CUDA code for the structural ops: per-lane device functions and large-array kernels.

Two families, following the two ways numbad uses a GPU (``docs/cuda.md``):

* ``lane_*`` device functions serve the ensemble kernels, where one thread
  replays a whole tape for one sample. Arenas are lanes-last, as in the CPU's
  batched interpreters: element ``i`` of the node at ``off`` is
  ``buf[(off + i) * L + j]`` for lane (thread) ``j``, so that neighbouring
  threads touch neighbouring addresses. Each mirrors its njit counterpart in
  :mod:`numbad.sweeps.kernels` loop for loop (the same accumulation order).
* ``k_*`` kernels serve single replays of large arrays: one thread per
  element (grid-stride loops), reductions in two deterministic passes
  (block partial sums, then a fixed-order sum), a tiled shared-memory GEMM.

Strided maps and index maps are read from the tape's integer pool ``ip``
(layouts in :mod:`numbad.ops.structural`).
"""
from numba import cuda, float64
from numba.core import config

SIMULATOR = bool(config.ENABLE_CUDASIM)

#: Threads per block of the elementwise kernels, and the GEMM tile edge. The
#: simulator runs each thread as a Python thread: keep its blocks small.
TPB = 8 if SIMULATOR else 256
GEMM_TILE = 4 if SIMULATOR else 16
RED_TPB = 8 if SIMULATOR else 256

_dev = cuda.jit(device=True)


# =========================================================================== strided maps
@_dev
def map_size(ip, ia):
    nd = ip[ia]
    n = 1
    for d in range(nd):
        n *= ip[ia + 1 + d]
    return n


@_dev
def map_pos(ip, ia, i):
    """Position in the other operand of element ``i`` (C order) of a strided map's walk."""
    nd = ip[ia]
    pos = ip[ia + 1 + 2 * nd]
    r = i
    for d in range(nd - 1, -1, -1):
        ext = ip[ia + 1 + d]
        q = r // ext
        pos += (r - q * ext) * ip[ia + 1 + nd + d]
        r = q
    return pos


# =========================================================================== ensembles: one lane
@_dev
def lane_fill_zero(dst, doff, n, L, j):
    for i in range(n):
        dst[(doff + i) * L + j] = 0.0


@_dev
def lane_copy(src, soff, dst, doff, n, L, j, acc):
    for i in range(n):
        if acc:
            dst[(doff + i) * L + j] += src[(soff + i) * L + j]
        else:
            dst[(doff + i) * L + j] = src[(soff + i) * L + j]


@_dev
def lane_gather(src, soff, dst, doff, ip, ia, L, j, acc):
    """dst[i] (+)= src[map(i)]."""
    for i in range(map_size(ip, ia)):
        v = src[(soff + map_pos(ip, ia, i)) * L + j]
        if acc:
            dst[(doff + i) * L + j] += v
        else:
            dst[(doff + i) * L + j] = v


@_dev
def lane_scatter(src, soff, dst, doff, ip, ia, L, j, acc):
    """dst[map(i)] += src[i]; dst (``other_size`` elements) zeroed first unless ``acc``."""
    if not acc:
        lane_fill_zero(dst, doff, ip[ia + 2 + 2 * ip[ia]], L, j)
    for i in range(map_size(ip, ia)):
        dst[(doff + map_pos(ip, ia, i)) * L + j] += src[(soff + i) * L + j]


@_dev
def lane_take(src, soff, dst, doff, ip, ia, L, j, acc):
    for i in range(ip[ia]):
        v = src[(soff + ip[ia + 2 + i]) * L + j]
        if acc:
            dst[(doff + i) * L + j] += v
        else:
            dst[(doff + i) * L + j] = v


@_dev
def lane_put_add(src, soff, dst, doff, ip, ia, L, j, acc):
    if not acc:
        lane_fill_zero(dst, doff, ip[ia + 1], L, j)
    for i in range(ip[ia]):
        dst[(doff + ip[ia + 2 + i]) * L + j] += src[(soff + i) * L + j]


@_dev
def lane_assemble(src, node_off, dst, doff, n, ip, ia, L, j):
    lane_fill_zero(dst, doff, n, L, j)
    for p in range(ip[ia]):
        lane_scatter(src, node_off[ip[ia + 2 + 2 * p]], dst, doff, ip, ip[ia + 3 + 2 * p], L, j, True)


@_dev
def lane_assemble_tangent(tan, node_off, doff, n, ip, ia, L, j, varying):
    lane_fill_zero(tan, doff, n, L, j)
    for p in range(ip[ia]):
        node = ip[ia + 2 + 2 * p]
        if varying[node]:
            lane_scatter(tan, node_off[node], tan, doff, ip, ip[ia + 3 + 2 * p], L, j, True)


@_dev
def _mm_index(t, rows, cols, r, c):
    return c * rows + r if t else r * cols + c


@_dev
def lane_matmul_forward(vals, aoff, boff, coff, ip, ia, L, j):
    Bt, M, K, N, tA, tB, sA, sB = (ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4], ip[ia + 5],
                                   ip[ia + 6], ip[ia + 7])
    for b in range(Bt):
        for m in range(M):
            for n in range(N):
                q = (coff + b * M * N + m * N + n) * L + j
                vals[q] = 0.0
                for k in range(K):
                    pa = (aoff + b * sA + _mm_index(tA, M, K, m, k)) * L + j
                    pb = (boff + b * sB + _mm_index(tB, K, N, k, n)) * L + j
                    vals[q] += vals[pa] * vals[pb]


@_dev
def lane_matmul_vjp(which, vals, aoff, boff, adj, goff, doff, ip, ia, L, j, acc):
    Bt, M, K, N, tA, tB, sA, sB = (ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4], ip[ia + 5],
                                   ip[ia + 6], ip[ia + 7])
    size = ((Bt if sA else 1) * M * K) if which == 0 else ((Bt if sB else 1) * K * N)
    if not acc:
        lane_fill_zero(adj, doff, size, L, j)
    for b in range(Bt):
        for m in range(M):
            for n in range(N):
                g = (goff + b * M * N + m * N + n) * L + j
                for k in range(K):
                    if which == 0:
                        d = (doff + b * sA + _mm_index(tA, M, K, m, k)) * L + j
                        o = (boff + b * sB + _mm_index(tB, K, N, k, n)) * L + j
                    else:
                        d = (doff + b * sB + _mm_index(tB, K, N, k, n)) * L + j
                        o = (aoff + b * sA + _mm_index(tA, M, K, m, k)) * L + j
                    adj[d] += adj[g] * vals[o]


@_dev
def lane_matmul_jvp(vals, aoff, boff, tan, a_on, b_on, coff, ip, ia, L, j):
    Bt, M, K, N, tA, tB, sA, sB = (ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4], ip[ia + 5],
                                   ip[ia + 6], ip[ia + 7])
    for b in range(Bt):
        for m in range(M):
            for n in range(N):
                q = (coff + b * M * N + m * N + n) * L + j
                tan[q] = 0.0
                for k in range(K):
                    pa = (aoff + b * sA + _mm_index(tA, M, K, m, k)) * L + j
                    pb = (boff + b * sB + _mm_index(tB, K, N, k, n)) * L + j
                    if a_on:
                        tan[q] += tan[pa] * vals[pb]
                    if b_on:
                        tan[q] += vals[pa] * tan[pb]


@_dev
def lane_guard_holds(vals, off, n, kind, expected, eoff, L, j):
    """A guard on one lane: the truth (kind 0) or the exact value (kind 1) the recording saw."""
    if kind == 0:
        return (vals[off * L + j] != 0.0) == (expected[eoff] != 0.0)
    for i in range(n):
        a = vals[(off + i) * L + j]
        e = expected[eoff + i]
        if not (a == e or (a != a and e != e)):
            return False
    return True


# =========================================================================== large arrays
@cuda.jit(cache=True)
def k_copy(src, soff, dst, doff, n, acc):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if acc:
            dst[doff + i] += src[soff + i]
        else:
            dst[doff + i] = src[soff + i]


@cuda.jit(cache=True)
def k_fill(dst, doff, n, value):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        dst[doff + i] = value


@cuda.jit(cache=True)
def k_place(src, idx, dst):
    """dst[idx[i]] = src[i]: the tape's constants into a device arena."""
    for i in range(cuda.grid(1), idx.shape[0], cuda.gridsize(1)):
        dst[idx[i]] = src[i]


@cuda.jit(cache=True)
def k_columns(src, c0, dst):
    """dst[b, k] = src[b, c0 + k]: a block of columns of a batch of results, made contiguous."""
    for q in range(cuda.grid(1), dst.shape[0] * dst.shape[1], cuda.gridsize(1)):
        b = q // dst.shape[1]
        k = q - b * dst.shape[1]
        dst[b, k] = src[b, c0 + k]


@cuda.jit(cache=True)
def k_gather(src, soff, dst, doff, ip, ia, n, acc):
    """dst[i] (+)= src[map(i)], one thread per output element."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        v = src[soff + map_pos(ip, ia, i)]
        if acc:
            dst[doff + i] += v
        else:
            dst[doff + i] = v


@_dev
def _split(desc, t):
    """(source index, destination position) of target ``t`` walked over ``desc`` rows
    (extent, source stride, destination stride), innermost row last."""
    si = 0
    di = 0
    r = t
    for d in range(desc.shape[0] - 1, -1, -1):
        ext = desc[d, 0]
        q = r // ext
        k = r - q * ext
        si += k * desc[d, 1]
        di += k * desc[d, 2]
        r = q
    return si, di


@cuda.jit(cache=True)
def k_scatter_rows(src, soff, dst, doff, base, kept, red, T, R):
    """dst[base + pos(t)] += sum_r src[index(t, r)]: one thread per target, a fixed order."""
    for t in range(cuda.grid(1), T, cuda.gridsize(1)):
        si, di = _split(kept, t)
        s = 0.0
        for r in range(R):
            ri, _ = _split(red, r)
            s += src[soff + si + ri]
        dst[doff + base + di] += s


@cuda.jit(cache=True)
def k_scatter_partial(src, soff, kept, red, R, C, part):
    """Block (t, c) sums its chunk c of the R reduced elements of target t into part[t * C + c]."""
    sh = cuda.shared.array(RED_TPB, float64)
    blk = cuda.blockIdx.x
    t = blk // C
    c = blk - t * C
    tid = cuda.threadIdx.x
    chunk = (R + C - 1) // C
    lo = c * chunk
    hi = min(R, lo + chunk)
    si, _ = _split(kept, t)
    s = 0.0
    for r in range(lo + tid, hi, RED_TPB):
        ri, _ = _split(red, r)
        s += src[soff + si + ri]
    sh[tid] = s
    cuda.syncthreads()
    w = RED_TPB // 2
    while w > 0:
        if tid < w:
            sh[tid] += sh[tid + w]
        cuda.syncthreads()
        w //= 2
    if tid == 0:
        part[blk] = sh[0]


@cuda.jit(cache=True)
def k_scatter_finish(part, C, dst, doff, base, kept, T):
    """dst[base + pos(t)] += the C partial sums of target t, in order."""
    for t in range(cuda.grid(1), T, cuda.gridsize(1)):
        s = 0.0
        for c in range(C):
            s += part[t * C + c]
        _, di = _split(kept, t)
        dst[doff + base + di] += s


@cuda.jit(cache=True)
def k_scatter_atomic(src, soff, dst, doff, ip, ia, n):
    """dst[map(i)] += src[i] where targets may collide in ways the row form cannot order."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        cuda.atomic.add(dst, doff + map_pos(ip, ia, i), src[soff + i])


@cuda.jit(cache=True)
def k_take(src, soff, dst, doff, ip, ia, acc):
    for i in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        v = src[soff + ip[ia + 2 + i]]
        if acc:
            dst[doff + i] += v
        else:
            dst[doff + i] = v


@cuda.jit(cache=True)
def k_put_add(src, soff, dst, doff, ip, ia, unique):
    """dst[idx[i]] += src[i]; atomics only where indices repeat."""
    for i in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        p = doff + ip[ia + 2 + i]
        if unique:
            dst[p] += src[soff + i]
        else:
            cuda.atomic.add(dst, p, src[soff + i])


@cuda.jit(cache=True)
def k_guard(vals, off, n, kind, expected, eoff, failed, gi):
    """failed[gi] = 1 if the guard's node no longer has its recorded truth (kind 0) or value."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        a = vals[off + i]
        if kind == 0:
            if i == 0 and (a != 0.0) != (expected[eoff] != 0.0):
                failed[gi] = 1
        else:
            e = expected[eoff + i]
            if not (a == e or (a != a and e != e)):
                failed[gi] = 1


@cuda.jit(cache=True)
def k_gemm(A, aoff, asb, ars, acs, B, boff, bsb, brs, bcs, C, coff, csb, M, N, K, inner, beta):
    """C[b] = beta * C[b] + sum over ``inner`` batches of op(A[b]) @ op(B[b]), tiled in shared memory.

    Operands are addressed by element strides (``ars``/``acs``: row and column
    strides of op(A)), which covers transposes; ``C`` is row-major (M, N).
    ``beta`` is 0 (overwrite, C is not read) or 1 (accumulate).
    """
    sa = cuda.shared.array((GEMM_TILE, GEMM_TILE), float64)
    sb = cuda.shared.array((GEMM_TILE, GEMM_TILE), float64)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    n = cuda.blockIdx.x * GEMM_TILE + tx
    m = cuda.blockIdx.y * GEMM_TILE + ty
    bz = cuda.blockIdx.z
    s = 0.0
    for bi in range(inner):
        b = bz + bi
        a0 = aoff + b * asb
        b0 = boff + b * bsb
        for k0 in range(0, K, GEMM_TILE):
            ka = k0 + tx
            kb = k0 + ty
            sa[ty, tx] = A[a0 + m * ars + ka * acs] if (m < M and ka < K) else 0.0
            sb[ty, tx] = B[b0 + kb * brs + n * bcs] if (kb < K and n < N) else 0.0
            cuda.syncthreads()
            for t in range(GEMM_TILE):
                s += sa[ty, t] * sb[t, tx]
            cuda.syncthreads()
    if m < M and n < N:
        c = coff + bz * csb + m * N + n
        if beta != 0.0:
            C[c] = C[c] + s
        else:
            C[c] = s


def blocks(n, tpb=TPB):
    """Blocks for a grid-stride loop over ``n`` elements (enough to fill a GPU, no more)."""
    return max(1, min(-(-n // tpb), 65535 if not SIMULATOR else 4))


