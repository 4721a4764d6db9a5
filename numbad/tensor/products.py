"""Contractions: matmul in numpy's every form, dot, vdot, inner, outer, tensordot,
einsum, trace, kron.

All of them record the registry's batched ``matmul`` (BLAS), elementwise
``multiply`` and data movement; ``einsum`` contracts its operands pairwise
as batched matrix products.
"""
from __future__ import annotations

import math
import operator
import re

import numpy as np

from ..ops import OPS
from . import core
from .core import Tensor
from .numpy_api import implements, normalize_axis, operand, reject, tensorize, value_of
from .reductions import sum_
from .shape import diagonal, reshape, transpose


def _transpose_any(x, axes):
    if list(axes) == list(range(len(axes))):
        return x
    return transpose(x, axes) if type(x) is Tensor else np.transpose(x, axes)


def _reshape_any(x, shape):
    return reshape(x, shape) if type(x) is Tensor else np.reshape(x, shape)


def _broadcast_operand(x, shape):
    if type(x) is Tensor:
        return core.broadcast_to(x, shape)
    return np.broadcast_to(x, shape)


def _multiply(a, b):
    return core.binary(OPS["multiply"], a, b, operator.mul)


@implements(np.matmul, torch=("torch.matmul", "torch.mm", "torch.bmm", "torch.mv", "x.matmul", "x.mm", "@"),
            ops=("matmul", "gather"), names=("@",))
def matmul(a, b, /, out=None, **kwargs):
    if out is not None or kwargs:
        reject("matmul", out=out, **kwargs)
    a, b = operand(a), operand(b)
    av, bv = value_of(a), value_of(b)
    value = np.matmul(av, bv)          # numpy validates the shapes
    ash = av.shape if type(av) is np.ndarray else np.shape(av)
    bsh = bv.shape if type(bv) is np.ndarray else np.shape(bv)
    ash = (1,) + ash if len(ash) == 1 else ash
    bsh = bsh + (1,) if len(bsh) == 1 else bsh
    M, K, N = ash[-2], ash[-1], bsh[-1]
    if len(ash) == 2 and len(bsh) == 2:       # no batch (the common case, kept cheap)
        return core.matmul(a, b, 0, 0, 1, M, K, N, M * K, K * N, value)
    batch = np.broadcast_shapes(ash[:-2], bsh[:-2])
    Bt = math.prod(batch)

    def batch_stride(x, xsh, rows, cols):
        if xsh[:-2] == batch:
            return x, rows * cols
        if math.prod(xsh[:-2]) == 1:
            return x, 0
        return _broadcast_operand(_reshape_any(x, xsh), batch + xsh[-2:]), rows * cols

    a, sA = batch_stride(a, ash, M, K)
    b, sB = batch_stride(b, bsh, K, N)
    return core.matmul(a, b, 0, 0, Bt, M, K, N, sA, sB, value)


@implements(np.dot, torch=("torch.dot", "x.dot"), ops=("matmul", "multiply", "gather", "copy"),
            names=("x.dot",))
def dot(a, b, out=None):
    reject("dot", out=out)
    a, b = operand(a), operand(b)
    if np.ndim(value_of(a)) == 0 or np.ndim(value_of(b)) == 0:
        return _multiply(a, b)
    if np.ndim(value_of(b)) <= 2 and np.ndim(value_of(a)) <= 2:
        return matmul(a, b)
    return numpys_value(tensordot(a, b, axes=([-1], [-2 if np.ndim(value_of(b)) > 1 else -1])),
                         np.dot(value_of(a), value_of(b)))


def numpys_value(x, value):
    """The contraction ``x`` that numbad recorded, carrying numpy's own ``value`` where the last
    bits differ (numpy sums the products in another order): a copy, whose derivative is 1."""
    if type(x) is not Tensor or np.array_equal(x._v, value):
        return x
    return core.copy(x, value, share=False)


@implements(np.vdot, torch=("torch.vdot",), ops=("matmul", "copy"))
def vdot(a, b, /):
    a, b = operand(a), operand(b)
    if np.size(value_of(a)) != np.size(value_of(b)):
        raise ValueError("cannot reshape array: vdot needs arrays of the same size")
    return matmul(_reshape_any(a, (-1,)), _reshape_any(b, (-1,)))


