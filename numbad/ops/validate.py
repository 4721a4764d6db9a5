"""Validation of tape arrays that come from outside (a file, a pickle).

The njit sweeps trust their arrays: an out-of-range node index or a map that
points past a buffer would read or write arbitrary memory. Before a loaded
tape can be replayed, :func:`validate_tape_arrays` checks every opcode,
node index, arena offset and attribute block, per op kind, and raises
``ValueError`` naming the first problem.
"""
from __future__ import annotations

import numpy as np

from .registry import BY_CODE

MAX_NDIM = 64          # the sweeps' workspace holds this many walk counters


class _Checker:
    def __init__(self, arrays, node_shape):
        self.ip = arrays["ip"]
        self.size = arrays["node_size"]
        self.n_nodes = self.size.shape[0]
        self.node_shape = node_shape

    def block(self, ia, n, what):
        if ia < 0 or ia + n > self.ip.shape[0]:
            raise ValueError(f"{what}: attribute block [{ia}, {ia + n}) outside the integer pool")
        return self.ip[ia:ia + n]

    def strided_map(self, ia, walked, other, what):
        """A strided map walking ``walked`` elements, landing inside ``other`` elements."""
        nd = int(self.block(ia, 1, what)[0])
        if not 0 <= nd <= MAX_NDIM:
            raise ValueError(f"{what}: a map of {nd} dimensions")
        blk = self.block(ia, 2 * nd + 3, what)
        shape, strides = blk[1:1 + nd], blk[1 + nd:1 + 2 * nd]
        base, other_size = int(blk[1 + 2 * nd]), int(blk[2 + 2 * nd])
        if np.any(shape < 0) or int(np.prod(shape)) != walked or other_size != other:
            raise ValueError(f"{what}: the map's shape or target size does not match its nodes")
        if walked == 0:
            return
        ext = (shape - 1) * strides
        lo, hi = base + int(ext[ext < 0].sum()), base + int(ext[ext > 0].sum())
        if lo < 0 or hi >= other:
            raise ValueError(f"{what}: the map reaches outside its target")

    def index_map(self, ia, walked, other, what):
        count, other_size = (int(v) for v in self.block(ia, 2, what))
        idx = self.block(ia, 2 + count, what)[2:]
        if count != walked or other_size != other or (count and (idx.min() < 0 or idx.max() >= other)):
            raise ValueError(f"{what}: the index map does not fit its nodes")


def _elementwise(ck, op, row, what):
    out = row[1]
    operands = row[2:2 + op.arity]
    if np.any(operands < 0) or np.any(row[2 + op.arity:5] != -1):
        raise ValueError(f"{what}: {op.name} takes {op.arity} operands")
    for x in operands:
        if ck.size[x] not in (ck.size[out], 1):
            raise ValueError(f"{what}: operand sizes do not broadcast")


def _copy(ck, op, row, what):
    if row[2] < 0 or ck.size[row[2]] != ck.size[row[1]]:
        raise ValueError(f"{what}: copy between nodes of different sizes")


def _gather(ck, op, row, what):
    ck.strided_map(row[5], ck.size[row[1]], ck.size[row[2]], what)


def _scatter(ck, op, row, what):
    ck.strided_map(row[5], ck.size[row[2]], ck.size[row[1]], what)


def _take(ck, op, row, what):
    ck.index_map(row[5], ck.size[row[1]], ck.size[row[2]], what)


def _put_add(ck, op, row, what):
    ck.index_map(row[5], ck.size[row[2]], ck.size[row[1]], what)


def _matmul(ck, op, row, what):
    Bt, M, K, N, tA, tB, sA, sB = (int(v) for v in ck.block(row[5], 8, what))
    a, b, out = row[2], row[3], row[1]
    ok = (min(Bt, M, K, N) >= 0 and tA in (0, 1) and tB in (0, 1) and sA in (0, M * K)
          and sB in (0, K * N) and a >= 0 and b >= 0 and ck.size[out] == Bt * M * N
          and ck.size[a] == (Bt if sA else 1) * M * K and ck.size[b] == (Bt if sB else 1) * K * N)
    if not ok:
        raise ValueError(f"{what}: matmul dimensions do not match its nodes")


