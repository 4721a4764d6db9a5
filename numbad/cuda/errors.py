"""Errors found on the device, reported from the host after the kernel.

A kernel cannot raise. Where the CPU kernels raise (an index held by a node
out of range, a singular matrix, a tie that leaves a derivative undefined), the
CUDA code returns one of the codes below instead; the ensembles keep it per
sample, single replays keep the first one (earliest op row, then lowest batch
entry) in a one-element array through ``cuda.atomic.min`` of :func:`key`. The
host then raises the exception the CPU would have raised, with the CPU's
message (``tests/cuda/test_cuda_kinds.py`` checks that the messages are the
ones in the njit kernels).
"""
from __future__ import annotations

import numpy as np

ERR_INDEX = 1
ERR_SINGULAR = 2
ERR_NOT_PD = 3
ERR_TIE = 4
ERR_ZERO_S = 5
ERR_EIG_CONV = 6
ERR_SVD_CONV = 7

#: code -> (exception type, message): the njit kernels' own (numbad.sweeps.kernels, kernels_linalg).
MESSAGES = {
    ERR_INDEX: (IndexError, "numbad: an index computed on replay is out of range for take_along_axis"),
    ERR_SINGULAR: (np.linalg.LinAlgError, "Singular matrix"),
    ERR_NOT_PD: (np.linalg.LinAlgError, "Matrix is not positive definite"),
    ERR_TIE: (ValueError, "numbad: the derivative of eigenvectors (singular vectors) is undefined where "
                          "eigenvalues (singular values) are equal"),
    ERR_ZERO_S: (ValueError, "numbad: the derivative of singular vectors is undefined at a zero singular "
                             "value of a non-square matrix"),
    ERR_EIG_CONV: (np.linalg.LinAlgError, "Eigenvalues did not converge"),
    ERR_SVD_CONV: (np.linalg.LinAlgError, "SVD did not converge"),
}

#: The value of a single replay's error slot when nothing failed.
NO_ERROR = np.iinfo(np.int64).max
ROW_SHIFT = 40            # key = (row << 40) + (batch entry << 4) + code


def key(row, entry, code):
    """The ordering key of an error: earlier op rows first, then lower batch entries (host and device)."""
    return (row << ROW_SHIFT) + (entry << 4) + code


def decode(k):
    """``(row, code)`` of an error key."""
    return k >> ROW_SHIFT, k & 15


def device_error(code, where=""):
    """The exception the CPU raises for ``code`` (``where``: which sample, for ensembles)."""
    exc, msg = MESSAGES[int(code)]
    return exc(msg + (f" ({where})" if where else ""))
