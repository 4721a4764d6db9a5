"""CUDA code of the linear-algebra ops: small-matrix routines that one GPU thread runs per matrix.

Where the CPU kernels (:mod:`numbad.sweeps.kernels_linalg`) call LAPACK, a
thread here runs its own routine on one matrix of the batch, in float64
(like the CPU, also for float32 tapes):

* ``solve``, ``logabsdet``, ``det_sign``: LU with partial pivoting (the first
  largest pivot, as getrf), row swaps counted for the sign;
* ``cholesky``: the lower factor from the lower triangle (potrf 'L');
* ``eigh``: cyclic Jacobi (Rutishauser's, thresholds as in Numerical Recipes)
  on the lower triangle; eigenvalues ascending like syevd;
* ``svd``: one-sided Jacobi (Hestenes) on the columns of A, or of A^T when A
  is wide; singular values descending like gesdd; a zero singular value gets
  an orthonormal completion of its singular vector.

A NaN or infinite entry makes every output of eigh and svd NaN (LAPACK returns
NaN or reports no convergence, depending on the routine and the input).

LAPACK's choice of eigen- and singular-vector signs cannot be reproduced, so
the device fixes its own: each eigenvector, and each left singular vector
(the right one follows), has its largest-magnitude entry (the first of equal
ones) positive. Quantities that do not depend on the signs (values,
reconstructions, derivatives of sign-invariant functions) agree with the CPU
to rounding. The derivative formulas are the CPU kernels', line for line,
including where they fail (:mod:`numbad.cuda.errors`).

Every routine ``m_*`` works on matrix ``b`` of an op's batch and returns an
error code (0: none). It reads the arenas lanes-last (``buf[(off + i) * L +
j]``) and keeps intermediates in float64 scratch ``wk`` from element ``w0`` on
(also lanes-last; its size per matrix is :func:`numbad.cuda.plan.scratch_size`).
The ``lane_*`` functions (ensembles) loop over the batch for lane ``j``; the
``k_*`` kernels (single replays) run one matrix per thread with ``L = 1`` and
scratch ``w0 = b * ws``.
"""
from numba import cuda, float64

from .errors import ERR_EIG_CONV, ERR_NOT_PD, ERR_SINGULAR, ERR_SVD_CONV, ERR_TIE, ERR_ZERO_S
from .kernels_segments import report
from .scalar_math import inf, log, sqrt

_dev = cuda.jit(device=True)
_kernel = cuda.jit(cache=True)

#: Jacobi sweeps before giving up (both converge in well under 20 on any reasonable matrix).
MAX_SWEEPS = 60
EPS = 2.220446049250313e-16
NAN = float("nan")


@_dev
def _ix(off, i, L, j):
    return (off + i) * L + j


@_dev
def _rd(buf, off, i, L, j):
    """An arena element as float64: the routines compute in float64 for float32 tapes too."""
    return float64(buf[(off + i) * L + j])


@_dev
def _put(buf, off, i, L, j, v, acc):
    p = (off + i) * L + j
    if acc:
        buf[p] += v
    else:
        buf[p] = v


# =========================================================================== LU
@_dev
def _lu(A, aoff, n, wk, F, P, L, j):
    """wk[F] <- the LU factors of the n x n matrix at A[aoff] (unit L below the diagonal, U on and
    above, row-major), wk[P] <- the row swapped with each row; True where a pivot is zero."""
    for q in range(n * n):
        wk[_ix(F, q, L, j)] = _rd(A, aoff, q, L, j)
    singular = False
    for c in range(n):
        p = c
        best = abs(wk[_ix(F, c * n + c, L, j)])
        for r in range(c + 1, n):
            v = abs(wk[_ix(F, r * n + c, L, j)])
            if v > best:
                best = v
                p = r
        wk[_ix(P, c, L, j)] = p
        if p != c:
            for q in range(n):
                t = wk[_ix(F, c * n + q, L, j)]
                wk[_ix(F, c * n + q, L, j)] = wk[_ix(F, p * n + q, L, j)]
                wk[_ix(F, p * n + q, L, j)] = t
        d = wk[_ix(F, c * n + c, L, j)]
        if d == 0.0:
            singular = True
            continue
        for r in range(c + 1, n):
            f = wk[_ix(F, r * n + c, L, j)] / d
            wk[_ix(F, r * n + c, L, j)] = f
            for q in range(c + 1, n):
                wk[_ix(F, r * n + q, L, j)] -= f * wk[_ix(F, c * n + q, L, j)]
    return singular


@_dev
def _lu_solve(wk, F, P, n, X, k, trans, L, j):
    """wk[X] (n x k) <- A^-1 X, or A^-T X when ``trans``, from the factors of :func:`_lu`."""
    if not trans:
        for c in range(n):
            p = int(wk[_ix(P, c, L, j)])
            if p != c:
                for q in range(k):
                    t = wk[_ix(X, c * k + q, L, j)]
                    wk[_ix(X, c * k + q, L, j)] = wk[_ix(X, p * k + q, L, j)]
                    wk[_ix(X, p * k + q, L, j)] = t
    for q in range(k):
        if not trans:
            for r in range(n):                  # L y = P b
                s = wk[_ix(X, r * k + q, L, j)]
                for t in range(r):
                    s -= wk[_ix(F, r * n + t, L, j)] * wk[_ix(X, t * k + q, L, j)]
                wk[_ix(X, r * k + q, L, j)] = s
            for r in range(n - 1, -1, -1):      # U x = y
                s = wk[_ix(X, r * k + q, L, j)]
                for t in range(r + 1, n):
                    s -= wk[_ix(F, r * n + t, L, j)] * wk[_ix(X, t * k + q, L, j)]
                wk[_ix(X, r * k + q, L, j)] = s / wk[_ix(F, r * n + r, L, j)]
        else:
            for r in range(n):                  # U^T z = b
                s = wk[_ix(X, r * k + q, L, j)]
                for t in range(r):
                    s -= wk[_ix(F, t * n + r, L, j)] * wk[_ix(X, t * k + q, L, j)]
                wk[_ix(X, r * k + q, L, j)] = s / wk[_ix(F, r * n + r, L, j)]
            for r in range(n - 1, -1, -1):      # L^T w = z
                s = wk[_ix(X, r * k + q, L, j)]
                for t in range(r + 1, n):
                    s -= wk[_ix(F, t * n + r, L, j)] * wk[_ix(X, t * k + q, L, j)]
                wk[_ix(X, r * k + q, L, j)] = s
    if trans:                                   # x = P^T w: the swaps in reverse order
        for c in range(n - 1, -1, -1):
            p = int(wk[_ix(P, c, L, j)])
            if p != c:
                for q in range(k):
                    t = wk[_ix(X, c * k + q, L, j)]
                    wk[_ix(X, c * k + q, L, j)] = wk[_ix(X, p * k + q, L, j)]
                    wk[_ix(X, p * k + q, L, j)] = t


