"""njit kernels of the structural ops (data movement, reductions, matmul).

Every kernel works on flat arenas: ``buf[(off + i) * L + j]`` is lane ``j`` of
element ``i`` of the node stored at ``off``. Values use one lane (``L == 1``);
adjoint and tangent arenas carry ``L`` lanes so that one sweep pushes a block
of cotangents (or tangents) through the tape. ``acc`` says whether to add into
the destination or overwrite it.

Index maps are read straight from the tape's integer pool ``ip`` at offset
``ia`` (see :mod:`numbad.ops.structural` for the layouts), so no kernel
allocates: the only scratch memory is the sweep's workspace ``ws`` (argsort,
whose sort needs a segment's worth, is the one exception; the linear-algebra
kernels of :mod:`numbad.sweeps.kernels_linalg` allocate LAPACK workspace).
"""
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import numpy as np
import llvmlite.binding as _llvm
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from .deferred import njit

@intrinsic
def borrowed(typingctx, array):
    """``array`` without its memory-manager reference, for the interpreters' own use.

    Each slice or call that passes an array on takes and drops a reference to its
    memory-manager record, an atomic update costing about 10 ns; a sweep over small
    nodes makes a few per op, most of its time per op (120 against 40 ns per 16-element
    op in a replica of the reverse loop). The interpreters therefore work on borrowed
    copies of their array arguments (no record: those updates are skipped), which the
    caller keeps alive for the call. A borrowed array must never be returned to Python.
    """
    def codegen(context, builder, signature, args):
        view = cgutils.create_struct_proxy(array)(context, builder, value=args[0])
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()
    return array(array), codegen


# Kernels are ordinary (not inlined) njit functions: each compiles once and
# is shared by all interpreters, which keeps cold compile time down.
_jit = njit(error_model="numpy", cache=True, nogil=True)


def cython_function_address(module, name):
    """Address of a function that a scipy Cython module exports (``scipy.linalg.cython_blas``).

    The extension file is loaded by itself and registered under its name, so
    that neither this nor Numba's own BLAS check (which imports
    ``scipy.linalg.cython_blas`` when its CPU target starts) pays for importing
    the whole ``scipy.linalg`` package (~0.15 s, much of a warm first call). A
    later ``import scipy.linalg`` finds and keeps the same module object.
    """
    import scipy
    parts = module.split(".")
    folder = Path(scipy.__file__).parent.joinpath(*parts[1:-1])
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / (parts[-1] + suffix)
        if module not in sys.modules and path.exists():
            spec = importlib.util.spec_from_file_location(module, path)
            ext = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(ext)
            sys.modules[module] = ext
            break
    return get_cython_function_address(module, name)