def _assemble(ck, op, row, what):
    nparts, out_size = (int(v) for v in ck.block(row[5], 2, what))
    if nparts < 0 or out_size != ck.size[row[1]]:
        raise ValueError(f"{what}: assemble does not match its output")
    blk = ck.block(row[5], 2 + 2 * nparts, what)
    for p in range(nparts):
        nd, ia = int(blk[2 + 2 * p]), int(blk[3 + 2 * p])
        if not 0 <= nd < ck.n_nodes:
            raise ValueError(f"{what}: part {p} is not a node")
        ck.strided_map(ia, ck.size[nd], out_size, what)


def _dims(ck, row, n, what):
    d = [int(v) for v in ck.block(row[5], n, what)]
    if min(d) < 0:
        raise ValueError(f"{what}: negative dimensions")
    return d


def _expect(ck, what, **sizes):
    """Each named node (``a``, ``b``, ``out``) must have the given number of elements."""
    for name, want in sizes.items():
        node = {"a": 2, "b": 3, "out": 1}[name]
        if want is not None and (row_node := ck.row[node]) >= 0 and ck.size[row_node] != want:
            raise ValueError(f"{what}: node {name} has {ck.size[row_node]} elements, expected {want}")
        if want is not None and ck.row[node] < 0:
            raise ValueError(f"{what}: operand {name} is missing")


def _segment(reduce):
    def check(ck, op, row, what):
        O, R, I = _dims(ck, row, 3, what)
        _expect(ck, what, a=O * R * I, out=O * I if reduce else O * R * I)
    return check


def _along(take):
    def check(ck, op, row, what):
        O, R, I, Q = _dims(ck, row, 4, what)
        if take:
            _expect(ck, what, a=O * R * I, b=O * Q * I, out=O * Q * I)
        else:
            _expect(ck, what, a=O * Q * I, b=O * Q * I, out=O * R * I)
    return check


def _assign(ck, op, row, what):
    count, out_size = (int(v) for v in ck.block(row[5], 2, what))
    ck.index_map(row[5], count, out_size, what)
    _expect(ck, what, a=out_size, out=out_size)
    if row[3] < 0 or ck.size[row[3]] not in (1, count):
        raise ValueError(f"{what}: the assigned part does not fit its positions")


def _solve(ck, op, row, what):
    Bt, n, k, sA, sB = _dims(ck, row, 5, what)
    if sA not in (0, n * n) or sB not in (0, n * k):
        raise ValueError(f"{what}: invalid batch strides")
    _expect(ck, what, a=(Bt if sA else 1) * n * n, b=(Bt if sB else 1) * n * k, out=Bt * n * k)


def _square(out_per_matrix):
    def check(ck, op, row, what):
        Bt, n = _dims(ck, row, 2, what)
        _expect(ck, what, a=Bt * n * n, out=Bt * out_per_matrix(n))
    return check


def _svd(ck, op, row, what):
    Bt, m, n, k = _dims(ck, row, 4, what)
    if k != min(m, n):
        raise ValueError(f"{what}: k must be min(m, n)")
    _expect(ck, what, a=Bt * m * n, out=Bt * (m * k + k + k * n))


def _never_saved(ck, op, row, what):
    # views share their operand's storage: only eager calls' fresh recordings make them, and the
    # replays of saved tapes would not know it
    raise ValueError(f"{what}: a tape file holds no {op.name} ops (nb.record never makes them)")


#: op kind -> check of one op row (kinds added to the registry must add theirs; a test checks it).
VALIDATORS = {
    "elementwise": _elementwise,
    "nondiff": _elementwise,
    "copy": _copy,
    "gather": _gather,
    "view": _never_saved,
    "scatter": _scatter,
    "take": _take,
    "put_add": _put_add,
    "matmul": _matmul,
    "assemble": _assemble,
    "extreme": _segment(reduce=True),
    "arg_extreme": _segment(reduce=True),
    "argsort": _segment(reduce=False),
    "scan_sum": _segment(reduce=False),
    "cumprod": _segment(reduce=False),
    "take_along": _along(take=True),
    "put_along": _along(take=False),
    "assign": _assign,
    "solve": _solve,
    "logabsdet": _square(lambda n: 1),
    "det_sign": _square(lambda n: 1),
    "cholesky": _square(lambda n: n * n),
    "eigh": _square(lambda n: n + n * n),
    "svd": _svd,
}