@_dev
def _inverse(A, aoff, n, wk, F, P, V, L, j):
    """wk[V] <- A^-1 (solve with the identity, as the CPU's _inv); False where A is singular."""
    if _lu(A, aoff, n, wk, F, P, L, j):
        return False
    for r in range(n):
        for c in range(n):
            wk[_ix(V, r * n + c, L, j)] = 1.0 if r == c else 0.0
    _lu_solve(wk, F, P, n, V, n, False, L, j)
    return True


# =========================================================================== solve
@_dev
def m_solve(vals, aoff, boff, yoff, ip, ia, b, wk, w0, L, j):
    """X = A^-1 B. Scratch: LU (n*n), pivots (n), X (n*k)."""
    n, k, sA, sB = ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    F, P, X = w0, w0 + n * n, w0 + n * n + n
    if _lu(vals, aoff + b * sA, n, wk, F, P, L, j):
        return ERR_SINGULAR
    for q in range(n * k):
        wk[_ix(X, q, L, j)] = _rd(vals, boff + b * sB, q, L, j)
    _lu_solve(wk, F, P, n, X, k, False, L, j)
    for q in range(n * k):
        vals[_ix(yoff + b * n * k, q, L, j)] = wk[_ix(X, q, L, j)]
    return 0


@_dev
def m_solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, b, wk, w0, L, j):
    """gB = A^-T G, gA = -gB X^T (solve_vjp; a broadcast operand sums over the batch)."""
    n, k, sA, sB = ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    if a_on and b_on and da == db:      # solve(A, A): B's cotangent is written first
        a_acc = True
    F, P, G = w0, w0 + n * n, w0 + n * n + n
    if _lu(vals, aoff + b * sA, n, wk, F, P, L, j):
        return ERR_SINGULAR
    for q in range(n * k):
        wk[_ix(G, q, L, j)] = _rd(adj, goff + b * n * k, q, L, j)
    _lu_solve(wk, F, P, n, G, k, True, L, j)
    if b_on:
        acc = b_acc or (sB == 0 and b > 0)
        for q in range(n * k):
            _put(adj, db + b * sB, q, L, j, wk[_ix(G, q, L, j)], acc)
    if a_on:
        acc = a_acc or (sA == 0 and b > 0)
        X = yoff + b * n * k
        for r in range(n):
            for c in range(n):
                s = 0.0
                for t in range(k):
                    s += wk[_ix(G, r * k + t, L, j)] * _rd(vals, X, c * k + t, L, j)
                _put(adj, da + b * sA, r * n + c, L, j, -1.0 * s + 0.0 * s, acc)
    return 0


@_dev
def m_solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, b, wk, w0, L, j):
    """dX = A^-1 (dB - dA X)."""
    n, k, sA, sB = ip[ia + 1], ip[ia + 2], ip[ia + 3], ip[ia + 4]
    F, P, R = w0, w0 + n * n, w0 + n * n + n
    if _lu(vals, aoff + b * sA, n, wk, F, P, L, j):
        return ERR_SINGULAR
    X = yoff + b * n * k
    for r in range(n):
        for c in range(k):
            v = _rd(tan, tb + b * sB, r * k + c, L, j) if b_on else 0.0
            if a_on:
                s = 0.0
                for t in range(n):
                    s += _rd(tan, ta + b * sA, r * n + t, L, j) * _rd(vals, X, t * k + c, L, j)
                v = 1.0 * v + -1.0 * s
            wk[_ix(R, r * k + c, L, j)] = v
    _lu_solve(wk, F, P, n, R, k, False, L, j)
    for q in range(n * k):
        tan[_ix(ty + b * n * k, q, L, j)] = wk[_ix(R, q, L, j)]
    return 0


# =========================================================================== determinants
@_dev
def m_logabsdet(vals, aoff, yoff, ip, ia, want_sign, b, wk, w0, L, j):
    """log|det A| (or, ``want_sign``, the sign of det A) from the LU factors; 0 and -inf when
    singular, as np.linalg.slogdet. Scratch: n*n + n."""
    n = ip[ia + 1]
    F, P = w0, w0 + n * n
    sign = 1.0
    ld = 0.0
    if _lu(vals, aoff + b * n * n, n, wk, F, P, L, j):
        sign = 0.0
        ld = -inf
    else:
        for r in range(n):
            u = wk[_ix(F, r * n + r, L, j)]
            if int(wk[_ix(P, r, L, j)]) != r:
                sign = -sign
            if u < 0.0:
                sign = -sign
            ld += log(abs(u))
    vals[_ix(yoff + b, 0, L, j)] = sign if want_sign else ld
    return 0


@_dev
def m_logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, b, wk, w0, L, j):
    """d log|det A| = g A^-T; a singular A has none (ERR_SINGULAR, LinAlgError on the CPU)."""
    n = ip[ia + 1]
    F, P, V = w0, w0 + n * n, w0 + n * n + n
    if not _inverse(vals, aoff + b * n * n, n, wk, F, P, V, L, j):
        return ERR_SINGULAR
    g = _rd(adj, goff + b, 0, L, j)
    for r in range(n):
        for c in range(n):
            v = wk[_ix(V, c * n + r, L, j)]
            _put(adj, da + b * n * n, r * n + c, L, j, g * v + 0.0 * v, acc)
    return 0


