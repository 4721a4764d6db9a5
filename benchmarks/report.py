"""The peer comparison behind the Performance page and the README's headline table.

    python benchmarks/report.py

Every benchmark workload (``benchmarks/workloads.py``) is differentiated by
numbad and by each peer that is installed: PyTorch eager, JAX eager and
jitted, HIPS autograd; numpy evaluating the function once (no derivative) is
the baseline. Each system computes the value and the vector-Jacobian product
``v^T J`` for the same inputs and ``v``; its gradient is checked against
numbad's before it is timed. Two size families follow: the elementwise
function from 1e2 to 1e7 elements and the Lorenz loop from 10 to 3,000 steps.

Each time is the median of repeated calls after one warm-up call (at least 5
calls, and calls until 0.5 s have passed, at most 200; a call slower than 3 s
is timed once). The warm-up call is reported apart as the first call: for
``jax.jit`` it includes tracing and compilation, for ``tape.vjp`` the
recording. In a family, a system whose next size is projected (linearly from
the last one) to take over 10 s per call is skipped there.

Then the start-up cost: fresh processes that import the library and make one
first call, with numbad's Numba cache warm and empty (``benchmarks/first_call.py``'s
call), PyTorch's for orientation.

Writes into ``docs/performance/``: ``report.md`` (tables and machine, versions,
date), ``headline.md`` (the README's table), ``results.json`` (every number),
``workloads.png``, ``elementwise.png``, ``lorenz.png``; and rewrites the README
section between ``<!-- performance:begin -->`` and ``<!-- performance:end -->``.
It takes about 4 minutes on two idle cores (one of them compiling numbad's
interpreters for the empty-cache start-up). Multi-threaded peers (PyTorch,
BLAS, XLA) slow down badly on a loaded machine: run it on an idle one.

Options: ``--quick`` (small sizes, few calls: a smoke test), ``--systems
numpy,numbad,...`` (a subset), ``--out DIR``, ``--no-readme``, ``--no-cold``
and ``--no-startup`` (skip the start-up runs), ``--torch-threads N`` (default 2,
this project's machines' cores).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import numbad as nb  # noqa: E402
import workloads as W  # noqa: E402

#: the systems, in table order: key -> column label
SYSTEMS = {
    "numpy": "numpy forward (no derivative)",
    "numbad": "numbad `nb.vjp`",
    "numbad_tape": "numbad `tape.vjp` (recorded)",
    "torch": "PyTorch eager",
    "jax": "JAX eager",
    "jax_jit": "JAX `jit`",
    "autograd": "HIPS autograd",
}
SHORT = {"numpy": "numpy forward", "numbad": "numbad nb.vjp", "numbad_tape": "numbad tape.vjp",
         "torch": "PyTorch", "jax": "JAX eager", "jax_jit": "JAX jit", "autograd": "autograd"}
#: the import each peer needs (numbad and numpy are always there)
PEER_MODULE = {"torch": "torch", "jax": "jax", "jax_jit": "jax", "autograd": "autograd"}
COLORS = {"numpy": "#9e9e9e", "numbad": "#1f77b4", "numbad_tape": "#17becf", "torch": "#d62728",
          "jax": "#ff7f0e", "jax_jit": "#8c564b", "autograd": "#2ca02c"}

#: the workloads of the main table: key -> (description, family or None, size)
MAIN = {
    "seed": ("`exp(x).sum(axis=1)`, x 4×4 (the PyTorch docs' example)", None, None),
    "chain": ("100 elementwise ops on 16 elements", None, None),
    "lorenz": ("Lorenz system, 1,000 Euler steps on 0-d values (~14k scalar ops)", "lorenz", 1000),
    "elementwise_1e6": ("`sum(sin(x) exp(-x²) + log1p(x²))`, 1e6 elements", "elementwise", 10 ** 6),
    "elementwise_1e7": ("the same, 1e7 elements", "elementwise", 10 ** 7),
    "rosenbrock_1e6": ("Rosenbrock function, 1e6 elements", None, None),
    "mlp": ("3-layer tanh MLP, 512 wide, batch 256 (matmul-bound)", None, None),
    "stencil": ("finite differences by slicing (`x[1:] - x[:-1]`, 7 reads), 32 elements", None, None),
}
HEADLINE = {"seed": "`exp(x).sum(1)`, 4×4", "chain": "100 ops on 16 elements",
            "lorenz": "Lorenz, 1,000 steps of scalar code", "elementwise_1e6": "elementwise, 1e6 elements",
            "mlp": "tanh MLP, 512 wide, batch 256"}
HEADLINE_SYSTEMS = ["numbad", "numbad_tape", "torch", "jax", "jax_jit", "autograd"]
FAMILIES = {
    "elementwise": ("elements", [10 ** k for k in range(2, 8)]),
    "lorenz": ("Euler steps", [10, 30, 100, 300, 1000, 3000]),
}
README_BEGIN, README_END = "<!-- performance:begin -->", "<!-- performance:end -->"


# ----------------------------------------------------------------------------- the cases
class Case:
    """One function at one size, in every system's spelling."""

    def __init__(self, key, title, make, fns, family=None, size=None):
        self.key, self.title, self.make, self.fns = key, title, make, fns
        self.family, self.size = family, size


