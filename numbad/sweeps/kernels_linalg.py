"""njit kernels of the linear-algebra ops: solve, log|det|, sign(det), cholesky, eigh, svd.

Matrices live in the arenas in C order, batch after batch; lane ``j`` of an
adjoint or tangent arena is read into a plain matrix (``_mat``), worked on
with numba's ``np.linalg`` (LAPACK), and written back (``_put``). These
kernels allocate: LAPACK needs workspace anyway, and an O(n^3) factorisation
dwarfs the allocation.

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
import numpy as np
from numba import njit

_jit = njit(error_model="numpy", cache=True, nogil=True)


@_jit
def _mat(buf, off, rows, cols, L, j):
    """Lane ``j`` of the (rows, cols) matrix at element offset ``off``, as a new float64 array
    (LAPACK runs in float64 for float32 tapes too: one compiled variant, and more accuracy)."""
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
def _sym(M):
    return 0.5 * (M + M.T)


@_jit
def _tril(M, k):
    out = M.copy()
    n, m = M.shape
    for r in range(n):
        for c in range(m):
            if c - r > k:
                out[r, c] = 0.0
    return out


# --------------------------------------------------------------------------- solve
@_jit
def solve(vals, aoff, boff, yoff, ip, ia):
    Bt, n, k, sA, sB = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    for b in range(Bt):
        X = np.linalg.solve(_mat(vals, aoff + b * sA, n, n, 1, 0), _mat(vals, boff + b * sB, n, k, 1, 0))
        _put(vals, yoff + b * n * k, X, 1, 0, False)


@_jit
def solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, L):
    """gB = A^-T G, gA = -gB X^T (a broadcast operand sums over the batch)."""
    Bt, n, k, sA, sB = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    if a_on and b_on and da == db:      # solve(A, A): B's cotangent is written first
        a_acc = True
    for b in range(Bt):
        At = np.ascontiguousarray(_mat(vals, aoff + b * sA, n, n, 1, 0).T)
        X = _mat(vals, yoff + b * n * k, n, k, 1, 0)
        for j in range(L):
            gB = np.linalg.solve(At, _mat(adj, goff + b * n * k, n, k, L, j))
            if b_on:
                _put(adj, db + b * sB, gB, L, j, b_acc or (sB == 0 and b > 0))
            if a_on:
                _put(adj, da + b * sA, -(gB @ X.T), L, j, a_acc or (sA == 0 and b > 0))


@_jit
def solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, L):
    """dX = A^-1 (dB - dA X)."""
    Bt, n, k, sA, sB = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    for b in range(Bt):
        A = _mat(vals, aoff + b * sA, n, n, 1, 0)
        X = _mat(vals, yoff + b * n * k, n, k, 1, 0)
        for j in range(L):
            R = np.zeros((n, k), np.float64)
            if b_on:
                R += _mat(tan, tb + b * sB, n, k, L, j)
            if a_on:
                R -= _mat(tan, ta + b * sA, n, n, L, j) @ X
            _put(tan, ty + b * n * k, np.linalg.solve(A, R), L, j, False)


# --------------------------------------------------------------------------- determinants
@_jit
def logabsdet(vals, aoff, yoff, ip, ia, want_sign):
    """log|det A| per matrix, or (``want_sign``) the sign of det A."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        sign, ld = np.linalg.slogdet(_mat(vals, aoff + b * n * n, n, n, 1, 0))
        vals[yoff + b] = sign if want_sign else ld


@_jit
def logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, L):
    """d log|det A| = A^-T (a singular matrix raises numpy.linalg.LinAlgError)."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        invT = np.ascontiguousarray(np.linalg.inv(_mat(vals, aoff + b * n * n, n, n, 1, 0)).T)
        for j in range(L):
            _put(adj, da + b * n * n, invT * adj[(goff + b) * L + j], L, j, acc)


@_jit
def logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, L):
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        invT = np.linalg.inv(_mat(vals, aoff + b * n * n, n, n, 1, 0)).T
        for j in range(L):
            tan[(ty + b) * L + j] = np.sum(invT * _mat(tan, ta + b * n * n, n, n, L, j))


# --------------------------------------------------------------------------- cholesky
@_jit
def cholesky(vals, aoff, yoff, ip, ia):
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        _put(vals, yoff + b * n * n, np.linalg.cholesky(_mat(vals, aoff + b * n * n, n, n, 1, 0)), 1, 0, False)


@_jit
def cholesky_vjp(vals, yoff, adj, goff, da, acc, ip, ia, L):
    """gA = L^-T Phi L^-1 with Phi = tril(L^T gL) symmetrised, diagonal halved (Murray 2016)."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        Lm = _mat(vals, yoff + b * n * n, n, n, 1, 0)
        Lt = np.ascontiguousarray(Lm.T)
        for j in range(L):
            P = _tril(Lt @ _mat(adj, goff + b * n * n, n, n, L, j), 0)
            P = 0.5 * (P + _tril(P, -1).T)
            gA = np.linalg.solve(Lt, P)
            gA = np.ascontiguousarray(np.linalg.solve(Lt, np.ascontiguousarray(gA.T)).T)
            _put(adj, da + b * n * n, gA, L, j, acc)


