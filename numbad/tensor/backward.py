"""The differentiable reverse sweep (``create_graph=True``).

It walks the same op rows as the njit sweep, but applies each derivative rule
to :class:`Tensor` objects, so the cotangents are themselves recorded on the
tape and can be differentiated again, to any order. The rules are the
registry's: elementwise partials are the very expressions the njit sweep
inlines, and each structural op's derivative is its registered transpose
(gather <-> scatter, take <-> put_add, take_along <-> put_along, cumsum <->
cumsum_reverse, matmul -> matmuls). Rules that depend on values (ties of a
max, zeros of a cumprod) compute them with recorded comparisons, so that a
replayed tape recomputes them too.
"""
from __future__ import annotations

import numpy as np

from ..ops import BY_CODE, OPS, compiled_partials
from ..sweeps import varying_nodes
from ..tape import OP_WIDTH
from . import core
from .core import Tensor, wrap

_SCATTER = OPS["scatter"].code
_GATHER = OPS["gather"].code
_TAKE = OPS["take"].code
_PUT_ADD = OPS["put_add"].code
_TAKE_ALONG = OPS["take_along"].code
_PUT_ALONG = OPS["put_along"].code
_ASSIGN = OPS["assign"].code


def node_tensor(tape, node):
    return wrap(tape.value(node), tape, node)


# ----------------------------------------------------------------------------- maps in numpy
def map_indices(tape, ia):
    """Flat positions (in the other operand) of every element walked by a strided map."""
    nd = tape.attrs(ia, 1)[0]
    blk = tape.attrs(ia, 2 * nd + 3)
    shape, strides, base = blk[1:1 + nd], blk[1 + nd:1 + 2 * nd], blk[1 + 2 * nd]
    idx = np.full(shape, base, np.int64)
    for d in range(nd):
        sh = [1] * nd
        sh[d] = shape[d]
        idx = idx + (np.arange(shape[d], dtype=np.int64) * strides[d]).reshape(sh)
    return idx, blk[2 + 2 * nd]


def _bincount(idx, weights, size, dtype):
    out = np.bincount(idx.ravel(), weights=np.ravel(weights).astype(np.float64), minlength=size)
    return out.astype(dtype, copy=False)


def gather_by_map(g, ia, shape):
    """Record ``g.flat[map]`` (the transpose of a scatter with map ``ia``)."""
    idx, _ = map_indices(g._tape, ia)
    value = np.ravel(g._v)[idx].reshape(shape)
    return core.record(g._tape, _GATHER, value, g._node, iattr=ia)


def scatter_by_map(g, ia, shape):
    """Record zeros with ``g`` added at the map's positions (the transpose of a gather)."""
    idx, size = map_indices(g._tape, ia)
    value = _bincount(idx, g._v, size, g.dtype).reshape(shape)
    return core.record(g._tape, _SCATTER, value, g._node, iattr=ia)


def take_by_index(g, ia, shape):
    count = g._tape.attrs(ia, 1)[0]
    idx = np.asarray(g._tape.attrs(ia, count + 2)[2:], np.int64)
    value = np.ravel(g._v)[idx].reshape(shape)
    return core.record(g._tape, _TAKE, value, g._node, iattr=ia)


def put_add_by_index(g, ia, shape):
    count, size = g._tape.attrs(ia, 2)
    idx = np.asarray(g._tape.attrs(ia, count + 2)[2:], np.int64)
    value = _bincount(idx, g._v, size, g.dtype).reshape(shape)
    return core.record(g._tape, _PUT_ADD, value, g._node, iattr=ia)


# ----------------------------------------------------------------------------- rules per kind
def _reshape(t, shape):
    if t.shape == tuple(shape):
        return t
    from .numpy_api import reshape
    return reshape(t, shape)


