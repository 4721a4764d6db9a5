"""Every numpy function (and method) of the numpy-function table, checked by cases generated from it.

Each spelling in ``numbad.tensor.numpy_api.API`` must have at least one case
here (a test fails otherwise); each case is checked by ``check_derivatives``
(value, finite differences, PyTorch where it has the function, the
create_graph path, float32, every interpreter, second order) and records
only the ops its table row declares. Every op of the registry that is not
elementwise must be recorded by some case, forward or backward.
"""
import numpy as np
import pytest
import torch

import numbad as nb
from numbad.functional._common import Call
from numbad.ops import BY_CODE, OPS
from numbad.tensor.backward import backward
from numbad.tensor.numpy_api import API

from check import check_derivatives
from helpers import assert_close

rng = np.random.default_rng(11)
X3 = rng.standard_normal((2, 3, 4))
X = rng.standard_normal((3, 4))
V5 = rng.standard_normal(5)
POS3 = rng.uniform(0.5, 1.5, (2, 3, 4))
Z = POS3.copy()
Z[0, 1, 2] = 0.0                    # one zero in a segment
Z2 = POS3.copy()
Z2[1, 0, 1] = Z2[1, 2, 1] = 0.0    # two zeros in one segment of axis 1
W4 = rng.uniform(0.5, 2.0, 4)
M3 = rng.standard_normal((3, 3)) + 3 * np.eye(3)
MB = rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)
S33 = rng.standard_normal((3, 3))
T = torch.tensor


def case(spelling, f, args, torch_f=None, second=True, id=None, extra=()):
    """A test case of ``spelling``; ``extra``: the ops ``f`` records besides the function under test."""
    return pytest.param(spelling, f, args, torch_f, second, extra, id=id or spelling)


def sym(a):
    return a @ np.swapaxes(a, -1, -2) + 3 * np.eye(a.shape[-1])


def sym_t(a):
    return a @ a.mT + 3 * torch.eye(a.shape[-1])


C33 = rng.standard_normal((3, 3))
C43 = rng.standard_normal((4, 3))
IDX = np.array([[2, 0, 1, 1], [0, 0, 2, 1], [1, 2, 0, 0]])
XQ = np.array([-0.5, 0.7, 1.3, 2.0, 4.1, 9.0])         # points to interpolate at (some outside)
WITH_NAN = X3.copy()
WITH_NAN[0, 1, 2] = WITH_NAN[1, 2, 0] = np.nan
WITH_NAN_INF = np.ones((2, 3, 4))
WITH_NAN_INF[0, 0, 1], WITH_NAN_INF[1, 1, 1], WITH_NAN_INF[1, 2, 3] = np.nan, np.inf, -np.inf