@_dev
def m_logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, b, wk, w0, L, j):
    n = ip[ia + 1]
    F, P, V = w0, w0 + n * n, w0 + n * n + n
    if not _inverse(vals, aoff + b * n * n, n, wk, F, P, V, L, j):
        return ERR_SINGULAR
    s = 0.0
    for r in range(n):
        for c in range(n):
            s += wk[_ix(V, c * n + r, L, j)] * _rd(tan, ta + b * n * n, r * n + c, L, j)
    tan[_ix(ty + b, 0, L, j)] = s
    return 0


# =========================================================================== cholesky
@_dev
def m_cholesky(vals, aoff, yoff, ip, ia, b, wk, w0, L, j):
    """The lower factor of A's lower triangle (upper triangle zero). Scratch: n*n."""
    n = ip[ia + 1]
    A = aoff + b * n * n
    C = w0
    for c in range(n):
        s = _rd(vals, A, c * n + c, L, j)
        for t in range(c):
            s -= wk[_ix(C, c * n + t, L, j)] * wk[_ix(C, c * n + t, L, j)]
        if not s > 0.0:                  # potrf's test (NaN included)
            return ERR_NOT_PD
        d = sqrt(s)
        wk[_ix(C, c * n + c, L, j)] = d
        for r in range(c + 1, n):
            s = _rd(vals, A, r * n + c, L, j)
            for t in range(c):
                s -= wk[_ix(C, r * n + t, L, j)] * wk[_ix(C, c * n + t, L, j)]
            wk[_ix(C, r * n + c, L, j)] = s / d
        for r in range(c):
            wk[_ix(C, r * n + c, L, j)] = 0.0
    for q in range(n * n):
        vals[_ix(yoff + b * n * n, q, L, j)] = wk[_ix(C, q, L, j)]
    return 0


@_dev
def _nonsingular_triangle(vals, Lo, n, L, j):
    for r in range(n):
        if _rd(vals, Lo, r * n + r, L, j) == 0.0:
            return False
    return True


@_dev
def m_cholesky_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, w0, L, j):
    """gA = L^-T Phi L^-1, Phi = tril(L^T gL) symmetrised with the diagonal halved (cholesky_vjp),
    by triangular solves. Scratch: 2 n*n."""
    n = ip[ia + 1]
    Lo, Go = yoff + b * n * n, goff + b * n * n
    T, Pm = w0, w0 + n * n
    if not _nonsingular_triangle(vals, Lo, n, L, j):
        return ERR_SINGULAR
    for r in range(n):
        for c in range(n):
            s = 0.0
            if c <= r:
                for t in range(n):
                    s += _rd(vals, Lo, t * n + r, L, j) * _rd(adj, Go, t * n + c, L, j)
            wk[_ix(T, r * n + c, L, j)] = s
    for r in range(n):
        for c in range(n):
            low = wk[_ix(T, c * n + r, L, j)] if c > r else 0.0
            wk[_ix(Pm, r * n + c, L, j)] = 0.5 * wk[_ix(T, r * n + c, L, j)] + 0.5 * low
    for c in range(n):                  # L^T X = Phi, column by column
        for r in range(n - 1, -1, -1):
            s = wk[_ix(Pm, r * n + c, L, j)]
            for t in range(r + 1, n):
                s -= _rd(vals, Lo, t * n + r, L, j) * wk[_ix(Pm, t * n + c, L, j)]
            wk[_ix(Pm, r * n + c, L, j)] = s / _rd(vals, Lo, r * n + r, L, j)
    for r in range(n):                  # gA = X L^-1: row r solves L^T y = X[r, :]^T
        for q in range(n - 1, -1, -1):
            s = wk[_ix(Pm, r * n + q, L, j)]
            for t in range(q + 1, n):
                s -= _rd(vals, Lo, t * n + q, L, j) * wk[_ix(Pm, r * n + t, L, j)]
            wk[_ix(Pm, r * n + q, L, j)] = s / _rd(vals, Lo, q * n + q, L, j)
    for q in range(n * n):
        _put(adj, da + b * n * n, q, L, j, wk[_ix(Pm, q, L, j)], acc)
    return 0


@_dev
def m_cholesky_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, w0, L, j):
    """dL = L Phi(L^-1 sym(dA) L^-T), Phi the lower triangle with the diagonal halved. Scratch: n*n."""
    n = ip[ia + 1]
    Lo, To = yoff + b * n * n, ta + b * n * n
    Z = w0
    if not _nonsingular_triangle(vals, Lo, n, L, j):
        return ERR_SINGULAR
    for r in range(n):
        for c in range(n):
            wk[_ix(Z, r * n + c, L, j)] = (0.5 * _rd(tan, To, r * n + c, L, j)
                                           + 0.5 * _rd(tan, To, c * n + r, L, j))
    for c in range(n):                  # Y = L^-1 S, column by column
        for r in range(n):
            s = wk[_ix(Z, r * n + c, L, j)]
            for t in range(r):
                s -= _rd(vals, Lo, r * n + t, L, j) * wk[_ix(Z, t * n + c, L, j)]
            wk[_ix(Z, r * n + c, L, j)] = s / _rd(vals, Lo, r * n + r, L, j)
    for r in range(n):                  # Z = Y L^-T: row r solves L z = Y[r, :]^T
        for q in range(n):
            s = wk[_ix(Z, r * n + q, L, j)]
            for t in range(q):
                s -= _rd(vals, Lo, q * n + t, L, j) * wk[_ix(Z, r * n + t, L, j)]
            wk[_ix(Z, r * n + q, L, j)] = s / _rd(vals, Lo, q * n + q, L, j)
    for r in range(n):
        for c in range(n):
            if c > r:
                wk[_ix(Z, r * n + c, L, j)] = 0.0
            elif c == r:
                wk[_ix(Z, r * n + c, L, j)] *= 0.5
    for r in range(n):
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += _rd(vals, Lo, r * n + t, L, j) * wk[_ix(Z, t * n + c, L, j)]
            tan[_ix(ty + b * n * n, r * n + c, L, j)] = s
    return 0


