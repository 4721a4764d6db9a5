"""Test functions written once for numbad and PyTorch.

Each entry is ``(name, input shapes, make)``: ``make(m)`` returns the function
spelled with the namespace ``m`` (:data:`NP` for numbad, :data:`TH` for
PyTorch) for what the two spell differently; the rest are methods and
operators that both accept. Together they cover multi-input and multi-output
functions, broadcasting, reductions, matmul, indexing, ``where`` and
``maximum``/``minimum``.
"""
import numpy as np
import torch

_rng = np.random.default_rng(1234)
A = _rng.standard_normal((5, 5)) / 2
W = np.array([[2.0, -1.0], [0.0, 1.0]])
B = np.array([1.0, 0.5])
MASK = np.array([True, False, True, True, False, True])


class NP:
    sin, cos, exp, log, sqrt, tanh, abs = np.sin, np.cos, np.exp, np.log, np.sqrt, np.tanh, np.abs
    where, maximum, minimum, dot = np.where, np.maximum, np.minimum, np.dot
    const = staticmethod(lambda a: a)


class TH:
    sin, cos, exp, log, sqrt, tanh, abs = (torch.sin, torch.cos, torch.exp, torch.log, torch.sqrt,
                                           torch.tanh, torch.abs)
    where, maximum, minimum, dot = torch.where, torch.maximum, torch.minimum, torch.dot
    const = staticmethod(lambda a: torch.tensor(a))


FUNCTIONS = [
    ("exp_reducer", [(4, 4)], lambda m: lambda x: x.exp().sum(1)),
    ("tanh_matvec", [(5,)], lambda m: lambda x: m.tanh(m.const(A) @ x) * x),
    ("cube_sum", [(3,)], lambda m: lambda x: x.pow(3).sum()),
    ("rosenbrock_terms", [(6,)],
     lambda m: lambda x: 100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2),
    ("where_branches", [(6,)], lambda m: lambda x: m.where(x > 0, x * x * x, -2.0 * x)),
    ("max_min", [(5,), (5,)],
     lambda m: lambda x, y: m.maximum(x, y) * m.minimum(x, y) + m.maximum(x, y) ** 2),
    ("outer_broadcast", [(3,), (4,)], lambda m: lambda x, y: x[:, None] * y[None, :] ** 2 + y),
    ("linear_torch_doc", [(4, 2)], lambda m: lambda x: x @ m.const(W).T + m.const(B)),
    ("mean_axis0", [(3, 4)], lambda m: lambda x: (x * x * x).mean(0)),
    ("transpose_reshape", [(2, 3)], lambda m: lambda x: (x.t() * x.t()).reshape(6) + x.reshape(6) ** 2),
    ("integer_index", [(4,)], lambda m: lambda x: x[[0, 2, 2, 3]] * x[1]),
    ("boolean_mask", [(6,)], lambda m: lambda x: m.sin(x[m.const(MASK)]) ** 2),
    ("dot", [(5,), (5,)], lambda m: lambda x, y: m.dot(m.sin(x), y * y)),
    ("two_outputs", [(3,), (3,)], lambda m: lambda x, y: (x * y, x.sum() * y * y)),
    ("zero_d", [()], lambda m: lambda s: s * s * 3.0 + m.sin(s)),
    ("trig_mix", [(4,), (4,)], lambda m: lambda x, y: m.sin(x) * m.cos(y) + x * y),
    ("sigmoid", [(5,)], lambda m: lambda x: x.exp() / (1.0 + x.exp())),
    ("log_sqrt", [(5,)], lambda m: lambda x: m.log(x * x + 1.0) + m.sqrt(x * x + 1.0)),
    ("matmul_2d", [(3, 4), (4, 2)], lambda m: lambda X, Y: m.tanh(X @ Y)),
    ("slices_2d", [(3, 4)], lambda m: lambda x: x[1:, ::2] * x[:-1, 1::2]),
    ("three_in_three_out", [(3,), (3,), (3,)],
     lambda m: lambda x, y, z: (x * y * z, (x + y).sum() ** 2, m.exp(z) * x)),
    ("abs_times", [(5,)], lambda m: lambda x: m.abs(x) * x),
    ("division", [(4,), (4,)], lambda m: lambda x, y: x / (y * y + 1.0)),
    ("batched_matmul", [(2, 3, 4), (2, 4, 2)], lambda m: lambda X, Y: m.sin(X @ Y)),
    ("scalar_times_matrix", [(), (2, 3)], lambda m: lambda s, X: (s * X * X).sum(1)),
]

NAMES = [f[0] for f in FUNCTIONS]
_BY_NAME = {f[0]: f for f in FUNCTIONS}


def case(name, seed=0):
    """``(numbad f, torch f, inputs tuple of float64 arrays)`` of the named function."""
    _, shapes, make = _BY_NAME[name]
    rng = np.random.default_rng(seed)
    inputs = tuple(rng.uniform(0.2, 1.5, s) * rng.choice([-1.0, 1.0], s) for s in shapes)
    return make(NP), make(TH), inputs


def scalarized(f):
    """A scalar function of ``f``'s inputs (for Hessians): the sum of its outputs cubed, plus squares."""
    def s(*args):
        out = f(*args)
        total = 0.0
        for o in (out if isinstance(out, tuple) else (out,)):
            total = total + (o * o * o).sum() + (o * o).sum()
        return total
    return s
