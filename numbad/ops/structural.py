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