def operand_nodes(op, row, ip):
    """Every node an op row reads (``assemble`` lists its parts in the integer pool)."""
    nodes = [int(x) for x in row[2:5] if x >= 0]
    if op.kind == "assemble":
        ia = int(row[5])
        nodes += [int(ip[ia + 2 + 2 * p]) for p in range(int(ip[ia]))]
    return nodes


def validate_tape_arrays(arrays, node_shape, out_spec, sites):
    """Raise ``ValueError`` unless the arrays form a tape the sweeps can run safely."""
    ops, off, size = arrays["ops"], arrays["node_off"], arrays["node_size"]
    template = arrays["template"]
    n_nodes = off.shape[0]
    if ops.ndim != 2 or ops.shape[1] != 6:
        raise ValueError(f"the op table has shape {ops.shape}, expected (n_ops, 6)")
    for k in ("node_off", "node_size", "ip", "in_nodes", "out_nodes", "g_op", "g_node", "g_kind", "g_off"):
        if arrays[k].ndim != 1:
            raise ValueError(f"{k} is not one-dimensional")
    if size.shape[0] != n_nodes or len(node_shape) != n_nodes:
        raise ValueError("the node tables disagree in length")
    if np.any(off < 0) or np.any(size < 0) or np.any(off + size > template.shape[0]):
        raise ValueError("a node lies outside the value arena")
    if any(int(np.prod(s)) != int(n) for s, n in zip(node_shape, size.tolist())):
        raise ValueError("a node's size does not match its shape")
    ck = _Checker(arrays, node_shape)
    produced = np.zeros(n_nodes, bool)
    inputs = set(arrays["in_nodes"].tolist())
    for k in range(ops.shape[0]):
        row = ops[k]
        what = f"op {k}"
        op = BY_CODE.get(int(row[0]))
        if op is None:
            raise ValueError(f"{what}: unknown opcode {int(row[0])}")
        out = int(row[1])
        if not 0 <= out < n_nodes or np.any(row[2:5] < -1) or np.any(row[2:5] >= n_nodes):
            raise ValueError(f"{what} ({op.name}): a node index is out of range")
        if produced[out] or out in inputs:
            raise ValueError(f"{what} ({op.name}): node {out} is written twice")
        ck.row = row
        VALIDATORS[op.kind](ck, op, row, f"{what} ({op.name})")
        for x in operand_nodes(op, row, arrays["ip"]):
            if x == out:
                raise ValueError(f"{what} ({op.name}): reads its own output")
        produced[out] = True
    for name in ("in_nodes", "out_nodes", "g_node"):
        a = arrays[name]
        if a.size and (a.min() < 0 or a.max() >= n_nodes):
            raise ValueError(f"{name} holds a node index out of range")
    outs = [s[0] for s in out_spec if s[0] is not None]
    if outs != arrays["out_nodes"].tolist():
        raise ValueError("the output descriptions do not match the output nodes")
    for node, shape, _, _ in out_spec:
        if node is not None and tuple(node_shape[node]) != tuple(shape):
            raise ValueError("an output node does not have its output's shape")
    g_op, g_kind, g_off, g_node = arrays["g_op"], arrays["g_kind"], arrays["g_off"], arrays["g_node"]
    n_guards = g_op.shape[0]
    if not (g_kind.shape[0] == g_off.shape[0] == g_node.shape[0] == n_guards == len(sites)):
        raise ValueError("the guard tables disagree in length")
    if n_guards:
        if g_op.min() < 0 or g_op.max() > ops.shape[0] or np.any(np.diff(g_op) < 0):
            raise ValueError("a guard's position is out of range")
        if not set(g_kind.tolist()) <= {0, 1}:
            raise ValueError("a guard has an unknown kind")
        if g_off.min() < 0 or np.any(g_off + size[g_node] > arrays["g_expected"].shape[0]):
            raise ValueError("a guard's expected values lie outside their table")
