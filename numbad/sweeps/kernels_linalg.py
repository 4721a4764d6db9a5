"""njit kernels of the linear-algebra ops: solve, log|det|, sign(det), cholesky, eigh, svd.

Matrices live in the arenas in C order, batch after batch; lane ``j`` of an
adjoint or tangent arena is read into a plain float64 matrix (``_mat``),
worked on, and written back (``_put``). LAPACK is called directly through
scipy's Cython LAPACK (registered symbols, as for gemm in
:mod:`numbad.sweeps.kernels`), with the routines numpy's ``np.linalg`` uses
on the same column-major copies (getrf/getrs, potrf, syevd, gesdd), so a
replay reproduces numpy's values; numba's ``np.linalg`` would cost ~20 s of
compilation. These kernels allocate: LAPACK needs workspace anyway, and an
O(n^3) factorisation dwarfs the allocation.

Attribute blocks at ``ip[ia]`` (``Bt`` matrices; batch strides in elements,
0 for one matrix broadcast over the batch):

* ``solve``: ``Bt, n, k, sA, sB``: X = A^-1 B, A (n, n), B and X (n, k).
* ``logabsdet``, ``det_sign``, ``cholesky``, ``eigh``: ``Bt, n``. ``eigh``'s
  result packs ``[w (n), V (n, n)]`` per matrix.
* ``svd``: ``Bt, m, n, k`` (k = min(m, n)): the reduced SVD packed as
  ``[U (m, k), S (k), Vh (k, n)]`` per matrix.

The derivative formulas are PyTorch's (``FunctionsManual.cpp``); symmetric
inputs (cholesky, eigh) get symmetric cotangents, and their tangents are
taken of the symmetric part of ``dA``, so the two modes agree.
"""
import llvmlite.binding as _llvm
import numpy as np
from numba import types

from .deferred import njit
from .kernels import cython_function_address, gemm

_jit = njit(error_model="numpy", cache=True, nogil=True)

_vp = types.voidptr
for _name in ("dgetrf", "dgetrs", "dpotrf", "dsyevd", "dgesdd"):
    _llvm.add_symbol(f"numbad_{_name}", cython_function_address("scipy.linalg.cython_lapack", _name))
_dgetrf = types.ExternalFunction("numbad_dgetrf", types.void(*([_vp] * 6)))
_dgetrs = types.ExternalFunction("numbad_dgetrs", types.void(*([_vp] * 9)))
_dpotrf = types.ExternalFunction("numbad_dpotrf", types.void(*([_vp] * 5)))
_dsyevd = types.ExternalFunction("numbad_dsyevd", types.void(*([_vp] * 11)))
_dgesdd = types.ExternalFunction("numbad_dgesdd", types.void(*([_vp] * 14)))


