"""numbad: derivatives of ordinary numpy code, at compiled speed.

Operations on :class:`Tensor` are recorded as typed opcode arrays on a flat
tape; Numba-compiled interpreters sweep that tape. The API is
``torch.autograd.functional``'s, on numpy arrays.

>>> import numpy as np, numbad as nb
>>> out, g = nb.vjp(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]))
>>> g
array([2., 4.])
"""
from . import ops as _ops  # noqa: F401  (fills the op registry)
from . import special
from .functional.vjp import vjp
from .tape import Tape
from .tensor.core import Tensor
from .tensor import numpy_api as _numpy_api  # noqa: F401  (attaches Tensor's numpy protocol)
from .tensor.creation import empty, full, ones, zeros
from .tensor.reductions import logsumexp

__version__ = "0.1.0"

__all__ = ["vjp", "Tensor", "Tape", "special", "zeros", "ones", "empty", "full", "logsumexp"]