# =========================================================================== eigh
@_dev
def _rotate(wk, p1, p2, s, tau, L, j):
    g = wk[p1]
    h = wk[p2]
    wk[p1] = g - s * (h + g * tau)
    wk[p2] = h + s * (g - h * tau)


@_dev
def _positive_columns(M, rows, cols, N, nrows, wk, L, j):
    """Flip the signs of columns c of wk[M] (rows x cols) whose largest-magnitude entry (the first of
    equal ones) is negative, and of column c of wk[N] (nrows x cols; none when N < 0) with them."""
    for c in range(cols):
        best = -1.0
        neg = False
        for r in range(rows):
            v = wk[_ix(M, r * cols + c, L, j)]
            if abs(v) > best:
                best = abs(v)
                neg = v < 0.0
        if neg:
            for r in range(rows):
                wk[_ix(M, r * cols + c, L, j)] = -wk[_ix(M, r * cols + c, L, j)]
            if N >= 0:
                for r in range(nrows):
                    wk[_ix(N, r * cols + c, L, j)] = -wk[_ix(N, r * cols + c, L, j)]


@_dev
def m_eigh(vals, aoff, yoff, ip, ia, b, wk, w0, L, j):
    """(w ascending, V) of the symmetric matrix A's lower triangle, by cyclic Jacobi.
    Scratch: the matrix (n*n), V (n*n), diagonal, its sweep start and increments (3n)."""
    n = ip[ia + 1]
    A = aoff + b * n * n
    S, V = w0, w0 + n * n
    D, B, Z = V + n * n, V + n * n + n, V + n * n + 2 * n
    o = yoff + b * (n + n * n)
    finite = True
    for r in range(n):
        for c in range(n):
            v = _rd(vals, A, max(r, c) * n + min(r, c), L, j)
            finite = finite and abs(v) < inf
            wk[_ix(S, r * n + c, L, j)] = v
            wk[_ix(V, r * n + c, L, j)] = 1.0 if r == c else 0.0
        wk[_ix(D, r, L, j)] = wk[_ix(S, r * n + r, L, j)]
        wk[_ix(B, r, L, j)] = wk[_ix(D, r, L, j)]
        wk[_ix(Z, r, L, j)] = 0.0
    if not finite:                      # NaN or inf in: NaN out (LAPACK's results vary)
        for q in range(n + n * n):
            vals[_ix(o, q, L, j)] = NAN
        return 0
    converged = False
    for sweep in range(1, MAX_SWEEPS + 1):
        sm = 0.0
        for p in range(n - 1):
            for q in range(p + 1, n):
                sm += abs(wk[_ix(S, p * n + q, L, j)])
        if sm == 0.0:
            converged = True
            break
        tresh = 0.2 * sm / (n * n) if sweep < 4 else 0.0
        for p in range(n - 1):
            for q in range(p + 1, n):
                pq = _ix(S, p * n + q, L, j)
                apq = wk[pq]
                g = 100.0 * abs(apq)
                dp = wk[_ix(D, p, L, j)]
                dq = wk[_ix(D, q, L, j)]
                if sweep > 4 and abs(dp) + g == abs(dp) and abs(dq) + g == abs(dq):
                    wk[pq] = 0.0
                elif abs(apq) > tresh:
                    h = dq - dp
                    if abs(h) + g == abs(h):
                        t = apq / h
                    else:
                        theta = 0.5 * h / apq
                        t = 1.0 / (abs(theta) + sqrt(1.0 + theta * theta))
                        if theta < 0.0:
                            t = -t
                    cs = 1.0 / sqrt(1.0 + t * t)
                    sn = t * cs
                    tau = sn / (1.0 + cs)
                    h = t * apq
                    wk[_ix(Z, p, L, j)] -= h
                    wk[_ix(Z, q, L, j)] += h
                    wk[_ix(D, p, L, j)] = dp - h
                    wk[_ix(D, q, L, j)] = dq + h
                    wk[pq] = 0.0
                    for r in range(p):
                        _rotate(wk, _ix(S, r * n + p, L, j), _ix(S, r * n + q, L, j), sn, tau, L, j)
                    for r in range(p + 1, q):
                        _rotate(wk, _ix(S, p * n + r, L, j), _ix(S, r * n + q, L, j), sn, tau, L, j)
                    for r in range(q + 1, n):
                        _rotate(wk, _ix(S, p * n + r, L, j), _ix(S, q * n + r, L, j), sn, tau, L, j)
                    for r in range(n):
                        _rotate(wk, _ix(V, r * n + p, L, j), _ix(V, r * n + q, L, j), sn, tau, L, j)
        for p in range(n):
            wk[_ix(B, p, L, j)] += wk[_ix(Z, p, L, j)]
            wk[_ix(D, p, L, j)] = wk[_ix(B, p, L, j)]
            wk[_ix(Z, p, L, j)] = 0.0
    if not converged:
        return ERR_EIG_CONV
    for c in range(n):                  # ascending (selection sort: the first smallest)
        m = c
        for r in range(c + 1, n):
            if wk[_ix(D, r, L, j)] < wk[_ix(D, m, L, j)]:
                m = r
        if m != c:
            t = wk[_ix(D, c, L, j)]
            wk[_ix(D, c, L, j)] = wk[_ix(D, m, L, j)]
            wk[_ix(D, m, L, j)] = t
            for r in range(n):
                t = wk[_ix(V, r * n + c, L, j)]
                wk[_ix(V, r * n + c, L, j)] = wk[_ix(V, r * n + m, L, j)]
                wk[_ix(V, r * n + m, L, j)] = t
    _positive_columns(V, n, n, -1, 0, wk, L, j)
    for r in range(n):
        vals[_ix(o, r, L, j)] = wk[_ix(D, r, L, j)]
    for q in range(n * n):
        vals[_ix(o + n, q, L, j)] = wk[_ix(V, q, L, j)]
    return 0