CASES = [
    # ------------------------------------------------------------------ reductions
    case("np.sum", lambda x: np.sum(x, axis=(0, 2), keepdims=True), (X3,), lambda x: x.sum(dim=(0, 2), keepdim=True)),
    case("x.sum", lambda x: x.sum(dim=-1), (X3,), lambda x: x.sum(dim=-1)),
    case("np.mean", lambda x: np.mean(x, axis=-2), (X3,), lambda x: x.mean(dim=-2)),
    case("x.mean", lambda x: x.mean(), (X3,), lambda x: x.mean()),
    case("np.prod", lambda x: np.prod(x, axis=1), (X3,), lambda x: torch.prod(x, 1)),
    case("np.prod", lambda x: np.prod(x), (POS3,), lambda x: torch.prod(x), id="np.prod-all"),
    case("np.prod", lambda x: np.prod(x, axis=(0, 2), keepdims=True), (POS3,), id="np.prod-axes"),
    case("np.prod", lambda x: np.prod(x, axis=2), (Z,), lambda x: torch.prod(x, 2), id="np.prod-zero"),
    case("np.prod", lambda x: np.prod(x, axis=1), (Z2,), lambda x: torch.prod(x, 1), id="np.prod-two-zeros"),
    case("x.prod", lambda x: x.prod(dim=0), (X3,), lambda x: x.prod(dim=0)),
    case("np.amax", lambda x: np.amax(x, axis=(0, 2)), (X3,), lambda x: torch.amax(x, dim=(0, 2))),
    case("np.max", lambda x: np.max(x, axis=-1, keepdims=True), (X3,), lambda x: torch.amax(x, -1, keepdim=True)),
    case("np.max", lambda x: np.max(x), (X3,), lambda x: torch.amax(x), id="np.max-all"),
    case("x.max", lambda x: x.max(axis=0), (X3,), lambda x: x.amax(dim=0)),
    case("x.max", lambda x: x.max(dim=1).values, (X3,), lambda x: x.max(dim=1).values, id="x.max-dim",
         extra=("argmax",)),
    case("np.amin", lambda x: np.amin(x, axis=1), (X3,), lambda x: torch.amin(x, 1)),
    case("np.min", lambda x: np.min(x, axis=(1, 2)), (X3,), lambda x: torch.amin(x, (1, 2))),
    case("x.min", lambda x: x.min(), (X3,), lambda x: x.min()),
    case("np.ptp", lambda x: np.ptp(x, axis=1), (X3,), lambda x: x.amax(1) - x.amin(1)),
    case("np.cumsum", lambda x: np.cumsum(x, axis=1), (X3,), lambda x: torch.cumsum(x, 1)),
    case("np.cumsum", lambda x: np.cumsum(x), (X3,), lambda x: torch.cumsum(x.reshape(-1), 0), id="np.cumsum-flat"),
    case("x.cumsum", lambda x: x.cumsum(-1), (X3,), lambda x: x.cumsum(-1)),
    case("np.cumprod", lambda x: np.cumprod(x, axis=2), (POS3,), lambda x: torch.cumprod(x, 2)),
    case("np.cumprod", lambda x: np.cumprod(x, axis=2), (Z,), lambda x: torch.cumprod(x, 2), id="np.cumprod-zero"),
    case("np.cumprod", lambda x: np.cumprod(x, axis=1), (Z2,), lambda x: torch.cumprod(x, 1), id="np.cumprod-zeros"),
    case("x.cumprod", lambda x: x.cumprod(0), (X3,), lambda x: x.cumprod(0)),
    case("np.var", lambda x: np.var(x, axis=1), (X3,), lambda x: x.var(dim=1, unbiased=False)),
    case("np.var", lambda x: np.var(x, axis=(0, 2), ddof=1, keepdims=True), (X3,),
         lambda x: x.var(dim=(0, 2), keepdim=True, correction=1), id="np.var-ddof"),
    case("x.var", lambda x: x.var(dim=1), (X3,), lambda x: x.var(dim=1)),
    case("np.std", lambda x: np.std(x), (X3,), lambda x: x.std(unbiased=False)),
    case("x.std", lambda x: x.std(dim=-1, keepdim=True), (X3,), lambda x: x.std(dim=-1, keepdim=True)),
    case("np.average", lambda x: np.average(x, axis=1), (X3,), lambda x: x.mean(1)),
    case("np.average", lambda x: np.average(x, axis=-1, weights=W4), (X3,),
         lambda x: (x * T(W4)).sum(-1) / T(W4).sum(), id="np.average-weights"),
    case("np.average", lambda x, w: np.average(x, axis=(0, 1), weights=w), (POS3, POS3 + 1.0),
         lambda x, w: (x * w).sum((0, 1)) / w.sum((0, 1)), id="np.average-tensor-weights"),
    case("np.average", lambda x: (lambda a, s: a * s)(*np.average(x, axis=2, weights=W4, returned=True)), (X3,),
         lambda x: (x * T(W4)).sum(-1), id="np.average-returned"),
    case("nb.logsumexp", lambda x: nb.logsumexp(x, axis=1), (X3,), lambda x: torch.logsumexp(x, 1)),
    case("nb.logsumexp", lambda x: nb.logsumexp(x), (X3,), lambda x: torch.logsumexp(x.reshape(-1), 0),
         id="nb.logsumexp-all"),
    case("nb.logsumexp", lambda x: nb.logsumexp(x, axis=(0, 2), b=POS3, keepdims=True), (X3,),
         lambda x: torch.logsumexp(x + torch.log(T(POS3)), (0, 2), keepdim=True), id="nb.logsumexp-b"),
    case("nb.special.logsumexp", lambda x: nb.special.logsumexp(x, axis=-1), (X3,), lambda x: torch.logsumexp(x, -1)),
    case("x.logsumexp", lambda x: x.logsumexp(dim=-1), (X3,), lambda x: x.logsumexp(dim=-1)),
    # ------------------------------------------------------------------ shapes
    case("np.reshape", lambda x: np.reshape(x, (4, 6)), (X3,), lambda x: x.reshape(4, 6)),
    case("x.reshape", lambda x: x.reshape(6, -1), (X3,), lambda x: x.reshape(6, -1)),
    case("np.ravel", lambda x: np.ravel(x), (X3,), lambda x: x.ravel()),
    case("x.ravel", lambda x: x.ravel(), (X3,), lambda x: x.ravel()),
    case("x.flatten", lambda x: x.flatten(), (X3,), lambda x: x.flatten()),
    case("np.squeeze", lambda x: np.squeeze(x.reshape(2, 1, 12), axis=1), (X3,), lambda x: x.reshape(2, 1, 12).squeeze(1)),
    case("x.squeeze", lambda x: x.reshape(1, 24, 1).squeeze(), (X3,), lambda x: x.reshape(1, 24, 1).squeeze()),
    case("np.expand_dims", lambda x: np.expand_dims(x, (0, -1)), (X3,), lambda x: x[None, ..., None]),
    case("np.atleast_1d", lambda x: np.atleast_1d(x.sum()), (X3,), lambda x: torch.atleast_1d(x.sum()),
         extra=("scatter",)),
    case("np.atleast_2d", lambda x: np.atleast_2d(x[0, 0]), (X3,), lambda x: torch.atleast_2d(x[0, 0])),
    case("np.atleast_3d", lambda x: np.atleast_3d(x[0]), (X3,), lambda x: torch.atleast_3d(x[0])),
    case("np.transpose", lambda x: np.transpose(x, (1, 2, 0)), (X3,), lambda x: x.permute(1, 2, 0)),
    case("x.transpose", lambda x: x.transpose(2, 0, 1), (X3,), lambda x: x.permute(2, 0, 1)),
    case("x.T", lambda x: x.T, (X3,), lambda x: x.permute(2, 1, 0)),
    case("np.swapaxes", lambda x: np.swapaxes(x, 0, -1), (X3,), lambda x: torch.swapaxes(x, 0, -1)),
    case("x.swapaxes", lambda x: x.swapaxes(1, 2), (X3,), lambda x: x.swapaxes(1, 2)),
    case("np.moveaxis", lambda x: np.moveaxis(x, (0, 1), (-1, 0)), (X3,), lambda x: torch.moveaxis(x, (0, 1), (-1, 0))),
    case("np.broadcast_to", lambda x: np.broadcast_to(x[0], (2, 2, 3, 4)), (X3,),
         lambda x: torch.broadcast_to(x[0], (2, 2, 3, 4))),
    case("np.broadcast_arrays", lambda x: np.broadcast_arrays(x[:, :1], x[0])[0], (X3,),
         lambda x: torch.broadcast_tensors(x[:, :1], x[0])[0]),
    case("np.concatenate", lambda x: np.concatenate([x, np.ones((2, 1, 4)), 2 * x], axis=1), (X3,),
         lambda x: torch.cat([x, torch.ones(2, 1, 4), 2 * x], 1), extra=("multiply",)),
    case("np.concatenate", lambda x: np.concatenate([x, x[0]], axis=None), (X3,),
         lambda x: torch.cat([x.reshape(-1), x[0].reshape(-1)]), id="np.concatenate-flat"),
    case("np.stack", lambda x: np.stack([x, x * 3], axis=-1), (X3,), lambda x: torch.stack([x, x * 3], -1),
         extra=("multiply",)),
    case("np.hstack", lambda x: np.hstack([x, x[:, :1]]), (X3,), lambda x: torch.hstack([x, x[:, :1]])),
    case("np.vstack", lambda x: np.vstack([x[0, 0], x[1]]), (X3,), lambda x: torch.vstack([x[0, 0], x[1]])),
    case("np.dstack", lambda x: np.dstack([x[0], x[1]]), (X3,), lambda x: torch.dstack([x[0], x[1]])),
    case("np.column_stack", lambda x: np.column_stack([x[0, :, 0], x[1]]), (X3,),
         lambda x: torch.column_stack([x[0, :, 0], x[1]])),
    case("np.append", lambda x: np.append(x, x[0]), (X3,), lambda x: torch.cat([x.reshape(-1), x[0].reshape(-1)])),
    case("np.split", lambda x: (lambda a, b: a * b)(*np.split(x, 2, axis=2)), (X3,),
         lambda x: (lambda a, b: a * b)(*torch.tensor_split(x, 2, 2)), extra=("multiply",)),
    case("np.array_split", lambda x: np.array_split(x, 2, axis=1)[0] * 2, (X3,), lambda x: x[:, :2] * 2,
         extra=("multiply",)),
    case("np.hsplit", lambda x: np.hsplit(x, [1])[1], (X3,), lambda x: torch.hsplit(x, [1])[1]),
    case("np.vsplit", lambda x: np.vsplit(x, 2)[1], (X3,), lambda x: torch.vsplit(x, 2)[1]),
    case("np.tile", lambda x: np.tile(x, (2, 1, 1, 2)), (X3,), lambda x: torch.tile(x, (2, 1, 1, 2))),
    case("x.tile", lambda x: x.tile(2, 1), (X,), lambda x: x.tile(2, 1)),
    case("np.repeat", lambda x: np.repeat(x, 3, axis=1), (X3,), lambda x: torch.repeat_interleave(x, 3, 1)),
    case("np.repeat", lambda x: np.repeat(x, [1, 0, 2], axis=1), (X3,),
         lambda x: torch.repeat_interleave(x, torch.tensor([1, 0, 2]), 1), id="np.repeat-counts"),
    case("x.repeat", lambda x: x.repeat(2), (X3,), lambda x: x.reshape(-1).repeat_interleave(2)),
    case("np.flip", lambda x: np.flip(x, (0, 2)), (X3,), lambda x: torch.flip(x, (0, 2))),
    case("np.flip", lambda x: np.flip(x), (X3,), lambda x: torch.flip(x, (0, 1, 2)), id="np.flip-all"),
    case("np.fliplr", lambda x: np.fliplr(x), (X3,), lambda x: torch.fliplr(x)),
    case("np.flipud", lambda x: np.flipud(x), (X3,), lambda x: torch.flipud(x)),
    case("np.roll", lambda x: np.roll(x, 5), (X3,), lambda x: torch.roll(x, 5)),
    case("np.roll", lambda x: np.roll(x, (1, -1), axis=(0, 2)), (X3,), lambda x: torch.roll(x, (1, -1), (0, 2)),
         id="np.roll-axes"),
    case("np.pad", lambda x: np.pad(x, ((1, 0), (2, 1), (0, 0)), constant_values=1.5), (X3,),
         lambda x: torch.nn.functional.pad(x, (0, 0, 2, 1, 1, 0), value=1.5)),
    case("np.pad", lambda x: np.pad(x, 1, mode="edge"), (X3,), id="np.pad-edge"),
    case("np.pad", lambda x: np.pad(x, ((0, 0), (1, 1), (2, 2)), mode="reflect"), (X3,),
         lambda x: torch.nn.functional.pad(x[None], (2, 2, 1, 1), mode="reflect")[0], id="np.pad-reflect"),
    case("np.pad", lambda x: np.pad(x, 2, mode="wrap"), (X3,), id="np.pad-wrap"),
    case("np.pad", lambda x: np.pad(x, 1, mode="symmetric"), (X3,), id="np.pad-symmetric"),
    case("np.take", lambda x: np.take(x, [5, 0, 5, 23]), (X3,), lambda x: torch.take(x, torch.tensor([5, 0, 5, 23]))),
    case("np.take", lambda x: np.take(x, [2, 0, 2], axis=1), (X3,),
         lambda x: torch.index_select(x, 1, torch.tensor([2, 0, 2])), id="np.take-axis"),
    case("x.take", lambda x: x.take([1, 1, 3]), (X3,), lambda x: x.take(torch.tensor([1, 1, 3]))),
    case("np.take_along_axis", lambda x: np.take_along_axis(x, IDX, axis=0), (X,),
         lambda x: torch.take_along_dim(x, torch.tensor(IDX), 0)),
    case("np.take_along_axis", lambda x: np.take_along_axis(x, np.argsort(x, axis=1)[:, ::-1], axis=1), (X,),
         lambda x: torch.take_along_dim(x, torch.argsort(x, 1).flip(1), 1), id="np.take_along_axis-argsort",
         extra=("argsort",)),
    case("np.take_along_axis", lambda x: np.take_along_axis(x, np.argmax(x, axis=1, keepdims=True), axis=1), (X,),
         lambda x: torch.take_along_dim(x, torch.argmax(x, 1, keepdim=True), 1), id="np.take_along_axis-argmax",
         extra=("argmax",)),
    case("np.sort", lambda x: np.sort(x), (X3,), lambda x: torch.sort(x).values),
    case("np.sort", lambda x: np.sort(x, axis=0), (X3,), lambda x: torch.sort(x, 0).values, id="np.sort-axis0"),
    case("np.sort", lambda x: np.sort(x, axis=None), (X3,), lambda x: torch.sort(x.reshape(-1)).values,
         id="np.sort-flat"),
    case("x.sort", lambda x: x.sort(dim=1, descending=True).values, (X3,),
         lambda x: x.sort(dim=1, descending=True).values),
    case("np.diagonal", lambda x: np.diagonal(x, 1, 1, 2), (X3,), lambda x: torch.diagonal(x, 1, 1, 2)),
    case("x.diagonal", lambda x: x.diagonal(), (X,), lambda x: x.diagonal()),
    case("np.diag", lambda x: np.diag(x, 1), (V5,), lambda x: torch.diag(x, 1)),
    case("np.diag", lambda x: np.diag(x, -1), (X,), lambda x: torch.diag(x, -1), id="np.diag-2d"),
    case("np.triu", lambda x: np.triu(x, 1), (X3,), lambda x: torch.triu(x, 1)),
    case("np.tril", lambda x: np.tril(x, -1), (X3,), lambda x: torch.tril(x, -1)),
    case("np.diff", lambda x: np.diff(x, n=2, axis=1), (X3,), lambda x: torch.diff(x, n=2, dim=1)),
    # long enough that its slices are views (numbad.tensor.core.VIEW_MIN_SIZE)
    case("np.diff", lambda x: np.diff(x) ** 2, (rng.standard_normal(300),), lambda x: torch.diff(x) ** 2,
         id="np.diff-views", extra=("view", "square")),
    case("np.diff", lambda x: np.diff(x, prepend=0.5), (X3,), lambda x: torch.diff(x, prepend=torch.full((2, 3, 1), 0.5)),
         id="np.diff-prepend"),
    # ------------------------------------------------------------------ contractions
    case("np.matmul", lambda a, b: np.matmul(a, b), (rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))),
         lambda a, b: torch.matmul(a, b), id="np.matmul-broadcast-batch"),
    case("np.matmul", lambda a, b: a @ b, (rng.standard_normal(4), rng.standard_normal((2, 4, 3))),
         lambda a, b: a @ b, id="np.matmul-vector-batch"),
    case("np.matmul", lambda a, b: a @ b, (rng.standard_normal((2, 3, 4)), rng.standard_normal(4)),
         lambda a, b: a @ b, id="np.matmul-batch-vector"),
    case("@", lambda a, b: a @ b, (X, rng.standard_normal((4, 2))), lambda a, b: a @ b),
    case("np.dot", lambda a, b: np.dot(a, b), (X3, rng.standard_normal(4)), lambda a, b: a @ b),
    case("np.dot", lambda a, b: np.dot(a, b), (X3, rng.standard_normal((3, 4, 2))),
         lambda a, b: torch.tensordot(a, b, dims=([2], [1])), id="np.dot-nd"),
    case("np.dot", lambda a, b: np.dot(a, b), (np.array(1.5), X), lambda a, b: a * b, id="np.dot-scalar"),
    case("x.dot", lambda a, b: a.dot(b), (V5, V5 + 1), lambda a, b: a.dot(b)),
    case("np.vdot", lambda a, b: np.vdot(a, b), (X, X * 2 + 1), lambda a, b: torch.vdot(a.reshape(-1), b.reshape(-1))),
    case("np.inner", lambda a, b: np.inner(a, b), (X3, X), lambda a, b: torch.inner(a, b)),
    case("np.outer", lambda a, b: np.outer(a, b), (X, V5), lambda a, b: torch.outer(a.reshape(-1), b)),
    case("np.tensordot", lambda a, b: np.tensordot(a, b, axes=([1, 0], [0, 1])), (X3, rng.standard_normal((3, 2, 5))),
         lambda a, b: torch.tensordot(a, b, dims=([1, 0], [0, 1]))),
    case("np.tensordot", lambda a, b: np.tensordot(a, b, 1), (X3, rng.standard_normal((4, 2))),
         lambda a, b: torch.tensordot(a, b, 1), id="np.tensordot-int"),
    case("np.einsum", lambda a, b: np.einsum("ij,jk->ik", a, b), (X, rng.standard_normal((4, 2))),
         lambda a, b: torch.einsum("ij,jk->ik", a, b)),
    case("np.einsum", lambda a: np.einsum("ii->i", a), (S33,), lambda a: torch.einsum("ii->i", a), id="einsum-diag"),
    case("np.einsum", lambda a: np.einsum("ii", a), (S33,), lambda a: torch.einsum("ii", a), id="einsum-trace"),
    case("np.einsum", lambda a: np.einsum("bij->", a), (X3,), lambda a: torch.einsum("bij->", a), id="einsum-sum"),
    case("np.einsum", lambda a, b: np.einsum("bij,bjk->bik", a, b), (X3, rng.standard_normal((2, 4, 3))),
         lambda a, b: torch.einsum("bij,bjk->bik", a, b), id="einsum-batch"),
    case("np.einsum", lambda a, b: np.einsum("i,i", a, b), (V5, V5 * 2), lambda a, b: torch.einsum("i,i", a, b),
         id="einsum-dot"),
    case("np.einsum", lambda a, b, c: np.einsum("ij,jk,kl->il", a, b, c), (X.T, X, X.T),
         lambda a, b, c: torch.einsum("ij,jk,kl->il", a, b, c), id="einsum-three"),
    case("np.einsum", lambda a, b: np.einsum("...ij,...jk", a, b), (X3, rng.standard_normal((1, 4, 2))),
         lambda a, b: torch.einsum("...ij,...jk", a, b), id="einsum-ellipsis"),
    case("np.einsum", lambda a, b: np.einsum("ijk,ik->jk", a, b), (X3, X3[:, 0]),
         lambda a, b: torch.einsum("ijk,ik->jk", a, b), id="einsum-shared-kept"),
    case("np.einsum", lambda a: np.einsum("ij->ji", a), (X,), lambda a: a.T, id="einsum-transpose"),
    case("np.trace", lambda x: np.trace(x, 1, 1, 2), (X3,), lambda x: torch.diagonal(x, 1, 1, 2).sum(-1)),
    case("x.trace", lambda x: x.trace(), (X,), lambda x: x.trace()),
    case("np.kron", lambda a, b: np.kron(a, b), (X, S33), lambda a, b: torch.kron(a, b)),
    case("np.kron", lambda a, b: np.kron(a, b), (V5, X), lambda a, b: torch.kron(a, b), id="np.kron-mixed"),
    # ------------------------------------------------------------------ linear algebra
    case("np.linalg.solve", lambda a, b: np.linalg.solve(a, b), (M3, V5[:3]), lambda a, b: torch.linalg.solve(a, b)),
    case("np.linalg.solve", lambda a, b: np.linalg.solve(a, b), (MB, rng.standard_normal((3, 2))),
         lambda a, b: torch.linalg.solve(a, b), id="np.linalg.solve-batch"),
    case("np.linalg.solve", lambda a, b: np.linalg.solve(a, b), (M3, rng.standard_normal((2, 3, 2))),
         lambda a, b: torch.linalg.solve(a, b), id="np.linalg.solve-broadcast"),
    case("np.linalg.inv", lambda a: np.linalg.inv(a), (MB,), lambda a: torch.linalg.inv(a)),
    case("np.linalg.det", lambda a: np.linalg.det(a), (MB,), lambda a: torch.linalg.det(a)),
    case("np.linalg.slogdet", lambda a: np.linalg.slogdet(a)[1] * np.linalg.slogdet(a)[0], (MB - 4 * np.eye(3),),
         lambda a: torch.linalg.slogdet(a)[1] * torch.linalg.slogdet(a)[0], extra=("multiply",)),
    case("np.linalg.cholesky", lambda a: np.linalg.cholesky(sym(a)), (MB,), lambda a: torch.linalg.cholesky(sym_t(a)),
         extra=("matmul", "add")),
    case("np.linalg.cholesky", lambda a: np.linalg.cholesky(sym(a), upper=True), (M3,),
         lambda a: torch.linalg.cholesky(sym_t(a), upper=True), id="np.linalg.cholesky-upper",
         extra=("matmul", "add")),
    case("np.linalg.eigh", lambda a: (lambda w, v: (v ** 2 * C33).sum() + (w * w).sum())(*np.linalg.eigh(sym(a))),
         (S33,), lambda a: (lambda w, v: (v ** 2 * T(C33)).sum() + (w * w).sum())(*torch.linalg.eigh(sym_t(a))),
         extra=("matmul", "add", "square", "multiply", "scatter")),
    case("np.linalg.eigh", lambda a: np.linalg.eigh(sym(a), UPLO="U")[0], (MB,),
         lambda a: torch.linalg.eigh(sym_t(a), UPLO="U")[0], id="np.linalg.eigh-upper-batch",
         extra=("matmul", "add")),
    case("np.linalg.eigvalsh", lambda a: np.linalg.eigvalsh(sym(a)), (S33,), lambda a: torch.linalg.eigvalsh(sym_t(a)),
         extra=("matmul", "add")),
    case("np.linalg.svd", lambda a: (lambda u, s, vh: (u ** 2 * C43).sum() + (vh ** 2).sum(0) * s)(
        *np.linalg.svd(a, full_matrices=False)), (rng.standard_normal((4, 3)),),
        lambda a: (lambda u, s, vh: (u ** 2 * T(C43)).sum() + (vh ** 2).sum(0) * s)(
            *torch.linalg.svd(a, full_matrices=False)), extra=("square", "multiply", "scatter", "add")),
    # (not (u * s) @ vh[:, :1], which is a[:, :1]: every singular-vector term cancels in it)
    case("np.linalg.svd", lambda a: (lambda u, s, vh: (u ** 2 * s) @ vh[:, :2] ** 2 + (u * u).sum(1, keepdims=True))(
        *np.linalg.svd(a, full_matrices=False)), (rng.standard_normal((3, 5)),),
        lambda a: (lambda u, s, vh: (u ** 2 * s) @ vh[:, :2] ** 2 + (u * u).sum(1, keepdim=True))(
            *torch.linalg.svd(a, full_matrices=False)), id="np.linalg.svd-wide",
        extra=("multiply", "matmul", "scatter", "add", "square")),
    case("np.linalg.svd", lambda a: (lambda u, s, vh: u[..., :1] * s[..., None, :] * vh[..., 1:2, :].sum(-1)[..., None, :])(
        *np.linalg.svd(a)), (rng.standard_normal((2, 3, 3)),),
        lambda a: (lambda u, s, vh: u[..., :1] * s[..., None, :] * vh[..., 1:2, :].sum(-1)[..., None, :])(
            *torch.linalg.svd(a)), id="np.linalg.svd-square-batch", extra=("multiply", "scatter")),
    case("np.linalg.svd", lambda a: np.linalg.svd(a, compute_uv=False), (rng.standard_normal((3, 5)),),
         lambda a: torch.linalg.svdvals(a), id="np.linalg.svd-values"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x), (X3,), lambda x: torch.linalg.norm(x.reshape(-1))),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, axis=1), (X3,), lambda x: torch.linalg.vector_norm(x, dim=1),
         id="norm-vector-2"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, 1, axis=-1, keepdims=True), (X3,),
         lambda x: torch.linalg.vector_norm(x, 1, dim=-1, keepdim=True), id="norm-vector-1"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, np.inf), (V5,), lambda x: torch.linalg.vector_norm(x, float("inf")),
         id="norm-vector-inf"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, -np.inf, axis=0), (X,),
         lambda x: torch.linalg.vector_norm(x, -float("inf"), dim=0), id="norm-vector-minf"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, 3, axis=0), (X,), lambda x: torch.linalg.vector_norm(x, 3, dim=0),
         id="norm-vector-3"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, 0.5, axis=1), (X3,),
         lambda x: torch.linalg.vector_norm(x, 0.5, dim=1), id="norm-vector-half"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, -1.5, axis=-1, keepdims=True), (X,),
         lambda x: torch.linalg.vector_norm(x, -1.5, dim=-1, keepdim=True), id="norm-vector-negative"),
    case("x.norm", lambda x: x.norm(1.5), (X3,), lambda x: x.norm(1.5), id="x.norm-1.5"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, "fro", axis=(0, 2)), (X3,),
         lambda x: torch.linalg.matrix_norm(x.permute(1, 0, 2), "fro"), id="norm-fro"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, 1), (X,), lambda x: torch.linalg.matrix_norm(x, 1), id="norm-m1"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, -np.inf, axis=(2, 1)), (X3,),
         lambda x: torch.linalg.matrix_norm(x.mT, -float("inf")), id="norm-minf"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, np.inf), (X,), lambda x: torch.linalg.matrix_norm(x, float("inf")),
         id="norm-minf-pos"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, 2, axis=(1, 2)), (X3,), lambda x: torch.linalg.matrix_norm(x, 2),
         id="norm-m2"),
    case("np.linalg.norm", lambda x: np.linalg.norm(x, "nuc"), (X,), lambda x: torch.linalg.matrix_norm(x, "nuc"),
         id="norm-nuc"),
    case("x.norm", lambda x: x.norm(), (X3,), lambda x: x.norm()),
    case("x.norm", lambda x: x.norm(1, dim=1), (X3,), lambda x: x.norm(1, dim=1), id="x.norm-dim"),
    # ------------------------------------------------------------------ composites (composites.py)
    case("np.trapezoid", lambda y: np.trapezoid(y, dx=0.5, axis=1), (X3,),
         lambda y: torch.trapezoid(y, dx=0.5, dim=1)),
    case("np.trapezoid", lambda y, x: np.trapezoid(y, x), (X, np.cumsum(W4)),
         lambda y, x: torch.trapezoid(y, x), id="np.trapezoid-x"),
    case("np.polyval", lambda p, x: np.polyval(p, x), (V5[:3], X)),
    case("np.cross", lambda a, b: np.cross(a, b), (X3[:, :, :3], X[:, 1:]), lambda a, b: torch.linalg.cross(a, b[None])),
    case("np.cross", lambda a, b: np.cross(a, b, axis=0), (X[:, :2], M3[:, 1:]),
         lambda a, b: torch.linalg.cross(a, b, dim=0), id="np.cross-axis"),
    case("np.meshgrid", lambda a, b: (lambda P, Q: P * Q ** 2)(*np.meshgrid(a, b)), (V5, W4),
         lambda a, b: (lambda P, Q: P * Q ** 2)(*torch.meshgrid(a, b, indexing="xy")), extra=("multiply", "square")),
    case("np.meshgrid", lambda a, b: (lambda P, Q: P * Q ** 2)(*np.meshgrid(a, b, indexing="ij", sparse=True)),
         (V5, W4), lambda a, b: (lambda P, Q: P * Q ** 2)(*torch.meshgrid(a, b, indexing="ij")),
         id="np.meshgrid-ij-sparse", extra=("multiply", "square")),
    case("np.rot90", lambda x: np.rot90(x) * np.arange(12.0).reshape(2, 3, 2), (X3.transpose(1, 0, 2)[:, :, :2],),
         lambda x: torch.rot90(x) * torch.arange(12.0).reshape(2, 3, 2), extra=("multiply",)),
    case("np.rot90", lambda x: np.rot90(x, 3, axes=(1, 2)) * np.arange(24.0).reshape(2, 4, 3), (X3,),
         lambda x: torch.rot90(x, 3, (1, 2)) * torch.arange(24.0).reshape(2, 4, 3), id="np.rot90-3",
         extra=("multiply",)),
    case("np.interp", lambda fp: np.interp(XQ, np.cumsum(W4), fp), (V5[:4],)),
    case("np.interp", lambda x: np.interp(x, np.cumsum(W4), W4 ** 2, left=-1.0), (X * 2 + 2,), id="np.interp-x"),
    case("np.interp", lambda xp, fp: np.interp(XQ, np.cumsum(xp), fp), (W4, V5[:4]), id="np.interp-knots",
         extra=("cumsum",)),
    case("np.nansum", lambda x: np.nansum(x, axis=1), (WITH_NAN,), lambda x: torch.nansum(x, dim=1)),
    case("np.nanmean", lambda x: np.nanmean(x, axis=(0, 2), keepdims=True), (WITH_NAN,),
         lambda x: torch.nanmean(x, dim=(0, 2), keepdim=True)),
    case("np.nan_to_num", lambda x: np.nan_to_num(x, posinf=7.0), (X3 * WITH_NAN_INF,),
         lambda x: torch.nan_to_num(x, posinf=7.0)),
    case("np.quantile", lambda x: np.quantile(x, [0.3, 0.8], axis=1), (X3,),
         lambda x: torch.quantile(x, torch.tensor([0.3, 0.8]), dim=1)),
    case("np.quantile", lambda x: np.quantile(x, 0.4, axis=-1, keepdims=True, method="midpoint"), (X3,),
         lambda x: torch.quantile(x, 0.4, dim=-1, keepdim=True, interpolation="midpoint"), id="np.quantile-midpoint"),
    case("np.quantile", lambda x: np.quantile(x, [0.1, 0.7], method="nearest"), (X,),
         lambda x: torch.quantile(x.reshape(-1), torch.tensor([0.1, 0.7]), interpolation="nearest"),
         id="np.quantile-nearest"),
    case("np.quantile", lambda x: np.quantile(x, [[0.1], [0.75]], axis=0, method="higher"), (X,),
         id="np.quantile-higher-2d-q"),
    case("np.percentile", lambda x: np.percentile(x, 35, axis=(0, 2), method="lower"), (X3,),
         lambda x: torch.quantile(x.permute(1, 0, 2).reshape(3, -1), 0.35, dim=1, interpolation="lower")),
    case("np.median", lambda x: np.median(x, axis=0), (X,), lambda x: torch.quantile(x, 0.5, dim=0)),
    case("np.median", lambda x: np.median(x), (V5,), lambda x: torch.quantile(x, 0.5), id="np.median-odd"),
    case("np.cov", lambda x: np.cov(x), (X,), lambda x: torch.cov(x)),
    case("np.cov", lambda x, y: np.cov(x, y, rowvar=False, bias=True), (X, X[:, :2] * 2),
         lambda x, y: torch.cov(torch.cat([x, y], 1).T, correction=0), id="np.cov-y"),
    case("np.corrcoef", lambda x: np.corrcoef(x), (X,), lambda x: torch.corrcoef(x)),
    case("np.linalg.matrix_power", lambda a: np.linalg.matrix_power(a, 5), (M3,),
         lambda a: torch.linalg.matrix_power(a, 5)),
    case("np.linalg.matrix_power", lambda a: np.linalg.matrix_power(a, -2), (MB,),
         lambda a: torch.linalg.matrix_power(a, -2), id="np.linalg.matrix_power-inverse"),
    case("np.gradient", lambda f: np.gradient(f, 0.5, axis=1), (X3,),
         lambda f: torch.gradient(f, spacing=0.5, dim=1)[0]),
    case("np.gradient", lambda f: np.stack(np.gradient(f, edge_order=2)), (X,),
         lambda f: torch.stack(torch.gradient(f, edge_order=2)), id="np.gradient-edge-order-2",
         extra=("assemble",)),
    case("np.gradient", lambda f: np.gradient(f, np.cumsum(W4), axis=-1, edge_order=2), (X,),
         lambda f: torch.gradient(f, spacing=(torch.cumsum(torch.tensor(W4), 0),), dim=-1, edge_order=2)[0],
         id="np.gradient-coordinates", extra=("cumsum",)),
    case("np.convolve", lambda a, v: np.convolve(a, v), (V5, W4[:3]),
         lambda a, v: torch.nn.functional.conv1d(a[None, None], v.flip(0)[None, None], padding=2)[0, 0]),
    case("np.convolve", lambda a, v: np.convolve(a, v, "same"), (W4[:2], V5), id="np.convolve-same"),
    case("np.correlate", lambda a, v: np.correlate(a, v), (V5, W4[:3]),
         lambda a, v: torch.nn.functional.conv1d(a[None, None], v[None, None])[0, 0]),
    case("np.correlate", lambda a, v: np.correlate(a, v, "same"), (W4[:2], V5), id="np.correlate-same"),
    case("np.nanmax", lambda x: np.nanmax(x, axis=1), (WITH_NAN,)),
    case("np.nanmin", lambda x: np.nanmin(x, axis=(0, 2), keepdims=True), (WITH_NAN,)),
    case("np.nanvar", lambda x: np.nanvar(x, axis=2, ddof=1), (WITH_NAN,)),
    case("np.nanstd", lambda x: np.nanstd(x, axis=0), (WITH_NAN,)),
    case("np.linalg.multi_dot", lambda a, b, c: np.linalg.multi_dot([a, b, c]), (V5[:3], X, W4),
         lambda a, b, c: torch.linalg.multi_dot([a, b, c])),
    case("np.cumulative_sum", lambda x: np.cumulative_sum(x, axis=1, include_initial=True), (X,),
         lambda x: torch.cat([torch.zeros(3, 1), torch.cumsum(x, 1)], 1)),
    # ------------------------------------------------------------------ elementwise extras
    case("np.where", lambda a, b: np.where(a > b, a, b * 2), (X, rng.standard_normal((3, 4))),
         lambda a, b: torch.where(a > b, a, b * 2), extra=("greater", "multiply")),
    case("np.clip", lambda x: np.clip(x, -0.5, None), (X,), lambda x: torch.clamp(x, min=-0.5)),
    case("x.clip", lambda x: x.clip(max=0.3), (X,), lambda x: x.clip(max=0.3)),
    case("np.round", lambda x: np.round(x, 2) + x, (X,), lambda x: torch.round(x, decimals=2) + x,
         extra=("add",)),
    case("np.around", lambda x: np.around(x) * x, (X,), lambda x: torch.round(x) * x,
         extra=("multiply",)),
    case("x.round", lambda x: x.round() * x, (X,), lambda x: x.round() * x,
         extra=("multiply",)),
    case("np.fix", lambda x: np.fix(x * 3) * x, (X,), lambda x: torch.fix(x * 3) * x,
         extra=("multiply",)),
    # ------------------------------------------------------------------ creation and writes
    case("np.zeros_like", lambda x: (lambda o: (o.__setitem__(1, x[0] * 2), o)[1])(np.zeros_like(x)), (X,),
         lambda x: torch.cat([torch.zeros(1, 4), x[:1] * 2, torch.zeros(1, 4)]), extra=("multiply", "assign")),
    case("np.ones_like", lambda x: np.ones_like(x) * x, (X,), lambda x: torch.ones_like(x) * x,
         extra=("multiply",)),
    case("np.empty_like", lambda x: (lambda o: (o.__setitem__(slice(None), x[::-1]), o)[1])(np.empty_like(x)), (X,),
         lambda x: x.flip(0), extra=("assign",)),
    case("np.full_like", lambda x: np.full_like(x, 2.5) * x, (X,), lambda x: torch.full_like(x, 2.5) * x,
         extra=("multiply",)),
    case("np.full_like", lambda x: np.full_like(x, x[0, 0]) * x, (X,), lambda x: x[0, 0] * x, id="np.full_like-tensor",
         extra=("multiply",)),
    case("np.copy", lambda x: np.copy(x) * 2, (X,), lambda x: x.clone() * 2, extra=("multiply",)),
    case("x.copy", lambda x: x.copy() ** 2, (X,), lambda x: x.clone() ** 2, extra=("square",)),
    case("nb.zeros", lambda x: (lambda o: (o.__setitem__((0, slice(1, 3)), x[1, :2]), o)[1])(nb.zeros((2, 4))), (X,),
         lambda x: torch.stack([torch.cat([torch.zeros(1), x[1, :2], torch.zeros(1)]), torch.zeros(4)]),
         extra=("assign",)),
    case("nb.ones", lambda x: (lambda o: (o.__imul__(x[0]), o)[1])(nb.ones(4)), (X,), lambda x: x[0] * 1.0,
         extra=("multiply",)),
    case("nb.empty", lambda x: (lambda o: (o.__setitem__(Ellipsis, x.sum(0)), o)[1])(nb.empty(4)), (X,),
         lambda x: x.sum(0), extra=("assign", "scatter")),
    case("nb.full", lambda x: nb.full((2, 3), x[0, 0]) * 2, (X,), lambda x: x[0, 0].expand(2, 3) * 2,
         extra=("multiply",)),
]