def numpy_blas_address(name):
    """Address of ``name`` in the ILP64 OpenBLAS that numpy's wheels load, or ``None``.

    numpy's matmul runs on that library's thread pool. Calling the same
    library from the sweeps keeps one pool busy: with a second OpenBLAS
    (scipy's) in the process, the two pools' threads spin against each other
    and a mixed numpy/numbad workload on 2 cores ran at half speed.
    ``RTLD_NOLOAD`` only finds the copy numpy has already loaded.
    """
    import ctypes
    import os
    root = Path(np.__file__).parent
    for pattern in ("../numpy.libs/libscipy_openblas64_*", ".dylibs/libscipy_openblas64_*"):
        for path in sorted(root.glob(pattern)):
            try:
                lib = ctypes.CDLL(str(path), mode=getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_NOW", 0))
                return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
            except (OSError, AttributeError):
                continue
    return None


def _gemm_address(prefix):
    """numpy's own gemm where it has one; else scipy's Cython BLAS (LP64).

    The kernel passes 64-bit integers either way: an LP64 gemm reads the low
    32 bits of each, which on a little-endian machine is the same number.
    """
    # looked up first in any case: it registers scipy's BLAS module, which spares Numba's own
    # BLAS check the import of all of scipy.linalg (see cython_function_address)
    scipy_address = cython_function_address("scipy.linalg.cython_blas", f"{prefix}gemm")
    address = numpy_blas_address(f"scipy_{prefix}gemm_64_")
    if address is not None:
        return address
    if sys.byteorder != "little":
        raise ImportError("numbad needs numpy's ILP64 OpenBLAS on a big-endian machine")
    return scipy_address


# gemm registered as named symbols so that functions calling it stay cacheable
# (ctypes pointers would not be); the address is looked up anew in each process.
_llvm.add_symbol("numbad_dgemm", _gemm_address("d"))
_llvm.add_symbol("numbad_sgemm", _gemm_address("s"))
_vp = types.voidptr
_dgemm = types.ExternalFunction("numbad_dgemm", types.void(*([_vp] * 13)))
_sgemm = types.ExternalFunction("numbad_sgemm", types.void(*([_vp] * 13)))

# Below this many multiply-adds a plain loop beats the BLAS call overhead.
_SMALL_GEMM = 4096


# --------------------------------------------------------------------------- elementwise copies
# Contiguous loops index views from 0: Numba then knows the index is not negative and
# the loop vectorizes (``dst[off + i]`` with a signed ``off`` runs about 4x slower).

@_jit
def copy(src, soff, dst, doff, n, L, acc):
    s = src[soff * L: (soff + n) * L]
    d = dst[doff * L: (doff + n) * L]
    if acc:
        for i in range(n * L):
            d[i] += s[i]
    else:
        for i in range(n * L):
            d[i] = s[i]


@_jit
def fill_zero(dst, doff, n, L):
    d = dst[doff * L: (doff + n) * L]
    for i in range(n * L):
        d[i] = 0.0


# --------------------------------------------------------------------------- strided maps
# Attribute block at ip[ia]: ndim, shape[ndim], strides[ndim], base, other_size.
# ``shape`` is the shape walked in C order; ``strides``/``base`` locate each
# walked element in the other operand.

@_jit
def map_size(ip, ia):
    nd = ip[ia]
    n = 1
    for d in range(nd):
        n *= ip[ia + 1 + d]
    return n


@_jit
def map_other_size(ip, ia):
    nd = ip[ia]
    return ip[ia + 2 + 2 * nd]


@_jit
def _walk_next(ws, ip, sh, st, nd, pos):
    """Advance the multi-index ``ws[:nd]`` over dims ``[0, nd)``; return the new position."""
    d = nd - 1
    while d >= 0:
        ws[d] += 1
        pos += ip[st + d]
        if ws[d] < ip[sh + d]:
            return pos
        pos -= ip[st + d] * ip[sh + d]
        ws[d] = 0
        d -= 1
    return pos


@_jit
def gather_strided(src, soff, dst, doff, ip, ia, L, acc, ws):
    """dst[i] (+)= src[map(i)] for i walking the map's shape."""
    nd = ip[ia]
    sh = ia + 1
    st = ia + 1 + nd
    pos = ip[ia + 1 + 2 * nd]
    if nd == 0:
        inner, istride, ond = 1, 0, 0
    else:
        inner, istride, ond = ip[sh + nd - 1], ip[st + nd - 1], nd - 1
    outer = 1
    for d in range(ond):
        outer *= ip[sh + d]
        ws[d] = 0
    i = doff
    for _ in range(outer):
        p = soff + pos
        if L == 1 and istride == 1:
            copy(src, p, dst, i, inner, 1, acc)
        elif L == 1 and istride == 0:    # a broadcast (a sum's cotangent)
            d = dst[i: i + inner]
            v = src[p]
            if acc:
                for t in range(inner):
                    d[t] += v
            else:
                for t in range(inner):
                    d[t] = v
        elif L == 1:
            if acc:
                for t in range(inner):
                    dst[i + t] += src[p + t * istride]
            else:
                for t in range(inner):
                    dst[i + t] = src[p + t * istride]
        else:
            for t in range(inner):
                for j in range(L):
                    if acc:
                        dst[(i + t) * L + j] += src[(p + t * istride) * L + j]
                    else:
                        dst[(i + t) * L + j] = src[(p + t * istride) * L + j]
        i += inner
        pos = _walk_next(ws, ip, sh, st, ond, pos)


@_jit
def _sum_run(a, ws):
    """The sum of ``a`` (a contiguous run) exactly as numpy computes it (``pairwise_sum`` in
    numpy's ``loops_utils.h``), in ``a``'s own dtype: a replay then reproduces numpy's value to
    the bit, and a guard on a read sum holds at the recording input.

    numpy splits a run longer than 128 in two, at a multiple of 8 below the middle, until the
    pieces are at most 128 long (:func:`_block_sum`), and adds the two halves' sums: the same
    tree is walked here with a stack in ``ws`` (a recursive function cannot be cached, and a
    sweep allocates nothing): per frame its start, length and halves done, and the first
    half's sum, held as float64 (exact for float32) and added back in ``a``'s dtype. (numpy's
    reduction adds the pairwise sum to 0.0, which turns -0.0 into 0.0: so does the ``+ 0.0``.)"""
    n = a.size
    if n == 0:
        return 0.0
    if n <= 128:
        return np.float64(_block_sum(a, 0, n)) + 0.0
    lo, ln, done = ws[64:128], ws[128:192], ws[192:256]
    first = ws[256:320].view(np.float64)
    lo[0], ln[0], done[0] = 0, n, 0
    top = 0
    result = 0.0
    while top >= 0:
        if ln[top] <= 128 or done[top] == 2:
            v = np.float64(_block_sum(a, lo[top], ln[top])) if ln[top] <= 128 else \
                _add_in_dtype(a, first[top], result)
            top -= 1
            if top < 0:
                result = v
            elif done[top] == 1:
                first[top] = v
            else:
                result = v             # (the second half's sum: its parent adds it next)
            continue
        half = ln[top] // 2
        half -= half % 8
        if done[top] == 0:
            done[top] = 1
            lo[top + 1], ln[top + 1] = lo[top], half
        else:
            done[top] = 2
            lo[top + 1], ln[top + 1] = lo[top] + half, ln[top] - half
        done[top + 1] = 0
        top += 1
    return result + 0.0


@_jit
def _add_in_dtype(a, x, y):
    """x + y (float64 values of ``a``'s dtype) added in ``a``'s dtype, as numpy adds them."""
    if a.itemsize == 4:
        return np.float64(np.float32(x) + np.float32(y))
    return x + y


@_jit
def _block_sum(a, lo, n):
    """numpy's sum of a[lo:lo + n], 1 <= n <= 128, in ``a``'s dtype: fewer than 8 in order
    (from 0, so that -0.0 alone sums to 0.0); else eight interleaved partial sums, combined
    pairwise, then the rest in order. (Read through a view with a ``range`` loop: indices
    the compiler knows are not negative let it add the eight sums as one vector, at
    numpy's speed; a ``while`` loop's index ran at half of it.)"""
    b = a[lo:lo + n]
    if n < 8:
        s = b[0]
        if s == 0.0:
            s = abs(s)
        for i in range(1, n):
            s += b[i]
        return s
    r0, r1, r2, r3 = b[0], b[1], b[2], b[3]
    r4, r5, r6, r7 = b[4], b[5], b[6], b[7]
    m = n - n % 8
    for k in range(1, m // 8):
        i = 8 * k
        r0 += b[i]
        r1 += b[i + 1]
        r2 += b[i + 2]
        r3 += b[i + 3]
        r4 += b[i + 4]
        r5 += b[i + 5]
        r6 += b[i + 6]
        r7 += b[i + 7]
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for j in range(m, n):
        s += b[j]
    return s


@_jit
def scatter_strided(src, soff, dst, doff, ip, ia, L, acc, ws):
    """dst[map(i)] += src[i] for i walking the map's shape; dst zeroed first unless ``acc``."""
    nd = ip[ia]
    sh = ia + 1
    st = ia + 1 + nd
    pos = ip[ia + 1 + 2 * nd]
    if not acc:
        fill_zero(dst, doff, ip[ia + 2 + 2 * nd], L)
    if nd == 0:
        inner, istride, ond = 1, 0, 0
    else:
        inner, istride, ond = ip[sh + nd - 1], ip[st + nd - 1], nd - 1
    outer = 1
    for d in range(ond):
        outer *= ip[sh + d]
        ws[d] = 0
    i = soff
    for _ in range(outer):
        p = doff + pos
        if L == 1:
            if istride == 0:      # a reduction along the walked axis
                dst[p] += _sum_run(src[i: i + inner], ws)
            elif istride == 1:
                copy(src, i, dst, p, inner, 1, True)
            else:
                for t in range(inner):
                    dst[p + t * istride] += src[i + t]
        else:
            for t in range(inner):
                for j in range(L):
                    dst[(p + t * istride) * L + j] += src[(i + t) * L + j]
        i += inner
        pos = _walk_next(ws, ip, sh, st, ond, pos)


# --------------------------------------------------------------------------- index maps
# Attribute block at ip[ia]: count, other_size, idx[count].

@_jit
def take(src, soff, dst, doff, ip, ia, L, acc):
    """dst[i] (+)= src[idx[i]]."""
    n = ip[ia]
    for i in range(n):
        p = soff + ip[ia + 2 + i]
        for j in range(L):
            if acc:
                dst[(doff + i) * L + j] += src[p * L + j]
            else:
                dst[(doff + i) * L + j] = src[p * L + j]


@_jit
def put_add(src, soff, dst, doff, ip, ia, L, acc):
    """dst[idx[i]] += src[i]; dst zeroed first unless ``acc``."""
    n = ip[ia]
    if not acc:
        fill_zero(dst, doff, ip[ia + 1], L)
    for i in range(n):
        p = doff + ip[ia + 2 + i]
        for j in range(L):
            dst[p * L + j] += src[(soff + i) * L + j]


# --------------------------------------------------------------------------- assemble (concatenate)
# Attribute block at ip[ia]: nparts, out_size, then per part: node, map offset.
# Each part's map is a strided block placing the part inside the output.

@_jit
def assemble(src, node_off, dst, doff, n, ip, ia, L, ws):
    """dst = the parts (read from ``src``) placed by their maps."""
    fill_zero(dst, doff, n, L)
    for p in range(ip[ia]):
        node = ip[ia + 2 + 2 * p]
        scatter_strided(src, node_off[node], dst, doff, ip, ip[ia + 3 + 2 * p], L, True, ws)


@_jit
def assemble_tangent(tan, node_off, doff, n, ip, ia, L, varying, ws):
    """Tangent of an assemble: the varying parts' tangents placed, zeros elsewhere."""
    fill_zero(tan, doff, n, L)
    for p in range(ip[ia]):
        node = ip[ia + 2 + 2 * p]
        if varying[node]:
            scatter_strided(tan, node_off[node], tan, doff, ip, ip[ia + 3 + 2 * p], L, True, ws)


@_jit
def assemble_vjp(adj, node_off, goff, ip, ia, L, varying, adj_set, ws):
    """Each varying part's cotangent is the output cotangent read through its map."""
    for p in range(ip[ia]):
        node = ip[ia + 2 + 2 * p]
        if varying[node]:
            gather_strided(adj, goff, adj, node_off[node], ip, ip[ia + 3 + 2 * p], L, adj_set[node], ws)
            adj_set[node] = True


# --------------------------------------------------------------------------- matmul
# Attribute block at ip[ia]: Bt, M, K, N, tA, tB, sA, sB.  C[b] = op(A[b]) @ op(B[b]),
# A[b] at a_off + b*sA stored (M, K) or, when tA, (K, M); likewise B; C is (Bt, M, N).

@_jit
def _is_diagonal(X, off, ld, n):
    """Is the stored ``n x n`` block ``X[off + i * ld + j]`` diagonal? A dense block
    is told by its first row."""
    for i in range(n):
        row = X[off + i * ld: off + i * ld + n]
        nonzero = 0
        for j in range(n):
            nonzero += np.int64(row[j] != 0.0)
        if nonzero - np.int64(row[i] != 0.0):
            return False
    return True


@_jit
def _is_finite(X, off, ld, rows, cols):
    for i in range(rows):
        row = X[off + i * ld: off + i * ld + cols]
        bad = 0
        for j in range(cols):
            bad += np.int64(not (row[j] - row[j] == 0.0))      # inf - inf and NaN are NaN
        if bad:
            return False
    return True


@_jit
def _times_diagonal(tA, M, N, A, aoff, lda, D, doff, ldd, beta, C, coff, ldc):
    """C = op(A) @ D + beta * C for a diagonal ``N x N`` block D: each row of op(A) scaled.

    Each sum of the product has one nonzero term, so this gives BLAS's numbers
    (``0.0 +`` keeps its signed zeros) where A is finite; BLAS's ``inf * 0``
    terms make NaN elsewhere, so with a non-finite A this returns False (the
    caller then calls BLAS, which overwrites C: with beta 0 the scaling has
    already written it, checking A in the same pass).
    """
    d = D[doff: doff + N * (ldd + 1): ldd + 1]
    if beta != 0.0:
        if not _is_finite(A, aoff, lda, N if tA else M, M if tA else N):
            return False
        for m in range(M):
            c = C[coff + m * ldc: coff + m * ldc + N]
            a = A[aoff + m: aoff + m + N * lda: lda] if tA else A[aoff + m * lda: aoff + m * lda + N]
            for n in range(N):
                c[n] = c[n] * beta + (0.0 + a[n] * d[n])
        return True
    # C is overwritten (beta 0): scale and check A in one pass; BLAS redoes C if A was not finite.
    # Strided reads keep a loop from vectorizing (3x slower here): the diagonal is first copied
    # into C's last row (scaled last, in place), and a row of A read in place is a plain slice.
    if M == 0:
        return True
    last = C[coff + (M - 1) * ldc: coff + (M - 1) * ldc + N]
    for n in range(N):
        last[n] = d[n]
    bad = 0
    for m in range(M):
        c = C[coff + m * ldc: coff + m * ldc + N]
        if tA:
            at = A[aoff + m: aoff + m + N * lda: lda]
            for n in range(N):
                c[n] = 0.0 + at[n] * last[n]
                bad += np.int64(not (at[n] - at[n] == 0.0))      # inf - inf and NaN are NaN
        else:
            a = A[aoff + m * lda: aoff + m * lda + N]
            for n in range(N):
                c[n] = 0.0 + a[n] * last[n]
                bad += np.int64(not (a[n] - a[n] == 0.0))
    return bad == 0


@_jit
def gemm(tA, tB, M, N, K, A, aoff, lda, B, boff, ldb, beta, C, coff, ldc, ws):
    """Row-major C[M,N] = op(A) @ op(B) + beta * C on flat buffers (beta 0 ignores C)."""
    if M == 0 or N == 0:
        return
    if K == 0 or M * N * K <= _SMALL_GEMM:
        for m in range(M):
            for n in range(N):
                s = 0.0
                for k in range(K):
                    av = A[aoff + k * lda + m] if tA else A[aoff + m * lda + k]
                    bv = B[boff + n * ldb + k] if tB else B[boff + k * ldb + n]
                    s += av * bv
                c = coff + m * ldc + n
                if beta != 0.0:
                    C[c] = C[c] * beta + s
                else:
                    C[c] = s
        return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    ci = ws[-8:-2]                  # BLAS integers, 64-bit (see _gemm_address)
    ci[0] = N
    ci[1] = M
    ci[2] = K
    ci[3] = lda
    ci[4] = ldb
    ci[5] = ldc
    tc = ws[-2:].view(np.uint8)     # the two trans chars
    tc[0] = 84 if tA else 78        # 'T' / 'N'
    tc[8] = 84 if tB else 78
    trans_b = tc[8:].ctypes
    trans_a = tc[0:].ctypes
    if C.itemsize == 8:
        sd = ws[-10:-8].view(np.float64)
        sd[0] = 1.0
        sd[1] = beta
        _dgemm(trans_b, trans_a, ci[0:].ctypes, ci[1:].ctypes, ci[2:].ctypes, sd[0:].ctypes,
               B[boff:].ctypes, ci[4:].ctypes, A[aoff:].ctypes, ci[3:].ctypes, sd[1:].ctypes,
               C[coff:].ctypes, ci[5:].ctypes)
    else:
        sf = ws[-10:-8].view(np.float32)
        sf[0] = 1.0
        sf[1] = beta
        _sgemm(trans_b, trans_a, ci[0:].ctypes, ci[1:].ctypes, ci[2:].ctypes, sf[0:].ctypes,
               B[boff:].ctypes, ci[4:].ctypes, A[aoff:].ctypes, ci[3:].ctypes, sf[1:].ctypes,
               C[coff:].ctypes, ci[5:].ctypes)


@_jit
def matmul_dims(ip, ia):
    return ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4], ip[ia + 5], ip[ia + 6], ip[ia + 7]


@_jit
def matmul_forward(A, aoff, B, boff, C, coff, ip, ia, ws):
    """Values: C = op(A) @ op(B) over the batch."""
    Bt, M, K, N, tA, tB, sA, sB = matmul_dims(ip, ia)
    lda = M if tA else K
    ldb = K if tB else N
    for b in range(Bt):
        gemm(tA, tB, M, N, K, A, aoff + b * sA, lda, B, boff + b * sB, ldb, 0.0,
             C, coff + b * M * N, N, ws)


@_jit
def lane_matmul(first_is_lanes, tF, tS, M, N, K, F, foff, S, soff, ld_value, C, coff, L, beta, ws):
    """C (M, N, L lanes) (+)= op(F) @ op(S), where one of F, S carries L lanes.

    The value operand (one lane) has leading dimension ``ld_value``; the lane
    operand is stored (rows, cols, L) with (rows, cols) = (M, K) or (K, N),
    transposed when its flag is set. Offsets are element offsets (lane
    operands: multiply by L inside).
    """
    if L == 1:
        ldf = ld_value if not first_is_lanes else (M if tF else K)
        lds = ld_value if first_is_lanes else (K if tS else N)
        gemm(tF, tS, M, N, K, F, foff, ldf, S, soff, lds, beta, C, coff, N, ws)
        return
    if first_is_lanes:
        # C[m] (N x L) = op(S)^T (N x K) @ X[:, m] (K x L)
        for m in range(M):
            if tF:      # X stored (K, M, L): column block m has leading dim M*L
                gemm(1 - tS, 0, N, L, K, S, soff, ld_value, F, (foff * L) + m * L, M * L,
                     beta, C, coff * L + m * N * L, L, ws)
            else:       # X stored (M, K, L)
                gemm(1 - tS, 0, N, L, K, S, soff, ld_value, F, (foff * L) + m * K * L, L,
                     beta, C, coff * L + m * N * L, L, ws)
    else:
        if not tS:      # Y stored (K, N, L) is a (K, N*L) matrix: one gemm
            # (a matrix-vector product meeting a Jacobian's identity or diagonal block of
            # tangents or cotangents: a scaling instead of a K x K x L product)
            if not (N == 1 and L == K and _is_diagonal(S, soff * L, L, K)
                    and _times_diagonal(tF, M, L, F, foff, ld_value, S, soff * L, L, beta, C, coff * L, L)):
                gemm(tF, 0, M, N * L, K, F, foff, ld_value, S, soff * L, N * L, beta,
                     C, coff * L, N * L, ws)
        else:           # Y stored (N, K, L): one gemm per output column n
            for n in range(N):
                gemm(tF, 0, M, L, K, F, foff, ld_value, S, soff * L + n * K * L, L, beta,
                     C, coff * L + n * L, N * L, ws)


@_jit
def matmul_vjp_plan(which, tA, tB):
    """How d(operand) of C = op(A) @ op(B) is itself a matmul.

    Returns ``(first, second, t_first, t_second)`` with 0 = A, 1 = B, 2 = the
    cotangent G: dA = G @ op(B)^T (or its transpose when tA), dB = op(A)^T @ G
    (or its transpose when tB). Used by both the njit sweep and the
    differentiable (Tensor) path.
    """
    if which == 0:
        if tA == 0:
            return 2, 1, 0, 1 - tB
        return 1, 2, tB, 1
    if tB == 0:
        return 0, 2, 1 - tA, 0
    return 2, 0, 1, tA


@_jit
def matmul_vjp(which, vals, aoff, boff, adj, goff, dst, doff, ip, ia, L, acc, ws):
    """Accumulate the cotangent of operand ``which`` (0: A, 1: B) of a matmul into ``dst``.

    The cotangent G is read from ``adj``, the other operand from ``vals``; the
    reverse sweep passes its adjoint arena as both ``adj`` and ``dst``, the
    second-order sweep tangents as ``vals`` (see ``second_order``)."""
    Bt, M, K, N, tA, tB, sA, sB = matmul_dims(ip, ia)
    first, second, tf, ts = matmul_vjp_plan(which, tA, tB)
    # result shape (rows, cols) and inner dimension of the product
    if which == 0:
        R, Cc, I, sD = (K, M, N, sA) if tA else (M, K, N, sA)
    else:
        R, Cc, I, sD = (N, K, M, sB) if tB else (K, N, M, sB)
    if sD == 0 and Bt > 1 and not acc:
        fill_zero(dst, doff, R * Cc, L)
        acc = True
    lda = M if tA else K
    ldb = K if tB else N
    for b in range(Bt):
        beta = 1.0 if (acc or (sD == 0 and b > 0)) else 0.0
        go = goff + b * M * N
        vo = (boff + b * sB) if which == 0 else (aoff + b * sA)
        ldv = ldb if which == 0 else lda
        if first == 2:
            lane_matmul(True, tf, ts, R, Cc, I, adj, go, vals, vo, ldv, dst, doff + b * sD, L, beta, ws)
        else:
            lane_matmul(False, tf, ts, R, Cc, I, vals, vo, adj, go, ldv, dst, doff + b * sD, L, beta, ws)


@_jit
def matmul_jvp(vals, aoff, boff, tan, ta_on, taoff, tb_on, tboff, toff, ip, ia, L, ws):
    """Tangent of C = op(A) @ op(B): op(dA) @ op(B) + op(A) @ op(dB)."""
    Bt, M, K, N, tA, tB, sA, sB = matmul_dims(ip, ia)
    lda = M if tA else K
    ldb = K if tB else N
    for b in range(Bt):
        beta = 0.0
        if ta_on:
            lane_matmul(True, tA, tB, M, N, K, tan, taoff + b * sA, vals, boff + b * sB, ldb,
                        tan, toff + b * M * N, L, beta, ws)
            beta = 1.0
        if tb_on:
            lane_matmul(False, tA, tB, M, N, K, vals, aoff + b * sA, tan, tboff + b * sB, lda,
                        tan, toff + b * M * N, L, beta, ws)


# --------------------------------------------------------------------------- segments (axis ops)
# Attribute block at ip[ia]: O, R, I (then Q for take_along/put_along). The operand is
# viewed as (O, R, I) in C order and the op works along the middle axis: element
# (o, r, i) is at o*R*I + r*I + i; a reduction's result (o, i) is at o*I + i.

@_jit
def segment_dims(ip, ia):
    return ip[ia], ip[ia + 1], ip[ia + 2]


@_jit
def _is_extreme(v, y):
    """Is ``v`` where the reduction's result ``y`` came from (NaN results come from NaNs)?"""
    return v == y or (v != v and y != y)


@_jit
def extreme(src, soff, dst, doff, ip, ia, sign):
    """dst[o, i] = max (sign 1) or min (sign -1) over r of src[o, r, i]; NaN propagates."""
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        b = soff + o * R * I
        q = doff + o * I
        for i in range(I):
            dst[q + i] = src[b + i]
        for r in range(1, R):
            for i in range(I):
                v = src[b + r * I + i]
                if sign * v > sign * dst[q + i] or v != v:
                    if dst[q + i] == dst[q + i]:      # a NaN result stays NaN
                        dst[q + i] = v


@_jit
def _ties(vals, xo, y, o, i, R, I):
    c = 0
    for r in range(R):
        if _is_extreme(vals[xo + o * R * I + r * I + i], y):
            c += 1
    return c


@_jit
def extreme_vjp(vals, xo, yo, adj, go, dxo, ip, ia, L, acc):
    """d(max) is shared evenly among the elements equal to the result (PyTorch's amax)."""
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            q = o * I + i
            y = vals[yo + q]
            c = _ties(vals, xo, y, o, i, R, I)
            for r in range(R):
                p = o * R * I + r * I + i
                hit = _is_extreme(vals[xo + p], y)
                for j in range(L):
                    w = adj[(go + q) * L + j] / c if hit else 0.0
                    if acc:
                        adj[(dxo + p) * L + j] += w
                    else:
                        adj[(dxo + p) * L + j] = w


@_jit
def extreme_jvp(vals, xo, yo, tan, txo, tyo, ip, ia, L):
    """Tangent of max: the mean of the tangents of the elements equal to the result."""
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            q = o * I + i
            y = vals[yo + q]
            c = _ties(vals, xo, y, o, i, R, I)
            for j in range(L):
                s = 0.0
                for r in range(R):
                    p = o * R * I + r * I + i
                    if _is_extreme(vals[xo + p], y):
                        s += tan[(txo + p) * L + j]
                tan[(tyo + q) * L + j] = s / c


@_jit
def arg_extreme(src, soff, dst, doff, ip, ia, sign):
    """dst[o, i] = the first r where src[o, r, i] is largest (sign 1) or smallest; NaN first."""
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            b = soff + o * R * I + i
            best = src[b]
            k = 0
            if best == best:
                for r in range(1, R):
                    v = src[b + r * I]
                    if v != v:
                        k = r
                        break
                    if sign * v > sign * best:
                        best = v
                        k = r
            dst[doff + o * I + i] = k


@_jit
def scan_sum(src, soff, dst, doff, ip, ia, L, rev, acc):
    """dst (+)= running sums of src along r, from the end when ``rev`` (cumsum's transpose)."""
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            for j in range(L):
                s = 0.0
                for t in range(R):
                    p = o * R * I + (R - 1 - t if rev else t) * I + i
                    s += src[(soff + p) * L + j]
                    if acc:
                        dst[(doff + p) * L + j] += s
                    else:
                        dst[(doff + p) * L + j] = s


@_jit
def cumprod(src, soff, dst, doff, ip, ia):
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            s = 1.0
            for r in range(R):
                p = o * R * I + r * I + i
                s *= src[soff + p]
                dst[doff + p] = s


@_jit
def _first_zero(vals, xo, o, i, R, I):
    for r in range(R):
        if vals[xo + o * R * I + r * I + i] == 0.0:
            return r
    return R


@_jit
def cumprod_vjp(vals, xo, yo, adj, go, dxo, ip, ia, L, acc):
    """d/dx_j of y = cumprod(x): sum_{k >= j} g_k prod_{i <= k, i != j} x_i, in O(R) with zeros.

    Before the first zero z this is (sum_{k >= j} g_k y_k) / x_j (PyTorch's formula); at z it
    is y_{z-1} sum_{k >= z} g_k prod_{z < i <= k} x_i; after z every product holds x_z = 0.
    """
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            z = _first_zero(vals, xo, o, i, R, I)
            for j in range(L):
                at_z = 0.0
                if z < R:
                    w = 1.0
                    for k in range(z, R):
                        if k > z:
                            w *= vals[xo + o * R * I + k * I + i]
                        at_z += adj[(go + o * R * I + k * I + i) * L + j] * w
                    if z > 0:
                        at_z *= vals[yo + o * R * I + (z - 1) * I + i]
                s = 0.0
                for t in range(R):
                    r = R - 1 - t
                    p = o * R * I + r * I + i
                    if r < z:
                        s += adj[(go + p) * L + j] * vals[yo + p]
                        d = s / vals[xo + p]
                    elif r == z:
                        d = at_z
                    else:
                        d = 0.0
                    if acc:
                        adj[(dxo + p) * L + j] += d
                    else:
                        adj[(dxo + p) * L + j] = d


@_jit
def cumprod_jvp(vals, xo, yo, tan, txo, tyo, ip, ia, L):
    """Tangent of cumprod: y_k sum_{j <= k} t_j / x_j before the first zero z, then
    t_z y_{z-1} prod_{z < i <= k} x_i."""
    O, R, I = segment_dims(ip, ia)
    for o in range(O):
        for i in range(I):
            z = _first_zero(vals, xo, o, i, R, I)
            for j in range(L):
                s = 0.0
                w = 0.0
                for r in range(R):
                    p = o * R * I + r * I + i
                    if r < z:
                        s += tan[(txo + p) * L + j] / vals[xo + p]
                        d = vals[yo + p] * s
                    elif r == z:
                        w = tan[(txo + p) * L + j]
                        if z > 0:
                            w *= vals[yo + p - I]
                        d = w
                    else:
                        w *= vals[xo + p]
                        d = w
                    tan[(tyo + p) * L + j] = d


@_jit
def argsort(src, soff, dst, doff, ip, ia):
    """dst[o, :, i] = the stable sorting permutation of src[o, :, i] (NaN last, like numpy)."""
    O, R, I = segment_dims(ip, ia)
    seg = np.empty(R, src.dtype)     # a sort needs scratch of the segment's length
    for o in range(O):
        for i in range(I):
            for r in range(R):
                seg[r] = src[soff + o * R * I + r * I + i]
            perm = np.argsort(seg, kind="mergesort")
            for r in range(R):
                dst[doff + o * R * I + r * I + i] = perm[r]


@_jit
def _along_index(v, R):
    """An index held by a node (so recomputed on replay): checked, since it is data."""
    k = int(v)
    if k < 0:
        k += R
    if k < 0 or k >= R or k != v and k - R != v:
        raise IndexError("numbad: an index computed on replay is out of range for take_along_axis")
    return k


@_jit
def take_along(src, soff, vals, kof, dst, doff, ip, ia, L, acc):
    """dst[o, q, i] (+)= src[o, idx[o, q, i], i]; the indices are a node of ``vals``."""
    O, R, I = segment_dims(ip, ia)
    Q = ip[ia + 3]
    for o in range(O):
        for q in range(Q):
            for i in range(I):
                t = o * Q * I + q * I + i
                k = _along_index(vals[kof + t], R)
                p = soff + o * R * I + k * I + i
                for j in range(L):
                    if acc:
                        dst[(doff + t) * L + j] += src[p * L + j]
                    else:
                        dst[(doff + t) * L + j] = src[p * L + j]


@_jit
def put_along(src, soff, vals, kof, dst, doff, ip, ia, L, acc):
    """dst[o, idx[o, q, i], i] += src[o, q, i] (the transpose of take_along); zeroed unless ``acc``."""
    O, R, I = segment_dims(ip, ia)
    Q = ip[ia + 3]
    if not acc:
        fill_zero(dst, doff, O * R * I, L)
    for o in range(O):
        for q in range(Q):
            for i in range(I):
                t = o * Q * I + q * I + i
                k = _along_index(vals[kof + t], R)
                p = doff + o * R * I + k * I + i
                for j in range(L):
                    dst[p * L + j] += src[(soff + t) * L + j]


# --------------------------------------------------------------------------- assign (t[idx] = v)
# Attribute block at ip[ia]: count, out_size, idx[count] (distinct positions). The result is
# the base with positions idx overwritten by the part (one element broadcasts to all).

@_jit
def assign(base, boff, part, poff, psize, dst, doff, n, ip, ia, L):
    """dst = base, then dst[idx[t]] = part[t] (lanes: ``L`` per element)."""
    copy(base, boff, dst, doff, n, L, False)
    count = ip[ia]
    for t in range(count):
        p = doff + ip[ia + 2 + t]
        s = poff + (t if psize > 1 else 0)
        for j in range(L):
            dst[p * L + j] = part[s * L + j]


@_jit
def assign_tangent(tan, base_on, boff, part_on, poff, psize, doff, n, ip, ia, L):
    if base_on:
        copy(tan, boff, tan, doff, n, L, False)
    else:
        fill_zero(tan, doff, n, L)
    count = ip[ia]
    for t in range(count):
        p = doff + ip[ia + 2 + t]
        s = poff + (t if psize > 1 else 0)
        for j in range(L):
            tan[p * L + j] = tan[s * L + j] if part_on else 0.0


@_jit
def assign_vjp(adj, goff, n, part_on, poff, psize, part_acc, base_on, boff, base_acc, ip, ia, L):
    """The part gets the cotangent at the written positions, the base the rest.

    The result's cotangent is final when its op is reached (ops are swept in
    reverse and nothing earlier reads the result), so the written positions are
    zeroed in place instead of masked through scratch memory.
    """
    count = ip[ia]
    if part_on and not part_acc:
        fill_zero(adj, poff, psize, L)
    for t in range(count):
        p = goff + ip[ia + 2 + t]
        s = poff + (t if psize > 1 else 0)
        for j in range(L):
            if part_on:
                adj[s * L + j] += adj[p * L + j]
            adj[p * L + j] = 0.0
    if base_on:
        copy(adj, goff, adj, boff, n, L, base_acc)


# --------------------------------------------------------------------------- matmul, batched values
# Ensembles: every value carries L lanes (one sample each), so each of the Bt
# products is L independent small products; the innermost loop runs over lanes.

@_jit
def _mm_index(t, rows, cols, r, c):
    """Element (r, c) of op(X) for X stored (rows, cols) untransposed or (cols, rows) when t."""
    return c * rows + r if t else r * cols + c


@_jit
def matmul_batch_forward(vals, aoff, boff, coff, ip, ia, L):
    Bt, M, K, N, tA, tB, sA, sB = matmul_dims(ip, ia)
    for b in range(Bt):
        for m in range(M):
            for n in range(N):
                q = (coff + b * M * N + m * N + n) * L
                for j in range(L):
                    vals[q + j] = 0.0
                for k in range(K):
                    pa = (aoff + b * sA + _mm_index(tA, M, K, m, k)) * L
                    pb = (boff + b * sB + _mm_index(tB, K, N, k, n)) * L
                    for j in range(L):
                        vals[q + j] += vals[pa + j] * vals[pb + j]


@_jit
def matmul_batch_vjp(which, vals, aoff, boff, adj, goff, doff, ip, ia, L, acc):
    """Cotangent of A (which=0) or B (which=1) when values and cotangents have L lanes."""
    Bt, M, K, N, tA, tB, sA, sB = matmul_dims(ip, ia)
    size = ((Bt if sA else 1) * M * K) if which == 0 else ((Bt if sB else 1) * K * N)
    if not acc:
        fill_zero(adj, doff, size, L)
    for b in range(Bt):
        for m in range(M):
            for n in range(N):
                g = (goff + b * M * N + m * N + n) * L
                for k in range(K):
                    ia_ = aoff + b * sA + _mm_index(tA, M, K, m, k)
                    ib_ = boff + b * sB + _mm_index(tB, K, N, k, n)
                    if which == 0:      # dA[m, k] += G[m, n] * B[k, n]
                        d = (doff + b * sA + _mm_index(tA, M, K, m, k)) * L
                        o = ib_ * L
                    else:               # dB[k, n] += A[m, k] * G[m, n]
                        d = (doff + b * sB + _mm_index(tB, K, N, k, n)) * L
                        o = ia_ * L
                    for j in range(L):
                        adj[d + j] += adj[g + j] * vals[o + j]


@_jit
def matmul_batch_jvp(vals, aoff, boff, tan, a_on, b_on, coff, ip, ia, L):
    Bt, M, K, N, tA, tB, sA, sB = matmul_dims(ip, ia)
    for b in range(Bt):
        for m in range(M):
            for n in range(N):
                q = (coff + b * M * N + m * N + n) * L
                for j in range(L):
                    tan[q + j] = 0.0
                for k in range(K):
                    pa = (aoff + b * sA + _mm_index(tA, M, K, m, k)) * L
                    pb = (boff + b * sB + _mm_index(tB, K, N, k, n)) * L
                    if a_on:
                        for j in range(L):
                            tan[q + j] += tan[pa + j] * vals[pb + j]
                    if b_on:
                        for j in range(L):
                            tan[q + j] += vals[pa + j] * tan[pb + j]