@_jit
def _mat(buf, off, rows, cols, L, j):
    """Lane ``j`` of the (rows, cols) matrix at element offset ``off``, as a new float64 array
    (float32 tapes run LAPACK in float64 too: one compiled variant, and more accuracy)."""
    out = np.empty((rows, cols), np.float64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = buf[(off + r * cols + c) * L + j]
    return out


@_jit
def _put(buf, off, M, L, j, acc):
    rows, cols = M.shape
    for r in range(rows):
        for c in range(cols):
            p = (off + r * cols + c) * L + j
            if acc:
                buf[p] += M[r, c]
            else:
                buf[p] = M[r, c]


@_jit
def _mm(A, B, tA, tB):
    """op(A) @ op(B) (op: transpose where flagged) through the BLAS gemm of the matmul op
    (called with its integer flags, so that one compiled gemm serves both)."""
    M = A.shape[1] if tA else A.shape[0]
    K = A.shape[0] if tA else A.shape[1]
    N = B.shape[0] if tB else B.shape[1]
    C = np.empty((M, N), np.float64)
    gemm(1 if tA else 0, 1 if tB else 0, M, N, K, np.ascontiguousarray(A).reshape(-1), 0, A.shape[1],
         np.ascontiguousarray(B).reshape(-1), 0, B.shape[1], 0.0, C.reshape(-1), 0, N,
         np.zeros(10, np.int64))
    return C


@_jit
def _lin(A, a, B, b, transpose_b):
    """a A + b op(B), op a transpose where asked: one compiled loop instead of numba array
    expressions (each of which would compile its own, and cost cold-compile seconds)."""
    rows, cols = A.shape
    out = np.empty((rows, cols), np.float64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = a * A[r, c] + b * (B[c, r] if transpose_b else B[r, c])
    return out


@_jit
def _sym(M):
    return _lin(M, 0.5, M, 0.5, True)


@_jit
def _dot(A, B):
    s = 0.0
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            s += A[r, c] * B[r, c]
    return s


@_jit
def _tril(M, k):
    out = M.copy()
    n, m = M.shape
    for r in range(n):
        for c in range(m):
            if c - r > k:
                out[r, c] = 0.0
    return out


@_jit
def _ints(a, b, c, d, e):
    """Fortran integer arguments (LAPACK takes every argument by pointer)."""
    return np.array([a, b, c, d, e], np.int32)


@_jit
def _chars(a, b):
    return np.array([a, b], np.uint8)


@_jit
def _lu(A):
    """LAPACK getrf of A (its LU factors, column-major), the pivots, and whether A is singular."""
    n = A.shape[0]
    F = np.ascontiguousarray(A.T)           # the C array of A.T is A in column-major order
    piv = np.empty(max(n, 1), np.int32)
    i = _ints(n, n, 0, 0, 0)
    _dgetrf(i[0:].ctypes, i[0:].ctypes, F.ctypes, i[0:].ctypes, piv.ctypes, i[2:].ctypes)
    return F, piv, i[2] > 0


@_jit
def _solve(A, B, trans):
    """X with A X = B (``trans``: A^T X = B), as np.linalg.solve computes it (getrf + getrs)."""
    F, piv, singular = _lu(A)
    if singular:
        raise np.linalg.LinAlgError("Singular matrix")
    n, k = B.shape
    X = np.ascontiguousarray(B.T)
    i = _ints(n, k, 0, 0, 0)
    c = _chars(84 if trans else 78, 0)
    _dgetrs(c.ctypes, i[0:].ctypes, i[1:].ctypes, F.ctypes, i[0:].ctypes, piv.ctypes, X.ctypes,
            i[0:].ctypes, i[2:].ctypes)
    return np.ascontiguousarray(X.T)


@_jit
def _inv(A):
    n = A.shape[0]
    return _solve(A, np.eye(n), False)


@_jit
def _slogdet(A):
    """(sign, log|det|) from the LU factors, as np.linalg.slogdet."""
    F, piv, singular = _lu(A)
    n = A.shape[0]
    if singular:
        return 0.0, -np.inf
    sign = 1.0
    ld = 0.0
    for r in range(n):
        u = F[r, r]
        if piv[r] != r + 1:
            sign = -sign
        if u < 0.0:
            sign = -sign
        ld += np.log(abs(u))
    return sign, ld


@_jit
def _cholesky(A):
    n = A.shape[0]
    F = np.ascontiguousarray(A.T)
    i = _ints(n, 0, 0, 0, 0)
    c = _chars(76, 0)                      # 'L': numpy reads the lower triangle
    _dpotrf(c.ctypes, i[0:].ctypes, F.ctypes, i[0:].ctypes, i[1:].ctypes)
    if i[1] > 0:
        raise np.linalg.LinAlgError("Matrix is not positive definite")
    return _tril(np.ascontiguousarray(F.T), 0)


@_jit
def _eigh(A):
    """(w, V) of symmetric A from its lower triangle (syevd, as np.linalg.eigh)."""
    n = A.shape[0]
    F = np.ascontiguousarray(A.T)
    w = np.empty(n, np.float64)
    c = _chars(86, 76)                     # jobz 'V', uplo 'L'
    i = _ints(n, -1, -1, 0, 0)             # n, lwork, liwork, info
    wq = np.empty(1, np.float64)
    iq = np.empty(1, np.int32)
    _dsyevd(c[0:].ctypes, c[1:].ctypes, i[0:].ctypes, F.ctypes, i[0:].ctypes, w.ctypes, wq.ctypes,
            i[1:].ctypes, iq.ctypes, i[2:].ctypes, i[3:].ctypes)
    work = np.empty(int(wq[0]), np.float64)
    iwork = np.empty(iq[0], np.int32)
    i[1] = work.shape[0]
    i[2] = iwork.shape[0]
    _dsyevd(c[0:].ctypes, c[1:].ctypes, i[0:].ctypes, F.ctypes, i[0:].ctypes, w.ctypes, work.ctypes,
            i[1:].ctypes, iwork.ctypes, i[2:].ctypes, i[3:].ctypes)
    if i[3] > 0:
        raise np.linalg.LinAlgError("Eigenvalues did not converge")
    return w, np.ascontiguousarray(F.T)


@_jit
def _svd(A):
    """Reduced (U, S, Vh) of A (gesdd with jobz 'S', as np.linalg.svd(full_matrices=False))."""
    m, n = A.shape
    k = min(m, n)
    F = np.ascontiguousarray(A.T)
    S = np.empty(k, np.float64)
    U = np.empty((k, m), np.float64)       # column-major (m, k)
    VT = np.empty((n, k), np.float64)      # column-major (k, n)
    iwork = np.empty(8 * max(k, 1), np.int32)
    c = _chars(83, 0)                      # jobz 'S'
    i = _ints(m, n, k, -1, 0)              # m, n (lda = m, ldu = m), ldvt = k, lwork, info
    wq = np.empty(1, np.float64)
    _dgesdd(c.ctypes, i[0:].ctypes, i[1:].ctypes, F.ctypes, i[0:].ctypes, S.ctypes, U.ctypes, i[0:].ctypes,
            VT.ctypes, i[2:].ctypes, wq.ctypes, i[3:].ctypes, iwork.ctypes, i[4:].ctypes)
    work = np.empty(int(wq[0]), np.float64)
    i[3] = work.shape[0]
    _dgesdd(c.ctypes, i[0:].ctypes, i[1:].ctypes, F.ctypes, i[0:].ctypes, S.ctypes, U.ctypes, i[0:].ctypes,
            VT.ctypes, i[2:].ctypes, work.ctypes, i[3:].ctypes, iwork.ctypes, i[4:].ctypes)
    if i[4] > 0:
        raise np.linalg.LinAlgError("SVD did not converge")
    return np.ascontiguousarray(U.T), S, np.ascontiguousarray(VT.T)


# --------------------------------------------------------------------------- solve
@_jit
def solve(vals, aoff, boff, yoff, ip, ia):
    Bt, n, k, sA, sB = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    for b in range(Bt):
        X = _solve(_mat(vals, aoff + b * sA, n, n, 1, 0), _mat(vals, boff + b * sB, n, k, 1, 0), False)
        _put(vals, yoff + b * n * k, X, 1, 0, False)


@_jit
def solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, L):
    """gB = A^-T G, gA = -gB X^T (a broadcast operand sums over the batch)."""
    Bt, n, k, sA, sB = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    if a_on and b_on and da == db:      # solve(A, A): B's cotangent is written first
        a_acc = True
    for b in range(Bt):
        A = _mat(vals, aoff + b * sA, n, n, 1, 0)
        X = _mat(vals, yoff + b * n * k, n, k, 1, 0)
        for j in range(L):
            gB = _solve(A, _mat(adj, goff + b * n * k, n, k, L, j), True)
            if b_on:
                _put(adj, db + b * sB, gB, L, j, b_acc or (sB == 0 and b > 0))
            if a_on:
                gA = _mm(gB, X, False, True)
                _put(adj, da + b * sA, _lin(gA, -1.0, gA, 0.0, False), L, j, a_acc or (sA == 0 and b > 0))


@_jit
def solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, L):
    """dX = A^-1 (dB - dA X)."""
    Bt, n, k, sA, sB = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    for b in range(Bt):
        A = _mat(vals, aoff + b * sA, n, n, 1, 0)
        X = _mat(vals, yoff + b * n * k, n, k, 1, 0)
        for j in range(L):
            R = _mat(tan, tb + b * sB, n, k, L, j) if b_on else np.zeros((n, k), np.float64)
            if a_on:
                R = _lin(R, 1.0, _mm(_mat(tan, ta + b * sA, n, n, L, j), X, False, False), -1.0, False)
            _put(tan, ty + b * n * k, _solve(A, R, False), L, j, False)