@_dev
def _couple(num, gap):
    """num / gap off the diagonal (CPU's _coupled): (value, error code)."""
    if num != 0.0:
        if gap == 0.0:
            return 0.0, ERR_TIE
        return num / gap, 0
    return 0.0, 0


@_dev
def m_eigh_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, w0, L, j):
    """gA = V (diag(gw) + skew(V^T gV) / E) V^T, E_ij = w_j - w_i. Scratch: 2 n*n."""
    n = ip[ia + 1]
    o, g = yoff + b * (n + n * n), goff + b * (n + n * n)
    X, R = w0, w0 + n * n
    for r in range(n):
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += _rd(vals, o + n, t * n + r, L, j) * _rd(adj, g + n, t * n + c, L, j)
            wk[_ix(X, r * n + c, L, j)] = s
    for r in range(n):
        for c in range(n):
            if r == c:
                v = _rd(adj, g, r, L, j)
            else:
                num = 0.5 * wk[_ix(X, r * n + c, L, j)] + -0.5 * wk[_ix(X, c * n + r, L, j)]
                v, e = _couple(num, _rd(vals, o, c, L, j) - _rd(vals, o, r, L, j))
                if e != 0:
                    return e
            wk[_ix(R, r * n + c, L, j)] = v
    for r in range(n):                  # X <- V R
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += _rd(vals, o + n, r * n + t, L, j) * wk[_ix(R, t * n + c, L, j)]
            wk[_ix(X, r * n + c, L, j)] = s
    for r in range(n):                  # gA = (V R) V^T
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += wk[_ix(X, r * n + t, L, j)] * _rd(vals, o + n, c * n + t, L, j)
            _put(adj, da + b * n * n, r * n + c, L, j, s, acc)
    return 0


@_dev
def m_eigh_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, w0, L, j):
    """dw = diag(P), dV = V (P / E off the diagonal), P = V^T sym(dA) V. Scratch: 2 n*n."""
    n = ip[ia + 1]
    o, To, t0 = yoff + b * (n + n * n), ta + b * n * n, ty + b * (n + n * n)
    X, Y = w0, w0 + n * n
    for r in range(n):
        for c in range(n):
            wk[_ix(X, r * n + c, L, j)] = (0.5 * _rd(tan, To, r * n + c, L, j)
                                           + 0.5 * _rd(tan, To, c * n + r, L, j))
    for r in range(n):                  # Y = V^T sym(dA)
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += _rd(vals, o + n, t * n + r, L, j) * wk[_ix(X, t * n + c, L, j)]
            wk[_ix(Y, r * n + c, L, j)] = s
    for r in range(n):                  # P = Y V
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += wk[_ix(Y, r * n + t, L, j)] * _rd(vals, o + n, t * n + c, L, j)
            wk[_ix(X, r * n + c, L, j)] = s
    for r in range(n):
        tan[_ix(t0, r, L, j)] = wk[_ix(X, r * n + r, L, j)]
        for c in range(n):
            v = 0.0
            if r != c:
                v, e = _couple(wk[_ix(X, r * n + c, L, j)], _rd(vals, o, c, L, j) - _rd(vals, o, r, L, j))
                if e != 0:
                    return e
            wk[_ix(Y, r * n + c, L, j)] = v
    for r in range(n):                  # dV = V C
        for c in range(n):
            s = 0.0
            for t in range(n):
                s += _rd(vals, o + n, r * n + t, L, j) * wk[_ix(Y, t * n + c, L, j)]
            tan[_ix(t0 + n, r * n + c, L, j)] = s
    return 0


# =========================================================================== svd
@_dev
def _complete(W, p, k, c, wk, L, j):
    """Column c of wk[W] (p x k) <- a unit vector orthogonal to its columns 0..c-1 (the unit
    vector e_t of largest residual, projected out twice)."""
    best = -1.0
    bt = 0
    for t in range(p):
        s = 1.0
        for q in range(c):
            u = wk[_ix(W, t * k + q, L, j)]
            s -= u * u
        if s > best:
            best = s
            bt = t
    for r in range(p):
        wk[_ix(W, r * k + c, L, j)] = 1.0 if r == bt else 0.0
    for _ in range(2):
        for q in range(c):
            d = 0.0
            for r in range(p):
                d += wk[_ix(W, r * k + q, L, j)] * wk[_ix(W, r * k + c, L, j)]
            for r in range(p):
                wk[_ix(W, r * k + c, L, j)] -= d * wk[_ix(W, r * k + q, L, j)]
    nrm = 0.0
    for r in range(p):
        nrm += wk[_ix(W, r * k + c, L, j)] ** 2
    nrm = sqrt(nrm)
    for r in range(p):
        wk[_ix(W, r * k + c, L, j)] /= nrm


