"""Compile numbad's interpreters ahead of time, into Numba's on-disk cache, on several cores.

    python -m numbad.compile_cache            # one process per dtype, or per interpreter (below)
    python -m numbad.compile_cache --jobs 1   # one after the other

numbad compiles its interpreters lazily: the first call that needs the reverse
sweep for float64 values compiles it, the first batched replay in float32
compiles that one, and so on (about 70 ms per opcode branch, minutes in all).
Numba compiles in the calling thread, so a process compiles on one core. This
module runs one small workload per dtype, each in its own process, that
reaches every interpreter (eager reverse and tangent sweeps, their lane
variants, recorded replays, batched replays); the float64 and float32
signatures are disjoint, so the processes share no work and a two-core
machine compiles them in half the time. Later processes load the cache
(``__pycache__`` beside numbad's sources) in well under a second.

With more than two jobs (the default on a machine of more than two cores and
4.5 GiB of memory or more: a process takes up to 1.3 GB, and each job is given 1.5 GiB),
each large interpreter of each dtype (:data:`SPLIT`) first compiles in a
process of its own, ``jobs`` at a time; the two workloads then link them from
the cache. A machine of many cores then waits about as long as the largest
interpreter takes, not the sum of a dtype's.

The README's test command starts with it: the test suite touches every
interpreter in both dtypes, and on a fresh checkout would otherwise compile
them one by one.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time

import numpy as np

DTYPES = ("float64", "float32")

#: The large interpreters of ``numbad.sweeps._generated``, each compiled alone with ``--jobs``
#: above two, with the ``begin`` arguments they are called with: an ``int64`` from Python (False)
#: and the literal 0 that four calls of ``replay_template.py`` pass on purpose (True; see there).
#: Largest first (50-110 s each on one core of a 2-core Xeon), so that the last to start are short.
SPLIT = {"reverse_batch": (True,), "reverse": (False, True), "tangent_batch": (True,), "reverse_lanes": (False,),
         "forward_batch": (False,), "tangent": (False, True), "forward": (False,), "tangent_lanes": (False,),
         "second_order": (False,)}
#: The second round: the other functions Python calls, which link the interpreters above from the
#: cache (about 10 s each). ``tests/test_compile_cache.py`` holds both tables to the signatures
#: that the workloads compile.
ENTRY_POINTS = ("reverse_inputs", "tangent_inputs", "vjp_one", "vjp_lanes", "jvp_one", "jvp_lanes", "forward_one",
                "batch_vjp", "batch_jvp", "batch_vjp_rows", "batch_jvp_rows", "mark_varying")


def _serialize_cache_writes():
    """Make Numba's index update (read, add an entry, write) atomic across our processes.

    Two processes compiling different signatures of one function both rewrite
    that function's index file; without a lock, two saves in the same instant
    could both claim the same data file. The lock file lives beside the index.
    """
    import fcntl
    from numba.core import caching

    save = caching.IndexDataCacheFile.save

    def locked_save(self, key, data):
        with open(os.path.join(self._cache_path, "numbad-compile.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return save(self, key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    caching.IndexDataCacheFile.save = locked_save


def _workload(dtype):
    """Calls that reach every njit interpreter for values of ``dtype``."""
    import numbad as nb

    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4).astype(dt)
    A = (rng.standard_normal((4, 4)) + 4 * np.eye(4)).astype(dt)

    def f(x, A):                       # batchable kinds only: the batched-value interpreters
        return np.sum(np.tanh(A @ x) * x[::-1]) + np.sum(x[np.array([0, 2])] ** 2)

    def g(x, A):                       # a vector output
        return np.tanh(A @ x) * x

    def h(x, A):                       # linear algebra: replays batch sample by sample
        return np.sum(np.linalg.solve(A, x) * np.cumsum(x)) + np.max(x)

    inputs = (x, A)
    nb.vjp(lambda x, A: (g(x, A), x), inputs, (x, x))     # two seeds: the general reverse sweep
    for fn in (f, h):
        nb.vjp(fn, inputs)                                # one seed, a small tape: reverse_inputs
        nb.jvp(fn, inputs, (x, A))                        # one output, a small tape: tangent_inputs
        nb.hvp(lambda x: fn(x, A), x, x)
    for strategy in ("reverse-mode", "forward-mode"):
        nb.jacobian(g, inputs, vectorize=True, strategy=strategy)
    batch = (np.stack([x, 2 * x]), np.stack([A, A]))
    for fn in (f, g, h):
        tape = nb.record(fn, inputs)
        out = tape(inputs)
        v = np.ones_like(np.asarray(out))
        tape.vjp(inputs, v)
        tape.jvp(inputs, (x, A))
        tape.jacobian(inputs)                               # fewer outputs than inputs: reverse lanes
        tape.batch_vjp(batch, np.stack([v, v]))
        tape.batch_jvp(batch, batch)
    nb.record(lambda x: np.tanh(np.outer(x, x)), x).jacobian(x)   # more outputs: tangent lanes


def signature(name, dtype, literal_begin=False):
    """The argument types of ``numbad.sweeps._generated.<name>`` for values of ``dtype``, as the
    workloads call it (its parameters' names give their types)."""
    import inspect

    from numba import types

    from numbad.sweeps import _generated

    def array(kind, ndim=1):
        return types.Array(kind, ndim, "C")

    value = array(getattr(types, dtype))
    by_name = dict.fromkeys(("vals", "adj", "tan", "src", "v", "grad", "template", "g_expected", "x", "t",
                             "out_flat", "grad_flat", "tan_flat"), value)
    by_name.update(dict.fromkeys(("X", "V", "T", "OUT", "GRAD", "TAN"), array(getattr(types, dtype), 2)))
    by_name.update(dict.fromkeys(("adj_set", "src_set", "varying", "flags"), array(types.boolean)))
    by_name.update(dict.fromkeys(("node_off", "node_size", "ip", "ws", "fill", "in_nodes", "out_nodes", "g_op",
                                  "g_node", "g_kind", "g_off", "status"), array(types.int64)))
    by_name.update(dict.fromkeys(("begin", "end", "L", "k", "y", "lo", "hi"), types.int64))
    by_name["ops"] = array(types.int64, 2)
    if literal_begin:
        by_name["begin"] = types.literal(0)
    return tuple(by_name[p] for p in inspect.signature(getattr(_generated, name).py_func).parameters)


def _compile_one(name, dtype, literal_begin):
    """Compile (or load) one interpreter's signature in this process."""
    from numbad.sweeps import _generated, deferred
    deferred.make_all()
    getattr(_generated, name).compile(signature(name, dtype, literal_begin))


def _run(args, what, quiet):
    done = subprocess.run([sys.executable, "-m", "numbad.compile_cache", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"compiling numbad's {what} failed:\n{done.stderr}")
    if not quiet:
        print(done.stdout, end="", flush=True)


#: The most memory one compiling process takes (1.3 GB measured for the largest interpreter):
#: the default number of jobs leaves each this much of the machine's memory.
JOB_MEMORY = 3 << 29


def default_jobs():
    """The cores, at most one per :data:`JOB_MEMORY` of the machine's memory (at least one)."""
    jobs = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return jobs
    return max(1, min(jobs, memory // JOB_MEMORY))


def compile_all(jobs=None, quiet=False):
    """Compile every interpreter for both dtypes, ``jobs`` processes at a time; returns seconds."""
    jobs = jobs or default_jobs()
    if os.name != "posix":              # the cache-write lock is fcntl's
        jobs = 1
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        if jobs > len(DTYPES):
            rounds = ([(n, d, str(lit)) for n, lits in SPLIT.items() for lit in lits for d in DTYPES],
                      [(n, d, "False") for n in ENTRY_POINTS for d in DTYPES])
            for parts in rounds:
                list(pool.map(lambda part: _run(["--interpreter", *part], " ".join(part[:2]), quiet), parts))
        list(pool.map(lambda dtype: _run(["--only", dtype], f"{dtype} interpreters", quiet), DTYPES))
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m numbad.compile_cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=None,
                   help="processes at a time (default: the cores, one per 1.5 GiB of memory; above two, "
                        "one process per interpreter)")
    p.add_argument("--only", choices=DTYPES, help=argparse.SUPPRESS)
    p.add_argument("--interpreter", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.interpreter:
        name, dtype, literal_begin = args.interpreter
        if os.name == "posix":
            _serialize_cache_writes()
        t0 = time.perf_counter()
        _compile_one(name, dtype, literal_begin == "True")
        print(f"numbad: {dtype} {name}{' (from 0)' if literal_begin == 'True' else ''} compiled or loaded "
              f"in {time.perf_counter() - t0:.1f} s")
        return 0
    if args.only:
        if os.name == "posix":
            _serialize_cache_writes()
        t0 = time.perf_counter()
        _workload(args.only)
        print(f"numbad: {args.only} interpreters compiled or loaded in {time.perf_counter() - t0:.1f} s")
        return 0
    seconds = compile_all(args.jobs)
    print(f"numbad: interpreters ready in Numba's cache ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