#: (spelling, numbad function, numpy reference) of integer and boolean results
NONDIFF_CASES = [
    ("np.argmax", lambda x: np.argmax(x, axis=1), None),
    ("np.argmax", lambda x: np.argmax(x), None),
    ("x.argmax", lambda x: x.argmax(dim=-1, keepdim=True), lambda x: x.argmax(axis=-1, keepdims=True)),
    ("np.argmin", lambda x: np.argmin(x, axis=0, keepdims=True), None),
    ("x.argmin", lambda x: x.argmin(), None),
    ("np.argsort", lambda x: np.argsort(x, axis=0), None),
    ("np.argsort", lambda x: np.argsort(x, axis=None), None),
    ("x.argsort", lambda x: x.argsort(dim=1, descending=True), lambda x: np.argsort(-x, axis=1, kind="stable")),
    ("np.any", lambda x: np.any(x > 1.0, axis=1), None),
    ("x.any", lambda x: (x > 0).any(), None),
    ("np.all", lambda x: np.all(x > -1.0, axis=(0, 2)), None),
    ("x.all", lambda x: (x < 2).all(dim=0), lambda x: (x < 2).all(axis=0)),
    ("np.isclose", lambda x: np.isclose(x, np.round(x, 1), atol=0.02), None),
    ("np.isclose", lambda x: np.isclose(x * WITH_NAN_INF, x * WITH_NAN_INF, equal_nan=True), None),
]


