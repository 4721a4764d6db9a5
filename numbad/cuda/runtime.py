"""Running a recorded branch on the GPU: large-array replays and ensembles.

:class:`DeviceBranch` is a :class:`numbad.recorded.Branch`'s device twin. It
keeps the branch's tables (:mod:`numbad.cuda.plan`) and a value arena on the
GPU, and offers the CPU branch's replay methods (``forward``, ``vjp``,
``jvp``) with the same ``(status, vals, ...)`` results, so that
:class:`numbad.Tape` runs either through the same code (guards,
``BranchChanged``, ``retrace``).

* Single replays walk the op table on the host and launch one kernel per op
  over device-resident arenas (values, then cotangents or tangents): one
  thread per element, deterministic two-pass reductions, GEMM through cuBLAS
  (CuPy, when installed) or a tiled shared-memory kernel. Values stay on the
  device from the inputs' upload to the results' download (or not even that,
  with ``to_host=False``).
* Ensembles (:meth:`DeviceBranch.ensemble`) launch one kernel in which each
  thread replays the whole tape for one sample (``ensemble_template.py``).

Inputs, cotangents and tangents may be numpy arrays or CUDA arrays (anything
with ``__cuda_array_interface__``: numba device arrays, CuPy, PyTorch).
"""
from __future__ import annotations

import os
import threading

import numpy as np

from ..ops import BY_CODE
from ..sweeps.kernels import matmul_vjp_plan
from . import require
from .errors import NO_ERROR, decode, device_error
from .plan import ASM_PART, GUARD, VARY, Plan
from .replay_kinds import KindOps

#: Upper bound on the samples of one ensemble launch (``None``: as many as memory allows).
MAX_LANES = None
#: Fraction of free device memory an ensemble's two lanes-last arenas may take.
MEMORY_FRACTION = 0.5
_NO_ROW = np.zeros((1, 3), np.int64)
_NO_ROW[0, 0] = 1            # a walk of one element: extent 1, strides 0


def _gemm_backend():
    """``"cupy"`` (cuBLAS) or ``"numba"`` (the tiled kernel); NUMBAD_CUDA_GEMM overrides the choice."""
    want = os.environ.get("NUMBAD_CUDA_GEMM", "auto")
    if want not in ("auto", "cupy", "numba"):
        raise ValueError(f"NUMBAD_CUDA_GEMM={want!r}: the valid values are 'auto', 'cupy' and 'numba'")
    from .kernels import SIMULATOR
    if want == "numba" or (want == "auto" and SIMULATOR):
        return "numba"
    try:
        import cupy  # noqa: F401
    except ImportError:
        if want == "cupy":
            raise
        return "numba"
    return "cupy"


def is_device_array(x):
    """A CUDA array: numba's (also the simulator's), or anything with ``__cuda_array_interface__``."""
    return hasattr(x, "__cuda_array_interface__") or type(x).__name__ in ("DeviceNDArray", "FakeCUDAArray")


def as_device(x):
    """``x`` as a numba device array (no copy): numba's own arrays as they are, others through
    ``__cuda_array_interface__``."""
    if type(x).__name__ in ("DeviceNDArray", "FakeCUDAArray"):
        return x
    return require().as_cuda_array(x)