def workload_case(name):
    make, fnp, ft, fj = W.WORKLOADS[name]
    fns = {"numpy": fnp, "numbad": fnp, "numbad_tape": fnp, "torch": ft, "jax": fj,
           "jax_jit": W.JAX_JIT.get(name, fj), "autograd": W.AUTOGRAD.get(name)}
    desc, family, size = MAIN[name]
    return Case(name, desc, make, fns, family, size)


def family_case(family, size):
    if family == "elementwise":
        fns = {k: W.elementwise_np for k in ("numpy", "numbad", "numbad_tape")}
        fns.update(torch=W.elementwise_torch, jax=W.elementwise_jax, jax_jit=W.elementwise_jax,
                   autograd=W.elementwise_autograd)
        return Case(f"elementwise:{size}", f"elementwise, {size:.0e} elements",
                    W.elementwise_inputs(size), fns, family, size)
    lor = functools.partial(W.lorenz, steps=size)
    fns = {k: lor for k in ("numpy", "numbad", "numbad_tape", "torch", "jax", "autograd")}
    fns["jax_jit"] = functools.partial(W.lorenz_jax_scan, steps=size)
    return Case(f"lorenz:{size}", f"Lorenz, {size} steps", W.lorenz_inputs, fns, family, size)


def case_key(name):
    _, family, size = MAIN[name]
    return f"{family}:{size}" if family else name


# ----------------------------------------------------------------------------- the systems
def _tuple(g):
    return g if isinstance(g, tuple) else (g,)