def _spellings_tested():
    return {p.values[0] for p in CASES} | {c[0] for c in NONDIFF_CASES}


def test_every_numpy_function_in_the_table_has_a_case():
    missing = sorted(set(API) - _spellings_tested() - SPELLINGS_TESTED_ELSEWHERE)
    assert not missing, f"numpy-function table entries without a test case: {missing}"


#: spellings whose behaviour has dedicated tests (below, or in other files)
SPELLINGS_TESTED_ELSEWHERE = {"np.allclose"}


def test_allclose_is_numpys_truth_value_and_a_guard_of_recorded_tapes():
    for a, b, kw in [(X, X + 1e-9, {}), (X, X + 1e-3, {}), (X, X + 1e-3, {"atol": 1e-2}),
                     (X * WITH_NAN_INF[0], X * WITH_NAN_INF[0], {}),
                     (X * WITH_NAN_INF[0], X * WITH_NAN_INF[0], {"equal_nan": True})]:
        assert Call((a,), False).run(lambda t: np.allclose(t, b, **kw)) is np.allclose(a, b, **kw)

    def f(x):
        return np.sum(x) if np.allclose(x, 1.0) else np.sum(x ** 2)
    tape = nb.record(f, np.ones(3))
    assert tape(np.ones(3) + 1e-10) == np.sum(np.ones(3) + 1e-10)
    with pytest.raises(nb.BranchChanged):
        tape(np.full(3, 2.0))
    assert_close(nb.vjp(f, np.full(3, 2.0), 1.0)[1], np.full(3, 4.0))


