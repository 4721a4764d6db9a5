"""A recorded branch resolved for the device: op rows with operand offsets, static sweep programs.

The CPU interpreters look operand offsets up per op (``node_off[ops[k, 2]]``)
and decide per op and per sample which cotangents to overwrite and which to
add to (``adj_set``). None of that depends on values, so for the GPU it is
decided once, here, on the host:

* every op becomes a row of :data:`W` integers (:data:`COLUMNS`): opcode,
  result offset and size, each operand's offset and whether it has the
  result's size (1) or broadcasts one element (0), the attribute offset, flags,
  and ``aux`` (an ``assign``'s part size);
* the forward table has the guards in it as rows of their own (:data:`GUARD`),
  where the CPU replay checks them;
* the reverse table lists, last op first, only the ops a cotangent reaches,
  each operand flagged varying (:data:`VARY`) and, where an earlier
  contribution already wrote it, accumulating (:data:`ACC`), exactly as the
  CPU's ``adj_set`` would have it (its templates for ``solve`` and ``assign``
  read both operands' flags before setting either: :data:`SIMULTANEOUS`); an
  ``assemble`` becomes one :data:`ASM_PART` row per part;
* the tangent table lists the ops whose result depends on the inputs.

Every input of the tape is differentiated (as ``batch_vjp``/``batch_jvp`` and
the device replays do), so ``varying`` is the CPU's ``mark_varying`` of all
inputs.
"""
from __future__ import annotations

import numpy as np

from ..ops import BY_CODE
from ..sweeps import interpreters

COLUMNS = ("code", "yo", "n", "ao", "sa", "bo", "sb", "co", "sc", "ia", "flags", "aux")
W = len(COLUMNS)
C_CODE, C_YO, C_N, C_AO, C_SA, C_BO, C_SB, C_CO, C_SC, C_IA, C_FLAGS, C_AUX = range(W)
#: Pseudo-opcodes of rows that are not registry ops.
GUARD = -1          # yo, n: the guarded node; sa: kind (0 truth, 1 value); ia: offset of the expected values; aux: guard index
ASM_PART = -2       # one part of an assemble's cotangent: yo: the output's cotangent, ao: the part, ia: its map
#: Flag bits: operand k (a, b, c) is varying / accumulates into an already written cotangent.
VARY = (1, 2, 4)
ACC = (8, 16, 32)
#: Kinds whose reverse rule takes every operand's accumulate flag as it was before the op.
SIMULTANEOUS = ("solve", "assign")
#: Kinds whose device code can fail (numbad.cuda.errors): their replays read the error slot back.
FALLIBLE = ("take_along", "put_along", "solve", "logabsdet", "cholesky", "eigh", "svd")


def diff_slots(op):
    """Operand slots through which a derivative flows."""
    if op.kind in ("elementwise", "nondiff"):
        return tuple(k for k, p in enumerate(op.partials) if p is not None)
    if op.kind in ("matmul", "solve", "assign"):
        return (0, 1)
    if op.kind == "assemble":
        return ()
    return (0,)


def scratch_size(kind, ip, ia):
    """float64 scratch elements one matrix (or, for argsort, one segment) of an op needs: the most
    that any of its device routines (numbad.cuda.kernels_linalg, kernels_segments) uses."""
    if kind == "argsort":
        return 2 * int(ip[ia + 1])
    if kind == "solve":
        n, k = int(ip[ia + 1]), int(ip[ia + 2])
        return n * n + n + n * k
    if kind in ("logabsdet", "det_sign"):
        n = int(ip[ia + 1])
        return 2 * n * n + n
    if kind == "cholesky":
        n = int(ip[ia + 1])
        return 2 * n * n
    if kind == "eigh":
        n = int(ip[ia + 1])
        return 2 * n * n + 3 * n
    if kind == "svd":
        m, n, k = int(ip[ia + 1]), int(ip[ia + 2]), int(ip[ia + 3])
        return 3 * k * k + max(m, n) * k + k
    return 0


