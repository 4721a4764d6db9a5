"""Linear algebra: ``np.linalg`` solve, inv, det, slogdet, cholesky, eigh, eigvalsh, svd, norm.

Matrices come in batches (leading axes) as in numpy. Each decomposition is
one registry op on the whole batch; eigh and svd record their factors packed
in one node, which the returned arrays read (gathers). Their derivatives
are PyTorch's formulas (:mod:`numbad.sweeps.kernels_linalg`), and exist where
the decomposition is differentiable: distinct eigenvalues (singular values)
where the cotangent couples them, nonzero singular values for a non-square
svd whose vectors are used. An exact tie raises ``ValueError`` rather than
returning NaN.
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from ..ops import OPS
from . import core
from .core import Tensor
from .numpy_api import ew, implements, normalize_axis, operand, tensorize, value_of, where
from .products import numpys_value
from .reductions import amax, amin, sqrt_subgrad, sum_
from .shape import getitem, reshape, swapaxes

SlogdetResult = namedtuple("SlogdetResult", "sign logabsdet")
EighResult = namedtuple("EighResult", "eigenvalues eigenvectors")
SVDResult = namedtuple("SVDResult", "U S Vh")


def _square(x, name):
    shape = np.shape(value_of(x))
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError(f"{name}: last 2 dimensions of the array must be square")
    return shape[:-2], shape[-1]


def _batch(x, shape, batch):
    """``x`` (a matrix or a batch of them, ``shape``) and its batch stride for a product over ``batch``."""
    size = shape[-2] * shape[-1]
    if shape[:-2] == batch:
        return x, size
    if math.prod(shape[:-2]) == 1:
        return x, 0
    x = reshape(x, shape) if type(x) is Tensor else np.reshape(x, shape)
    return (core.broadcast_to(x, batch + shape[-2:]) if type(x) is Tensor
            else np.broadcast_to(x, batch + shape[-2:])), size


@implements(np.linalg.solve, torch=("torch.linalg.solve",), ops=("solve", "gather"))
def solve(a, b):
    a, b = operand(a), operand(b)
    value = np.linalg.solve(value_of(a), value_of(b))        # numpy validates (and raises if singular)
    ash = np.shape(value_of(a))
    n = ash[-1]
    bsh = np.shape(value_of(b))
    bsh = (n, 1) if len(bsh) == 1 else bsh
    batch = np.broadcast_shapes(ash[:-2], bsh[:-2])
    a, sA = _batch(a, ash, batch)
    b, sB = _batch(b, bsh, batch)
    return core.structural_op(OPS["solve"].code, (a, b), value, (math.prod(batch), n, bsh[-1], sA, sB))


@implements(np.linalg.inv, torch=("torch.linalg.inv", "torch.inverse"), ops=("solve", "gather"))
def inv(a):
    batch, n = _square(a, "inv")
    eye = np.eye(n, dtype=np.result_type(value_of(a).dtype, np.float32))
    return solve(a, eye)


def _logabsdet(a):
    batch, n = _square(a, "slogdet")
    x = tensorize(a)
    sign, ld = np.linalg.slogdet(x._v)
    attrs = (math.prod(batch), n)
    return (core.structural_op(OPS["det_sign"].code, (x,), sign, attrs),
            core.structural_op(OPS["logabsdet"].code, (x,), ld, attrs))


@implements(np.linalg.slogdet, torch=("torch.linalg.slogdet", "torch.logdet"), ops=("logabsdet", "det_sign"),
            note=OPS["logabsdet"].kink)
def slogdet(a):
    return SlogdetResult(*_logabsdet(a))


@implements(np.linalg.det, torch=("torch.linalg.det", "torch.det"),
            ops=("logabsdet", "det_sign", "exp", "multiply"),
            note="sign(det) * exp(log|det|): derivative det * A^-T; a singular matrix raises "
                 "numpy.linalg.LinAlgError")
def det(a):
    sign, ld = _logabsdet(a)
    return ew("multiply", sign, ew("exp", ld))


@implements(np.linalg.cholesky, torch=("torch.linalg.cholesky",), ops=("cholesky", "gather"),
            note=OPS["cholesky"].kink)
def cholesky(a, /, *, upper=False):
    batch, n = _square(a, "cholesky")
    x = tensorize(a)
    out = core.structural_op(OPS["cholesky"].code, (x,), np.linalg.cholesky(x._v), (math.prod(batch), n))
    return swapaxes(out, -1, -2) if upper else out


@implements(np.linalg.eigh, torch=("torch.linalg.eigh",), ops=("eigh", "gather", "copy"),
            note=OPS["eigh"].kink)
def eigh(a, UPLO="L"):
    batch, n = _square(a, "eigh")
    x = tensorize(a)
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    if UPLO == "U":                     # the upper triangle of A is the lower one of A^T
        x = swapaxes(x, -1, -2)
    w, V = np.linalg.eigh(x._v)
    packed = np.concatenate([w, V.reshape(batch + (n * n,))], axis=-1)
    p = core.structural_op(OPS["eigh"].code, (x,), packed, (math.prod(batch), n))
    lead = (Ellipsis,)
    return EighResult(getitem(p, lead + (slice(0, n),)),
                      reshape(getitem(p, lead + (slice(n, None),)), batch + (n, n)))


@implements(np.linalg.eigvalsh, torch=("torch.linalg.eigvalsh",), ops=("eigh", "gather", "copy"),
            note="eigenvalues: derivative V diag(g) V^T, defined at ties too")
def eigvalsh(a, UPLO="L"):
    # (numpy's eigvalsh takes another LAPACK path than eigh: the values are eigvalsh's own)
    return numpys_value(eigh(a, UPLO)[0], np.linalg.eigvalsh(value_of(a), UPLO))


@implements(np.linalg.svd, torch=("torch.linalg.svd", "torch.linalg.svdvals"), ops=("svd", "gather", "copy"),
            note=OPS["svd"].kink + "; full_matrices=True only for square matrices")
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    x = tensorize(a)
    if hermitian:
        raise TypeError("numbad: np.linalg.svd(..., hermitian=True) is not supported; use np.linalg.eigh")
    if x.ndim < 2:
        raise np.linalg.LinAlgError(f"{x.ndim}-dimensional array given. Array must be at least two-dimensional")
    batch, (m, n) = x.shape[:-2], x.shape[-2:]
    k = min(m, n)
    if compute_uv and full_matrices and m != n:
        raise TypeError("numbad: the full SVD of a non-square matrix has no unique derivative; "
                        "pass full_matrices=False")
    U, S, Vh = np.linalg.svd(x._v, full_matrices=False)
    packed = np.concatenate([U.reshape(batch + (m * k,)), S, Vh.reshape(batch + (k * n,))], axis=-1)
    p = core.structural_op(OPS["svd"].code, (x,), packed, (math.prod(batch), m, n, k))
    lead = (Ellipsis,)
    s = getitem(p, lead + (slice(m * k, m * k + k),))
    if not compute_uv:
        return numpys_value(s, np.linalg.svd(x._v, compute_uv=False))   # (another LAPACK path)
    return SVDResult(reshape(getitem(p, lead + (slice(0, m * k),)), batch + (m, k)), s,
                     reshape(getitem(p, lead + (slice(m * k + k, None),)), batch + (k, n)))


_NORM_NOTE = ("derivative 0 at the zero vector, as PyTorch's (vector ord < 1: 0 at a zero entry); "
              "ord inf/-inf/1/-1 follow amax/amin's ties; matrix ord 2/-2/'nuc' use the SVD")


@implements(np.linalg.norm, torch=("torch.linalg.norm", "torch.linalg.vector_norm",
                                   "torch.linalg.matrix_norm", "x.norm"),
            ops=("multiply", "scatter", "sqrt_subgrad", "absolute", "amax", "amin", "power",
                 "equal", "not_equal", "where", "copy", "gather", "svd"), note=_NORM_NOTE, names=("x.norm",))
def norm(x, ord=None, axis=None, keepdims=False):
    x = tensorize(x)
    nd = x.ndim
    value_shape = np.linalg.norm(np.ones(x.shape), ord, axis, keepdims).shape    # numpy validates
    if axis is None:
        if ord is None or (ord in ("fro", "f") and nd == 2) or (ord == 2 and nd == 1):
            # the value is numpy's own, to the bit: here numpy sums the squares by a dot product
            out = sqrt_subgrad(sum_(ew("multiply", x, x)), np.linalg.norm(x._v))
            return reshape(out, value_shape) if keepdims else out
        axis = tuple(range(nd))
    axes = (normalize_axis(axis, nd),) if np.ndim(axis) == 0 else tuple(normalize_axis(a, nd) for a in axis)
    if len(axes) == 1:
        out = _vector_norm(x, ord, axes[0])
    else:
        out = _matrix_norm(x, ord, axes)
    return reshape(out, value_shape) if keepdims else out


def _vector_norm(x, ord, ax):
    if ord is None or ord == 2:
        return sqrt_subgrad(sum_(ew("multiply", x, x), axis=ax))
    if ord == np.inf:
        return amax(ew("absolute", x), axis=ax)
    if ord == -np.inf:
        return amin(ew("absolute", x), axis=ax)
    if ord == 0:
        return sum_(ew("not_equal", x, 0), axis=ax).astype(x.dtype)
    if ord == 1:
        return sum_(ew("absolute", x), axis=ax)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    # (sum |x|**p)**(1/p), with PyTorch's derivative 0 where the plain rule reads 0 * inf: the
    # zero vector (p > 1), and a zero entry (p < 1, whose |x|**p has an infinite slope at 0).
    # Selects (np.where) stand in for the masks of PyTorch's rule: a select passes no
    # cotangent to the side it drops, and replays on any input. The values are numpy's.
    a = ew("absolute", x)
    shape = tuple(d for i, d in enumerate(x.shape) if i != ax)
    if ord > 1:
        total = sum_(ew("power", a, ord), axis=ax, keepdims=True)
        zero = ew("equal", total, 0.0)          # (no derivative flows through a comparison)
        safe = where(zero, 1.0, a)              # a vector of ones in place of the zero vector
        root = ew("power", sum_(ew("power", safe, ord), axis=ax, keepdims=True), 1.0 / ord)
        return reshape(where(zero, 0.0, root), shape)
    nonzero = ew("not_equal", a, 0.0)
    terms = where(nonzero, ew("power", where(nonzero, a, 1.0), ord), 0.0 if ord > 0 else np.inf)
    return ew("power", sum_(terms, axis=ax), 1.0 / ord)


def _matrix_norm(x, ord, axes):
    row, col = axes
    if ord is None or ord in ("fro", "f"):
        return sqrt_subgrad(sum_(ew("multiply", x, x), axis=axes))
    if ord in (1, -1):
        red = amax if ord == 1 else amin
        return red(sum_(ew("absolute", x), axis=row), axis=col - 1 if col > row else col)
    if ord in (np.inf, -np.inf):
        red = amax if ord == np.inf else amin
        return red(sum_(ew("absolute", x), axis=col), axis=row - 1 if row > col else row)
    if ord in (2, -2, "nuc"):
        from .shape import moveaxis
        s = svd(moveaxis(x, (row, col), (-2, -1)), compute_uv=False)
        return {2: amax, -2: amin, "nuc": sum_}[ord](s, axis=-1)
    raise ValueError("Invalid norm order for matrices.")


def _norm_method(self, p="fro", dim=None, keepdim=False):
    """PyTorch's ``x.norm(p, dim, keepdim)``: without ``dim``, the norm of all elements."""
    p = None if p == "fro" else p
    if dim is None:
        from .shape import ravel
        out = norm(ravel(self), p)
        return reshape(out, (1,) * self.ndim) if keepdim else out
    return norm(self, p, dim, keepdim)


def install(T):
    T.norm = _norm_method