# --------------------------------------------------------------------------- determinants
@_jit
def logabsdet(vals, aoff, yoff, ip, ia, want_sign):
    """log|det A| per matrix, or (``want_sign``) the sign of det A."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        sign, ld = _slogdet(_mat(vals, aoff + b * n * n, n, n, 1, 0))
        vals[yoff + b] = sign if want_sign else ld


@_jit
def logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, L):
    """d log|det A| = A^-T (a singular matrix raises numpy.linalg.LinAlgError)."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        invT = np.ascontiguousarray(_inv(_mat(vals, aoff + b * n * n, n, n, 1, 0)).T)
        for j in range(L):
            _put(adj, da + b * n * n, _lin(invT, adj[(goff + b) * L + j], invT, 0.0, False), L, j, acc)


@_jit
def logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, L):
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        inv = _inv(_mat(vals, aoff + b * n * n, n, n, 1, 0))
        for j in range(L):
            tan[(ty + b) * L + j] = _dot(np.ascontiguousarray(inv.T), _mat(tan, ta + b * n * n, n, n, L, j))


# --------------------------------------------------------------------------- cholesky
@_jit
def cholesky(vals, aoff, yoff, ip, ia):
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        _put(vals, yoff + b * n * n, _cholesky(_mat(vals, aoff + b * n * n, n, n, 1, 0)), 1, 0, False)