def _elementwise(tape, op, out, operands, ia, g, varying):
    ts = [node_tensor(tape, nd) for nd in operands[:op.arity]]
    y = node_tensor(tape, out)
    n = tape.node_size[out]
    result = []
    for k, (nd, fn) in enumerate(zip(operands, compiled_partials(op))):
        if fn is None or not varying[nd]:
            continue
        d = fn(*ts, y)
        if isinstance(d, (int, float)) and d == 1.0:
            contrib = g
        elif isinstance(d, (int, float)) and d == -1.0:
            contrib = -g
        elif op.select or (isinstance(d, (int, float)) and d == 0.0):
            # (the njit sweeps' Op.times: a zero partial selects 0, whatever g holds; linear in g)
            contrib = np.where(d == 0.0, 0.0, g * d)
        else:
            contrib = g * d
        if tape.node_size[nd] != n:          # broadcast from one element: sum the cotangent
            from .numpy_api import sum_
            contrib = sum_(contrib)
        result.append((nd, _reshape(contrib, tape.node_shape[nd])))
    return result


def _matmul(tape, op, out, operands, ia, g, varying):
    Bt, M, K, N, tA, tB, sA, sB = tape.attrs(ia, 8)
    a, b = operands[0], operands[1]
    from ..sweeps.kernels import matmul_vjp_plan
    result = []
    for which, nd in ((0, a), (1, b)):
        if not varying[nd]:
            continue
        first, second, tf, ts = matmul_vjp_plan.py_func(which, tA, tB)
        if which == 0:
            R, C, I, sD = (K, M, N, sA) if tA else (M, K, N, sA)
        else:
            R, C, I, sD = (N, K, M, sB) if tB else (K, N, M, sB)
        stored = {0: (node_tensor(tape, a), sA, (K, M) if tA else (M, K)),
                  1: (node_tensor(tape, b), sB, (N, K) if tB else (K, N)),
                  2: (g, M * N, (M, N))}
        F, sF, shF = stored[first]
        S, sS, shS = stored[second]
        Fv = np.reshape(F._v, ((Bt if sF else 1),) + shF)
        Sv = np.reshape(S._v, ((Bt if sS else 1),) + shS)
        value = np.matmul(np.swapaxes(Fv, -1, -2) if tf else Fv, np.swapaxes(Sv, -1, -2) if ts else Sv)
        prod = core.matmul(F, S, tf, ts, Bt, R, I, C, sF, sS, value)
        if sD == 0 and Bt > 1:                # one matrix broadcast over the batch: sum the batch
            from .numpy_api import sum_
            prod = sum_(prod, axis=0)
        result.append((nd, _reshape(prod, tape.node_shape[nd])))
    return result


def _assemble(tape, op, out, operands, ia, g, varying):
    nparts = tape.attrs(ia, 1)[0]
    blk = tape.attrs(ia, 2 + 2 * nparts)
    result = []
    for p in range(nparts):
        nd, mia = blk[2 + 2 * p], blk[3 + 2 * p]
        if varying[nd]:
            result.append((nd, gather_by_map(g, mia, tape.node_shape[nd])))
    return result


def _linear(transpose):
    def rule(tape, op, out, operands, ia, g, varying):
        nd = operands[0]
        if not varying[nd]:
            return []
        return [(nd, transpose(g, ia, tape.node_shape[nd]))]
    return rule


def put_along_by_index(g, knode, ia, shape):
    """Record zeros with ``g`` added along the middle axis at the indices of node ``knode``."""
    tape = g._tape
    O, R, I, Q = tape.attrs(ia, 4)
    k = np.asarray(tape.value(knode), np.int64).reshape(O, Q, I) % max(R, 1)
    value = np.zeros((O, R, I), g.dtype)
    o, i = np.meshgrid(np.arange(O), np.arange(I), indexing="ij")
    gv = np.reshape(g._v, (O, Q, I))
    for q in range(Q):
        np.add.at(value, (o, k[:, q, :], i), gv[:, q, :])
    return core.record(tape, _PUT_ALONG, value.reshape(shape), g._node, knode, iattr=ia)


