"""Reuse of large arenas between calls.

A tape's value arena and a sweep's adjoint arena are written in full on
every call. Fresh memory from the operating system costs a page fault per
4 KiB on first touch, which for arrays of millions of elements is a large
share of a call. Each thread therefore keeps the last large buffer it
finished with (a few: a call needs the tape's arena and a sweep's adjoint
arena at once) and hands them to the next call that needs one.

A buffer is only kept when nothing else references it (``sys.getrefcount``):
a Tensor value or a returned gradient that is a view of it keeps it out of
the cache, so reuse can never overwrite data a caller still sees.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np

#: Buffers smaller than this are not worth keeping (allocation is cheap).
MIN_BYTES = 1 << 20
MIN_FLOATS = MIN_BYTES // 8
#: Per thread and dtype, at most this many bytes are kept between calls...
MAX_BYTES = 1 << 32
#: ...in at most this many buffers.
MAX_SPARES = 4

_local = threading.local()


def _spares(dtype):
    """This thread's spare buffers of ``dtype``, smallest first."""
    try:
        pool = _local.spares
    except AttributeError:
        pool = _local.spares = {}
    spares = pool.get(dtype)
    if spares is None:
        spares = pool[dtype] = []
    return spares


def take(n, dtype, at_least=False):
    """A 1-d buffer of ``dtype`` with ``n`` elements (``at_least``: possibly more)."""
    if n < MIN_FLOATS:                 # (any float dtype: small is never kept)
        return np.empty(n, dtype)
    spares = _spares(np.dtype(dtype))
    if at_least:            # a tape's arena, which may grow: the largest spare
        if spares and spares[-1].shape[0] >= n:
            return spares.pop()
        return np.empty(n, dtype)
    for i, spare in enumerate(spares):
        if n <= spare.shape[0] < 2 * n:
            del spares[i]
            return spare[:n]
    return np.empty(n, dtype)


def take_small(dtype):
    """The calling thread's spare small arena of ``dtype`` (``None`` if there is none): the
    first arena of a tape, so that a call like the last one records without growing it."""
    try:
        return _local.small.pop(dtype, None)
    except AttributeError:
        return None


#: At most this many scratch buffers per thread (see :func:`scratch`).
MAX_SCRATCH = 8


def scratch(n, dtype):
    """A writable 1-d array of ``n`` elements of ``dtype`` in memory that the last ones used.

    It is a view of one of this thread's scratch buffers that nothing references any more
    (``sys.getrefcount``: a value computed into one keeps it taken while any view of it
    lives), so a call that computes large temporaries one after another writes them into
    the few buffers its live values need, which stay in the processor's cache, as numpy's
    own temporaries would not (a fresh large ``np.empty`` is cold, and faults its pages in).

    >>> import numpy as np, numbad
    >>> numbad.buffers.scratch(1 << 20, np.float64).shape
    (1048576,)
    """
    try:
        pool = _local.scratch
    except AttributeError:
        pool = _local.scratch = []
    best = -1
    for i in range(len(pool)):
        # the list's reference and getrefcount's argument: nothing else holds it
        size = pool[i].shape[0]
        if (n <= size < 2 * n and pool[i].dtype == dtype and sys.getrefcount(pool[i]) == 2
                and (best < 0 or size < pool[best].shape[0])):
            best = i
    if best >= 0:
        return pool[best][:n]
    buf = np.empty(n, dtype)
    if len(pool) >= MAX_SCRATCH:
        # make room by dropping a free buffer (the oldest), else keep this one out of the pool
        for i in range(len(pool)):
            if sys.getrefcount(pool[i]) == 2:
                del pool[i]
                break
        else:
            return buf
    pool.append(buf)
    return buf[:n]


def clear():
    """Drop this thread's spare buffers (their memory goes back to the system).

    >>> import numbad
    >>> numbad.buffers.clear()
    """
    for pool in ("spares", "small", "scratch"):
        try:
            getattr(_local, pool).clear()
        except AttributeError:
            pass


def give(buf):
    """Offer ``buf`` for reuse; kept only if large and referenced by nobody else.

    The caller must hold exactly one reference to ``buf`` (a local variable)
    and drop it after the call.
    """
    if buf.shape[0] < MIN_FLOATS:
        # one small arena per thread and dtype, the last one given (a whole array only)
        if buf.base is not None or sys.getrefcount(buf) > 3:
            return False
        try:
            small = _local.small
        except AttributeError:
            small = _local.small = {}
        small[buf.dtype] = buf
        return True
    base = buf if buf.base is None else buf.base
    if not isinstance(base, np.ndarray) or not MIN_BYTES <= base.nbytes <= MAX_BYTES:
        return False
    # the caller's variable, our parameter and local, getrefcount's argument (4); for a view,
    # the view's own reference, our local and the argument (3): any more means a live view
    if sys.getrefcount(base) > (4 if base is buf else 3):
        return False
    spares = _spares(base.dtype)
    spares.append(base)
    spares.sort(key=len)
    # keep the largest ones: a small request can use a large spare, not the other way round
    while len(spares) > MAX_SPARES or sum(s.nbytes for s in spares) > MAX_BYTES:
        del spares[0]
    return True


#: Copies of at least this many values run in two halves on two threads: numpy's copy
#: releases the GIL, and one core does not saturate memory. Measured on a 2-core Xeon
#: (``tape.add_node`` of an input, a gradient copied out of a sweep's arena): 2^20 float64
#: values in 0.38 ms against 0.56 on one thread, 2^23 in 2.6 against 5.2 ms; 2^18: no gain.
SPLIT_COPY = 1 << 19


def copy_into(dst, src):
    """``dst[:] = src`` for 1-d arrays of one length (numpy's casting of an assignment).

    Large ones run in two halves: the second on the worker thread, unless it has not
    started when the first is done (the worker busy with another call, or this *is* the
    worker), or numpy's BLAS threads are spinning after a matrix product
    (``numbad.tensor.core.BLAS_SPIN_S``).
    """
    n = src.shape[0]
    if n >= SPLIT_COPY:
        from . import sweeps
        from .tensor import core
        if sweeps.THREADS > 1 and time.perf_counter() >= core._blas_spins_until:
            half = n // 2
            job = sweeps._worker().submit(np.copyto, dst[half:], src[half:], casting="unsafe")
            try:
                dst[:half] = src[:half]
            finally:
                if job.cancel():
                    dst[half:] = src[half:]
                else:
                    job.result()
            return dst
    dst[...] = src
    return dst


def copy(src):
    """A new array holding the 1-d ``src``'s values (:func:`copy_into`)."""
    if src.shape[0] < SPLIT_COPY:
        return src.copy()
    return copy_into(np.empty(src.shape[0], src.dtype), src)