@_jit
def cholesky_vjp(vals, yoff, adj, goff, da, acc, ip, ia, L):
    """gA = L^-T Phi L^-1 with Phi = tril(L^T gL) symmetrised, diagonal halved (Murray 2016)."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        Lm = _mat(vals, yoff + b * n * n, n, n, 1, 0)
        for j in range(L):
            P = _tril(_mm(Lm, _mat(adj, goff + b * n * n, n, n, L, j), True, False), 0)
            P = _lin(P, 0.5, _tril(P, -1), 0.5, True)
            gA = _solve(Lm, P, True)                                   # L^-T P
            gA = np.ascontiguousarray(_solve(Lm, np.ascontiguousarray(gA.T), True).T)   # ... L^-1
            _put(adj, da + b * n * n, gA, L, j, acc)


@_jit
def cholesky_jvp(vals, yoff, tan, ta, ty, ip, ia, L):
    """dL = L Phi(L^-1 sym(dA) L^-T), Phi = lower triangle with the diagonal halved."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        Lm = _mat(vals, yoff + b * n * n, n, n, 1, 0)
        for j in range(L):
            Y = _solve(Lm, _sym(_mat(tan, ta + b * n * n, n, n, L, j)), False)
            Z = _tril(np.ascontiguousarray(_solve(Lm, np.ascontiguousarray(Y.T), False).T), 0)
            for r in range(n):
                Z[r, r] *= 0.5
            _put(tan, ty + b * n * n, _mm(Lm, Z, False, False), L, j, False)


# --------------------------------------------------------------------------- eigh
@_jit
def eigh(vals, aoff, yoff, ip, ia):
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        w, V = _eigh(_mat(vals, aoff + b * n * n, n, n, 1, 0))
        o = yoff + b * (n + n * n)
        for i in range(n):
            vals[o + i] = w[i]
        _put(vals, o + n, V, 1, 0, False)