@implements(np.inner, torch=("torch.inner",), ops=("matmul", "multiply", "gather", "copy"))
def inner(a, b, /):
    a, b = operand(a), operand(b)
    if np.ndim(value_of(a)) == 0 or np.ndim(value_of(b)) == 0:
        return _multiply(a, b)
    return numpys_value(tensordot(a, b, axes=([-1], [-1])), np.inner(value_of(a), value_of(b)))


@implements(np.outer, torch=("torch.outer", "torch.ger"), ops=("multiply", "gather", "copy"))
def outer(a, b, out=None):
    reject("outer", out=out)
    a, b = operand(a), operand(b)
    return _multiply(_reshape_any(a, (-1, 1)), _reshape_any(b, (1, -1)))


@implements(np.tensordot, torch=("torch.tensordot",), ops=("matmul", "gather", "copy"))
def tensordot(a, b, axes=2):
    a, b = operand(a), operand(b)
    na, nb = np.ndim(value_of(a)), np.ndim(value_of(b))
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    sa, sb = np.shape(value_of(a)), np.shape(value_of(b))
    ax_a = [normalize_axis(d, na) for d in ax_a]
    ax_b = [normalize_axis(d, nb) for d in ax_b]
    if len(ax_a) != len(ax_b) or any(sa[i] != sb[j] for i, j in zip(ax_a, ax_b)):
        raise ValueError("shape-mismatch for sum")
    free_a = [d for d in range(na) if d not in ax_a]
    free_b = [d for d in range(nb) if d not in ax_b]
    K = math.prod(sa[d] for d in ax_a)
    A = _reshape_any(_transpose_any(a, free_a + ax_a), (-1, K))
    B = _reshape_any(_transpose_any(b, ax_b + free_b), (K, -1))
    return _reshape_any(matmul(A, B), tuple(sa[d] for d in free_a) + tuple(sb[d] for d in free_b))


@implements(np.trace, torch=("torch.trace", "x.trace"), ops=("gather", "scatter"), names=("x.trace",))
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    reject("trace", out=out)
    return sum_(diagonal(tensorize(a), offset, axis1, axis2), axis=-1, dtype=dtype)


@implements(np.kron, torch=("torch.kron",), ops=("multiply", "gather", "copy"))
def kron(a, b):
    a, b = operand(a), operand(b)
    sa, sb = np.shape(value_of(a)), np.shape(value_of(b))
    nd = max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    # a[i0, 1, i1, 1, ...] * b[1, j0, 1, j1, ...] laid out as (i0*j0, i1*j1, ...)
    A = _reshape_any(a, tuple(v for s in sa for v in (s, 1)))
    B = _reshape_any(b, tuple(v for s in sb for v in (1, s)))
    return _reshape_any(_multiply(A, B), tuple(x * y for x, y in zip(sa, sb)))


