"""Reuse of large arenas between calls.

A tape's value arena and a sweep's adjoint arena are written in full on
every call. Fresh memory from the operating system costs a page fault per
4 KiB on first touch, which for arrays of millions of elements is a large
share of a call. Each thread therefore keeps the last large buffer it
finished with and hands it to the next call that needs one.

A buffer is only kept when nothing else references it (``sys.getrefcount``):
a Tensor value or a returned gradient that is a view of it keeps it out of
the cache, so reuse can never overwrite data a caller still sees.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

#: Buffers smaller than this are not worth keeping (allocation is cheap).
MIN_BYTES = 1 << 20
#: Per thread and dtype, at most this many bytes are kept between calls.
MAX_BYTES = 1 << 30

_local = threading.local()


def _spares():
    try:
        return _local.spares
    except AttributeError:
        _local.spares = {}
        return _local.spares


def take(n, dtype, at_least=False):
    """A 1-d buffer of ``dtype`` with ``n`` elements (``at_least``: possibly more)."""
    dtype = np.dtype(dtype)
    spare = _spares().get(dtype)
    if spare is not None and spare.shape[0] >= n and (at_least or spare.shape[0] == n
                                                       or spare.shape[0] < 2 * n):
        del _spares()[dtype]
        return spare if at_least else spare[:n]
    return np.empty(n, dtype)


def largest(dtype):
    """Capacity of the spare buffer of ``dtype`` (0 if none)."""
    spare = _spares().get(np.dtype(dtype))
    return 0 if spare is None else spare.shape[0]


def give(buf):
    """Offer ``buf`` for reuse; kept only if large and referenced by nobody else.

    The caller must hold exactly one reference to ``buf`` (a local variable)
    and drop it after the call.
    """
    base = buf if buf.base is None else buf.base
    if not isinstance(base, np.ndarray) or not MIN_BYTES <= base.nbytes <= MAX_BYTES:
        return False
    # the caller's variable, our parameter and local, getrefcount's argument (4); for a view,
    # the view's own reference, our local and the argument (3): any more means a live view
    if sys.getrefcount(base) > (4 if base is buf else 3):
        return False
    current = _spares().get(base.dtype)
    if current is None or current.shape[0] <= base.shape[0]:
        _spares()[base.dtype] = base
    return True
