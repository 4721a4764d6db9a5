"""CUDA execution of tapes: numba.cuda kernels for the sweeps (see ``docs/cuda.md``).

Nothing here imports ``numba.cuda`` until a ``"cuda"`` device is asked for, so
that importing numbad never needs CUDA. :func:`require` answers with
numba's CUDA module, or raises :class:`CudaUnavailable` saying why not (no
CUDA target in numba, no driver, no device).

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the same kernels run
as Python on the CPU: slow, but every kernel is tested on every machine.
"""
from __future__ import annotations

#: The valid values of every ``device=`` argument.
DEVICES = ("cpu", "cuda")


class CudaUnavailable(RuntimeError):
    """``device="cuda"`` was asked for where CUDA cannot run; the message says why."""


def check_device(device, what="device"):
    """``device`` itself if valid (``"cpu"`` or ``"cuda"``), else a ValueError listing the valid ones."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"{what}={device!r} is not a device numbad knows: the valid devices are "
                         + ", ".join(repr(d) for d in DEVICES))
    return device


_cuda = None


def require():
    """numba's ``cuda`` module, ready to launch kernels; :class:`CudaUnavailable` otherwise."""
    global _cuda
    if _cuda is not None:
        return _cuda
    try:
        from numba import cuda
    except ImportError as e:          # a numba without its built-in target and no numba-cuda
        raise CudaUnavailable(
            "device='cuda' needs numba's CUDA target, which this Python does not have "
            f"({e}); install it with `pip install numba-cuda[cu12]` (or [cu13] for CUDA 13 drivers)"
        ) from None
    if not cuda.is_available():
        raise CudaUnavailable("device='cuda' cannot run here: " + _why_not(cuda))
    if not simulated():
        try:
            _load_target()
        except Exception as e:        # (seen on a GPU: numba-cuda's lowering needs np.row_stack,
            raise CudaUnavailable(    # which numpy 2.5 removed)
                "device='cuda' cannot run here: numba's CUDA target failed to load "
                f"({type(e).__name__}: {e}) with numpy {_version('numpy')} and numba-cuda "
                f"{_version('numba-cuda')}; a numba-cuda release that supports this numpy, or an "
                "older numpy, fixes it") from e
    _cuda = cuda
    return cuda


def _load_target():
    """Load numba's CUDA lowering registries, as the first kernel compile would: a numba-cuda
    that cannot load them here then fails in :func:`require`, with a message, and not inside
    numbad's first kernel launch with Numba's traceback."""
    try:
        from numba.cuda.descriptor import cuda_target
    except ImportError:               # (a numba-cuda laid out otherwise: its first compile loads them)
        return
    refresh = getattr(getattr(cuda_target, "target_context", None), "refresh", None)
    if refresh is not None:
        refresh()


def _version(package):
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed: numba's own)" if package == "numba-cuda" else "(unknown)"


def _why_not(cuda):
    """Why ``cuda.is_available()`` is False, in words: no driver, driver error, or no device."""
    from numba.core import config
    if getattr(config, "DISABLE_CUDA", 0):
        return "CUDA is disabled by NUMBA_DISABLE_CUDA=1"
    try:
        from numba.cuda.cudadrv.driver import driver
        count = driver.get_device_count()
    except Exception as e:            # CudaSupportError: the driver library is missing or broken
        text = " ".join(str(e).split())
        if "cannot be found" in text or "not found" in text:
            return ("no CUDA driver was found (no NVIDIA driver library on this machine; "
                    "NUMBA_CUDA_DRIVER can point at one)")
        return f"the CUDA driver could not be initialised ({text})"
    if count == 0:
        return "the CUDA driver found no GPU on this machine"
    return "numba cannot use the GPU(s) found (unsupported compute capability or toolkit); see `numba -s`"


def simulated():
    """True when numba runs CUDA kernels in its simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)