def take_along_by_index(g, knode, ia, shape):
    """Record ``g`` read along the middle axis at the indices of node ``knode``."""
    tape = g._tape
    O, R, I, Q = tape.attrs(ia, 4)
    k = np.asarray(tape.value(knode), np.int64).reshape(O, Q, I) % max(R, 1)
    value = np.take_along_axis(np.reshape(g._v, (O, R, I)), k, 1)
    return core.record(tape, _TAKE_ALONG, value.reshape(shape), g._node, knode, iattr=ia)


def _along(transpose):
    def rule(tape, op, out, operands, ia, g, varying):
        nd = operands[0]
        if not varying[nd]:
            return []
        return [(nd, transpose(g, operands[1], ia, tape.node_shape[nd]))]
    return rule


def _segment_operands(tape, out, operands, ia, g):
    """The operand, result and cotangent viewed as (O, R, I), (O, 1 or R, I), like the result."""
    O, R, I = tape.attrs(ia, 3)
    x = _reshape(node_tensor(tape, operands[0]), (O, R, I))
    y = node_tensor(tape, out)
    q = R if tape.node_size[out] == O * R * I else 1
    return x, _reshape(y, (O, q, I)), _reshape(g, (O, q, I))


def _extreme(tape, op, out, operands, ia, g, varying):
    """The cotangent split evenly among the elements equal to the result (NaN results: the NaNs)."""
    nd = operands[0]
    if not varying[nd]:
        return []
    from .reductions import sum_
    x, y, g = _segment_operands(tape, out, operands, ia, g)
    hit = (x == y) | (np.isnan(x) & np.isnan(y))
    share = g / sum_(hit, axis=1, keepdims=True)
    return [(nd, _reshape(np.where(hit, share, 0.0), tape.node_shape[nd]))]


def _scan_sum(tape, op, out, operands, ia, g, varying):
    """cumsum's transpose is the running sum from the other end (and the other way round)."""
    nd = operands[0]
    if not varying[nd]:
        return []
    O, R, I = tape.attrs(ia, 3)
    gv = np.reshape(g._v, (O, R, I))
    if op.param:        # the transpose of a reversed cumsum is a cumsum
        value, code = np.cumsum(gv, axis=1), OPS["cumsum"].code
    else:
        value, code = np.flip(np.cumsum(np.flip(gv, 1), axis=1), 1), OPS["cumsum_reverse"].code
    return [(nd, core.record(tape, code, value.reshape(tape.node_shape[nd]), g._node, iattr=ia))]


def _cumprod(tape, op, out, operands, ia, g, varying):
    """PyTorch's rule: reversed cumsum of g*y over x without zeros; with a zero, the O(R^2)
    sum over exclusive products, which stays exact at higher orders."""
    nd = operands[0]
    if not varying[nd]:
        return []
    from .reductions import any_, cumprod, cumsum_reverse, sum_
    from .shape import concatenate, getitem, stack
    x, y, g = _segment_operands(tape, out, operands, ia, g)
    O, R, I = x.shape
    if not any_(x == 0.0):        # a recorded test: a replay checks which rule applies
        gx = cumsum_reverse(g * y, 1) / x
    else:
        ones = np.ones((O, 1, I), x.dtype)
        terms = []
        for k in range(R):
            before = cumprod(concatenate([ones, getitem(x, (slice(None), slice(0, k)))], 1), 1)
            tail = cumprod(concatenate([ones, getitem(x, (slice(None), slice(k + 1, None)))], 1), 1)
            terms.append(getitem(before, (slice(None), k)) *
                         sum_(getitem(g, (slice(None), slice(k, None))) * tail, axis=1))
        gx = stack(terms, 1)
    return [(nd, _reshape(gx, tape.node_shape[nd]))]


def _assign(tape, op, out, operands, ia, g, varying):
    """The written part gets the cotangent at its positions; the old version the rest."""
    base, part = operands[0], operands[1]
    result = []
    count = tape.attrs(ia, 1)[0]
    if varying[part]:
        t = take_by_index(g, ia, (count,))
        if tape.node_size[part] == 1 and count != 1:
            from .reductions import sum_
            t = sum_(t)
        result.append((part, _reshape(t, tape.node_shape[part])))
    if varying[base]:
        idx = np.asarray(tape.attrs(ia, count + 2)[2:], np.int64)
        value = np.array(g._v, order="C")
        value.reshape(-1)[idx] = 0.0
        zero = tape.const(0.0)
        result.append((base, core.record(tape, _ASSIGN, value, g._node, zero, iattr=ia)))
    return result


