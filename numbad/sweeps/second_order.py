"""Second partial derivatives of the elementwise ops, derived from the registry's rule expressions.

An elementwise op ``y = f(a, b, ...)`` stores its first partials as
expressions (``"1.0 - y * y"`` for ``tanh``). Forward-over-reverse Hessian
products need, for every pair of operands, the second partial
``H[a][j] = d(f_a)/d(j)``: :func:`hessian_rules` derives them from those very
expressions, by differentiating their syntax trees, so that one definition per
rule still serves every sweep. ``y`` depends on the operands too:
``d/dj`` of an expression is its explicit derivative plus ``d/dy * f_j``.

Piecewise-constant pieces (comparisons, ``sign``, ``floor``, the branches
taken by ``where``) have derivative zero, as PyTorch's double backward gives.
The code generator pastes the results into ``second_order`` (see
:mod:`numbad.sweeps.codegen`), where ``None`` (a zero) emits no code.

>>> from numbad.ops import OPS
>>> hessian_rules(OPS["tanh"])
[['-(y + y) * (1.0 - y * y)']]
"""
from __future__ import annotations

import ast

#: The derivative of a rule function of one argument ``u``, as an expression in ``u`` (times du).
CALLS = {
    "exp": "exp(u)",
    "exp2": "exp2(u) * ln2",
    "sqrt": "0.5 / sqrt(u)",
    "log": "1.0 / u",
    "sin": "cos(u)",
    "cos": "-sin(u)",
    "sinh": "cosh(u)",
    "cosh": "sinh(u)",
    "expit": "expit(u) * (1.0 - expit(u))",
}
#: Functions that are piecewise constant: derivative zero (where defined).
FLAT = {"sign", "floor", "ceil", "trunc", "rint", "isnan", "isinf", "isfinite", "signbit"}


def _const(c):
    return ast.Constant(value=float(c))


def _is(node, c):
    return isinstance(node, ast.Constant) and node.value == c


def _add(p, q):
    if p is None:
        return q
    if q is None:
        return p
    return ast.BinOp(p, ast.Add(), q)


def _sub(p, q):
    if q is None:
        return p
    if p is None:
        return _neg(q)
    return ast.BinOp(p, ast.Sub(), q)


def _neg(p):
    if p is None:
        return None
    if isinstance(p, ast.UnaryOp) and isinstance(p.op, ast.USub):
        return p.operand
    return ast.UnaryOp(ast.USub(), p)


def _mul(p, q):
    if p is None or q is None or _is(p, 0.0) or _is(q, 0.0):
        return None
    if _is(p, 1.0):
        return q
    if _is(q, 1.0):
        return p
    return ast.BinOp(p, ast.Mult(), q)


def _div(p, q):
    if p is None:
        return None
    return ast.BinOp(p, ast.Div(), q)


def _parse(expr):
    return ast.parse(expr, mode="eval").body


def _substitute(template, u):
    """``template`` (an expression in ``u``) with the tree ``u`` put in."""
    class Put(ast.NodeTransformer):
        def visit_Name(self, node):
            return u if node.id == "u" else node
    return Put().visit(_parse(template))


def derivative(node, var):
    """The explicit derivative of expression tree ``node`` with respect to name ``var``
    (``None`` for zero). Names other than ``var`` are held constant."""
    if isinstance(node, ast.Constant):
        return None
    if isinstance(node, ast.Name):
        if node.id == var:
            return _const(1.0)
        return None
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub):
            return _neg(derivative(node.operand, var))
        if isinstance(node.op, ast.UAdd):
            return derivative(node.operand, var)
        raise ValueError(f"cannot differentiate {ast.unparse(node)!r}")
    if isinstance(node, ast.BinOp):
        u, w = node.left, node.right
        du, dw = derivative(u, var), derivative(w, var)
        if isinstance(node.op, ast.Add):
            return _add(du, dw)
        if isinstance(node.op, ast.Sub):
            return _sub(du, dw)
        if isinstance(node.op, ast.Mult):
            return _add(_mul(du, w), _mul(u, dw))
        if isinstance(node.op, ast.Div):
            # (u / w)' = u' / w - u w' / (w w)
            return _sub(_div(du, w), _div(_mul(u, dw), ast.BinOp(w, ast.Mult(), w)))
        if isinstance(node.op, ast.Pow):
            # w u^(w-1) u' + u^w log(u) w' (the latter 0 where u == 0 and w >= 0, as PyTorch)
            base = _mul(_mul(w, ast.BinOp(u, ast.Pow(), ast.BinOp(w, ast.Sub(), _const(1.0)))), du)
            if dw is None:
                return base
            log_term = _parse("where((u == 0.0) & (w >= 0.0), 0.0, u ** w * log(u))")

            class Put(ast.NodeTransformer):
                def visit_Name(self, n):
                    return {"u": u, "w": w}.get(n.id, n)
            return _add(base, _mul(Put().visit(log_term), dw))
        raise ValueError(f"cannot differentiate {ast.unparse(node)!r}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, args = node.func.id, node.args
        if name == "where":
            dp, dq = derivative(args[1], var), derivative(args[2], var)
            if dp is None and dq is None:
                return None
            return ast.Call(ast.Name("where"), [args[0], dp or _const(0.0), dq or _const(0.0)], [])
        if name in FLAT:
            return None
        if name == "polygamma":
            # the order (first argument) is an integer: no derivative through it
            order = ast.BinOp(args[0], ast.Add(), _const(1.0))
            return _mul(ast.Call(ast.Name("polygamma"), [order, args[1]], []), derivative(args[1], var))
        if name in CALLS and len(args) == 1:
            return _mul(_substitute(CALLS[name], args[0]), derivative(args[0], var))
    raise ValueError(f"cannot differentiate {ast.unparse(node)!r}: add its rule to second_order.CALLS")


def total_derivative(expr, var, op):
    """``d(expr)/d(var)`` for an expression in the operands of ``op`` and its result ``y``."""
    tree = _parse(expr)
    d = derivative(tree, var)
    dy = derivative(tree, "y")
    if dy is not None:
        first = op.partials[op.operand_names().index(var)]
        if first is not None:
            d = _add(d, _mul(dy, _parse(first)))
    if d is not None and _is(d, 0.0):
        return None
    return d


def hessian_rules(op):
    """``H[i][j]``: the second partial of ``op`` over operands i and j, as an expression
    (``None`` where it is zero or either operand is not differentiable)."""
    names = op.operand_names()
    rules = []
    for fi in op.partials:
        row = []
        for nm, fj in zip(names, op.partials):
            d = None if fi is None or fj is None else total_derivative(fi, nm, op)
            row.append(None if d is None else ast.unparse(d))
        rules.append(row)
    return rules
