"""Structural ops: data movement, reductions and contractions.

Their kernels are in :mod:`numbad.sweeps.kernels`; their attribute layouts in
the tape's integer pool are

* ``gather``/``scatter`` (a strided map): ``ndim, shape[ndim], strides[ndim],
  base, other_size``. ``gather`` walks ``shape`` (its output's shape) and reads
  ``x[base + sum(i*stride)]``; ``scatter`` walks ``shape`` (its input's shape)
  and adds into ``out[base + sum(i*stride)]`` of an output of ``other_size``
  elements. With the same map they are each other's transpose, which is how
  each one's derivative is defined: broadcasting is a gather with zero
  strides and its derivative (a sum) a scatter, a basic slice a gather and
  its derivative a scatter into zeros, a sum over axes a scatter.
* ``take``/``put_add`` (an index map): ``count, other_size, idx[count]``; the
  same pairing for integer-array and boolean-mask indexing.
* ``matmul``: ``Bt, M, K, N, tA, tB, sA, sB``: ``Bt`` products
  ``op(A) @ op(B)`` with optional transposes and batch strides (0 broadcasts
  one matrix over the batch). Its derivatives are matmuls again
  (:func:`numbad.sweeps.kernels.matmul_vjp_plan`).
* ``assemble`` (concatenate/stack): ``nparts, out_size`` then per part its
  node and the offset of a strided map placing it in the output.
* ``copy``: identity on the flat data (reshape, ravel).
* ``view``: a contiguous run of its operand's values (``x[1:]``, a row of a
  matrix), with the layout of ``gather``. Its node shares its operand's
  storage (its offset lies inside the operand's), so it moves no data: the
  sweeps treat it as a no-op, and a reverse sweep first gives every needed
  view's base a zeroed cotangent that the consumers of the base and of its
  views all add into (``prepare_views``). Only fresh recordings make views;
  replayable tapes record ``gather``.
* segment ops (``extreme``, ``scan_sum``, ``cumprod``, ``arg_extreme``, ``argsort``):
  ``O, R, I``: the operand viewed as ``(O, R, I)`` in C order, the op working
  along the middle axis (any one axis, or several adjacent ones, of the
  array); ``take_along``/``put_along`` add ``Q``, the length of the index
  node's middle axis, and read their integer indices from a node (operand
  ``b``), so that a replay recomputes them (``np.sort`` is ``take_along`` of
  ``argsort``).
* ``assign`` (``t[idx] = v``): ``count, out_size, idx[count]`` (the layout of
  ``take``, distinct positions): the base (operand ``a``) with positions
  ``idx`` overwritten by the part (operand ``b``; one element broadcasts).
* linear algebra (``solve``, ``logabsdet``, ``det_sign``, ``cholesky``, ``eigh``,
  ``svd``): batches of matrices, layouts in :mod:`numbad.sweeps.kernels_linalg`.
"""
from .registry import structural

structural("copy", 200, "copy", 1, numpy=("np.reshape", "ndarray.reshape", "np.ravel", "ndarray.flatten",
                                          "np.squeeze", "np.expand_dims", "np.copy"),
           torch=("reshape", "view", "flatten", "squeeze", "unsqueeze", "clone"),
           doc="identity on the flat data")
structural("gather", 201, "gather", 1,
           numpy=("np.transpose", "ndarray.T", "np.broadcast_to", "np.swapaxes", "np.moveaxis",
                  "x[basic index]", "np.diagonal", "np.flip"),
           torch=("transpose", "t", "permute", "expand", "__getitem__", "diagonal", "flip"),
           doc="strided read: transposes, broadcasts, basic slices")
structural("view", 215, "view", 1, numpy=("x[contiguous basic slice]", "np.reshape", "np.ravel"),
           torch=("__getitem__", "reshape", "view"),
           doc="contiguous read or reshape of 256+ elements, sharing the operand's storage "
               "(no copy; not on replayable tapes)")
structural("scatter", 202, "scatter", 1, numpy=("np.sum", "ndarray.sum", "np.mean", "np.trace"),
           torch=("sum", "mean"), doc="strided accumulate: sums over axes")
structural("take", 203, "take", 1, numpy=("x[integer array]", "x[boolean mask]", "np.take"),
           torch=("__getitem__", "index_select", "take"), doc="indexed read")
structural("put_add", 204, "put_add", 1, numpy=("np.add.at",), torch=("index_add",),
           doc="indexed accumulate (the derivative of take)")
structural("matmul", 205, "matmul", 2, numpy=("np.matmul", "@", "np.dot", "ndarray.dot"),
           torch=("matmul", "mm", "bmm", "mv", "dot", "__matmul__"),
           doc="batched matrix product through BLAS")