def _recorded(f, args, create_graph):
    """Names of the ops that ``f`` records (and its create_graph backward, if asked)."""
    call = Call(tuple(np.asarray(a, np.float64) for a in args), False)
    out = call.run(f)
    tape, end = call.tape, call.tape.n_ops
    if create_graph and isinstance(out, nb.Tensor) and out._tape is tape:
        call.run(lambda *_: backward(tape, call.begin, end, call.input_nodes,
                                     [(out._node, np.ones(out.shape))]))
    codes = {tape.ops[k * 6] for k in range(call.begin, tape.n_ops)}
    return {BY_CODE[c].name for c in codes}, {BY_CODE[c].name for c in
                                              {tape.ops[k * 6] for k in range(call.begin, end)}}


@pytest.mark.parametrize("spelling, f, args, torch_f, second, extra", CASES)
def test_numpy_function(spelling, f, args, torch_f, second, extra):
    check_derivatives(f, args, torch_f, second=second)
    _, forward = _recorded(f, args, False)
    allowed = set(API[spelling].ops) | {"copy", "gather", "view"} | set(extra)
    assert forward <= allowed, f"{spelling} records ops its table row does not list: {forward - allowed}"


@pytest.mark.parametrize("spelling, f, ref", NONDIFF_CASES, ids=[c[0] for c in NONDIFF_CASES])
def test_integer_and_boolean_results(spelling, f, ref):
    """Values are numpy's, no derivative flows, and a replay recomputes them from new inputs."""
    from numbad import sweeps
    ref = ref or f
    x = X3.copy()
    call = Call((x,), False)
    out = call.run(f)
    expected = ref(x)
    assert isinstance(out, nb.Tensor) and out.dtype == expected.dtype
    assert np.array_equal(out.detach(), expected)
    tape = call.tape
    ops, off, size, ip, vals = tape.arrays()
    vals = vals.copy()
    x2 = rng.standard_normal(x.shape)
    n = call.input_nodes[0]
    vals[off[n]:off[n] + size[n]] = x2.ravel()
    sweeps.interpreters().forward(ops, off, size, ip, vals, call.begin, tape.n_ops, sweeps.workspace())
    replayed = vals[off[out._node]:off[out._node] + size[out._node]].reshape(expected.shape)
    assert np.array_equal(replayed, ref(x2)), "a replay recomputes integer results"
    _, g = nb.vjp(lambda x: f(x) * x.sum(), x, np.ones(expected.shape))
    assert np.allclose(g, np.sum(expected)), "the integer result is a constant factor"