class DeviceBranch(KindOps):
    """A branch's tables and arenas on the GPU (made once per branch, by :func:`device_branch`)."""

    def __init__(self, branch):
        cuda = require()
        from . import _generated, kernels, kernels_linalg, kernels_segments
        self.cuda, self.G, self.K = cuda, _generated, kernels
        self.KS, self.KL = kernels_segments, kernels_linalg
        self.branch = branch
        _check_kinds(branch)
        self.plan = plan = Plan(branch)
        self.dtype = branch.template.dtype
        self.lock = threading.Lock()          # the arenas below serve one call at a time
        to = cuda.to_device
        self.d_ip = to(branch.ip if branch.ip.size else np.zeros(1, np.int64))
        self.d_node_off = to(branch.node_off)
        self.d_gexp = to(plan.g_expected if plan.g_expected.size else np.zeros(1, self.dtype))
        self.d_const_idx = to(plan.const_idx)
        self.d_const_val = to(plan.const_val)
        self.fwd_rows = plan.fwd.tolist()
        self.rev_rows = plan.rev.tolist()
        self.tan_rows = plan.tan.tolist()
        self._vals = self._adj = self._tan = None
        self._scratch = self._scratch64 = None
        self.d_err = cuda.to_device(np.array([NO_ERROR], np.int64))     # the first error of a replay
        self.guard_pos = np.flatnonzero(plan.fwd[:, 0] == GUARD)         # forward-table row of guard gi
        self._maps = {}
        self._ens = None
        self.gemm = _gemm_backend()

    # ------------------------------------------------------------------- arenas
    def _arena(self, name):
        buf = getattr(self, name)
        if buf is None:
            buf = self.cuda.device_array(max(1, self.plan.arena_size), self.dtype)
            setattr(self, name, buf)
        return buf

    def scratch(self, n):
        if self._scratch is None or self._scratch.shape[0] < n:
            self._scratch = self.cuda.device_array(max(n, 1024), self.dtype)
        return self._scratch

    def _launch(self, kern, n, *args):
        kern[self.K.blocks(n), self.K.TPB](*args)

    def _load(self, dst, off, arr, acc):
        """dst[off:off + arr.size] (+)= arr: a flat numpy or CUDA array."""
        n = arr.shape[0]
        if n == 0:
            return
        if not acc and not is_device_array(arr):
            dst[off:off + n].copy_to_device(np.ascontiguousarray(arr, self.dtype))
            return
        src = as_device(arr) if is_device_array(arr) else self.cuda.to_device(
            np.ascontiguousarray(arr, self.dtype))
        self._launch(self.K.k_copy, n, src, 0, dst, off, n, int(acc))

    # ------------------------------------------------------------------- forward
    def _forward(self, xs):
        """Constants and inputs into the value arena, then every forward row. Returns (status, vals)."""
        K, plan = self.K, self.plan
        vals = self._arena("_vals")
        if plan.const_idx.shape[0]:
            self._launch(K.k_place, plan.const_idx.shape[0], self.d_const_val, self.d_const_idx, vals)
        for (off, size), x in zip(plan.in_rows.tolist(), xs):
            self._load(vals, off, x, False)
        n_guards = self.guard_pos.shape[0]
        failed = self.cuda.to_device(np.zeros(max(n_guards, 1), np.int64)) if n_guards else None
        if plan.fallible:
            self.d_err.copy_to_device(np.array([NO_ERROR], np.int64))
        for pos, row in enumerate(self.fwd_rows):
            if row[0] == GUARD:
                _, yo, n, _, kind, _, _, _, _, eoff, _, gi = row      # (plan.py: the kind is in C_SA)
                self._launch(K.k_guard, n, vals, yo, n, kind, self.d_gexp, eoff, failed, gi)
            else:
                self._forward_op(row, vals, pos)
        gi = -1
        if n_guards:
            hit = np.flatnonzero(failed.copy_to_host())
            gi = int(hit[0]) if hit.size else -1
        # an op that failed before the first failed guard raises, as it does on the CPU
        self._raise_errors(self.guard_pos[gi] if gi >= 0 else None)
        return gi, vals

    def _raise_errors(self, before=None):
        """Raise the first error the kernels reported (only one at an op row before ``before``)."""
        if not self.plan.fallible:
            return
        k = int(self.d_err.copy_to_host()[0])
        if k != NO_ERROR:
            row, code = decode(k)
            if before is None or row < before:
                raise device_error(code)

    def _forward_op(self, row, vals, pos):
        K, G = self.K, self.G
        code, yo, n, ao, sa, bo, sb, co, sc, ia, flags, aux = row
        op = BY_CODE[code]
        kind = op.kind
        if kind in ("elementwise", "nondiff"):
            self._launch(G.FORWARD[code], n, vals, yo, n, ao, sa, bo, sb, co, sc)
        elif kind == "copy":
            self._launch(K.k_copy, n, vals, ao, vals, yo, n, 0)
        elif kind == "gather":
            self.gather(vals, ao, vals, yo, ia, n, False)
        elif kind == "scatter":
            self.scatter(vals, ao, vals, yo, ia, False)
        elif kind == "take":
            self._launch(K.k_take, n, vals, ao, vals, yo, self.d_ip, ia, 0)
        elif kind == "put_add":
            self.put_add(vals, ao, vals, yo, ia, False)
        elif kind == "matmul":
            self.matmul_forward(vals, ao, bo, vals, yo, ia)
        elif kind == "assemble":
            self.assemble(vals, vals, yo, n, ia, None)
        else:
            self.forward_kind(op, row, vals, pos)

    # ------------------------------------------------------------------- structural ops
    def gather(self, src, soff, dst, doff, ia, n, acc):
        self._launch(self.K.k_gather, n, src, soff, dst, doff, self.d_ip, ia, n, int(acc))

    def _map(self, ia):
        """A strided map split into kept dims (distinct targets) and reduced dims (stride 0)."""
        m = self._maps.get(ia)
        if m is not None:
            return m
        ip = self.branch.ip
        nd = int(ip[ia])
        shape = ip[ia + 1:ia + 1 + nd].tolist()
        strides = ip[ia + 1 + nd:ia + 1 + 2 * nd].tolist()
        base, other = int(ip[ia + 1 + 2 * nd]), int(ip[ia + 2 + 2 * nd])
        src_strides = [int(np.prod(shape[d + 1:])) for d in range(nd)]
        kept = [(e, s, t) for e, s, t in zip(shape, src_strides, strides) if e > 1 and t != 0]
        red = [(e, s, 0) for e, s, t in zip(shape, src_strides, strides) if e > 1 and t == 0]
        # the kept dims must reach distinct targets for the row form; else atomics
        span, injective = 0, True
        for e, _, t in sorted(kept, key=lambda r: abs(r[2])):
            if abs(t) <= span:
                injective = False
            span += abs(t) * (e - 1)
        T = int(np.prod([r[0] for r in kept])) if kept else 1
        R = int(np.prod([r[0] for r in red])) if red else 1
        to = self.cuda.to_device
        m = (injective, base, other, to(np.array(kept, np.int64).reshape(-1, 3) if kept else _NO_ROW),
             to(np.array(red, np.int64).reshape(-1, 3) if red else _NO_ROW), T, R, int(np.prod(shape)))
        self._maps[ia] = m
        return m

    def scatter(self, src, soff, dst, doff, ia, acc):
        """dst[map(i)] += src[i] (dst zeroed first unless ``acc``), deterministic where it can be."""
        injective, base, other, kept, red, T, R, n = self._map(ia)
        if not acc:
            self._launch(self.K.k_fill, other, dst, doff, other, 0.0)
        if not injective:
            self._launch(self.K.k_scatter_atomic, n, src, soff, dst, doff, self.d_ip, ia, n)
        else:
            self.reduce(src, soff, dst, doff + base, kept, red, T, R)

    def reduce(self, src, soff, dst, doff, kept, red, T, R):
        """dst[doff + pos(t)] += sum over r of src[soff + index(t, r)], in a fixed order."""
        K = self.K
        if R <= 64 or T >= 8192:
            self._launch(K.k_scatter_rows, T, src, soff, dst, doff, 0, kept, red, T, R)
            return
        C = max(1, min(1024, R // (K.RED_TPB * 8)))
        part = self.cuda.device_array(T * C, np.float64)
        K.k_scatter_partial[T * C, K.RED_TPB](src, soff, kept, red, R, C, part)
        self._launch(K.k_scatter_finish, T, part, C, dst, doff, 0, kept, T)

    def put_add(self, src, soff, dst, doff, ia, acc):
        ip = self.branch.ip
        count, other = int(ip[ia]), int(ip[ia + 1])
        key = ("put", ia)
        unique = self._maps.get(key)
        if unique is None:
            idx = ip[ia + 2:ia + 2 + count]
            unique = self._maps[key] = int(np.unique(idx).shape[0] == count)
        if not acc:
            self._launch(self.K.k_fill, other, dst, doff, other, 0.0)
        self._launch(self.K.k_put_add, count, src, soff, dst, doff, self.d_ip, ia, unique)

    def assemble(self, src, dst, doff, n, ia, varying):
        """dst = the parts placed by their maps (tangents: only the varying parts)."""
        ip, off = self.branch.ip, self.branch.node_off
        self._launch(self.K.k_fill, n, dst, doff, n, 0.0)
        for p in range(int(ip[ia])):
            node = int(ip[ia + 2 + 2 * p])
            if varying is None or varying[node]:
                self.scatter(src, int(off[node]), dst, doff, int(ip[ia + 3 + 2 * p]), True)

    # ------------------------------------------------------------------- matmul
    def _gemm(self, A, aoff, asb, ars, acs, B, boff, bsb, brs, bcs, C, coff, csb, M, N, K, outer, inner,
              beta):
        """C[b] (+)= sum over ``inner`` batches of op(A) @ op(B) (element strides), ``outer`` batches."""
        if M == 0 or N == 0:
            return
        if self.gemm == "cupy":
            return _cupy_gemm(A, aoff, asb, ars, acs, B, boff, bsb, brs, bcs, C, coff, csb, M, N, K,
                              outer, inner, beta)
        t = self.K.GEMM_TILE
        grid = (-(-N // t), -(-M // t), outer)
        self.K.k_gemm[grid, (t, t)](A, aoff, asb, ars, acs, B, boff, bsb, brs, bcs, C, coff, csb,
                                    M, N, K, inner, float(beta))

    def matmul_forward(self, vals, aoff, boff, dst, doff, ia, src_a=None, src_b=None, beta=0):
        """dst = op(A) @ op(B) over the batch; ``src_a``/``src_b`` replace an operand's buffer (tangents)."""
        Bt, M, K, N, tA, tB, sA, sB = self.branch.ip[ia:ia + 8].tolist()
        A = vals if src_a is None else src_a
        B = vals if src_b is None else src_b
        ars, acs = (1, M) if tA else (K, 1)
        brs, bcs = (1, K) if tB else (N, 1)
        self._gemm(A, aoff, sA, ars, acs, B, boff, sB, brs, bcs, dst, doff, M * N, M, N, K, Bt, 1, beta)

    def matmul_vjp(self, which, vals, aoff, boff, adj, goff, doff, ia, acc):
        """The cotangent of operand ``which`` as the matmul :func:`matmul_vjp_plan` names."""
        Bt, M, K, N, tA, tB, sA, sB = self.branch.ip[ia:ia + 8].tolist()
        first, second, tf, ts = matmul_vjp_plan.py_func(which, tA, tB)
        if which == 0:
            R, Cc, I, sD = (K, M, N, sA) if tA else (M, K, N, sA)
        else:
            R, Cc, I, sD = (N, K, M, sB) if tB else (K, N, M, sB)
        stored = {0: (vals, aoff, sA, K if not tA else M),     # buffer, offset, batch stride, stored columns
                  1: (vals, boff, sB, N if not tB else K),
                  2: (adj, goff, M * N, N)}
        F, fo, fsb, fcols = stored[first]
        S, so, ssb, scols = stored[second]
        frs, fcs = (1, fcols) if tf else (fcols, 1)
        srs, scs = (1, scols) if ts else (scols, 1)
        if sD == 0 and Bt > 1:          # one matrix broadcast over the batch: its cotangent sums the batch
            outer, inner, csb = 1, Bt, 0
        else:
            outer, inner, csb = Bt, 1, sD
        self._gemm(F, fo, fsb, frs, fcs, S, so, ssb, srs, scs, adj, doff, csb, R, Cc, I, outer, inner,
                   1 if acc else 0)

    # ------------------------------------------------------------------- the replays Branch offers
    def forward(self, xs):
        """``(status, vals, out)`` like :meth:`Branch.forward`; ``out`` is a device array."""
        with self.lock:
            status, vals = self._forward(xs)
            if status >= 0:
                return status, vals.copy_to_host(), None
            return -1, None, self._gather_rows(vals, self.plan.seed_rows, None, self.plan.out_total)

    def vjp(self, xs, vs):
        """``(status, vals, out, grad)``: forward replay, then the reverse sweep seeded with ``vs``
        (one flat cotangent per output node)."""
        with self.lock:
            status, vals = self._forward(xs)
            if status >= 0:
                return status, vals.copy_to_host(), None, None
            plan = self.plan
            out = self._gather_rows(vals, plan.seed_rows, None, plan.out_total)
            adj = self._arena("_adj")
            for (off, size, acc, _), v in zip(plan.seed_rows.tolist(), vs):
                self._load(adj, off, v, acc)
            for pos, row in enumerate(self.rev_rows):
                self._reverse_op(row, vals, adj, pos)
            self._raise_errors()
            grad = self._gather_rows(adj, plan.grad_rows, 2, plan.in_total)
            return -1, None, out, grad

    def jvp(self, xs, ts):
        """``(status, vals, out, jv)``: forward replay, then the tangent sweep from ``ts`` (one flat
        tangent per input)."""
        with self.lock:
            status, vals = self._forward(xs)
            if status >= 0:
                return status, vals.copy_to_host(), None, None
            plan = self.plan
            out = self._gather_rows(vals, plan.seed_rows, None, plan.out_total)
            tan = self._arena("_tan")
            for (off, size), t in zip(plan.in_rows.tolist(), ts):
                self._load(tan, off, t, False)
            for pos, row in enumerate(self.tan_rows):
                self._tangent_op(row, vals, tan, pos)
            self._raise_errors()
            jv = self._gather_rows(tan, plan.out_rows, 3, plan.out_total)
            return -1, None, out, jv

    def _gather_rows(self, buf, rows, present_col, total):
        """A fresh flat device array: the nodes of ``rows`` end to end (zeros where not present)."""
        out = self.cuda.device_array(max(total, 1), self.dtype)[:total]
        p = 0
        for row in rows.tolist():
            off, size = row[0], row[1]
            if present_col is None or row[present_col]:
                self._launch(self.K.k_copy, size, buf, off, out, p, size, 0)
            else:
                self._launch(self.K.k_fill, size, out, p, size, 0.0)
            p += size
        return out

    # ------------------------------------------------------------------- reverse and tangent rows
    def _reverse_op(self, row, vals, adj, pos):
        K, G = self.K, self.G
        code, yo, n, ao, sa, bo, sb, co, sc, ia, flags, aux = row
        acc0 = bool(flags & 8)
        if code == ASM_PART:
            self.gather(adj, yo, adj, ao, ia, self._walk_size(ia), acc0)
            return
        op = BY_CODE[code]
        kind = op.kind
        if kind == "elementwise":
            offs = (ao, bo, co)
            strides = (sa, sb, sc)
            for k in range(3):
                if not flags & VARY[k]:
                    continue
                acc = bool(flags & (8 << k))
                kern = G.REVERSE[(code, k)]
                if strides[k] or n <= 1:
                    self._launch(kern, n, vals, adj, adj, offs[k], yo, n, ao, sa, bo, sb, co, sc, int(acc))
                else:                       # one element broadcast over n: reduce the contributions
                    tmp = self.scratch(n)
                    self._launch(kern, n, vals, adj, tmp, 0, yo, n, ao, sa, bo, sb, co, sc, 0)
                    if not acc:
                        self._launch(K.k_fill, 1, adj, offs[k], 1, 0.0)
                    self.reduce(tmp, 0, adj, offs[k], *self._vector(n), 1, n)
        elif kind == "copy":
            self._launch(K.k_copy, n, adj, yo, adj, ao, n, int(acc0))
        elif kind == "gather":
            self.scatter(adj, yo, adj, ao, ia, acc0)
        elif kind == "scatter":
            self.gather(adj, yo, adj, ao, ia, self._walk_size(ia), acc0)
        elif kind == "take":
            self.put_add(adj, yo, adj, ao, ia, acc0)
        elif kind == "put_add":
            self._launch(K.k_take, int(self.branch.ip[ia]), adj, yo, adj, ao, self.d_ip, ia, int(acc0))
        elif kind == "matmul":
            if flags & VARY[0]:
                self.matmul_vjp(0, vals, ao, bo, adj, yo, ao, ia, acc0)
            if flags & VARY[1]:
                self.matmul_vjp(1, vals, ao, bo, adj, yo, bo, ia, bool(flags & 16))
        else:
            self.reverse_kind(op, row, vals, adj, pos)

    def _walk_size(self, ia):
        return self._map(ia)[7]

    def _vector(self, n):
        """Reduction descriptors of a contiguous vector of n terms summed into one target."""
        key = ("vec", n)
        if key not in self._maps:
            self._maps[key] = (self.cuda.to_device(_NO_ROW), self.cuda.to_device(np.array([[n, 1, 0]], np.int64)))
        return self._maps[key]

    def _tangent_op(self, row, vals, tan, pos):
        K, G = self.K, self.G
        code, yo, n, ao, sa, bo, sb, co, sc, ia, flags, aux = row
        op = BY_CODE[code]
        kind = op.kind
        if kind == "elementwise":
            self._launch(G.TANGENT[code], n, vals, tan, yo, n, ao, sa, bo, sb, co, sc, flags)
        elif kind == "copy":
            self._launch(K.k_copy, n, tan, ao, tan, yo, n, 0)
        elif kind == "gather":
            self.gather(tan, ao, tan, yo, ia, n, False)
        elif kind == "scatter":
            self.scatter(tan, ao, tan, yo, ia, False)
        elif kind == "take":
            self._launch(K.k_take, n, tan, ao, tan, yo, self.d_ip, ia, 0)
        elif kind == "put_add":
            self.put_add(tan, ao, tan, yo, ia, False)
        elif kind == "matmul":
            beta = 0
            if flags & VARY[0]:
                self.matmul_forward(vals, ao, bo, tan, yo, ia, src_a=tan)
                beta = 1
            if flags & VARY[1]:
                self.matmul_forward(vals, ao, bo, tan, yo, ia, src_b=tan, beta=beta)
        elif kind == "assemble":
            self.assemble(tan, tan, yo, n, ia, self.plan.varying)
        else:
            self.tangent_kind(op, row, vals, tan, pos)

    # ------------------------------------------------------------------- ensembles
    def _ensemble_tables(self):
        if self._ens is None:
            plan, to = self.plan, self.cuda.to_device
            self._ens = dict(
                fwd=to(plan.fwd), rev=to(plan.rev if plan.rev.size else np.zeros((0, plan.fwd.shape[1]), np.int64)),
                tan=to(plan.tan if plan.tan.size else np.zeros((0, plan.fwd.shape[1]), np.int64)),
                varying=to(plan.varying.astype(np.uint8)), in_rows=to(plan.in_rows),
                seed_rows=to(plan.seed_rows), grad_rows=to(plan.grad_rows))
        return self._ens

    def lanes(self, B):
        """Samples per launch: all of them, unless the lanes-last arenas and scratch would not fit in
        memory."""
        per_lane = 2 * max(1, self.plan.arena_size) * self.dtype.itemsize + 8 * self.plan.scratch
        free = self.cuda.current_context().get_memory_info()[0]
        if not np.isfinite(free):               # the simulator reports unlimited memory
            free = 1 << 30
        L = max(1, min(B, int(free * MEMORY_FRACTION) // per_lane))
        if MAX_LANES is not None:
            L = min(L, MAX_LANES)
        return L if L < 32 or L == B else L - L % 32

    def ensemble(self, method, X, S):
        """Replay rows of X (B, packed inputs) with seeds S: cotangents (vjp) or tangents (jvp).

        Returns device arrays ``(out, result, status)``; ``status[b]`` is -1 or
        the first guard sample b failed (its results are then not to be used).
        A sample whose op failed (``numbad.cuda.errors``) raises the CPU's
        exception, naming the first such sample.
        """
        cuda, G, plan = self.cuda, self.G, self.plan
        t = self._ensemble_tables()
        B = X.shape[0]
        dX = as_device(X) if is_device_array(X) else cuda.to_device(np.ascontiguousarray(X))
        dS = as_device(S) if is_device_array(S) else cuda.to_device(np.ascontiguousarray(S))
        n_res = plan.in_total if method == "vjp" else plan.out_total
        out = cuda.device_array((B, plan.out_total), self.dtype)
        res = cuda.device_array((B, n_res), self.dtype)
        status = cuda.device_array(B, np.int64)
        errs = cuda.device_array(B, np.int64)
        L = self.lanes(B)
        size = max(1, plan.arena_size) * L
        vals = cuda.device_array(size, self.dtype)
        second = cuda.device_array(size, self.dtype)
        wk = cuda.device_array(max(1, plan.scratch * L), np.float64)
        tpb = G.ENS_TPB
        for c0 in range(0, B, L):
            Lc = min(L, B - c0)
            grid = -(-Lc // tpb)
            if method == "vjp":
                G.ensemble_vjp[grid, tpb](t["fwd"], t["rev"], self.d_ip, self.d_node_off, self.d_const_idx,
                                          self.d_const_val, t["in_rows"], t["seed_rows"], t["grad_rows"],
                                          self.d_gexp, dX, dS, out, res, status, errs, vals, second, wk, c0, Lc)
            else:
                G.ensemble_jvp[grid, tpb](t["fwd"], t["tan"], self.d_ip, self.d_node_off, t["varying"],
                                          self.d_const_idx, self.d_const_val, t["in_rows"], t["seed_rows"],
                                          self.d_gexp, dX, dS, out, res, status, errs, vals, second, wk, c0, Lc)
        if plan.fallible:
            codes = errs.copy_to_host()
            failed = np.flatnonzero(codes)
            if failed.size:
                b = int(failed[0])
                raise device_error(codes[b], f"sample {b} of the batch")
        return out, res, status


def _check_kinds(branch):
    from .codegen import KINDS
    for code in set(branch.ops[:, 0].tolist()):
        op = BY_CODE[code]
        if op.kind not in KINDS:
            raise NotImplementedError(f"numbad's CUDA kernels do not cover the op {op.name!r} (kind "
                                      f"{op.kind!r}) yet: replay this tape on the CPU")


def device_branch(branch):
    """The branch's :class:`DeviceBranch`, made on first use and kept on the branch."""
    db = getattr(branch, "_device", None)
    if db is None:
        db = branch._device = DeviceBranch(branch)
    return db


def _cupy_gemm(A, aoff, asb, ars, acs, B, boff, bsb, brs, bcs, C, coff, csb, M, N, K, outer, inner,
               beta):  # pragma: no cover - needs CuPy and a GPU
    """The same product as ``k_gemm``, through cuBLAS: CuPy views of the arenas (no copies)."""
    import cupy as cp
    from cupy.lib.stride_tricks import as_strided
    nb = outer * inner
    a_ = cp.asarray(A)
    b_ = cp.asarray(B)
    c_ = cp.asarray(C)
    it = a_.itemsize
    a = as_strided(a_[aoff:], shape=(nb, M, K), strides=(asb * it, ars * it, acs * it))
    b = as_strided(b_[boff:], shape=(nb, K, N), strides=(bsb * it, brs * it, bcs * it))
    prod = cp.matmul(a, b)
    if inner > 1:
        prod = prod.sum(axis=0, keepdims=True)
    c = as_strided(c_[coff:], shape=(outer, M, N), strides=(csb * it, N * it, it))
    if beta:
        c += prod
    else:
        c[...] = prod
