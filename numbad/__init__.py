"""numbad: derivatives of ordinary numpy code, at compiled speed.

Operations on :class:`Tensor` are recorded as typed opcode arrays on a flat
tape; Numba-compiled interpreters sweep that tape. The API is
``torch.autograd.functional``'s, on numpy arrays, plus ``grad``,
``value_and_grad`` and ``hessp`` for ``scipy.optimize``.

>>> import numpy as np, numbad as nb
>>> out, g = nb.vjp(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]))
>>> g
array([2., 4.])
"""
from . import ops as _ops  # noqa: F401  (fills the op registry)
from . import special
from .functional.hessian import hessian, hvp, vhp
from .functional.jacobian import jacobian
from .functional.jvp import jvp
from .functional.optimize import grad, hessp, value_and_grad
from .functional.vjp import vjp
from .recorded import BranchChanged, Tape, record
from .tensor.core import Tensor
from .tensor import numpy_api as _numpy_api  # noqa: F401  (attaches Tensor's numpy protocol)
from .tensor.creation import empty, full, ones, zeros
from .tensor.reductions import logsumexp

__version__ = "0.1.0"

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp", "grad", "value_and_grad", "hessp",
           "record", "Tape", "BranchChanged", "Tensor", "special",
           "zeros", "ones", "empty", "full", "logsumexp"]