@_dev
def m_svd(vals, aoff, yoff, ip, ia, b, wk, w0, L, j):
    """Reduced SVD [U (m, k), S (k), Vh (k, n)] by one-sided Jacobi on the p x k matrix W = A
    (tall) or A^T (wide), p = max(m, n): W J = U' S with J orthogonal.
    Scratch: W (p*k), J (k*k), S (k)."""
    m, n, k = ip[ia + 1], ip[ia + 2], ip[ia + 3]
    tall = m >= n
    p = m if tall else n
    A = aoff + b * m * n
    W, J, S = w0, w0 + p * k, w0 + p * k + k * k
    o = yoff + b * (m * k + k + k * n)
    finite = True
    for r in range(p):
        for c in range(k):
            v = _rd(vals, A, r * n + c if tall else c * n + r, L, j)
            finite = finite and abs(v) < inf
            wk[_ix(W, r * k + c, L, j)] = v
    if not finite:                      # NaN or inf in: NaN out (LAPACK's results vary)
        for q in range(m * k + k + k * n):
            vals[_ix(o, q, L, j)] = NAN
        return 0
    for r in range(k):
        for c in range(k):
            wk[_ix(J, r * k + c, L, j)] = 1.0 if r == c else 0.0
    tol = EPS * max(p, 4)
    converged = False
    for sweep in range(MAX_SWEEPS):
        rotated = False
        for a in range(k - 1):
            for c in range(a + 1, k):
                alpha = 0.0
                beta = 0.0
                gamma = 0.0
                for r in range(p):
                    x = wk[_ix(W, r * k + a, L, j)]
                    y = wk[_ix(W, r * k + c, L, j)]
                    alpha += x * x
                    beta += y * y
                    gamma += x * y
                if gamma != 0.0 and abs(gamma) > tol * sqrt(alpha) * sqrt(beta):
                    rotated = True
                    zeta = (beta - alpha) / (2.0 * gamma)
                    t = 1.0 / (abs(zeta) + sqrt(1.0 + zeta * zeta))
                    if zeta < 0.0:
                        t = -t
                    cs = 1.0 / sqrt(1.0 + t * t)
                    sn = cs * t
                    for r in range(p):
                        x = wk[_ix(W, r * k + a, L, j)]
                        y = wk[_ix(W, r * k + c, L, j)]
                        wk[_ix(W, r * k + a, L, j)] = cs * x - sn * y
                        wk[_ix(W, r * k + c, L, j)] = sn * x + cs * y
                    for r in range(k):
                        x = wk[_ix(J, r * k + a, L, j)]
                        y = wk[_ix(J, r * k + c, L, j)]
                        wk[_ix(J, r * k + a, L, j)] = cs * x - sn * y
                        wk[_ix(J, r * k + c, L, j)] = sn * x + cs * y
        if not rotated:
            converged = True
            break
    if not converged:
        return ERR_SVD_CONV
    for c in range(k):
        s = 0.0
        for r in range(p):
            s += wk[_ix(W, r * k + c, L, j)] ** 2
        wk[_ix(S, c, L, j)] = sqrt(s)
    for c in range(k):                  # descending (selection sort: the first largest)
        q = c
        for r in range(c + 1, k):
            if wk[_ix(S, r, L, j)] > wk[_ix(S, q, L, j)]:
                q = r
        if q != c:
            t = wk[_ix(S, c, L, j)]
            wk[_ix(S, c, L, j)] = wk[_ix(S, q, L, j)]
            wk[_ix(S, q, L, j)] = t
            for r in range(p):
                t = wk[_ix(W, r * k + c, L, j)]
                wk[_ix(W, r * k + c, L, j)] = wk[_ix(W, r * k + q, L, j)]
                wk[_ix(W, r * k + q, L, j)] = t
            for r in range(k):
                t = wk[_ix(J, r * k + c, L, j)]
                wk[_ix(J, r * k + c, L, j)] = wk[_ix(J, r * k + q, L, j)]
                wk[_ix(J, r * k + q, L, j)] = t
    for c in range(k):
        s = wk[_ix(S, c, L, j)]
        if s > 0.0:
            for r in range(p):
                wk[_ix(W, r * k + c, L, j)] /= s
        else:
            _complete(W, p, k, c, wk, L, j)
    # signs: U's columns (W when tall, J when wide) get a positive largest entry
    if tall:
        _positive_columns(W, p, k, J, k, wk, L, j)
    else:
        _positive_columns(J, k, k, W, p, wk, L, j)
    U = W if tall else J                # U (m x k); V (n x k), Vh its transpose
    Vt = J if tall else W
    for r in range(m):
        for c in range(k):
            vals[_ix(o, r * k + c, L, j)] = wk[_ix(U, r * k + c, L, j)]
    for c in range(k):
        vals[_ix(o + m * k, c, L, j)] = wk[_ix(S, c, L, j)]
        for r in range(n):
            vals[_ix(o + m * k + k, c * n + r, L, j)] = wk[_ix(Vt, r * k + c, L, j)]
    return 0


@_dev
def _skew(wk, M, k, L, j):
    """wk[M] (k x k) <- 1.0 * M + -1.0 * M^T (the CPU's _lin(M, 1.0, M, -1.0, True))."""
    for r in range(k):
        for c in range(r, k):
            x = wk[_ix(M, r * k + c, L, j)]
            y = wk[_ix(M, c * k + r, L, j)]
            wk[_ix(M, r * k + c, L, j)] = 1.0 * x + -1.0 * y
            wk[_ix(M, c * k + r, L, j)] = 1.0 * y + -1.0 * x


@_dev
def _over(x, s):
    """x / s where x is nonzero (CPU's _over_s, one element): (value, error code)."""
    if x != 0.0:
        if s == 0.0:
            return 0.0, ERR_ZERO_S
        return x / s, 0
    return 0.0, 0