@_jit
def _coupled(num, gap):
    """num / gap off the diagonal; a coupling across equal eigen/singular values has no derivative."""
    n = num.shape[0]
    out = np.zeros_like(num)
    for r in range(n):
        for c in range(n):
            if r != c and num[r, c] != 0.0:
                if gap[r, c] == 0.0:
                    raise ValueError("numbad: the derivative of eigenvectors (singular vectors) is "
                                     "undefined where eigenvalues (singular values) are equal")
                out[r, c] = num[r, c] / gap[r, c]
    return out


@_jit
def _squares(s):
    out = np.empty_like(s)
    for i in range(s.shape[0]):
        out[i] = s[i] * s[i]
    return out


@_jit
def _gaps(w):
    n = w.shape[0]
    E = np.empty((n, n), np.float64)
    for r in range(n):
        for c in range(n):
            E[r, c] = w[c] - w[r]
    return E


@_jit
def eigh_vjp(vals, yoff, adj, goff, da, acc, ip, ia, L):
    """gA = V (diag(gw) + skew(V^T gV) / E) V^T, E_ij = w_j - w_i (PyTorch's linalg_eig_backward)."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        o = yoff + b * (n + n * n)
        w = _mat(vals, o, 1, n, 1, 0)[0]
        V = _mat(vals, o + n, n, n, 1, 0)
        E = _gaps(w)
        for j in range(L):
            gw = _mat(adj, goff + b * (n + n * n), 1, n, L, j)[0]
            X = _mm(V, _mat(adj, goff + b * (n + n * n) + n, n, n, L, j), True, False)
            R = _coupled(_lin(X, 0.5, X, -0.5, True), E)
            for i in range(n):
                R[i, i] = gw[i]
            _put(adj, da + b * n * n, _mm(_mm(V, R, False, False), V, False, True), L, j, acc)


@_jit
def eigh_jvp(vals, yoff, tan, ta, ty, ip, ia, L):
    """dw = diag(P), dV = V (P / E off the diagonal), P = V^T sym(dA) V."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        o = yoff + b * (n + n * n)
        w = _mat(vals, o, 1, n, 1, 0)[0]
        V = _mat(vals, o + n, n, n, 1, 0)
        E = _gaps(w)
        for j in range(L):
            P = _mm(_mm(V, _sym(_mat(tan, ta + b * n * n, n, n, L, j)), True, False), V, False, False)
            t = ty + b * (n + n * n)
            for i in range(n):
                tan[(t + i) * L + j] = P[i, i]
            _put(tan, t + n, _mm(V, _coupled(P, E), False, False), L, j, False)


# --------------------------------------------------------------------------- svd
@_jit
def svd(vals, aoff, yoff, ip, ia):
    Bt, m, n, k = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3]
    size = m * k + k + k * n
    for b in range(Bt):
        U, S, Vh = _svd(_mat(vals, aoff + b * m * n, m, n, 1, 0))
        o = yoff + b * size
        _put(vals, o, U, 1, 0, False)
        for i in range(k):
            vals[o + m * k + i] = S[i]
        _put(vals, o + m * k + k, Vh, 1, 0, False)


@_jit
def _over_s(G, S, cols):
    """G / S along columns (``cols``) or rows; a zero singular value with a nonzero G raises."""
    out = np.zeros_like(G)
    for r in range(G.shape[0]):
        for c in range(G.shape[1]):
            s = S[c] if cols else S[r]
            if G[r, c] != 0.0:
                if s == 0.0:
                    raise ValueError("numbad: the derivative of singular vectors is undefined at a zero "
                                     "singular value of a non-square matrix")
                out[r, c] = G[r, c] / s
    return out


