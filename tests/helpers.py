"""Shared test helpers: finite differences, PyTorch references and error comparison."""
import re

import numpy as np
import pytest
import torch

import numbad as nb

torch.set_default_dtype(torch.float64)


def central_vjp(f, args, v, h=1e-6):
    """v^T J of ``f`` at ``args`` (a tuple of float64 arrays) by central differences."""
    grads = []
    for k, a in enumerate(args):
        a = np.asarray(a, np.float64)
        g = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            step = h * max(1.0, abs(a[idx]))
            plus = [np.array(x, np.float64, copy=True) for x in args]
            minus = [np.array(x, np.float64, copy=True) for x in args]
            plus[k][idx] += step
            minus[k][idx] -= step
            fp = np.asarray(f(*plus), np.float64)
            fm = np.asarray(f(*minus), np.float64)
            g[idx] = np.sum(np.asarray(v) * (fp - fm)) / (2 * step)
        grads.append(g)
    return grads


def torch_vjp(f, args, v, create_graph=False):
    targs = tuple(torch.tensor(np.asarray(a, np.float64)) for a in args)
    tv = torch.tensor(np.asarray(v, np.float64))
    out, g = torch.autograd.functional.vjp(f, targs, tv, create_graph=create_graph)
    return out.detach().numpy(), [x.detach().numpy(force=True) for x in g]


def torch_second(f, args, v, u):
    """u^T d/dargs (v^T J(args)) with PyTorch: the vjp of a vjp."""
    targs = tuple(torch.tensor(np.asarray(a, np.float64)) for a in args)
    tv = torch.tensor(np.asarray(v, np.float64))
    tu = tuple(torch.tensor(np.asarray(x, np.float64)) for x in u)

    def first(*a):
        return torch.autograd.functional.vjp(f, a, tv, create_graph=True)[1]
    _, g = torch.autograd.functional.vjp(first, targs, tu)
    return [x.detach().numpy(force=True) for x in g]


def nb_second(f, args, v, u):
    """u^T d/dargs (v^T J(args)) with numbad: vjp of vjp(create_graph=True)."""
    def first(*a):
        return nb.vjp(f, a, v, create_graph=True)[1]
    return list(nb.vjp(first, tuple(args), tuple(u))[1])


def assert_close(actual, expected, rtol=1e-10, atol=1e-12, what=""):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def torch_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


def same_error(nb_call, torch_call):
    """numbad raises PyTorch's exception type and message ('Tensor' may read 'array')."""
    ttype, tmsg = torch_error(torch_call)
    with pytest.raises(ttype) as info:
        nb_call()
    norm = lambda s: re.sub(r"torch\.Size\(\[(.*?)\]\)", lambda m: f"({m.group(1)}{',' if ',' not in m.group(1) and m.group(1) else ''})", s)  # noqa: E731
    assert str(info.value) == norm(tmsg), (str(info.value), tmsg)


def record_results(monkeypatch, owner, name):
    """A list that grows by what each call of ``owner.name`` returns."""
    results = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        results.append(original(*args, **kwargs))
        return results[-1]
    monkeypatch.setattr(owner, name, recording)
    return results


def record_tiled_reverses(monkeypatch):
    """A list that grows by what each call of the tiled reverse sweep returns
    (``sweeps._reverse_in_tiles``: ``True`` where it swept the tape in tiles)."""
    from numbad import sweeps
    return record_results(monkeypatch, sweeps, "_reverse_in_tiles")


def record_tiled_tangents(monkeypatch):
    """As :func:`record_tiled_reverses`, for the tiled tangent sweep (``sweeps._tangent_in_tiles``)."""
    from numbad import sweeps
    return record_results(monkeypatch, sweeps, "_tangent_in_tiles")


def count_worker_requests(monkeypatch):
    """A list that grows by one each time numbad asks for its worker thread
    (``sweeps._worker``: a tiled sweep's second half, a split elementwise op)."""
    from numbad import sweeps
    requests = []
    worker = sweeps._worker

    def counting():
        requests.append(1)
        return worker()
    monkeypatch.setattr(sweeps, "_worker", counting)
    return requests


def record_calls(monkeypatch, owner, name):
    """A list that grows by the arguments of each call of ``owner.name``, which still runs."""
    calls = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, name, recording)
    return calls


def one_call_and_general(monkeypatch, run, one_call):
    """``run()`` on a one-call sweep (``sweeps.<one_call>``, checked to be taken), then on the
    general path (``fits_reverse_inputs`` refusing every tape, and the one-call sweep not taken)."""
    from numbad import sweeps
    with monkeypatch.context() as m:
        calls = record_calls(m, sweeps, one_call)
        fast = run()
    assert calls, f"the one-call sweep {one_call} was not taken"
    with monkeypatch.context() as m:
        m.setattr(sweeps, "fits_reverse_inputs", lambda *_: False)
        calls = record_calls(m, sweeps, one_call)
        general = run()
    assert not calls
    return fast, general


def same_bits(a, b):
    """``a`` and ``b`` (arrays, or tuples of them) have the same types, dtypes, shapes and bytes."""
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert type(x) is type(y) and x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


#: (2, 3) cotangents or tangents of every kind numpy accepts for a float (2, 3) value, and their
#: ids: the one-call sweeps must read them as the general path does
ODD_ARRAYS = [
    np.arange(6.0).reshape(2, 3)[:, ::-1],                # not contiguous
    np.broadcast_to(np.arange(3.0), (2, 3)),              # read-only
    np.arange(6).reshape(2, 3),                           # integers
    np.arange(6.0, dtype=np.float32).reshape(2, 3),       # another float dtype
]
ODD_ARRAY_IDS = ["strided", "read-only", "int", "float32"]
