"""The op table in docs/ is what the registry and the numpy-function table say; what it lists as
unsupported raises numbad's clear TypeError."""
import numpy as np
import pytest

import numbad as nb
from numbad.ops import table


def test_op_table_is_up_to_date():
    assert table.TARGET.read_text() == table.generate(), (
        "docs/ops.md is stale: run `python -m numbad.ops.table` and commit it")


def _numpy(spelling):
    obj = np
    for part in spelling[3:].split("."):
        obj = getattr(obj, part)
    return obj


#: arguments (made from a 2x2 Tensor x) for the functions that do not take one array
ARGS = {
    "np.searchsorted": lambda x: (x[0], x[1]), "np.convolve": lambda x: (x[0], x[1]),
    "np.correlate": lambda x: (x[0], x[1]), "np.cross": lambda x: (x, x), "np.polyval": lambda x: (x[0], x),
    "np.isclose": lambda x: (x, x), "np.allclose": lambda x: (x, x), "np.linalg.lstsq": lambda x: (x, x),
    "np.linalg.multi_dot": lambda x: ([x, x, x],), "np.interp": lambda x: (x[0], [0.0, 1.0], x[1]),
    "np.percentile": lambda x: (x, 50), "np.quantile": lambda x: (x, 0.5), "np.partition": lambda x: (x, 1),
    "np.argpartition": lambda x: (x, 1), "np.linalg.matrix_power": lambda x: (x, 2),
}


@pytest.mark.parametrize("spelling", [s for names, _ in table.UNSUPPORTED for s in names])
def test_unsupported_functions_raise_a_clear_type_error(spelling):
    fn = _numpy(spelling)
    default = (lambda x: (x, x)) if isinstance(fn, np.ufunc) and fn.nin == 2 else (lambda x: (x,))
    args = ARGS.get(spelling, default)
    name = spelling.replace("np.", "numpy.")
    with pytest.raises(TypeError, match=f"numbad does not differentiate {name}"):
        nb.vjp(lambda x: fn(*args(x.reshape(2, 2))), np.ones(4) + np.arange(4.0), np.ones(4))


@pytest.mark.parametrize("module", ["numbad", "numbad.tensor.core", "numbad.tensor.creation",
                                    "numbad.tensor.reductions", "numbad.special", "numbad.functional.vjp"])
def test_docstring_examples_run(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