class Runner:
    """``first()`` sets up and makes the first call, ``call()`` is what is timed (both return the
    system's own result), ``grads(result)`` turns a result into a tuple of numpy gradients (or
    None) for the check against numbad's, outside the timing."""

    def __init__(self, system, case, args, v, torch_threads):
        self.system = system
        f = case.fns[system]
        if f is None:
            raise LookupError("no spelling")
        self.f, self.args, self.v = f, args, v
        self.grads = lambda r: tuple(np.asarray(g) for g in _tuple(r))
        getattr(self, "_setup_" + system)(torch_threads)

    # numpy and numbad ----------------------------------------------------------
    def _setup_numpy(self, _):
        f, args = self.f, self.args
        self.call = self.first = lambda: f(*args)
        self.grads = lambda r: None

    def _setup_numbad(self, _):
        f, args, v = self.f, self.args, self.v
        self.call = self.first = lambda: nb.vjp(f, args, v)[1]

    def _setup_numbad_tape(self, _):
        f, args, v = self.f, self.args, self.v

        def first():
            self.tape = nb.record(f, args)
            return self.tape.vjp(args, v)[1]
        self.first = first
        self.call = lambda: self.tape.vjp(args, v)[1]

    # peers ---------------------------------------------------------------------
    def _setup_torch(self, threads):
        import torch
        import torch.autograd.functional as TF
        torch.set_num_threads(threads)
        f = self.f
        targs = tuple(torch.tensor(a) for a in self.args)
        tv = torch.tensor(np.asarray(self.v, np.float64))
        self.call = self.first = lambda: TF.vjp(f, targs, tv)[1]
        self.grads = lambda r: tuple(g.numpy() for g in r)

    def _setup_jax(self, _):
        import jax
        import jax.numpy as jnp
        f = self.f
        jargs = tuple(jnp.asarray(a) for a in self.args)
        jv = jnp.asarray(np.asarray(self.v, np.float64))

        def call():
            _, pullback = jax.vjp(f, *jargs)
            return jax.block_until_ready(pullback(jv))
        self.call = self.first = call

    def _setup_jax_jit(self, _):
        import jax
        import jax.numpy as jnp
        f = self.f
        jargs = tuple(jnp.asarray(a) for a in self.args)
        jv = jnp.asarray(np.asarray(self.v, np.float64))

        def value_and_vjp(v, *a):
            out, pullback = jax.vjp(f, *a)
            return out, pullback(v)

        def first():
            self.jitted = jax.jit(value_and_vjp)
            return self.call()
        self.first = first
        self.call = lambda: jax.block_until_ready(self.jitted(jv, *jargs))[1]

    def _setup_autograd(self, _):
        import autograd
        f, args, v = self.f, self.args, self.v
        make = autograd.make_vjp(lambda a: f(*a))

        def call():
            pullback, _ = make(args)
            return pullback(v)
        self.call = self.first = call


def measure(runner, min_time, max_reps, slow=3.0, min_reps=5):
    """``(first call s, median s, calls timed, gradient of the first call)``."""
    t0 = time.perf_counter()
    result = runner.first()
    first = time.perf_counter() - t0
    grad = runner.grads(result)
    del result
    times = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        runner.call()
        times.append(time.perf_counter() - t)
        if times[-1] > slow or len(times) >= max_reps:
            break
        if len(times) >= min_reps and time.perf_counter() - start >= min_time:
            break
    return first, statistics.median(times), len(times), grad


def rel_diff(g, ref):
    """Largest difference between two gradients, relative to the reference's largest entry."""
    worst = 0.0
    for a, b in zip(g, ref):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
        if b.size:
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


# ----------------------------------------------------------------------------- running
def available(systems):
    ok, missing = [], {}
    for s in systems:
        mod = PEER_MODULE.get(s)
        if mod:
            try:
                __import__(mod)
            except ImportError as e:
                missing[s] = f"not installed ({e})"
                continue
        ok.append(s)
    return ok, missing


def warm_up(systems, torch_threads):
    """Import and exercise every system once, so the first workload pays no process start-up."""
    if "jax" in systems or "jax_jit" in systems:
        import jax
        jax.config.update("jax_enable_x64", True)
    fns = {"torch": W.elementwise_torch, "jax": W.elementwise_jax, "jax_jit": W.elementwise_jax,
           "autograd": W.elementwise_autograd}
    case = Case("warm-up", "", None, {s: fns.get(s, W.elementwise_np) for s in systems})
    for s in systems:
        r = Runner(s, case, (np.linspace(0.1, 1.0, 8),), 1.0, torch_threads)
        r.first()
        r.call()