def test_every_structural_op_is_recorded_by_a_case():
    seen = set()
    for p in CASES:
        _, f, args = p.values[:3]
        seen |= _recorded(f, args, True)[0]
    for _, f, _ in NONDIFF_CASES:
        seen |= _recorded(f, (X3,), False)[0]
    structural = {op.name for op in OPS.values() if op.kind not in ("elementwise", "nondiff")}
    assert not structural - seen, f"registry ops no test case records: {sorted(structural - seen)}"


REPLAY_CASES = [
    ("np.sort", lambda x: np.sort(x, axis=1) * np.arange(1.0, 5.0)),
    ("np.max", lambda x: np.max(x, axis=0)),
    ("np.argsort", lambda x: np.take_along_axis(x, np.argsort(x, axis=0), axis=0) * np.arange(3.0)[:, None]),
    ("np.cumprod", lambda x: np.cumprod(x, axis=1)),
    ("np.prod", lambda x: np.prod(x, axis=0)),
    ("np.linalg.eigh", lambda x: np.linalg.eigh(sym(x[:, :3]))[1] ** 2),
    ("np.linalg.svd", lambda x: np.linalg.svd(x, compute_uv=False)),
    ("np.median", lambda x: np.median(x, axis=1)),
    ("np.quantile", lambda x: np.quantile(x, [0.2, 0.9], axis=0)),
    ("np.nanmax", lambda x: np.nanmax(np.where(x > 1.0, np.nan, x), axis=1)),
]


