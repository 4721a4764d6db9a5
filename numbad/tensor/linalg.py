"""Linear algebra: ``np.linalg.norm``, and (below) solve, inv, det, slogdet, cholesky, eigh, svd."""
from __future__ import annotations

import math

import numpy as np

from ..ops import OPS
from . import core
from .numpy_api import ew, implements, normalize_axes, normalize_axis, tensorize
from .reductions import amax, amin, sum_
from .shape import reshape


def sqrt_subgrad(x):
    """``sqrt`` whose derivative at 0 is 0 (the subgradient PyTorch's norms use)."""
    return core.elementwise(OPS["sqrt_subgrad"], (x,), np.sqrt)


_NORM_NOTE = ("2-norms (ord None, 2 for vectors, 'fro'): derivative 0 at the zero vector, as PyTorch's; "
              "ord inf/-inf/1/-1 follow amax/amin's ties; matrix ord 2/-2/'nuc' use the SVD")


@implements(np.linalg.norm, torch=("torch.linalg.norm", "torch.linalg.vector_norm",
                                   "torch.linalg.matrix_norm", "x.norm"),
            ops=("multiply", "scatter", "sqrt_subgrad", "absolute", "amax", "amin", "power",
                 "not_equal", "copy", "gather", "svd"), note=_NORM_NOTE)
def norm(x, ord=None, axis=None, keepdims=False):
    x = tensorize(x)
    nd = x.ndim
    value_shape = np.linalg.norm(np.zeros(x.shape), ord, axis, keepdims).shape   # numpy validates
    if axis is None:
        if ord is None or (ord in ("fro", "f") and nd == 2) or (ord == 2 and nd == 1):
            out = sqrt_subgrad(sum_(ew("multiply", x, x)))
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
    return ew("power", sum_(ew("power", ew("absolute", x), ord), axis=ax), 1.0 / ord)


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