def run_cases(cases, systems, opts, log):
    results = {}
    last = {}            # (family, system) -> (size, seconds): to project the next size
    for case in cases:
        args, v = case.make(np.random.default_rng(0))
        row = results.setdefault(case.key, {"title": case.title, "family": case.family,
                                            "size": case.size, "systems": {}})
        ref = None
        for s in systems:
            entry = row["systems"][s] = {}
            if case.fns.get(s) is None:
                entry["skipped"] = "no spelling of this workload"
                continue
            if case.family and (case.family, s) in last:
                size0, t0 = last[(case.family, s)]
                projected = t0 * case.size / size0
                if projected > opts.family_cap:
                    entry["skipped"] = (f"projected {projected:.0f} s per call (over {opts.family_cap:.0f} s) "
                                        f"from {fmt_time(t0)} at {size0}")
                    log(f"  {case.key:<22} {SHORT[s]:<16} skipped: {entry['skipped']}")
                    continue
            try:
                runner = Runner(s, case, args, v, opts.torch_threads)
                first, med, reps, grad = measure(runner, opts.min_time, opts.max_reps)
            except Exception as e:          # a peer that fails on a workload is reported, not fatal
                entry["skipped"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
                log(f"  {case.key:<22} {SHORT[s]:<16} {entry['skipped']}")
                continue
            finally:
                runner = None
                gc.collect()
            entry.update(first_s=first, median_s=med, calls=reps)
            if s == "numbad":
                ref = grad
            elif grad is not None and ref is not None:
                entry["grad_rel_diff"] = rel_diff(grad, ref)
            if case.family:
                last[(case.family, s)] = (case.size, med)
            note = ""
            if entry.get("grad_rel_diff", 0.0) > opts.tolerance:
                note = f"  gradient differs from numbad's by {entry['grad_rel_diff']:.1e}"
            log(f"  {case.key:<22} {SHORT[s]:<16} {fmt_time(med):>10}  (first {fmt_time(first)}, "
                f"{reps} calls){note}")
        del args, v
        gc.collect()
    return results


def startup(systems, cold, log, warm_runs=5):
    """Wall time of a fresh ``python -c`` process that imports and makes one first call.

    numbad with its on-disk Numba cache warm (the repository's, filled by this run) and, with
    ``cold``, with an empty cache (``NUMBA_CACHE_DIR`` pointing at a new directory: every
    interpreter the call needs is compiled). The same call is ``benchmarks/first_call.py``'s.
    """
    import subprocess
    import tempfile
    import first_call
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    def run(code, extra=None):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=dict(env, **(extra or {})), check=True, cwd=ROOT)
        return time.perf_counter() - t
    rows = {}
    rows["numpy"] = [run("import numpy") for _ in range(3)]
    run(first_call.NUMBAD)
    rows["numbad_warm"] = [run(first_call.NUMBAD) for _ in range(warm_runs)]
    log(f"  start-up: numbad, warm cache {min(rows['numbad_warm']):.2f} s")
    if cold:
        with tempfile.TemporaryDirectory() as d:
            rows["numbad_cold"] = [run(first_call.NUMBAD, {"NUMBA_CACHE_DIR": d})]
        log(f"  start-up: numbad, cold cache {rows['numbad_cold'][0]:.1f} s")
    if "torch" in systems:
        rows["torch"] = [run(first_call.TORCH) for _ in range(3)]
        log(f"  start-up: PyTorch {min(rows['torch']):.2f} s")
    return rows


def startup_md(rows):
    labels = {"numpy": "`import numpy` (the floor)",
              "numbad_warm": "numbad: import and first `nb.vjp`, Numba cache warm",
              "numbad_cold": "numbad: the same with an empty Numba cache (compiles the interpreters it uses)",
              "torch": "PyTorch: import and first `torch.autograd.functional.vjp`"}
    return md_table(["fresh process", "best", "runs"],
                    [[label, fmt_time(min(rows[k])), str(len(rows[k]))] for k, label in labels.items() if k in rows])


# ----------------------------------------------------------------------------- writing
def fmt_time(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem,
            "os": f"{platform.system()} {platform.release()}"}


def versions(systems):
    import numba
    import scipy
    v = {"python": platform.python_version(), "numbad": nb.__version__, "numpy": np.__version__,
         "numba": numba.__version__, "scipy": scipy.__version__}
    if "torch" in systems:
        import torch
        v["torch"] = torch.__version__
    if "jax" in systems or "jax_jit" in systems:
        import jax
        import jaxlib
        v["jax"] = jax.__version__
        v["jaxlib"] = jaxlib.__version__
    if "autograd" in systems:
        from importlib.metadata import version
        v["autograd"] = version("autograd")
    return v


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def cell(entry):
    if not entry or "median_s" not in entry:
        return "—"
    return fmt_time(entry["median_s"])