# ----------------------------------------------------------------------------- linear algebra
# The formulas of numbad.sweeps.kernels_linalg, written with numpy calls on Tensors.
def _mT(t):
    return np.swapaxes(t, -1, -2)


def _batch_sum(t, stride, shape):
    """A cotangent per batch entry, summed over the batch where one matrix was broadcast."""
    if stride == 0:
        from .reductions import sum_
        t = sum_(t, axis=0)
    return _reshape(t, shape)


def _solve(tape, op, out, operands, ia, g, varying):
    Bt, n, k, sA, sB = tape.attrs(ia, 5)
    a, b = operands[0], operands[1]
    A = _reshape(node_tensor(tape, a), (Bt if sA else 1, n, n))
    X = _reshape(node_tensor(tape, out), (Bt, n, k))
    gB = np.linalg.solve(_mT(A), _reshape(g, (Bt, n, k)))
    result = []
    if varying[b]:
        result.append((b, _batch_sum(gB, sB, tape.node_shape[b])))
    if varying[a]:
        result.append((a, _batch_sum(-(gB @ _mT(X)), sA, tape.node_shape[a])))
    return result


def _logabsdet(tape, op, out, operands, ia, g, varying):
    Bt, n = tape.attrs(ia, 2)
    A = _reshape(node_tensor(tape, operands[0]), (Bt, n, n))
    gA = _reshape(g, (Bt, 1, 1)) * _mT(np.linalg.inv(A))
    return [(operands[0], _reshape(gA, tape.node_shape[operands[0]]))]


def _cholesky(tape, op, out, operands, ia, g, varying):
    Bt, n = tape.attrs(ia, 2)
    Lt = _mT(_reshape(node_tensor(tape, out), (Bt, n, n)))
    P = np.tril(Lt @ _reshape(g, (Bt, n, n)))
    P = 0.5 * (P + _mT(np.tril(P, -1)))
    gA = _mT(np.linalg.solve(Lt, _mT(np.linalg.solve(Lt, P))))
    return [(operands[0], _reshape(gA, tape.node_shape[operands[0]]))]


def _coupled(num, gap, eye):
    """num / gap off the diagonal, 0 on it; a coupling across a zero gap raises (no derivative)."""
    if np.any((num._v != 0.0) & (gap._v == 0.0) & ~eye):
        raise ValueError("numbad: the derivative of eigenvectors (singular vectors) is undefined "
                         "where eigenvalues (singular values) are equal")
    safe = np.where(eye | (gap == 0.0), 1.0, gap)
    return np.where(eye, 0.0, num / safe)


def _over_s(G, S):
    """G / S (S broadcast); a zero singular value meeting a nonzero G raises."""
    if np.any((G._v != 0.0) & (np.broadcast_to(S._v, G.shape) == 0.0)):
        raise ValueError("numbad: the derivative of singular vectors is undefined at a zero "
                         "singular value of a non-square matrix")
    # no select on G: this rule must stay linear in the cotangent, which the double-backward
    # trick (jvp with create_graph) differentiates at placeholder values
    return G / np.where(S == 0.0, 1.0, S)


def _eigh(tape, op, out, operands, ia, g, varying):
    Bt, n = tape.attrs(ia, 2)
    P = _reshape(node_tensor(tape, out), (Bt, n + n * n))
    G = _reshape(g, (Bt, n + n * n))
    w, V = P[:, :n], _reshape(P[:, n:], (Bt, n, n))
    X = _mT(V) @ _reshape(G[:, n:], (Bt, n, n))
    eye = np.eye(n, dtype=bool)
    R = _coupled(0.5 * (X - _mT(X)), w[:, None, :] - w[:, :, None], eye) + G[:, None, :n] * eye
    gA = V @ R @ _mT(V)
    return [(operands[0], _reshape(gA, tape.node_shape[operands[0]]))]


