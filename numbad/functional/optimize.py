"""Derivative callables for ``scipy.optimize``: ``nb.grad``, ``nb.value_and_grad``, ``nb.hessp``.

Each takes a scalar function ``f(x, *args)`` and returns a plain function on
numpy arrays with the signature scipy calls: ``jac(x, *args)``,
``fun(x, *args) -> (value, gradient)`` for ``minimize(..., jac=True)`` and
``hessp(x, p, *args)``. Only ``x`` is differentiated; ``args`` pass through
as constants.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import sweeps
from ..tape import current_tape
from ..tensor.core import _SCALAR_FLOATS, Tensor
from ._common import (as_input_tuple, as_output_tuple, finish, output_node, plain, start_call, value_shape,
                      value_size)
from .hessian import Gradient, hvp
from .vjp import vjp


def _point(x, fn):
    if type(x) is not np.ndarray:           # (an array: as_input_tuple checks its dtype)
        if isinstance(x, tuple):
            raise TypeError(f"The x given to the function made by {fn} must be an array or a Python "
                            "float, not a tuple: it differentiates its first argument only.")
        if isinstance(x, (list, dict, str, bytes)) or x is None:
            raise TypeError(f"The x given to the function made by {fn} must be a float32 or float64 "
                            f"array or a Python float, not a {type(x).__name__}.")
    return as_input_tuple(x, fn)[1]


def _scalar(y, fn):
    if type(y) is Tensor and type(y._v) in _SCALAR_FLOATS:      # (the common case: a 0-d Tensor)
        return y
    is_tuple, outs = as_output_tuple(y, fn)
    if is_tuple or value_size(outs[0]) != 1:
        what = f"a tuple of {len(outs)}" if is_tuple else f"an array of shape {value_shape(outs[0])}"
        raise RuntimeError(f"The function given to {fn} must return a single element (a scalar), but it "
                           f"returned {what}.")
    return outs[0]


def _inside_record():
    """Called inside ``nb.record``? Then the derivatives must be recorded (replays recompute
    them): they come from :func:`numbad.vjp`/:func:`numbad.hvp`, which record them, as
    Tensors through which no derivative flows, and a returned value is read as a float (a
    guard on the tape)."""
    tape = current_tape()
    return tape is not None and tape.replayable


def _value_and_grad(func, x, args, fn):
    xs = _point(x, fn)
    if _inside_record():
        y, g = vjp(lambda t: _scalar(func(t, *args), fn), xs[0])
        return (float(np.reshape(y, ())) if fn == "value_and_grad" else None), g
    call = start_call(xs, False, defer=True)
    tape = call.tape
    y = _scalar(call.run(lambda t: func(t, *args)), fn)
    node = output_node(call, y)
    g = None
    if node is not None:
        if sweeps.fits_reverse_inputs(tape, call.input_nodes):
            g, reached = sweeps.reverse_inputs(tape, tape.n_ops, 1, node, sweeps.seed_one(tape.dtype))
            g = g if reached else None
        else:
            g = sweeps.reverse(tape, call.begin, tape.n_ops, call.input_nodes, [(node, 1.0)])[0]
    x = xs[0]
    if g is None:
        g = np.zeros(value_shape(x), x.dtype)
    else:
        g = g.reshape(value_shape(x)).astype(x.dtype, copy=False)
    yv = plain(y)
    value = float(yv) if type(yv) in _SCALAR_FLOATS else float(np.reshape(yv, ()))   # (np.reshape: 1 us)
    del y
    finish(call)
    return value, g


def value_and_grad(func):
    """``f(x, *args) -> (value, gradient)``: the value as a Python float, the gradient as an array.

    Made for ``scipy.optimize.minimize(f_and_g, x0, jac=True)``: one
    recording and one compiled reverse sweep per call.

    >>> import numpy as np, numbad as nb
    >>> f = nb.value_and_grad(lambda x: (x ** 2).sum())
    >>> f(np.array([1.0, 2.0]))
    (5.0, array([2., 4.]))
    """
    @functools.wraps(func)
    def value_and_gradient(x, *args):
        return _value_and_grad(func, x, args, "value_and_grad")
    return value_and_gradient


def grad(func):
    """``f(x, *args) -> gradient``: the gradient of a scalar function, as an array shaped like ``x``.

    Use as ``scipy.optimize.minimize(f, x0, jac=nb.grad(f))``.

    >>> import numpy as np, numbad as nb
    >>> nb.grad(lambda x, c: (c * x ** 2).sum())(np.array([1.0, 2.0]), 3.0)
    array([ 6., 12.])
    """
    @functools.wraps(func)
    def gradient(x, *args):
        return _value_and_grad(func, x, args, "grad")[1]
    return gradient


def hessp(func):
    """``f(x, p, *args) -> H(x) p``: Hessian-vector products, for ``minimize(..., hessp=nb.hessp(f))``.

    Forward over reverse: one recording of ``f``, then compiled sweeps (see
    :func:`numbad.hvp`).

    >>> import numpy as np, numbad as nb
    >>> nb.hessp(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    array([ 6., 12.])
    """
    @functools.wraps(func)
    def hessian_times(x, p, *args):
        xs = _point(x, "hessp")
        x = xs[0]
        if value_shape(p) != value_shape(x):
            raise ValueError(f"The p given to the function made by hessp must have x's shape "
                             f"{value_shape(x)}, but it has shape {value_shape(p)}.")
        if _inside_record():
            return hvp(lambda t: _scalar(func(t, *args), "hessp"), x, p)[1]
        p = plain(p)
        grad_ = Gradient("hessp", lambda t: func(t, *args), xs, False, False, fused=True)
        hp = grad_.hvp((p,))[0]
        finish(grad_.call)
        if hp is None:
            return np.zeros(value_shape(x), x.dtype)
        return hp.reshape(value_shape(x)).astype(x.dtype, copy=False)
    return hessian_times