def environment_md(meta):
    m, v = meta["machine"], meta["versions"]
    mem = f", {m['memory_gib']:.0f} GiB" if m.get("memory_gib") else ""
    la0, la1 = meta["load_before"], meta["load_after"]
    load = (f"load average {la0[0]:.2f} before, {la1[0]:.2f} after (1 min)" if la0 and la1 else "")
    vers = ", ".join(f"{k} {val}" for k, val in v.items())
    lines = [f"Measured {meta['date']} by `python benchmarks/report.py{meta['args']}` in "
             f"{meta['wall_s'] / 60:.1f} min.",
             "",
             f"- Machine: {m['cpu']}, {m['cores']} cores{mem}, {m['os']}; {load}.",
             f"- Versions: {vers}.",
             f"- Threads: PyTorch {meta['torch_threads']} (`torch.set_num_threads`); numpy's BLAS, XLA "
             f"and numbad's BLAS calls use their defaults (OPENBLAS_NUM_THREADS="
             f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}). Everything in float64 "
             "(`jax_enable_x64`)."]
    if meta["missing"]:
        lines.append("- Not measured: " + "; ".join(f"{SHORT[s]} ({why})" for s, why in meta["missing"].items())
                     + ".")
    return "\n".join(lines)


def md_table(header, rows, first="---"):
    """A markdown table: the ``header`` cells, then ``rows`` of cells; every column but the
    first is right-aligned (``first`` is the first column's alignment mark)."""
    lines = ["| " + " | ".join(header) + " |", f"| {first} |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def measured(results, names):
    """``(name, row)`` for each workload of ``names`` that was measured."""
    for name in names:
        row = results.get(case_key(name))
        if row is not None:
            yield name, row


def main_table(results, systems):
    return md_table(["workload"] + [SYSTEMS[s] for s in systems],
                    [[f"**{name}**: {MAIN[name][0]}"] + [cell(row["systems"].get(s)) for s in systems]
                     for name, row in measured(results, MAIN)])


def ratio_table(results, systems):
    pairs = [(p, "numbad") for p in ("torch", "jax", "autograd") if p in systems]
    if "jax_jit" in systems and "numbad_tape" in systems:
        pairs.append(("jax_jit", "numbad_tape"))
    pairs = [(p, q) for p, q in pairs if q in systems]
    if not pairs:
        return ""
    def ratio(row, p, q):
        a, b = row["systems"].get(p, {}), row["systems"].get(q, {})
        return f"{a['median_s'] / b['median_s']:.3g}×" if "median_s" in a and "median_s" in b else "—"
    return md_table(["workload"] + [f"{SHORT[p]} ÷ {SHORT[q]}" for p, q in pairs],
                    [[name] + [ratio(row, p, q) for p, q in pairs] for name, row in measured(results, MAIN)])


def first_call_table(results, systems):
    cols = [s for s in ("numbad", "numbad_tape", "torch", "jax_jit") if s in systems]
    labels = {"numbad": "numbad `nb.vjp`", "numbad_tape": "numbad `record` + first `tape.vjp`",
              "torch": "PyTorch eager", "jax_jit": "JAX `jit`: trace, compile, first call"}
    return md_table(["workload"] + [labels[c] for c in cols],
                    [[name] + [fmt_time(row["systems"].get(c, {}).get("first_s")) for c in cols]
                     for name, row in measured(results, MAIN)])


def family_table(results, family, systems):
    unit, _ = FAMILIES[family]
    rows = sorted((r for r in results.values() if r["family"] == family), key=lambda r: r["size"])
    return md_table([unit] + [SHORT[s] for s in systems],
                    [[f"{r['size']:,}"] + [cell(r["systems"].get(s)) for s in systems] for r in rows], first="---:")


def notes_md(results, systems, tolerance):
    notes = []
    for key, row in results.items():
        for s in systems:
            e = row["systems"].get(s, {})
            if "skipped" in e and e["skipped"] != "no spelling of this workload":
                notes.append(f"- {row['title']}, {SHORT[s]}: {e['skipped']}.")
            elif e.get("grad_rel_diff", 0.0) > tolerance:
                why = (" The Lorenz system is chaotic: rounding differences between evaluation orders "
                       "grow exponentially with the number of steps." if row["family"] == "lorenz" else "")
                notes.append(f"- {row['title']}, {SHORT[s]}: its gradient differs from numbad's by "
                             f"{e['grad_rel_diff']:.1e} (relative to the largest entry).{why}")
    return "\n".join(notes)


def write_report(out, results, systems, meta, tolerance, start=None):
    agree = max((e.get("grad_rel_diff", 0.0) for r in results.values() for e in r["systems"].values()
                 if e.get("grad_rel_diff", 0.0) <= tolerance), default=0.0)
    parts = [
        "<!-- generated by benchmarks/report.py: do not edit by hand -->",
        environment_md(meta),
        "",
        "#### Time per call: the value and the vector-Jacobian product",
        "",
        "Median wall time of one call computing `f(x)` and `v^T J` (numpy: `f(x)` only). Every "
        f"peer's gradient was checked against numbad's: they agree to {agree:.1e} of the gradient's "
        "largest entry, except where the notes below say otherwise.",
        "",
        main_table(results, systems),
        "",
        "![Time per workload and system, log scale](workloads.png)",
        "",
        "#### Ratios",
        "",
        "Eager against eager (each peer against `nb.vjp`), compiled against compiled (`jax.jit` "
        "against `tape.vjp`); above 1, numbad is faster.",
        "",
        ratio_table(results, systems),
        "",
        "#### First call",
        "",
        "The warm-up call, after one tiny call of every system in the process (so imports and "
        "numbad's Numba cache load are excluded).",
        "",
        first_call_table(results, systems),
        "",
        *(["#### Start-up", "",
            "A new Python process that imports the library and makes one small first call "
            "(`benchmarks/first_call.py`'s call): what a script pays before its first derivative.",
            "", startup_md(start), ""] if start else []),
        "#### Time against size",
        "",
        "The elementwise function `sum(sin(x) exp(-x²) + log1p(x²))`:",
        "",
        family_table(results, "elementwise", systems),
        "",
        "![Time against size, elementwise](elementwise.png)",
        "",
        "The Lorenz loop (about 14 scalar ops a step; `jax.jit` compiles it as a `lax.scan`, the "
        "others run the Python loop):",
        "",
        family_table(results, "lorenz", systems),
        "",
        "![Time against steps, Lorenz](lorenz.png)",
    ]
    notes = notes_md(results, systems, tolerance)
    if notes:
        parts += ["", "#### Notes", "", notes]
    (out / "report.md").write_text("\n".join(parts) + "\n")


def headline_md(results, systems, meta):
    cols = [s for s in HEADLINE_SYSTEMS if s in systems]
    m = meta["machine"]
    table = md_table(["workload"] + [SHORT[s] for s in cols],
                     [[HEADLINE[name]] + [cell(row["systems"].get(s)) for s in cols]
                      for name, row in measured(results, HEADLINE)])
    return (table + f"\n\nMedian time per call, float64; measured {meta['date'][:10]} on {m['cpu']} "
            f"({m['cores']} cores).\n")


def rewrite_readme(readme, headline):
    text = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {README_BEGIN} ... {README_END} section")
    readme.write_text(pattern.sub(lambda _: f"{README_BEGIN}\n{headline}{README_END}", text))


def readme_section(readme):
    """The text between the README's performance markers (what ``headline.md`` must equal)."""
    text = Path(readme).read_text()
    start = text.index(README_BEGIN) + len(README_BEGIN) + 1
    return text[start:text.index(README_END)]


def plots(out, results, systems):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in MAIN if case_key(n) in results]
    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        xs, ys = [], []
        for j, n in enumerate(names):
            e = results[case_key(n)]["systems"].get(s, {})
            if "median_s" in e:
                xs.append(j + (i - (len(systems) - 1) / 2) * width)
                ys.append(e["median_s"])
        ax.bar(xs, ys, width, label=SHORT[s], color=COLORS[s])
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel("seconds per call (log scale)")
    ax.set_title("Value and vector-Jacobian product: time per call (lower is better)")
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(ncol=len(systems), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08),
              frameon=False)
    fig.tight_layout()
    fig.savefig(out / "workloads.png", dpi=110)
    plt.close(fig)

    for family, fname in (("elementwise", "elementwise.png"), ("lorenz", "lorenz.png")):
        unit, _ = FAMILIES[family]
        rows = sorted((r for r in results.values() if r["family"] == family), key=lambda r: r["size"])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for s in systems:
            pts = [(r["size"], r["systems"][s]["median_s"]) for r in rows
                   if "median_s" in r["systems"].get(s, {})]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=SHORT[s], color=COLORS[s])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(unit)
        ax.set_ylabel("seconds per call")
        ax.set_title(f"{family}: time against size (lower is better)")
        ax.grid(which="major", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)


