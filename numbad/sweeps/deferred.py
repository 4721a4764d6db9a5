"""njit functions whose Numba dispatchers are made when first needed.

Numba makes a dispatcher for every ``@njit`` function when its module is
imported (a signature inspection and a cache set-up). numbad's interpreters,
kernels and scalar functions are 157 of them, about 0.04 s of a warm first
call, yet a warm first ``vjp`` calls one of them from Python: the others only
ever run compiled into it (their machine code is in the cached interpreter).

So :func:`njit` here returns a :class:`Deferred` stand-in. Its dispatcher is
made the first time Python calls it (or reads one of its attributes), and it
then takes the stand-in's place in its module. Before Numba compiles anything
of numbad's (a cache miss: see ``numbad.sweeps._light_loader``), every
stand-in is made and put in place: Numba finds an njit function's callees
through its module's globals and needs dispatchers there.

>>> from numbad.sweeps.deferred import njit
>>> @njit(cache=True)
... def twice(x):
...     return 2 * x
>>> twice(2.0)          # the dispatcher is made here
4.0
"""
from __future__ import annotations

import sys
import threading

_lock = threading.Lock()
_stand_ins = []          # every Deferred made so far
_eager = False           # set once every dispatcher is made: new functions get theirs at once
#: Called with each dispatcher made (numbad.sweeps installs its cache loader): returns
#: whether the dispatcher will make every stand-in before it compiles.
on_made = None


def njit(**options):
    """``numba.njit(**options)`` whose dispatcher is made on first use (see the module)."""
    def wrap(py_func):
        if _eager:
            return _make(py_func, options)
        stand_in = Deferred(py_func, options)
        with _lock:
            _stand_ins.append(stand_in)
        return stand_in
    return wrap


def _make(py_func, options):
    from numba import njit as numba_njit
    dispatcher = numba_njit(**options)(py_func)
    if not (on_made is not None and on_made(dispatcher)) and not _eager:
        make_all()          # (a compile could come without warning: every callee must be there)
    return dispatcher


class Deferred:
    """Stands in for ``numba.njit(**options)(py_func)`` until it is needed."""

    __slots__ = ("py_func", "options", "_dispatcher")

    def __init__(self, py_func, options):
        self.py_func, self.options, self._dispatcher = py_func, options, None

    def dispatcher(self):
        """The Numba dispatcher, made on the first call (then also in the module's globals)."""
        made = self._dispatcher
        if made is None:
            new = _make(self.py_func, self.options)
            with _lock:
                if self._dispatcher is None:        # (two threads may race: one dispatcher wins)
                    self._dispatcher = new
                made = self._dispatcher
            module = sys.modules.get(self.py_func.__module__)
            if module is not None and vars(module).get(self.py_func.__name__) is self:
                setattr(module, self.py_func.__name__, made)
        return made

    def __call__(self, *args):
        return self.dispatcher()(*args)

    def __getattr__(self, name):
        return getattr(self.dispatcher(), name)

    def __repr__(self):
        return f"<deferred njit {self.py_func.__module__}.{self.py_func.__qualname__}>"


def make_all():
    """Make every dispatcher and put it in place of its stand-in in every module that holds
    the stand-in (under its own name or another: ``from .scalar_math import erf``)."""
    global _eager
    with _lock:
        _eager = True
        stand_ins = list(_stand_ins)
    for stand_in in stand_ins:
        stand_in.dispatcher()
    for name in {s.py_func.__module__ for s in stand_ins}:
        module = sys.modules.get(name)
        if module is None:
            continue
        for key, value in list(vars(module).items()):
            if type(value) is Deferred:
                setattr(module, key, value.dispatcher())