@pytest.mark.parametrize("spelling, f", REPLAY_CASES, ids=[c[0] for c in REPLAY_CASES])
def test_a_replayed_tape_recomputes_value_dependent_choices(spelling, f):
    """Recorded at one input, replayed (forward, then reverse) at another: the values and the
    derivative are those of a fresh recording at the new input (orders, ties and maxima move)."""
    from numbad import sweeps
    x1, x2 = X.copy(), rng.standard_normal(X.shape)
    x2[1, 1] = 0.0                    # a zero for the products
    call = Call((x1,), False)
    out = call.run(f)
    tape = call.tape
    ops, off, size, ip, vals = tape.arrays()
    n = call.input_nodes[0]
    vals[off[n]:off[n] + size[n]] = x2.ravel()
    sweeps.interpreters().forward(ops, off, size, ip, vals, call.begin, tape.n_ops, sweeps.workspace())
    v = rng.standard_normal(out.shape)
    expected, g_expected = nb.vjp(f, x2, v)
    o = out._node
    assert np.allclose(vals[off[o]:off[o] + size[o]].reshape(out.shape), expected, rtol=1e-12, atol=1e-12)
    g = sweeps.reverse(tape, call.begin, tape.n_ops, [n], [(o, v)])[0].reshape(x2.shape)
    assert np.allclose(g, g_expected, rtol=1e-10, atol=1e-12)


X32 = (0.1 * np.arange(1, 61)).astype(np.float32).reshape(6, 10)


@pytest.mark.parametrize("f", [
    lambda x: np.sum(x, dtype=np.float64), lambda x: np.sum(x, axis=0, dtype=np.float64),
    lambda x: np.mean(x, dtype=np.float64), lambda x: np.mean(x, axis=1, dtype=np.float32),
    lambda x: np.prod(x / 5.0, axis=1, dtype=np.float64), lambda x: np.cumsum(x, dtype=np.float64),
    lambda x: np.cumprod(x / 5.0, axis=1, dtype=np.float64), lambda x: np.var(x, dtype=np.float64),
    lambda x: np.std(x, axis=0, dtype=np.float64), lambda x: np.exp(x / 10.0, dtype=np.float64),
    lambda x: np.add(x, np.float32(0.1), dtype=np.float64), lambda x: x ** np.float64(0.5),
    lambda x: np.power(x, np.float64(2)), lambda x: x ** np.int64(2), lambda x: x ** 2,
    lambda x: x ** np.float32(-1.0),
], ids=["sum", "sum-axis", "mean", "mean-f32", "prod", "cumsum", "cumprod", "var", "std", "exp",
        "add", "pow-f64-half", "power-f64-2", "pow-i64-2", "pow-2", "pow-f32-reciprocal"])