# --------------------------------------------------------------------------- einsum
def _parse_einsum(subscripts, shapes):
    """``(inputs, output)``: one list of index letters per operand, ellipses expanded."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, out = subscripts.split("->")
    else:
        lhs, out = subscripts, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError("more operands provided to einstein sum function than specified in the "
                         "subscripts string" if len(shapes) > len(terms) else
                         "fewer operands provided to einstein sum function than specified in the "
                         "subscripts string")
    used = set(re.sub(r"[^a-zA-Z]", "", subscripts))
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    ell_dims = max([len(s) - (len(t) - 3) for t, s in zip(terms, shapes) if "..." in t] or [0])
    ell = "".join(spare[:ell_dims])
    inputs = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            n = len(s) - (len(t) - 3)
            t = t.replace("...", ell[ell_dims - n:])
        if len(t) != len(s):
            raise ValueError(f"einstein sum subscripts string {t!r} does not match an operand of "
                             f"{len(s)} dimensions")
        inputs.append(list(t))
    if out is None:
        counts = {}
        for t in inputs:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return inputs, list(out)


def _take_diagonals(x, idx):
    """Operand ``x`` with index letters ``idx``: repeated letters become one (its diagonal)."""
    while len(set(idx)) < len(idx):
        c = next(c for c in idx if idx.count(c) > 1)
        i = idx.index(c)
        j = idx.index(c, i + 1)
        x = diagonal(x, 0, i, j) if type(x) is Tensor else np.diagonal(x, 0, i, j)
        idx = [d for k, d in enumerate(idx) if k not in (i, j)] + [c]
    return x, idx


def _sum_letters(x, idx, letters):
    axes = tuple(k for k, c in enumerate(idx) if c in letters)
    if not axes:
        return x, idx
    x = sum_(x, axis=axes) if type(x) is Tensor else np.sum(x, axis=axes)
    return x, [c for c in idx if c not in letters]


def _contract(a, ia, b, ib, keep):
    """``a`` (letters ``ia``) times ``b`` summed over the shared letters not in ``keep``,
    as one batched matmul: (batch, free_a, K) @ (batch, K, free_b)."""
    sa, sb = np.shape(value_of(a)), np.shape(value_of(b))
    dim = {c: max(n, dict(zip(ib, sb)).get(c, 0)) for c, n in zip(ia, sa)}
    dim.update({c: n for c, n in zip(ib, sb) if c not in dim})
    if any(dim[c] != n for c, n in zip(ia, sa)):          # broadcast ellipsis dimensions
        a = _broadcast_operand(a, tuple(dim[c] for c in ia))
    if any(dim[c] != n for c, n in zip(ib, sb)):
        b = _broadcast_operand(b, tuple(dim[c] for c in ib))
    batch = [c for c in ia if c in ib and c in keep]
    summed = [c for c in ia if c in ib and c not in keep]
    fa = [c for c in ia if c not in ib]
    fb = [c for c in ib if c not in ia]
    A = _transpose_any(a, [ia.index(c) for c in batch + fa + summed])
    B = _transpose_any(b, [ib.index(c) for c in batch + summed + fb])
    nb_, nfa, nk, nfb = (math.prod(dim[c] for c in g) for g in (batch, fa, summed, fb))
    A = _reshape_any(A, (nb_, nfa, nk))
    B = _reshape_any(B, (nb_, nk, nfb))
    out = _reshape_any(matmul(A, B), tuple(dim[c] for c in batch + fa + fb))
    return out, batch + fa + fb


@implements(np.einsum, torch=("torch.einsum",), ops=("matmul", "gather", "copy", "scatter", "multiply"),
            note="contracted pairwise, left to right, as batched matrix products; the value is numpy's")
def einsum(subscripts, *operands, out=None, optimize=False, **kwargs):
    reject("einsum", out=out, **{k: v for k, v in kwargs.items() if k not in ("dtype", "casting", "order")})
    if not isinstance(subscripts, str):
        raise TypeError("numbad: einsum needs its subscripts as a string")
    ops = [operand(x) for x in operands]
    value = np.einsum(subscripts, *[value_of(x) for x in ops])   # numpy validates everything
    inputs, output = _parse_einsum(subscripts, [np.shape(value_of(x)) for x in ops])
    terms = [_take_diagonals(x, idx) for x, idx in zip(ops, inputs)]

    def needed(k):
        """Letters that the output or the operands after the k-th still use."""
        return set(output).union(*[set(t[1]) for t in terms[k + 1:]])
    x, idx = _sum_letters(*terms[0], set(terms[0][1]) - needed(0))
    for k in range(1, len(terms)):
        y, iy = terms[k]
        keep = needed(k)
        y, iy = _sum_letters(y, iy, set(iy) - keep - set(idx))
        x, idx = _sum_letters(x, idx, set(idx) - keep - set(iy))
        x, idx = _contract(x, idx, y, iy, keep)
    x, idx = _sum_letters(x, idx, set(idx) - set(output))
    x = _transpose_any(x, [idx.index(c) for c in output])
    if type(x) is not Tensor:
        return value
    return numpys_value(x if np.shape(x._v) == value.shape else reshape(x, value.shape), value)


def install(T):
    T.__matmul__ = lambda s, o: matmul(s, o)
    T.__rmatmul__ = lambda s, o: matmul(o, s)
    T.matmul = lambda s, o: matmul(s, o)
    T.mm = T.matmul
    T.mv = T.matmul
    T.dot = lambda s, o: dot(s, o)
    T.trace = lambda s, offset=0, axis1=0, axis2=1, dtype=None: trace(s, offset, axis1, axis2, dtype)
    T.outer = lambda s, o: outer(s, o)
    T.inner = lambda s, o: inner(s, o)
    T.kron = lambda s, o: kron(s, o)