structural("assemble", 206, "assemble", -1, numpy=("np.concatenate", "np.stack", "np.hstack", "np.vstack"),
           torch=("cat", "stack"), doc="places parts into one output")

_TIES = ("the derivative is split evenly among the elements equal to the result "
         "(PyTorch's amax/amin); a NaN result passes it to the NaNs")
structural("amax", 207, "extreme", 1, param=1,
           numpy=("np.amax", "np.max", "ndarray.max", "np.maximum.reduce"), torch=("amax", "max"),
           doc="largest element along axes", kink=_TIES)
structural("amin", 208, "extreme", 1, param=-1,
           numpy=("np.amin", "np.min", "ndarray.min", "np.minimum.reduce"), torch=("amin", "min"),
           doc="smallest element along axes", kink=_TIES)
structural("cumsum", 209, "scan_sum", 1, param=0, numpy=("np.cumsum", "ndarray.cumsum", "np.add.accumulate"),
           torch=("cumsum",), doc="running sum along an axis")
structural("cumsum_reverse", 210, "scan_sum", 1, param=1,
           doc="running sum from the end of an axis: cumsum's transpose, and its derivative")
structural("cumprod", 211, "cumprod", 1,
           numpy=("np.cumprod", "ndarray.cumprod", "np.multiply.accumulate", "np.prod"),
           torch=("cumprod", "prod"), doc="running product along an axis (np.prod is its last element)",
           kink="exact at zeros: O(n) in the fast sweep; with create_graph and a zero input "
                "an O(n^2) rule that stays exact at higher order (PyTorch's)")
structural("take_along", 212, "take_along", 2, nondiff_args=(1,),
           numpy=("np.take_along_axis", "np.sort", "ndarray.sort"), torch=("take_along_dim", "gather", "sort"),
           doc="read along an axis at indices held by a node (recomputed on replay)")
structural("put_along", 213, "put_along", 2, nondiff_args=(1,), torch=("scatter_add",),
           doc="accumulate along an axis at indices held by a node: take_along's transpose")
structural("assign", 214, "assign", 2, numpy=("x[idx] = v", "x += v"), torch=("__setitem__", "add_"),
           doc="a new version of an array with some positions overwritten",
           kink="overwritten positions pass no derivative to the old version")
structural("argmax", 1100, "arg_extreme", 1, param=1, dtype_out="int64",
           numpy=("np.argmax", "ndarray.argmax"), torch=("argmax",),
           doc="index of the first largest element (NaN first)", kink="integer result: no derivative")
structural("argmin", 1101, "arg_extreme", 1, param=-1, dtype_out="int64",
           numpy=("np.argmin", "ndarray.argmin"), torch=("argmin",),
           doc="index of the first smallest element (NaN first)", kink="integer result: no derivative")
structural("argsort", 1102, "argsort", 1, dtype_out="int64", numpy=("np.argsort", "ndarray.argsort"),
           torch=("argsort",), doc="stable sorting permutation (NaN last)", kink="integer result: no derivative")

_SYM = "the input is taken as symmetric: its cotangent is symmetric, as PyTorch's"
structural("solve", 220, "solve", 2, numpy=("np.linalg.solve", "np.linalg.inv"),
           torch=("linalg.solve", "linalg.inv"), doc="X = A^-1 B for batches of matrices (LAPACK gesv)")
structural("logabsdet", 221, "logabsdet", 1, numpy=("np.linalg.slogdet", "np.linalg.det"),
           torch=("linalg.slogdet", "logdet", "det"), doc="log|det A|",
           kink="derivative A^-T; at a singular matrix numpy.linalg.LinAlgError is raised")
structural("cholesky", 222, "cholesky", 1, numpy=("np.linalg.cholesky",), torch=("linalg.cholesky",),
           doc="lower Cholesky factor (numpy reads the lower triangle)", kink=_SYM)
structural("eigh", 223, "eigh", 1, numpy=("np.linalg.eigh", "np.linalg.eigvalsh"),
           torch=("linalg.eigh", "linalg.eigvalsh"), doc="symmetric eigendecomposition, packed [w, V]",
           kink=_SYM + "; eigenvector derivatives need distinct eigenvalues where the cotangent "
                "couples them (an exact tie raises ValueError)")
structural("svd", 224, "svd", 1, numpy=("np.linalg.svd",), torch=("linalg.svd", "linalg.svdvals"),
           doc="reduced SVD, packed [U, S, Vh]",
           kink="singular-vector derivatives need distinct singular values where the cotangent couples "
                "them, and nonzero ones for non-square matrices (else ValueError); S alone always works")
structural("det_sign", 1103, "det_sign", 1, numpy=("np.linalg.slogdet", "np.linalg.det"),
           doc="sign of det A", kink="piecewise constant: no derivative")
