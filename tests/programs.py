"""Random numpy programs, run by numpy (on numbad Tensors) and by PyTorch alike.

:func:`generate` draws a program: a list of steps, each making a new value from
earlier ones (the inputs first) by an elementwise op, a broadcast with a
constant, a select, a reduction, a product, a reshape or transpose, an index,
a write into a copy, a join or one of a few composite functions, with the
shapes checked (and the values kept finite) by running it on plain arrays as
it is drawn. :func:`function` turns a program into ``func(*inputs)`` for
either library, so that numbad's derivatives can be held to PyTorch's on the
same program. Several spellings of one op (``np.sum`` and ``x.sum(dim=)``,
``@``, ``np.matmul`` and ``np.dot``) are drawn on numbad's side.
"""
import numpy as np
import torch

# (as helpers.py: the reference computes in float64, Python numbers made tensors included)
torch.set_default_dtype(torch.float64)

#: name -> (numpy spelling, PyTorch spelling); domains are kept safe by construction
UNARY = {
    "exp": (np.exp, torch.exp),
    "exp method": (lambda x: x.exp() if hasattr(x, "exp") else np.exp(x), lambda x: x.exp()),
    "sin": (np.sin, torch.sin),
    "cos": (np.cos, torch.cos),
    "tanh": (np.tanh, torch.tanh),
    "expm1": (np.expm1, torch.expm1),
    "log1p of a square": (lambda x: np.log1p(x * x), lambda x: torch.log1p(x * x)),
    "log": (lambda x: np.log(x * x + 0.5), lambda x: torch.log(x * x + 0.5)),
    "sqrt": (lambda x: np.sqrt(x * x + 1.0), lambda x: torch.sqrt(x * x + 1.0)),
    "square": (np.square, torch.square),
    "negative": (lambda x: -x, lambda x: -x),
    "abs": (np.abs, torch.abs),
    "reciprocal": (lambda x: 1.0 / (x * x + 1.0), lambda x: 1.0 / (x * x + 1.0)),
    "cube": (lambda x: x ** 3, lambda x: x ** 3),
    "fractional power": (lambda x: np.abs(x) ** 1.5, lambda x: torch.abs(x) ** 1.5),
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), lambda x: 1.0 / (1.0 + torch.exp(-x))),
}
BINARY = {
    "+": (lambda a, b: a + b, lambda a, b: a + b),
    "-": (lambda a, b: a - b, lambda a, b: a - b),
    "*": (lambda a, b: a * b, lambda a, b: a * b),
    "/": (lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    "np.add": (np.add, torch.add),
    "np.multiply": (np.multiply, torch.mul),
    "maximum": (np.maximum, torch.maximum),
    "minimum": (np.minimum, torch.minimum),
    "arctan2": (np.arctan2, torch.atan2),
    "hypot": (lambda a, b: np.hypot(a, b + 3.0), lambda a, b: torch.hypot(a, b + 3.0)),
    "**": (lambda a, b: (np.abs(a) + 0.5) ** b, lambda a, b: (torch.abs(a) + 0.5) ** b),
    "np.power": (lambda a, b: np.power(a * a + 0.5, b), lambda a, b: torch.pow(a * a + 0.5, b)),
}
WITH_CONSTANT = ("+", "-", "*", "/", "maximum", "minimum")
COMPOSITE = ("prod", "var", "std", "norm", "logsumexp", "cumprod", "einsum", "outer", "trace",
             "diagonal", "concatenate axis 1", "two index arrays", "take_along_axis", "sort",
             "clip", "cumsum", "softplus")
MATRIX_ONLY = {"trace", "diagonal", "concatenate axis 1", "two index arrays", "take_along_axis", "sort"}
WRITES = ("+=", "*=", "write through a view", "masked write", "-= on a row")


def _broadcast(s1, s2):
    try:
        return np.broadcast_shapes(s1, s2)
    except ValueError:
        return None


def _draw(rng, pool):
    """One step over the values in ``pool`` (their shapes), or ``None`` if the draw does not fit."""
    i = int(rng.integers(len(pool)))
    j = int(rng.integers(len(pool)))
    s, sj = np.shape(pool[i]), np.shape(pool[j])
    kind = rng.choice(["unary", "unary", "binary", "binary", "constant", "constant array", "where",
                       "reduce", "product", "reshape", "transpose", "index", "set row", "join",
                       "composite", "composite", "write", "write"])
    if kind == "unary":
        return ("unary", rng.choice(list(UNARY)), i)
    if kind == "binary":
        return ("binary", rng.choice(list(BINARY)), i, j, bool(rng.integers(2))) \
            if _broadcast(s, sj) is not None else None
    if kind == "constant":
        return ("constant", rng.choice(WITH_CONSTANT), i, float(rng.uniform(-1, 1)), bool(rng.integers(2)))
    if kind == "constant array":
        shape = [s[-1:], s, ()][int(rng.integers(3))]
        return ("constant", rng.choice(WITH_CONSTANT), i, rng.uniform(-1, 1, shape), bool(rng.integers(2)))
    if kind == "where":
        k = int(rng.integers(len(pool)))
        both = _broadcast(s, sj)
        return ("where", k, i, j) if both is not None and _broadcast(both, np.shape(pool[k])) else None
    if kind == "reduce":
        if not s:
            return None
        axis = [None, 0, -1, tuple(range(len(s)))][int(rng.integers(4))]
        return ("reduce", rng.choice(["np.sum", "np.mean", "x.sum", "x.mean", "np.max", "np.min"]), i,
                axis, bool(rng.integers(2)))
    if kind == "product":
        inner = sj[0] if len(sj) == 1 else (sj[-2] if len(sj) >= 2 else None)
        if not s or not sj or s[-1] != inner:
            return None
        return ("product", rng.choice(["@", "np.matmul", "np.dot"]), i, j)
    if kind == "reshape":
        return ("reshape", rng.choice(["flat", "reversed"]), i) if s else None
    if kind == "transpose":
        return ("transpose", rng.choice([".T", ".t()", "np.transpose"]), i) if len(s) >= 2 else None
    if kind == "index":
        if not s or s[0] < 2:
            return None
        how = rng.choice(["1:", ":-1", "::2", "1", "-1", "integer array", "mask"])
        key = None
        if how == "integer array":
            key = rng.integers(0, s[0], size=int(rng.integers(1, 5)))
        elif how == "mask":
            key = rng.random(s[0]) > 0.4
            if not key.any():
                return None
        return ("index", how, i, key)
    if kind == "set row":
        row = (1,) + s[1:]
        if not s or s[0] < 2 or _broadcast(sj, row) != row:
            return None
        return ("set row", i, j, int(rng.integers(0, s[0])))
    if kind == "join":
        if not s or len(s) != len(sj) or s[1:] != sj[1:]:
            return None
        return ("join", "stack" if s == sj and rng.integers(2) else "concatenate", i, j)
    if kind == "composite":
        what = rng.choice(COMPOSITE)
        key = None
        if (what in MATRIX_ONLY and len(s) != 2) or (what == "outer" and len(s) != 1) or \
                (what in ("prod", "var", "std", "cumprod", "logsumexp", "cumsum") and not s):
            return None
        if what == "two index arrays":
            key = (rng.integers(0, s[0], 3), rng.integers(0, s[1], 3))
        elif what == "take_along_axis":
            key = rng.integers(0, s[1], (s[0], 2))
        return ("composite", what, i, key)
    how = rng.choice(WRITES)
    if how in ("+=", "*=") and _broadcast(s, sj) != s:
        return None
    if how != "+=" and how != "*=" and (not s or s[0] < 2):
        return None
    if how == "-= on a row" and _broadcast(s[1:], sj) != s[1:]:
        return None
    return ("write", how, i, j)


def generate(rng, large=False):
    """``(inputs, program, outputs, weights)``: float64 inputs, the steps, which values are
    returned and the constant weights they are multiplied by."""
    a, b = (int(rng.choice([30, 40, 64])), int(rng.choice([32, 50]))) if large else \
        (int(rng.integers(2, 5)), int(rng.integers(2, 5)))
    shapes = [(a, b)] + [[(b,), (a, 1), (), (a, b)][k] for k in rng.choice(4, size=int(rng.integers(0, 3)),
                                                                           replace=False)]
    inputs = [rng.uniform(-1.5, 1.5, shape) for shape in shapes]
    pool, program = list(inputs), []
    steps = int(rng.integers(3, 14))
    for _ in range(200):
        if len(program) == steps:
            break
        step = _draw(rng, pool)
        if step is None:
            continue
        try:
            with np.errstate(all="raise"):
                value = run_step(step, pool, torch_side=False)
        except (FloatingPointError, ValueError, IndexError):
            continue
        if np.all(np.isfinite(value)) and np.max(np.abs(value), initial=0.0) < 1e6:
            program.append(step)
            pool.append(value)
    made = np.arange(len(inputs), len(pool)) if len(pool) > len(inputs) else np.arange(len(pool))
    outputs = [int(k) for k in rng.choice(made, size=int(rng.integers(1, 3)))]
    weights = [rng.uniform(-1, 1, np.shape(pool[k])) for k in outputs]
    return tuple(inputs), program, outputs, weights


def function(program, outputs, weights, torch_side, as_tuple):
    """The program as ``func(*inputs)``: the weighted outputs as a tuple, or their sum."""
    def func(*inputs):
        pool = list(inputs)
        for step in program:
            pool.append(run_step(step, pool, torch_side))
        results = [pool[k] * (torch.tensor(w) if torch_side else w) for k, w in zip(outputs, weights)]
        if as_tuple:
            return tuple(results)
        total = 0.0
        for r in results:
            total = total + (r.sum() if torch_side else np.sum(r))
        return total
    return func


def run_step(step, pool, torch_side):
    """The value ``step`` makes from ``pool``, in numpy (on arrays or Tensors) or PyTorch."""
    t = torch_side
    kind = step[0]
    if kind == "unary":
        return UNARY[step[1]][t](pool[step[2]])
    if kind == "binary":
        f = BINARY[step[1]][t]
        a, b = pool[step[2]], pool[step[3]]
        return f(a, b) if step[4] else f(b, a)
    if kind == "constant":
        _, name, i, c, first = step
        x = pool[i]
        if t and isinstance(c, np.ndarray):
            c = torch.tensor(c)
        if name in ("maximum", "minimum") and t:
            return BINARY[name][t](x, c if isinstance(c, torch.Tensor) else torch.tensor(c))
        if name == "/":
            return x / (c * c + 1.0) if first else c / (x * x + 1.0)
        f = BINARY[name][t]
        return f(x, c) if first else f(c, x)
    if kind == "where":
        return (torch.where if t else np.where)(pool[step[1]] > 0.1, pool[step[2]], pool[step[3]])
    if kind == "reduce":
        _, name, i, axis, keep = step
        x = pool[i]
        if t:
            if name in ("np.max", "np.min"):
                f = torch.amax if name == "np.max" else torch.amin
                return f(x, dim=tuple(range(x.ndim)) if axis is None else axis, keepdim=keep)
            f = torch.sum if "sum" in name else torch.mean
            if axis is None:
                r = f(x)
                return r.reshape((1,) * x.ndim) if keep else r
            return f(x, dim=axis, keepdim=keep)
        if name == "x.sum":
            return x.sum(dim=axis, keepdim=keep) if hasattr(x, "_tape") else np.sum(x, axis=axis, keepdims=keep)
        if name == "x.mean":
            return x.mean(axis=axis, keepdims=keep)
        f = {"np.sum": np.sum, "np.mean": np.mean, "np.max": np.max, "np.min": np.min}[name]
        return f(x, axis=axis, keepdims=keep)
    if kind == "product":
        a, b = pool[step[2]], pool[step[3]]
        if t:
            if step[1] == "np.dot" and (a.ndim > 2 or b.ndim > 2):     # (np.dot of N-d arrays)
                return torch.tensordot(a, b, dims=([-1], [-2 if b.ndim > 1 else -1]))
            return a @ b
        return {"@": lambda: a @ b, "np.matmul": lambda: np.matmul(a, b), "np.dot": lambda: np.dot(a, b)}[step[1]]()
    if kind == "reshape":
        x = pool[step[2]]
        return x.reshape(-1) if step[1] == "flat" else x.reshape(tuple(reversed(x.shape)))
    if kind == "transpose":
        x = pool[step[2]]
        if t:
            return x.permute(*reversed(range(x.ndim)))
        if step[1] == ".t()" and hasattr(x, "_tape") and x.ndim == 2:
            return x.t()
        return np.transpose(x) if step[1] == "np.transpose" else x.T
    if kind == "index":
        _, how, i, key = step
        x = pool[i]
        basic = {"1:": slice(1, None), ":-1": slice(None, -1), "::2": slice(None, None, 2), "1": 1, "-1": -1}
        if how in basic:
            return x[basic[how]]
        return x[torch.tensor(key)] if t else x[key]
    if kind == "set row":
        x, y = pool[step[1]], pool[step[2]]
        z = x * 1.0
        z[step[3]] = y.reshape(x.shape[1:]) if np.ndim(y) == x.ndim else y
        return z
    if kind == "join":
        a, b = pool[step[2]], pool[step[3]]
        if step[1] == "stack":
            return torch.stack([a, b]) if t else np.stack([a, b])
        return torch.cat([a, b]) if t else np.concatenate([a, b])
    if kind == "composite":
        return _composite(step[1], pool[step[2]], step[3], t)
    if kind == "write":
        _, how, i, j = step
        x, y = pool[i], pool[j]
        z = x * 1.0
        if how == "+=":
            z += y
        elif how == "*=":
            z *= y
        elif how == "write through a view":
            w = z[1:]
            w *= 2.0
            w += 0.5
        elif how == "masked write":
            z[x > 0] = 0.25
        else:
            # numpy's z[0] of a 1-d z is a number, not a view: the write stays there
            w = z[0].clone() if t and z.ndim == 1 else z[0]
            w -= y
        return z
    raise ValueError(f"unknown step {step!r}")


def _composite(what, x, key, t):
    if what == "prod":
        return torch.prod(1 + 0.2 * x, dim=0) if t else np.prod(1 + 0.2 * x, axis=0)
    if what == "var":
        return torch.var(x, dim=-1, correction=0) if t else np.var(x, axis=-1)
    if what == "std":
        return torch.std(x * x + 1.0, correction=0) if t else np.std(x * x + 1.0)
    if what == "norm":
        return torch.linalg.norm(x + 3.0) if t else np.linalg.norm(x + 3.0)
    if what == "logsumexp":
        if t:
            return torch.logsumexp(x, dim=-1)
        m = np.max(x, axis=-1, keepdims=True)
        return np.log(np.sum(np.exp(x - m), axis=-1)) + m[..., 0]
    if what == "cumprod":
        return torch.cumprod(1 + 0.3 * x, dim=-1) if t else np.cumprod(1 + 0.3 * x, axis=-1)
    if what == "cumsum":
        return torch.cumsum(x, dim=0) if t else np.cumsum(x, axis=0)
    if what == "einsum":
        sub = "abc"[:x.ndim]
        return (torch.einsum if t else np.einsum)(f"{sub},{sub}->", x, x)
    if what == "outer":
        return torch.outer(x, x) if t else np.outer(x, x)
    if what == "trace":
        return torch.trace(x) if t else np.trace(x)
    if what == "diagonal":
        return torch.diagonal(x) if t else np.diagonal(x)
    if what == "concatenate axis 1":
        return torch.cat([x, 2 * x], dim=1) if t else np.concatenate([x, 2 * x], axis=1)
    if what == "two index arrays":
        return x[torch.tensor(key[0]), torch.tensor(key[1])] if t else x[key[0], key[1]]
    if what == "take_along_axis":
        return torch.take_along_dim(x, torch.tensor(key), dim=1) if t else np.take_along_axis(x, key, axis=1)
    if what == "sort":
        return torch.sort(x, dim=-1).values if t else np.sort(x, axis=-1)
    if what == "clip":
        return torch.clamp(x, -0.7, 0.9) if t else np.clip(x, -0.7, 0.9)
    return torch.log1p(torch.exp(x)) if t else np.log1p(np.exp(x))          # softplus
