"""Single replays of the segment, node-indexed, assign and linear-algebra ops (``docs/cuda.md``).

:class:`KindOps` is mixed into :class:`numbad.cuda.runtime.DeviceBranch`: its
``forward_kind``/``reverse_kind``/``tangent_kind`` launch, for one op row,
the kernels of :mod:`numbad.cuda.kernels_segments` and
:mod:`numbad.cuda.kernels_linalg` over the device-resident arenas (``L = 1``),
choosing per op the form that fills the GPU: one thread per segment where
segments are many or short, the parallel forms for few long ones; one thread
per matrix for linear algebra. ``row`` (the op's position in its table) keys
the errors the kernels report, so that the host raises the first one.
"""
from __future__ import annotations

import numpy as np

from .plan import VARY, scratch_size

#: A reduction along segments of at most this length runs one thread per segment.
SHORT = 64
#: With at least this many segments, one thread per segment fills the GPU.
MANY = 4096


class KindOps:
    """Kernel launches of the op kinds that issue 3 added (segments, take_along, assign, linalg)."""

    # ------------------------------------------------------------------- helpers
    def scratch64(self, n):
        """Float64 device scratch of at least ``n`` elements (shared by the ops of a sweep, which run
        one after another)."""
        if self._scratch64 is None or self._scratch64.shape[0] < n:
            self._scratch64 = self.cuda.device_array(max(n, 1024), np.float64)
        return self._scratch64

    def _seg(self, ia):
        ip = self.branch.ip
        return int(ip[ia]), int(ip[ia + 1]), int(ip[ia + 2])

    def _seg_desc(self, ia):
        """Reduction descriptors (numbad.cuda.kernels._split) of the (O, R, I) view along R."""
        key = ("seg", ia)
        if key not in self._maps:
            O, R, I = self._seg(ia)
            to = self.cuda.to_device
            self._maps[key] = (to(np.array([[O, R * I, I], [I, 1, 1]], np.int64)),
                               to(np.array([[R, I, 0]], np.int64)))
        return self._maps[key]

    def _sum_segments(self, src, soff, dst, doff, ia):
        """dst[doff + t] = sum over r of src[soff + (o, r, i)] (dst zeroed here), in a fixed order."""
        O, R, I = self._seg(ia)
        self._launch(self.K.k_fill, O * I, dst, doff, O * I, 0.0)
        kept, red = self._seg_desc(ia)
        self.reduce(src, soff, dst, doff, kept, red, O * I, R)

    # ------------------------------------------------------------------- segments
    def extreme(self, src, soff, dst, doff, ia, sign, want_index):
        """max/min (or argmax/argmin) along the segments: exact in either form."""
        KS, K = self.KS, self.K
        O, R, I = self._seg(ia)
        T = O * I
        if R <= SHORT or T >= MANY:
            self._launch(KS.k_extreme_rows, T, src, soff, dst, doff, O, R, I, sign, want_index)
            return
        C = max(1, min(1024, R // (K.RED_TPB * 8)))
        pv = self.cuda.device_array(T * C, np.float64)
        pk = self.cuda.device_array(T * C, np.int64)
        KS.k_extreme_partial[T * C, K.RED_TPB](src, soff, O, R, I, C, sign, pv, pk)
        self._launch(KS.k_extreme_finish, T, pv, pk, C, dst, doff, T, sign, want_index)

    def extreme_vjp(self, vals, xo, yo, adj, go, dxo, ia, acc):
        """Counts of the ties (a reduction of hit flags), then each element's share."""
        O, R, I = self._seg(ia)
        N, T = O * R * I, O * I
        s = self.scratch64(N + T)
        self._launch(self.KS.k_extreme_hits, N, vals, xo, yo, O, R, I, s, 0, False, vals, 0)
        self._sum_segments(s, 0, s, N, ia)
        self._launch(self.KS.k_extreme_vjp, N, vals, xo, yo, adj, go, dxo, O, R, I, s, N, int(acc))

    def extreme_jvp(self, vals, xo, yo, tan, txo, tyo, ia):
        """The mean of the tied elements' tangents: two reductions and a division."""
        O, R, I = self._seg(ia)
        N, T = O * R * I, O * I
        s = self.scratch64(2 * N + 2 * T)
        self._launch(self.KS.k_extreme_hits, N, vals, xo, yo, O, R, I, s, 0, True, tan, txo)
        self._sum_segments(s, 0, s, 2 * N, ia)
        self._sum_segments(s, N, s, 2 * N + T, ia)
        self._launch(self.KS.k_divide, T, s, 2 * N + T, s, 2 * N, tan, tyo, T)

    def scan(self, src, soff, dst, doff, ia, rev, acc):
        """Running sums: one thread per segment, or the chunked scan for few long segments."""
        KS = self.KS
        O, R, I = self._seg(ia)
        T = O * I
        if R <= SHORT or T >= MANY:
            self._launch(KS.k_scan_rows, T, src, soff, dst, doff, O, R, I, rev, int(acc))
            return
        C = KS.scan_chunks(R)
        part = self.scratch64(T * C)
        self._launch(KS.k_scan_partial, T * C, src, soff, O, R, I, C, rev, part)
        self._launch(KS.k_scan_offsets, T, part, T, C)
        self._launch(KS.k_scan_chunks, T * C, src, soff, dst, doff, O, R, I, C, rev, int(acc), part)

    def argsort(self, src, soff, dst, doff, ia):
        """Stable merge sort of every segment at once: log2(R) passes of one thread per element."""
        KS = self.KS
        O, R, I = self._seg(ia)
        N = O * R * I
        keys = self.scratch64(2 * N)
        self._launch(KS.k_sort_init, N, keys, O, R, I)
        a, width = 0, 1
        while width < R:
            self._launch(KS.k_sort_pass, N, src, soff, keys, a, N - a, O, R, I, width)
            a, width = N - a, 2 * width
        self._launch(self.K.k_copy, N, keys, a, dst, doff, N, 0)

    def take_along(self, src, soff, vals, kof, dst, doff, ia, acc, row):
        """dst (+)= src read at the indices held by the node at vals[kof] (range-checked)."""
        O, R, I = self._seg(ia)
        Q = int(self.branch.ip[ia + 3])
        self._launch(self.KS.k_take_along, O * Q * I, src, soff, vals, kof, dst, doff, O, R, I, Q,
                     int(acc), self.d_err, row)

    def put_along(self, src, soff, vals, kof, dst, doff, ia, acc, row):
        """dst zeroed (unless ``acc``), then the adds: one thread per segment in the CPU's order, or
        atomics for few long segments."""
        KS = self.KS
        O, R, I = self._seg(ia)
        Q = int(self.branch.ip[ia + 3])
        if not acc:
            self._launch(self.K.k_fill, O * R * I, dst, doff, O * R * I, 0.0)
        if Q <= SHORT or O * I >= MANY:
            self._launch(KS.k_put_along_rows, O * I, src, soff, vals, kof, dst, doff, O, R, I, Q,
                         self.d_err, row)
        else:
            self._launch(KS.k_put_along_atomic, O * Q * I, src, soff, vals, kof, dst, doff, O, R, I, Q,
                         self.d_err, row)

    def assign(self, base, base_on, boff, part, part_on, poff, psize, dst, doff, n, ia):
        """dst = base (or zeros), then dst[idx] = part (or zeros): values and tangents."""
        K = self.K
        if base_on:
            self._launch(K.k_copy, n, base, boff, dst, doff, n, 0)
        else:
            self._launch(K.k_fill, n, dst, doff, n, 0.0)
        count = int(self.branch.ip[ia])
        self._launch(self.KS.k_assign_place, count, part, poff, psize, int(part_on), dst, doff, self.d_ip, ia)

    def assign_vjp(self, adj, goff, n, part_on, poff, psize, part_acc, base_on, boff, base_acc, ia):
        K, KS = self.K, self.KS
        count = int(self.branch.ip[ia])
        if part_on:
            if not part_acc:
                self._launch(K.k_fill, psize, adj, poff, psize, 0.0)
            if psize > 1:
                self._launch(KS.k_assign_part_vjp, count, adj, goff, poff, 1, self.d_ip, ia)
            else:                   # one element written everywhere: the sum of the written cotangents
                tmp = self.scratch64(count)
                self._launch(K.k_take, count, adj, goff, tmp, 0, self.d_ip, ia, 0)
                self.reduce(tmp, 0, adj, poff, *self._vector(max(count, 1)), 1, count)
        self._launch(KS.k_assign_zero, count, adj, goff, self.d_ip, ia)
        if base_on:
            self._launch(K.k_copy, n, adj, goff, adj, boff, n, int(base_acc))

    # ------------------------------------------------------------------- linear algebra
    def _per_matrix(self, kern, kind, ia, row, *args, serial=False):
        """kern over the op's batch: one thread per matrix (``serial``: one thread for all of them)."""
        Bt = int(self.branch.ip[ia])
        ws = scratch_size(kind, self.branch.ip, ia)
        wk = self.scratch64(max(1, Bt * ws))
        full = args + (self.d_ip, ia, wk, ws, self.d_err, row)
        if serial:
            kern[1, 1](*full)
        else:
            self._launch(kern, Bt, *full)

    # ------------------------------------------------------------------- dispatch
    def forward_kind(self, op, row, vals, pos):
        """The forward of a row of the kinds above (``pos``: its forward-table position)."""
        KL = self.KL
        code, yo, n, ao, sa, bo, sb, co, sc, ia, flags, aux = row
        kind = op.kind
        if kind in ("extreme", "arg_extreme"):
            self.extreme(vals, ao, vals, yo, ia, op.param, kind == "arg_extreme")
        elif kind == "argsort":
            self.argsort(vals, ao, vals, yo, ia)
        elif kind == "scan_sum":
            self.scan(vals, ao, vals, yo, ia, op.param, False)
        elif kind == "cumprod":
            O, R, I = self._seg(ia)
            self._launch(self.KS.k_cumprod_rows, O * I, vals, ao, vals, yo, O, R, I)
        elif kind == "take_along":
            self.take_along(vals, ao, vals, bo, vals, yo, ia, False, pos)
        elif kind == "put_along":
            self.put_along(vals, ao, vals, bo, vals, yo, ia, False, pos)
        elif kind == "assign":
            self.assign(vals, True, ao, vals, True, bo, aux, vals, yo, n, ia)
        elif kind == "solve":
            self._per_matrix(KL.k_solve, kind, ia, pos, vals, ao, bo, yo)
        elif kind in ("logabsdet", "det_sign"):
            ip = self.branch.ip
            Bt, ws = int(ip[ia]), scratch_size(kind, ip, ia)
            self._launch(KL.k_logabsdet, Bt, vals, ao, yo, self.d_ip, ia, kind == "det_sign",
                         self.scratch64(max(1, Bt * ws)), ws, self.d_err, pos)
        elif kind in KL.FACTOR_KINDS:
            self._per_matrix(KL.k_factor, kind, ia, pos, KL.FACTOR_KINDS[kind], vals, ao, yo)
        else:                                            # pragma: no cover - codegen.KINDS and this agree
            raise NotImplementedError(kind)

    def reverse_kind(self, op, row, vals, adj, pos):
        KL = self.KL
        code, yo, n, ao, sa, bo, sb, co, sc, ia, flags, aux = row
        kind = op.kind
        acc = bool(flags & 8)
        if kind == "extreme":
            self.extreme_vjp(vals, ao, yo, adj, yo, ao, ia, acc)
        elif kind == "scan_sum":
            self.scan(adj, yo, adj, ao, ia, 1 - op.param, acc)
        elif kind == "cumprod":
            O, R, I = self._seg(ia)
            self._launch(self.KS.k_cumprod_vjp_rows, O * I, vals, ao, yo, adj, yo, ao, O, R, I, int(acc))
        elif kind == "take_along":
            self.put_along(adj, yo, vals, bo, adj, ao, ia, acc, pos)
        elif kind == "put_along":
            self.take_along(adj, yo, vals, bo, adj, ao, ia, acc, pos)
        elif kind == "assign":
            self.assign_vjp(adj, yo, n, bool(flags & 2), bo, aux, bool(flags & 16), bool(flags & 1), ao, acc, ia)
        elif kind == "solve":
            ip = self.branch.ip
            serial = int(ip[ia]) > 1 and (int(ip[ia + 3]) == 0 or int(ip[ia + 4]) == 0)
            self._per_matrix(KL.k_solve_vjp, kind, ia, pos, vals, ao, yo, adj, yo, bool(flags & 1), ao, acc,
                             bool(flags & 2), bo, bool(flags & 16), serial=serial)
        elif kind == "logabsdet":
            self._per_matrix(KL.k_logabsdet_vjp, kind, ia, pos, vals, ao, adj, yo, ao, acc)
        elif kind in KL.FACTOR_KINDS:
            self._per_matrix(KL.k_factor_vjp, kind, ia, pos, KL.FACTOR_KINDS[kind], vals, yo, adj, yo, ao, acc)
        else:                                            # pragma: no cover
            raise NotImplementedError(kind)

    def tangent_kind(self, op, row, vals, tan, pos):
        KL = self.KL
        code, yo, n, ao, sa, bo, sb, co, sc, ia, flags, aux = row
        kind = op.kind
        if kind == "extreme":
            self.extreme_jvp(vals, ao, yo, tan, ao, yo, ia)
        elif kind == "scan_sum":
            self.scan(tan, ao, tan, yo, ia, op.param, False)
        elif kind == "cumprod":
            O, R, I = self._seg(ia)
            self._launch(self.KS.k_cumprod_jvp_rows, O * I, vals, ao, yo, tan, ao, yo, O, R, I)
        elif kind == "take_along":
            self.take_along(tan, ao, vals, bo, tan, yo, ia, False, pos)
        elif kind == "put_along":
            self.put_along(tan, ao, vals, bo, tan, yo, ia, False, pos)
        elif kind == "assign":
            self.assign(tan, bool(flags & VARY[0]), ao, tan, bool(flags & VARY[1]), bo, aux, tan, yo, n, ia)
        elif kind == "solve":
            self._per_matrix(KL.k_solve_jvp, kind, ia, pos, vals, ao, yo, tan, bool(flags & 1), ao,
                             bool(flags & 2), bo, yo)
        elif kind == "logabsdet":
            self._per_matrix(KL.k_logabsdet_jvp, kind, ia, pos, vals, ao, tan, ao, yo)
        elif kind in KL.FACTOR_KINDS:
            self._per_matrix(KL.k_factor_jvp, kind, ia, pos, KL.FACTOR_KINDS[kind], vals, yo, tan, ao, yo)
        else:                                            # pragma: no cover
            raise NotImplementedError(kind)