# ----------------------------------------------------------------------------- main
def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "performance")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README's section")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    p.add_argument("--quick", action="store_true", help="small sizes and few calls: a smoke test")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--no-cold", action="store_true",
                   help="skip the start-up run with an empty Numba cache (it compiles for about a minute)")
    p.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up runs")
    p.add_argument("--tolerance", type=float, default=1e-6,
                   help="relative gradient difference reported as a discrepancy")
    opts = p.parse_args(argv)
    opts.min_time, opts.max_reps, opts.family_cap = (0.02, 3, 1.0) if opts.quick else (0.5, 200, 10.0)
    return opts


def main(argv=None):
    opts = parse(argv)
    t_start = time.perf_counter()
    wanted = [s.strip() for s in opts.systems.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    systems, missing = available([s for s in SYSTEMS if s in wanted])

    def log(msg):
        print(msg, flush=True)
    load_before = loadavg()
    log(f"systems: {', '.join(SHORT[s] for s in systems)}"
        + (f"; missing: {', '.join(SHORT[s] for s in missing)}" if missing else ""))
    warm_up(systems, opts.torch_threads)

    if opts.quick:
        cases = [workload_case("seed"), workload_case("chain")]
        for family, sizes in (("elementwise", [100, 1000]), ("lorenz", [10, 30])):
            cases += [family_case(family, n) for n in sizes]
    else:
        cases = [workload_case(n) for n in MAIN if MAIN[n][1] is None]
        for family, (_, sizes) in FAMILIES.items():
            cases += [family_case(family, n) for n in sizes]
    results = run_cases(cases, systems, opts, log)
    start = None if opts.no_startup else startup(systems, cold=not opts.quick and not opts.no_cold, log=log,
                                                 warm_runs=2 if opts.quick else 5)

    opts.out.mkdir(parents=True, exist_ok=True)
    args = " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(systems), "torch_threads": opts.torch_threads,
            "load_before": load_before, "load_after": loadavg(), "missing": missing,
            "args": (" " + args) if args else "", "wall_s": time.perf_counter() - t_start}
    write_report(opts.out, results, systems, meta, opts.tolerance, start)
    headline = headline_md(results, systems, meta)
    (opts.out / "headline.md").write_text(headline)
    plots(opts.out, results, systems)
    (opts.out / "results.json").write_text(json.dumps({"meta": meta, "results": results, "startup_s": start},
                                                      indent=1) + "\n")
    if not opts.no_readme:
        rewrite_readme(opts.readme, headline)
    log(f"wrote {opts.out} in {(time.perf_counter() - t_start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