@_jit
def cholesky_jvp(vals, yoff, tan, ta, ty, ip, ia, L):
    """dL = L Phi(L^-1 sym(dA) L^-T), Phi = lower triangle with the diagonal halved."""
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        Lm = _mat(vals, yoff + b * n * n, n, n, 1, 0)
        for j in range(L):
            Y = np.linalg.solve(Lm, _sym(_mat(tan, ta + b * n * n, n, n, L, j)))
            Z = np.linalg.solve(Lm, np.ascontiguousarray(Y.T)).T
            Z = _tril(Z, 0)
            for r in range(n):
                Z[r, r] *= 0.5
            _put(tan, ty + b * n * n, Lm @ Z, L, j, False)


# --------------------------------------------------------------------------- eigh
@_jit
def eigh(vals, aoff, yoff, ip, ia):
    Bt, n = ip[ia], ip[ia + 1]
    for b in range(Bt):
        w, V = np.linalg.eigh(_mat(vals, aoff + b * n * n, n, n, 1, 0))
        o = yoff + b * (n + n * n)
        for i in range(n):
            vals[o + i] = w[i]
        _put(vals, o + n, np.ascontiguousarray(V), 1, 0, False)


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
def _gaps(w):
    n = w.shape[0]
    E = np.empty((n, n), w.dtype)
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
            X = V.T @ _mat(adj, goff + b * (n + n * n) + n, n, n, L, j)
            R = _coupled(0.5 * (X - X.T), E)
            for i in range(n):
                R[i, i] = gw[i]
            _put(adj, da + b * n * n, V @ R @ V.T, L, j, acc)


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
            P = V.T @ _sym(_mat(tan, ta + b * n * n, n, n, L, j)) @ V
            t = ty + b * (n + n * n)
            for i in range(n):
                tan[(t + i) * L + j] = P[i, i]
            _put(tan, t + n, V @ _coupled(P, E), L, j, False)


# --------------------------------------------------------------------------- svd
@_jit
def svd(vals, aoff, yoff, ip, ia):
    Bt, m, n, k = ip[ia], ip[ia + 1], ip[ia + 2], ip[ia + 3]
    size = m * k + k + k * n
    for b in range(Bt):
        U, S, Vh = np.linalg.svd(_mat(vals, aoff + b * m * n, m, n, 1, 0), full_matrices=False)
        o = yoff + b * size
        _put(vals, o, np.ascontiguousarray(U), 1, 0, False)
        for i in range(k):
            vals[o + m * k + i] = S[i]
        _put(vals, o + m * k + k, np.ascontiguousarray(Vh), 1, 0, False)


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
        E = _gaps(S * S)
        for j in range(L):
            g = goff + b * size
            gU = _mat(adj, g, m, k, L, j)
            gS = _mat(adj, g + m * k, 1, k, L, j)[0]
            gVh = _mat(adj, g + m * k + k, k, n, L, j)
            UhgU = U.T @ gU
            UhgU = UhgU - UhgU.T
            VhgV = Vh @ gVh.T
            VhgV = VhgV - VhgV.T
            num = np.empty((k, k), np.float64)
            for r in range(k):
                for c in range(k):
                    num[r, c] = UhgU[r, c] * S[c] + S[r] * VhgV[r, c]
            R = _coupled(num, E)
            for i in range(k):
                R[i, i] = gS[i]
            if m > n:
                gUS = _over_s(gU, S, True)
                gA = (U @ R + gUS - U @ (U.T @ gUS)) @ Vh
            elif m < n:
                SgVh = _over_s(gVh, S, False)
                gA = U @ (R @ Vh + SgVh - (SgVh @ Vh.T) @ Vh)
            else:
                gA = U @ R @ Vh
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
        V = np.ascontiguousarray(_mat(vals, o + m * k + k, k, n, 1, 0).T)
        E = _gaps(S * S)
        for j in range(L):
            dA = _mat(tan, ta + b * m * n, m, n, L, j)
            P = U.T @ dA @ V
            PS = np.empty((k, k), np.float64)
            SP = np.empty((k, k), np.float64)
            for r in range(k):
                for c in range(k):
                    PS[r, c] = P[r, c] * S[c] + S[r] * P[c, r]
                    SP[r, c] = S[r] * P[r, c] + P[c, r] * S[c]
            dU = U @ _coupled(PS, E)
            dV = V @ _coupled(SP, E)
            if m > k:
                dU += _over_s(dA @ V - U @ P, S, True)
            if n > k:
                dV += _over_s(dA.T @ U - V @ P.T, S, True)
            t = ty + b * size
            _put(tan, t, dU, L, j, False)
            for i in range(k):
                tan[(t + m * k + i) * L + j] = P[i, i]
            _put(tan, t + m * k + k, np.ascontiguousarray(dV.T), L, j, False)