def test_dtype_arguments_and_numpy_scalar_exponents_give_numpys_values(f):
    # dtype= casts the elements before computing; a numpy scalar exponent takes part in promotion
    expected = f(X32)
    out, g = nb.vjp(f, X32, np.ones(np.shape(expected), expected.dtype))
    assert out.dtype == expected.dtype and np.array_equal(out, expected)
    assert g.dtype == np.float32
    _, g64 = nb.vjp(f, X32.astype(np.float64), np.ones(np.shape(expected)))
    assert_close(g, g64, rtol=2e-5, atol=1e-5, what="float32 inputs, gradient")


def test_integer_dtype_arguments_are_refused():
    for f in (lambda x: np.sum(x, dtype=np.int64), lambda x: np.prod(x, dtype=np.int64),
              lambda x: np.cumsum(x, dtype=np.int64)):
        with pytest.raises(TypeError, match="drop the derivative"):
            nb.vjp(f, np.array([0.6, 0.7]), np.ones(np.shape(f(np.array([0.6, 0.7])))))


def test_flattening_orders_and_pytorch_flatten():
    x3 = np.arange(24.0).reshape(2, 3, 4)
    for f, ref in ((lambda x: x.flatten("F"), x3.flatten("F")), (lambda x: x.flatten(order="F"), x3.flatten("F")),
                   (lambda x: np.ravel(x, "F"), np.ravel(x3, "F")), (lambda x: x.flatten(), x3.flatten()),
                   (lambda x: np.ravel(x[:1, :1], order="K"), np.ravel(x3[:1, :1], order="K"))):
        out, g = nb.vjp(lambda x: f(x) * np.arange(ref.size), x3, np.ones(ref.size))
        assert np.array_equal(out, ref * np.arange(ref.size))
        expected = np.zeros(x3.size)
        np.add.at(expected, f(np.arange(24).reshape(2, 3, 4)), np.arange(ref.size))
        assert np.array_equal(g.reshape(-1), expected)
    for args in ((1,), (0, 1), (), (-2, -1)):                 # PyTorch's start_dim, end_dim
        out = nb.vjp(lambda x: x.flatten(*args), x3, np.ones(torch.tensor(x3).flatten(*args).shape))[0]
        assert np.array_equal(out, torch.tensor(x3).flatten(*args).numpy())
    with pytest.raises(TypeError, match="follows the memory layout"):
        nb.vjp(lambda x: np.ravel(x.T, order="K"), x3, np.ones(24))

    def write(x):                       # ravel(order='F') is a copy in numpy: no write-through
        y = x.copy()
        np.ravel(y, "F")[0] = 100.0
        return y
    assert np.array_equal(nb.vjp(write, x3, np.ones(x3.shape))[0], x3)


COMPOSITES = [
    ("np.trapezoid", lambda y, x: np.trapezoid(y, x)),
    ("np.trapezoid", lambda y, x: np.trapezoid(y, dx=0.3, axis=0)),
    ("np.polyval", lambda y, x: np.polyval(y[0], x)),
    ("np.cross", lambda y, x: np.cross(y[:, :3], x[:3])),
    ("np.interp", lambda y, x: np.interp(x * 3, np.arange(5.0), y[0])),
    ("np.interp", lambda y, x: np.interp(XQ, np.sort(x), y[1], right=0.5)),
    ("np.nansum", lambda y, x: np.nansum(y * np.where(y > 1.0, np.nan, 1.0), axis=0)),
    ("np.nanmean", lambda y, x: np.nanmean(y * np.where(y > 1.0, np.nan, 1.0), axis=1)),
    ("np.quantile", lambda y, x: np.quantile(y, [0.15, 0.5, 0.9], axis=1)),
    ("np.percentile", lambda y, x: np.percentile(x, 62.5, method="midpoint")),
    ("np.median", lambda y, x: np.median(y)),
    ("np.cov", lambda y, x: np.cov(y)),
    ("np.corrcoef", lambda y, x: np.corrcoef(y, rowvar=False)),
    ("np.linalg.matrix_power", lambda y, x: np.linalg.matrix_power(y[:, :3] + 2 * np.eye(3), 7)),
    ("np.gradient", lambda y, x: np.gradient(y, 0.1, np.sort(x), edge_order=2)[1]),
    ("np.gradient", lambda y, x: np.gradient(x)),
    ("np.convolve", lambda y, x: np.convolve(y[0], x, "same")),
    ("np.correlate", lambda y, x: np.correlate(y[0], x[:3], "full")),
    ("np.nanmax", lambda y, x: np.nanmax(y * np.where(y > 1.0, np.nan, 1.0), axis=1)),
    ("np.nanvar", lambda y, x: np.nanvar(y * np.where(y > 1.0, np.nan, 1.0), axis=0)),
    ("np.nanstd", lambda y, x: np.nanstd(y * np.where(y > 1.0, np.nan, 1.0))),
    ("np.linalg.multi_dot", lambda y, x: np.linalg.multi_dot([x[:3], y, y.T, x[:3]])),
    ("np.cumulative_sum", lambda y, x: np.cumulative_sum(y, axis=0)),
]


@pytest.mark.parametrize("spelling, f", COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_composite_values_are_numpys_to_the_bit(spelling, f):
    # numbad writes these from other numpy functions; numpy's C loops and BLAS calls (interp,
    # quantiles, cov) give the last bits, which the results carry
    r = np.random.default_rng(9)
    for _ in range(25):
        y, x = r.uniform(-2.0, 2.0, (3, 5)), r.uniform(-1.0, 2.0, 5)
        with np.errstate(invalid="ignore"):
            expected = f(y, x)
        out = Call((y, x), False).run(f)
        assert np.array_equal(out.detach(), expected, equal_nan=True), spelling


def test_interp_replays_recompute_the_segments():
    knots = np.array([0.0, 1.0, 2.5, 4.0])

    def f(x, fp):
        return np.sum(np.interp(x, knots, fp) ** 2)
    x, fp = np.array([0.5, 1.5, 3.0]), np.array([1.0, -1.0, 2.0, 0.5])
    tape = nb.record(f, (x, fp))
    for x2 in (np.array([2.0, 3.9, 0.1]), np.array([-1.0, 4.5, 2.5])):   # other segments, outside, a knot
        assert tape((x2, fp)) == f(x2, fp)
        _, g = tape.vjp((x2, fp), 1.0)
        _, expected = nb.vjp(f, (x2, fp), 1.0)
        for a, b in zip(g, expected):
            assert np.array_equal(a, b)


def test_meshgrid_copies_are_writable_as_numpys():
    def f(t):
        X, Y = np.meshgrid(t, t)
        X[0, 0] = 5.0
        return np.sum(X * Y) + np.sum(t)
    x = np.array([1.0, 2.0, 3.0])
    out, g = nb.vjp(f, x, 1.0)
    assert out == f(x)
    assert np.array_equal(g, [16.0, 13.0, 13.0])


def test_gradient_refuses_an_axis_out_of_range():
    with pytest.raises(np.exceptions.AxisError):
        nb.vjp(lambda x: np.sum(np.gradient(x, axis=5)), np.arange(6.0), 1.0)