def _svd(tape, op, out, operands, ia, g, varying):
    Bt, m, n, k = tape.attrs(ia, 4)
    size = m * k + k + k * n
    P = _reshape(node_tensor(tape, out), (Bt, size))
    G = _reshape(g, (Bt, size))
    U, S, Vh = (_reshape(P[:, :m * k], (Bt, m, k)), P[:, m * k:m * k + k],
                _reshape(P[:, m * k + k:], (Bt, k, n)))
    gU, gS, gVh = (_reshape(G[:, :m * k], (Bt, m, k)), G[:, m * k:m * k + k],
                   _reshape(G[:, m * k + k:], (Bt, k, n)))
    UhgU = _mT(U) @ gU
    VhgV = Vh @ _mT(gVh)
    num = (UhgU - _mT(UhgU)) * S[:, None, :] + S[:, :, None] * (VhgV - _mT(VhgV))
    S2 = S * S
    eye = np.eye(k, dtype=bool)
    R = _coupled(num, S2[:, None, :] - S2[:, :, None], eye) + gS[:, None, :] * eye
    if m > n:
        gUS = _over_s(gU, S[:, None, :])
        gA = (U @ R + gUS - U @ (_mT(U) @ gUS)) @ Vh
    elif m < n:
        SgVh = _over_s(gVh, S[:, :, None])
        gA = U @ (R @ Vh + SgVh - (SgVh @ _mT(Vh)) @ Vh)
    else:
        gA = U @ R @ Vh
    return [(operands[0], _reshape(gA, tape.node_shape[operands[0]]))]


def _one_operand(rule):
    def wrapped(tape, op, out, operands, ia, g, varying):
        return rule(tape, op, out, operands, ia, g, varying) if varying[operands[0]] else []
    return wrapped


RULES = {
    "elementwise": _elementwise,
    "copy": _linear(lambda g, ia, shape: _reshape(g, shape)),
    "gather": _linear(scatter_by_map),
    "view": _linear(scatter_by_map),
    "scatter": _linear(gather_by_map),
    "take": _linear(put_add_by_index),
    "put_add": _linear(take_by_index),
    "matmul": _matmul,
    "assemble": _assemble,
    "extreme": _extreme,
    "scan_sum": _scan_sum,
    "cumprod": _cumprod,
    "take_along": _along(put_along_by_index),
    "put_along": _along(take_along_by_index),
    "assign": _assign,
    "solve": _solve,
    "logabsdet": _one_operand(_logabsdet),
    "cholesky": _one_operand(_cholesky),
    "eigh": _one_operand(_eigh),
    "svd": _one_operand(_svd),
}


def backward(tape, begin, end, input_nodes, seeds):
    """Differentiable cotangents of ``input_nodes`` (Tensors, or ``None`` where none reaches).

    ``seeds`` is a list of ``(node, cotangent)``; ops recorded by this sweep go
    after ``end`` on the same tape.
    """
    varying = varying_nodes(tape, input_nodes, begin, end)
    adj = {}
    for node, v in seeds:
        if not varying[node]:
            continue
        if type(v) is not Tensor:
            v = wrap(v, tape, tape.add_node(v))
        adj[node] = adj[node] + v if node in adj else v
    flat = tape.ops
    # numpy would warn of what a rule computes and then drops (0/0 where a select takes 0
    # at a degenerate point): the njit sweeps are silent there, as PyTorch is
    with np.errstate(all="ignore"):
        for k in range(end - 1, begin - 1, -1):
            code, out, a, b, c, ia = flat[k * OP_WIDTH:(k + 1) * OP_WIDTH]
            g = adj.get(out)
            if g is None or not varying[out]:
                continue
            op = BY_CODE[code]
            if not op.differentiable:
                continue
            for nd, contrib in RULES[op.kind](tape, op, out, (a, b, c), ia, g, varying):
                adj[nd] = adj[nd] + contrib if nd in adj else contrib
    return [adj.get(n) for n in input_nodes]