@_jit
def svd_vjp(vals, yoff, adj, goff, da, acc, ip, ia, L):
    """PyTorch's svd_backward (reduced SVD), with gU, gS and gVh all given."""
    Bt, m, n, k = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3]
    size = m * k + k + k * n
    for b in range(Bt):
        o = yoff + b * size
        U = _mat(vals, o, m, k, 1, 0)
        S = _mat(vals, o + m * k, 1, k, 1, 0)[0]
        Vh = _mat(vals, o + m * k + k, k, n, 1, 0)
        E = _gaps(_squares(S))
        for j in range(L):
            g = goff + b * size
            gU = _mat(adj, g, m, k, L, j)
            gS = _mat(adj, g + m * k, 1, k, L, j)[0]
            gVh = _mat(adj, g + m * k + k, k, n, L, j)
            UhgU = _mm(U, gU, True, False)
            UhgU = _lin(UhgU, 1.0, UhgU, -1.0, True)
            VhgV = _mm(Vh, gVh, False, True)
            VhgV = _lin(VhgV, 1.0, VhgV, -1.0, True)
            num = np.empty((k, k), np.float64)
            for r in range(k):
                for c in range(k):
                    num[r, c] = UhgU[r, c] * S[c] + S[r] * VhgV[r, c]
            R = _coupled(num, E)
            for i in range(k):
                R[i, i] = gS[i]
            if m > n:
                gUS = _over_s(gU, S, True)
                inner = _lin(_lin(_mm(U, R, False, False), 1.0, gUS, 1.0, False), 1.0,
                             _mm(U, _mm(U, gUS, True, False), False, False), -1.0, False)
                gA = _mm(inner, Vh, False, False)
            elif m < n:
                SgVh = _over_s(gVh, S, False)
                inner = _lin(_lin(_mm(R, Vh, False, False), 1.0, SgVh, 1.0, False), 1.0,
                             _mm(_mm(SgVh, Vh, False, True), Vh, False, False), -1.0, False)
                gA = _mm(U, inner, False, False)
            else:
                gA = _mm(_mm(U, R, False, False), Vh, False, False)
            _put(adj, da + b * m * n, gA, L, j, acc)


@_jit
def svd_jvp(vals, yoff, tan, ta, ty, ip, ia, L):
    """dS = diag(P), dU = U F(P S + S P^T) + (I - UU^T) dA V / S, dV likewise; P = U^T dA V."""
    Bt, m, n, k = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3]
    size = m * k + k + k * n
    for b in range(Bt):
        o = yoff + b * size
        U = _mat(vals, o, m, k, 1, 0)
        S = _mat(vals, o + m * k, 1, k, 1, 0)[0]
        Vh = _mat(vals, o + m * k + k, k, n, 1, 0)
        E = _gaps(_squares(S))
        for j in range(L):
            dA = _mat(tan, ta + b * m * n, m, n, L, j)
            dAV = _mm(dA, Vh, False, True)
            P = _mm(U, dAV, True, False)
            PS = np.empty((k, k), np.float64)
            SP = np.empty((k, k), np.float64)
            for r in range(k):
                for c in range(k):
                    PS[r, c] = P[r, c] * S[c] + S[r] * P[c, r]
                    SP[r, c] = S[r] * P[r, c] + P[c, r] * S[c]
            dU = _mm(U, _coupled(PS, E), False, False)
            dV = _mm(Vh, _coupled(SP, E), True, False)
            if m > k:
                dU = _lin(dU, 1.0, _over_s(_lin(dAV, 1.0, _mm(U, P, False, False), -1.0, False), S, True),
                          1.0, False)
            if n > k:
                dV = _lin(dV, 1.0, _over_s(_lin(_mm(dA, U, True, False), 1.0, _mm(Vh, P, True, True), -1.0,
                                                False), S, True), 1.0, False)
            t = ty + b * size
            _put(tan, t, dU, L, j, False)
            for i in range(k):
                tan[(t + m * k + i) * L + j] = P[i, i]
            _put(tan, t + m * k + k, np.ascontiguousarray(dV.T), L, j, False)
