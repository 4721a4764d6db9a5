"""Forward mode against reverse mode on every elementwise op of the registry, batched and not.

For each op and broadcasting pattern of the elementwise op tests, the whole
Jacobian four ways must agree: batched reverse sweeps (rows in lanes),
batched tangent sweeps (columns in lanes), one reverse sweep per row
(``vjp``) and one tangent sweep per column (``jvp``). Structural ops get the
same check through the functions of ``functions.py``.
"""
import numpy as np
import pytest

import numbad as nb

from functions import NAMES, case as function_case
from test_ops_elementwise import PARAMS, case


def four_ways(f, args):
    args = tuple(np.asarray(a, np.float64) for a in args)
    out = nb.jvp(f, args, tuple(np.zeros_like(a) for a in args))[0]
    outs = out if isinstance(out, tuple) else (out,)
    m = [o.size for o in outs]
    n = [a.size for a in args]
    by_rows = np.zeros((sum(m), sum(n)))
    r = 0
    for i, o in enumerate(outs):
        for k in range(o.size):
            u = [np.zeros(p.shape) for p in outs]
            u[i].flat[k] = 1.0
            g = nb.vjp(f, args, tuple(u) if isinstance(out, tuple) else u[0])[1]
            by_rows[r] = np.concatenate([np.ravel(x) for x in g])
            r += 1
    by_columns = np.zeros((sum(m), sum(n)))
    c = 0
    for j, a in enumerate(args):
        for k in range(a.size):
            v = [np.zeros(p.shape) for p in args]
            v[j].flat[k] = 1.0
            jv = nb.jvp(f, args, tuple(v))[1]
            by_columns[:, c] = np.concatenate([np.ravel(x) for x in (jv if isinstance(out, tuple) else (jv,))])
            c += 1

    def whole(J):
        J = J if isinstance(out, tuple) else (J,)
        return np.block([[np.reshape(b, (mi, -1)) for b in row] for row, mi in zip(J, m)])
    rows_in_lanes = whole(nb.jacobian(f, args, strategy="reverse-mode"))
    columns_in_lanes = whole(nb.jacobian(f, args, strategy="forward-mode"))
    return by_rows, by_columns, rows_in_lanes, columns_in_lanes


def assert_all_equal(Js, rtol=1e-13):
    ref = Js[0]
    for k, J in enumerate(Js[1:], 1):
        np.testing.assert_allclose(J, ref, rtol=rtol, atol=1e-14, equal_nan=True, err_msg=f"way {k}")


@pytest.mark.parametrize("op, shapes", PARAMS)
def test_elementwise_op_forward_equals_reverse(op, shapes):
    f, _, args = case(op, shapes, np.random.default_rng(op.code))
    assert_all_equal(four_ways(f, args))


@pytest.mark.parametrize("name", NAMES)
def test_functions_forward_equals_reverse(name):
    f, _, args = function_case(name)
    assert_all_equal(four_ways(f, args), rtol=1e-12)