@_dev
def m_svd_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, w0, L, j):
    """PyTorch's svd_backward (reduced SVD), as the CPU's svd_vjp. Scratch: 2 k*k + max(m, n)*k."""
    m, n, k = ip[ia + 1], ip[ia + 2], ip[ia + 3]
    size = m * k + k + k * n
    o, g = yoff + b * size, goff + b * size
    Uo, So, Vo = o, o + m * k, o + m * k + k
    gU, gS, gV = g, g + m * k, g + m * k + k
    A1, A2, B1 = w0, w0 + k * k, w0 + 2 * k * k
    for r in range(k):                  # A1 = U^T gU, A2 = Vh gVh^T
        for c in range(k):
            s1 = 0.0
            for t in range(m):
                s1 += _rd(vals, Uo, t * k + r, L, j) * _rd(adj, gU, t * k + c, L, j)
            wk[_ix(A1, r * k + c, L, j)] = s1
            s2 = 0.0
            for t in range(n):
                s2 += _rd(vals, Vo, r * n + t, L, j) * _rd(adj, gV, c * n + t, L, j)
            wk[_ix(A2, r * k + c, L, j)] = s2
    _skew(wk, A1, k, L, j)              # their skew parts X - X^T
    _skew(wk, A2, k, L, j)
    for r in range(k):                  # R (in A1)
        for c in range(k):
            if r == c:
                v = _rd(adj, gS, r, L, j)
            else:
                sr = _rd(vals, So, r, L, j)
                sc = _rd(vals, So, c, L, j)
                num = wk[_ix(A1, r * k + c, L, j)] * sc + sr * wk[_ix(A2, r * k + c, L, j)]
                v, e = _couple(num, sc * sc - sr * sr)
                if e != 0:
                    return e
            wk[_ix(A1, r * k + c, L, j)] = v
    if m > n:
        for r in range(m):              # gUS = gU / S
            for c in range(k):
                v, e = _over(_rd(adj, gU, r * k + c, L, j), _rd(vals, So, c, L, j))
                if e != 0:
                    return e
                wk[_ix(B1, r * k + c, L, j)] = v
        for r in range(k):              # A2 = U^T gUS
            for c in range(k):
                s = 0.0
                for t in range(m):
                    s += _rd(vals, Uo, t * k + r, L, j) * wk[_ix(B1, t * k + c, L, j)]
                wk[_ix(A2, r * k + c, L, j)] = s
        for r in range(m):              # inner = U R + gUS - U A2
            for c in range(k):
                s1 = 0.0
                s2 = 0.0
                for t in range(k):
                    s1 += _rd(vals, Uo, r * k + t, L, j) * wk[_ix(A1, t * k + c, L, j)]
                    s2 += _rd(vals, Uo, r * k + t, L, j) * wk[_ix(A2, t * k + c, L, j)]
                wk[_ix(B1, r * k + c, L, j)] = 1.0 * (1.0 * s1 + 1.0 * wk[_ix(B1, r * k + c, L, j)]) + -1.0 * s2
        for r in range(m):              # gA = inner Vh
            for c in range(n):
                s = 0.0
                for t in range(k):
                    s += wk[_ix(B1, r * k + t, L, j)] * _rd(vals, Vo, t * n + c, L, j)
                _put(adj, da + b * m * n, r * n + c, L, j, s, acc)
    elif m < n:
        for r in range(k):              # SgVh = gVh / S (rows)
            for c in range(n):
                v, e = _over(_rd(adj, gV, r * n + c, L, j), _rd(vals, So, r, L, j))
                if e != 0:
                    return e
                wk[_ix(B1, r * n + c, L, j)] = v
        for r in range(k):              # A2 = SgVh Vh^T
            for c in range(k):
                s = 0.0
                for t in range(n):
                    s += wk[_ix(B1, r * n + t, L, j)] * _rd(vals, Vo, c * n + t, L, j)
                wk[_ix(A2, r * k + c, L, j)] = s
        for r in range(k):              # inner = R Vh + SgVh - A2 Vh
            for c in range(n):
                s1 = 0.0
                s2 = 0.0
                for t in range(k):
                    s1 += wk[_ix(A1, r * k + t, L, j)] * _rd(vals, Vo, t * n + c, L, j)
                    s2 += wk[_ix(A2, r * k + t, L, j)] * _rd(vals, Vo, t * n + c, L, j)
                wk[_ix(B1, r * n + c, L, j)] = 1.0 * (1.0 * s1 + 1.0 * wk[_ix(B1, r * n + c, L, j)]) + -1.0 * s2
        for r in range(m):              # gA = U inner
            for c in range(n):
                s = 0.0
                for t in range(k):
                    s += _rd(vals, Uo, r * k + t, L, j) * wk[_ix(B1, t * n + c, L, j)]
                _put(adj, da + b * m * n, r * n + c, L, j, s, acc)
    else:
        for r in range(m):              # B1 = U R
            for c in range(k):
                s = 0.0
                for t in range(k):
                    s += _rd(vals, Uo, r * k + t, L, j) * wk[_ix(A1, t * k + c, L, j)]
                wk[_ix(B1, r * k + c, L, j)] = s
        for r in range(m):              # gA = (U R) Vh
            for c in range(n):
                s = 0.0
                for t in range(k):
                    s += wk[_ix(B1, r * k + t, L, j)] * _rd(vals, Vo, t * n + c, L, j)
                _put(adj, da + b * m * n, r * n + c, L, j, s, acc)
    return 0


@_dev
def m_svd_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, w0, L, j):
    """dS = diag(P), dU = U F(P S + S P^T) + (I - UU^T) dA V / S, dV likewise (svd_jvp).
    Scratch: 3 k*k + m*k."""
    m, n, k = ip[ia + 1], ip[ia + 2], ip[ia + 3]
    size = m * k + k + k * n
    o, t0, Ao = yoff + b * size, ty + b * size, ta + b * m * n
    Uo, So, Vo = o, o + m * k, o + m * k + k
    P, CP, CS, B1 = w0, w0 + k * k, w0 + 2 * k * k, w0 + 3 * k * k
    for r in range(m):                  # B1 = dA V
        for c in range(k):
            s = 0.0
            for t in range(n):
                s += _rd(tan, Ao, r * n + t, L, j) * _rd(vals, Vo, c * n + t, L, j)
            wk[_ix(B1, r * k + c, L, j)] = s
    for r in range(k):                  # P = U^T dA V
        for c in range(k):
            s = 0.0
            for t in range(m):
                s += _rd(vals, Uo, t * k + r, L, j) * wk[_ix(B1, t * k + c, L, j)]
            wk[_ix(P, r * k + c, L, j)] = s
    for r in range(k):
        for c in range(k):
            v1 = 0.0
            v2 = 0.0
            if r != c:
                sr = _rd(vals, So, r, L, j)
                sc = _rd(vals, So, c, L, j)
                prc = wk[_ix(P, r * k + c, L, j)]
                pcr = wk[_ix(P, c * k + r, L, j)]
                gap = sc * sc - sr * sr
                v1, e = _couple(prc * sc + sr * pcr, gap)
                if e != 0:
                    return e
                v2, e = _couple(sr * prc + pcr * sc, gap)
                if e != 0:
                    return e
            wk[_ix(CP, r * k + c, L, j)] = v1
            wk[_ix(CS, r * k + c, L, j)] = v2
    for r in range(m):                  # dU
        for c in range(k):
            s = 0.0
            for t in range(k):
                s += _rd(vals, Uo, r * k + t, L, j) * wk[_ix(CP, t * k + c, L, j)]
            if m > k:
                up = 0.0
                for t in range(k):
                    up += _rd(vals, Uo, r * k + t, L, j) * wk[_ix(P, t * k + c, L, j)]
                v, e = _over(1.0 * wk[_ix(B1, r * k + c, L, j)] + -1.0 * up, _rd(vals, So, c, L, j))
                if e != 0:
                    return e
                s = 1.0 * s + 1.0 * v
            tan[_ix(t0, r * k + c, L, j)] = s
    for c in range(k):
        tan[_ix(t0 + m * k, c, L, j)] = wk[_ix(P, c * k + c, L, j)]
    for r in range(n):                  # dV (n x k), stored transposed as dVh
        for c in range(k):
            s = 0.0
            for t in range(k):
                s += _rd(vals, Vo, t * n + r, L, j) * wk[_ix(CS, t * k + c, L, j)]
            if n > k:
                x1 = 0.0
                x2 = 0.0
                for t in range(m):
                    x1 += _rd(tan, Ao, t * n + r, L, j) * _rd(vals, Uo, t * k + c, L, j)
                for t in range(k):
                    x2 += _rd(vals, Vo, t * n + r, L, j) * wk[_ix(P, c * k + t, L, j)]
                v, e = _over(1.0 * x1 + -1.0 * x2, _rd(vals, So, c, L, j))
                if e != 0:
                    return e
                s = 1.0 * s + 1.0 * v
            tan[_ix(t0 + m * k + k, c * n + r, L, j)] = s
    return 0


