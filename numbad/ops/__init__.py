"""The op registry (see :mod:`numbad.ops.registry`), populated by its tables."""
from . import elementwise, structural  # noqa: F401  (the tables register themselves)
from .registry import BY_CODE, BY_UFUNC, FIRST_NONDIFF_CODE, OPS, Op, compiled_partials

__all__ = ["OPS", "BY_CODE", "BY_UFUNC", "FIRST_NONDIFF_CODE", "Op", "compiled_partials"]