class Plan:
    """The device tables of one :class:`numbad.recorded.Branch` (host numpy arrays)."""

    def __init__(self, branch):
        ops, off, size, ip = branch.ops, branch.node_off, branch.node_size, branch.ip
        n_nodes, n_ops = off.shape[0], ops.shape[0]
        self.arena_size = branch.template.shape[0]
        varying = np.zeros(n_nodes, np.bool_)
        varying[branch.in_nodes] = True
        interpreters().mark_varying(ops, ip, varying, 0, n_ops)
        self.varying = varying

        base = np.zeros((n_ops, W), np.int64)
        out = ops[:, 1]
        base[:, C_CODE] = ops[:, 0]
        base[:, C_YO] = off[out]
        base[:, C_N] = size[out]
        base[:, C_IA] = ops[:, 5]
        kinds = [BY_CODE[c].kind for c in ops[:, 0].tolist()]
        for k, kind in enumerate(kinds):
            if kind == "assign":
                base[k, C_AUX] = size[ops[k, 3]]
        self.scratch = max([scratch_size(kind, ip, ia) for kind, ia in zip(kinds, ops[:, 5].tolist())],
                           default=0)
        self.fallible = any(kind in FALLIBLE for kind in kinds)
        for k in range(3):
            x = ops[:, 2 + k]
            has = x >= 0
            xs = np.where(has, x, 0)
            base[:, C_AO + 2 * k] = np.where(has, off[xs], 0)
            base[:, C_SA + 2 * k] = (has & (size[xs] == size[out])).astype(np.int64)

        # forward: op rows with the guards where the CPU replay checks them
        ng = branch.g_op.shape[0]
        guards = np.zeros((ng, W), np.int64)
        guards[:, C_CODE] = GUARD
        guards[:, C_YO] = off[branch.g_node]
        guards[:, C_N] = size[branch.g_node]
        guards[:, C_SA] = branch.g_kind
        guards[:, C_IA] = branch.g_off
        guards[:, C_AUX] = np.arange(ng)
        self.fwd = np.ascontiguousarray(np.insert(base, branch.g_op, guards, axis=0)) if ng else base

        op_list = ops.tolist()
        ipl = ip.tolist()
        # seeds of the outputs: the first overwrites, a repeated output node adds
        adj_set = np.zeros(n_nodes, np.bool_)
        seeds = []
        for nd in branch.out_nodes.tolist():
            seeds.append((int(off[nd]), int(size[nd]), int(adj_set[nd]), int(varying[nd])))
            adj_set[nd] = True
        self.seed_rows = np.array(seeds, np.int64).reshape(-1, 4)
        self.out_rows = self.seed_rows        # off, size, (unused), varying: where tangents exist

        # reverse: the CPU's adj_set bookkeeping, done once
        rev = []
        for k in range(n_ops - 1, -1, -1):
            code, o, a, b, c, ia = op_list[k]
            if not adj_set[o] or not varying[o]:
                continue
            op = BY_CODE[code]
            if not op.differentiable:
                continue
            if op.kind == "assemble":
                for p in range(ipl[ia]):
                    node = ipl[ia + 2 + 2 * p]
                    if varying[node]:
                        row = [ASM_PART, off[o], size[o], off[node], 1, 0, 0, 0, 0, ipl[ia + 3 + 2 * p],
                               VARY[0] | (ACC[0] if adj_set[node] else 0), 0]
                        adj_set[node] = True
                        rev.append(row)
                continue
            flags = 0
            operands = (a, b, c)
            before = adj_set[[operands[s] for s in diff_slots(op)]]
            for s, was in zip(diff_slots(op), before.tolist()):
                x = operands[s]
                if varying[x]:
                    written = was if op.kind in SIMULTANEOUS else adj_set[x]
                    flags |= VARY[s] | (ACC[s] if written else 0)
                    adj_set[x] = True
            if flags:
                row = base[k].copy()
                row[C_FLAGS] = flags
                rev.append(row)
        self.rev = np.array(rev, np.int64).reshape(-1, W)
        self.grad_rows = np.array([(off[n], size[n], int(adj_set[n])) for n in branch.in_nodes.tolist()],
                                  np.int64).reshape(-1, 3)
        self.in_rows = self.grad_rows[:, :2].copy()

        # tangents: ops whose result depends on the inputs
        tan = []
        for k in range(n_ops):
            code, o, a, b, c, ia = op_list[k]
            if not varying[o] or code >= 1000:
                continue
            flags = 0
            operands = (a, b, c)
            for s in diff_slots(BY_CODE[code]):
                if varying[operands[s]]:
                    flags |= VARY[s]
            row = base[k].copy()
            row[C_FLAGS] = flags
            tan.append(row)
        self.tan = np.array(tan, np.int64).reshape(-1, W)

        # constants: arena elements that no op writes and that are not inputs
        written = np.zeros(n_nodes, np.bool_)
        written[ops[:, 1]] = True
        written[branch.in_nodes] = True
        const = np.flatnonzero(~written)
        idx = [np.arange(off[n], off[n] + size[n]) for n in const.tolist() if size[n]]
        self.const_idx = np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64)
        self.const_val = branch.template[self.const_idx]
        self.g_expected = branch.g_expected
        self.in_total = int(self.in_rows[:, 1].sum())
        self.out_total = int(self.seed_rows[:, 1].sum())

    def summary(self):
        return (f"{self.fwd.shape[0]} forward rows ({int((self.fwd[:, 0] == GUARD).sum())} guards), "
                f"{self.rev.shape[0]} reverse rows, {self.tan.shape[0]} tangent rows, "
                f"{self.const_idx.shape[0]} constant elements, {self.scratch} scratch elements per lane")