# =========================================================================== ensembles: the batch on one lane
@_dev
def lane_solve(vals, aoff, boff, yoff, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_solve(vals, aoff, boff, yoff, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_logabsdet(vals, aoff, yoff, ip, ia, want_sign, wk, L, j):
    for b in range(ip[ia]):
        m_logabsdet(vals, aoff, yoff, ip, ia, want_sign, b, wk, 0, L, j)
    return 0


@_dev
def lane_logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_cholesky(vals, aoff, yoff, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_cholesky(vals, aoff, yoff, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_cholesky_vjp(vals, yoff, adj, goff, da, acc, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_cholesky_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_cholesky_jvp(vals, yoff, tan, ta, ty, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_cholesky_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_eigh(vals, aoff, yoff, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_eigh(vals, aoff, yoff, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_eigh_vjp(vals, yoff, adj, goff, da, acc, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_eigh_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_eigh_jvp(vals, yoff, tan, ta, ty, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_eigh_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_svd(vals, aoff, yoff, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_svd(vals, aoff, yoff, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_svd_vjp(vals, yoff, adj, goff, da, acc, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_svd_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


@_dev
def lane_svd_jvp(vals, yoff, tan, ta, ty, ip, ia, wk, L, j):
    for b in range(ip[ia]):
        e = m_svd_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, 0, L, j)
        if e != 0:
            return e
    return 0


# =========================================================================== single replays: one matrix per thread
# Launched with one thread per matrix; a cotangent that sums over the batch (a matrix
# broadcast over it) is launched with a single thread, which then loops over the batch
# in the CPU's order. Errors go to err[0] as keys (numbad.cuda.errors.key).

@_kernel
def k_solve(vals, aoff, boff, yoff, ip, ia, wk, ws, err, row):
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        e = m_solve(vals, aoff, boff, yoff, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, wk, ws, err, row):
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        e = m_solve_vjp(vals, aoff, yoff, adj, goff, a_on, da, a_acc, b_on, db, b_acc, ip, ia, b, wk, b * ws,
                        1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, wk, ws, err, row):
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        e = m_solve_jvp(vals, aoff, yoff, tan, a_on, ta, b_on, tb, ty, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_logabsdet(vals, aoff, yoff, ip, ia, want_sign, wk, ws, err, row):
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        m_logabsdet(vals, aoff, yoff, ip, ia, want_sign, b, wk, b * ws, 1, 0)


@_kernel
def k_logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, wk, ws, err, row):
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        e = m_logabsdet_vjp(vals, aoff, adj, goff, da, acc, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, wk, ws, err, row):
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        e = m_logabsdet_jvp(vals, aoff, tan, ta, ty, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_factor(kind, vals, aoff, yoff, ip, ia, wk, ws, err, row):
    """Forward of cholesky (kind 0), eigh (1) or svd (2)."""
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        if kind == 0:
            e = m_cholesky(vals, aoff, yoff, ip, ia, b, wk, b * ws, 1, 0)
        elif kind == 1:
            e = m_eigh(vals, aoff, yoff, ip, ia, b, wk, b * ws, 1, 0)
        else:
            e = m_svd(vals, aoff, yoff, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_factor_vjp(kind, vals, yoff, adj, goff, da, acc, ip, ia, wk, ws, err, row):
    """Cotangent of cholesky (kind 0), eigh (1) or svd (2) from the op's factors."""
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        if kind == 0:
            e = m_cholesky_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, b * ws, 1, 0)
        elif kind == 1:
            e = m_eigh_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, b * ws, 1, 0)
        else:
            e = m_svd_vjp(vals, yoff, adj, goff, da, acc, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


@_kernel
def k_factor_jvp(kind, vals, yoff, tan, ta, ty, ip, ia, wk, ws, err, row):
    """Tangent of cholesky (kind 0), eigh (1) or svd (2)."""
    for b in range(cuda.grid(1), ip[ia], cuda.gridsize(1)):
        if kind == 0:
            e = m_cholesky_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, b * ws, 1, 0)
        elif kind == 1:
            e = m_eigh_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, b * ws, 1, 0)
        else:
            e = m_svd_jvp(vals, yoff, tan, ta, ty, ip, ia, b, wk, b * ws, 1, 0)
        if e != 0:
            report(err, row, b, e)


#: The ``kind`` argument of k_factor, k_factor_vjp and k_factor_jvp.
FACTOR_KINDS = {"cholesky": 0, "eigh": 1, "svd": 2}
