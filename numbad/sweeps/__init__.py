"""The sweeps over a tape: thin drivers around the generated njit interpreters.

``_generated.py`` (made by ``codegen.py`` from the op registry) holds the
interpreters: ``forward`` (replay values), ``reverse``/``reverse_lanes``
(cotangents, one or ``L`` lanes per element), ``tangent``/``tangent_lanes``
(forward mode) and ``mark_varying`` (which nodes depend on the requested
inputs). The drivers here allocate the adjoint/tangent arena once per sweep
and read results back out; no Python runs per operation.
"""
from __future__ import annotations

import importlib.util
import os
import py_compile
import sys
import threading
from contextlib import contextmanager

import numpy as np

from .. import buffers
from . import deferred

#: Per-thread scratch of the kernels, int64: [0, 64) walk counters (up to 64 dims), [64, 320)
#: the pairwise-summation stack (``kernels._sum_run``), the last 10 BLAS arguments
#: (``kernels.gemm``).
WORKSPACE = 330

_G = None
_local = threading.local()
#: Signatures compiled in this process because Numba's cache had none (``python -m numbad``
#: reports it): counted by the cache loader of the interpreters (:func:`_load_caches_lightly`)
compiled = 0


def interpreters():
    """The generated module (imported on first use: importing it loads Numba)."""
    global _G
    if _G is None:
        from . import _generated     # (its njit functions are deferred: see deferred.py)
        _keep_bytecode()
        _G = _generated
    return _G


def _keep_bytecode(sources=None):
    """Write numbad's byte code where Python would, even under PYTHONDONTWRITEBYTECODE.

    An editable install ships no ``.pyc`` files, and with that variable set
    Python compiles every numbad module from source in every process (the
    generated module's 17,000 lines alone take 0.1 s, a fifth of a fresh
    process's first call). ``sources``: the ``.py`` files; by default those of
    the numbad modules imported so far (a later process that imports more
    writes theirs: globbing the whole package would cost 0.01 s). Unwritable
    folders are left alone.
    """
    if not sys.dont_write_bytecode:
        return
    if sources is None:
        sources = [m.__file__ for name, m in list(sys.modules.items())
                   if (name == "numbad" or name.startswith("numbad.")) and getattr(m, "__file__", None)]
    for source in sources:
        cached = importlib.util.cache_from_source(source)
        try:
            if os.path.getmtime(cached) >= os.path.getmtime(source):
                continue
        except OSError:
            pass
        py_compile.compile(source, cfile=cached, doraise=False, quiet=2)


def _load_caches_lightly(module):
    """Let ``module``'s njit functions load from Numba's cache without a full context refresh.

    Before each cache load Numba refreshes its whole CPU context: it imports
    and installs every typing and lowering registry (about 0.07 s, a sixth of
    a fresh process's first call), which only compiling needs; running
    cached machine code needs the NRT alone. So a load here initialises the
    NRT and reads the cache as Numba's ``load_overload`` would otherwise do;
    a cache miss compiles as usual (Numba's compiler refreshes the context
    itself). The library it loads is a :func:`_lean_library` one.

    Two more first-call costs wait for a cache miss: Numba's extension entry
    points (scanning every installed package's metadata, 0.01 s), which only
    compiling can need, are initialised by the loader when the load misses;
    and the interpreters' array arguments are typed without Numba's generic
    ``typeof``, whose check for masked arrays imports ``numpy.ma`` (0.02 s).
    Numba versions without these internals keep the normal path.
    """
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:
        return
    for obj in vars(module).values():
        if isinstance(obj, Dispatcher):
            _lighten(obj)


_LIGHT = None          # (rtsys, lean library class, initialise extensions, types.Array, from_dtype)


def _lighten(dispatcher):
    """Give ``dispatcher`` the light cache loader of :func:`_load_caches_lightly`; ``False``
    where this Numba lacks the internals it needs (the normal loader is kept)."""
    global _LIGHT
    if _LIGHT is None:
        try:
            from numba.core import entrypoints, types
            from numba.core.runtime import rtsys
            from numba.np.numpy_support import from_dtype
        except ImportError:
            _LIGHT = ()
        else:
            _LIGHT = (rtsys, _lean_library(), entrypoints.init_all, types.Array, from_dtype)
    if not _LIGHT:
        return False
    rtsys, lean, init_extensions, array_type, from_dtype = _LIGHT
    cache = getattr(dispatcher, "_cache", None)
    if not all(hasattr(cache, a) for a in ("load_overload", "_load_overload",
                                           "_guard_against_spurious_io_errors")):
        return False
    cache.load_overload = _light_loader(cache, rtsys, lean, init_extensions)
    if all(hasattr(dispatcher, a) for a in ("_compilation_chain_init_hook", "typeof_pyval",
                                            "_types_active_call")):
        dispatcher._compilation_chain_init_hook = _until_a_miss
        dispatcher.typeof_pyval = _array_typeof(dispatcher, array_type, from_dtype)
    return True


deferred.on_made = _lighten        # (every dispatcher made from a deferred njit function)


def _until_a_miss():
    """(Numba's hook before typing a call's arguments: the loader runs it on a cache miss.)"""


def _array_typeof(dispatcher, array_type, from_dtype):
    """``dispatcher.typeof_pyval`` (what Numba calls to type an argument it has not seen)
    that types a plain ndarray as Numba's ``typeof`` does, other values by Numba's."""
    generic = dispatcher.typeof_pyval

    def typeof_pyval(val):
        if type(val) is not np.ndarray:
            return generic(val)
        try:
            dtype = from_dtype(val.dtype)
        except Exception:           # (a dtype Numba lacks: its own error)
            return generic(val)
        flags = val.flags
        layout = "C" if flags.c_contiguous else "F" if flags.f_contiguous else "A"
        typ = array_type(dtype, val.ndim, layout, readonly=not flags.writeable)
        dispatcher._types_active_call.add(typ)
        return typ
    return typeof_pyval


def _light_loader(cache, rtsys, lean, init_extensions):
    def load_overload(sig, target_context):
        codegen = target_context.codegen()
        # (the codegen's class attribute, shadowed for this load only; Numba calls this under
        # its global compiler lock: no other load or compile in any thread sees the swap)
        swap = (lean is not None and "_library_class" not in vars(codegen)
                and getattr(codegen, "_library_class", None) is lean.__base__)
        if swap:
            codegen._library_class = lean
        try:
            if swap:
                _initialize_nrt(rtsys, target_context, cache._cache_path, lean)
                with _environments_without_imports():
                    with cache._guard_against_spurious_io_errors():
                        loaded = cache._load_overload(sig, target_context)
            else:
                rtsys.initialize(target_context)
                with cache._guard_against_spurious_io_errors():
                    loaded = cache._load_overload(sig, target_context)
        finally:
            if swap:
                del codegen._library_class
        if loaded is None:
            global compiled
            compiled += 1
            init_extensions()       # (Numba compiles next: see _load_caches_lightly)
            deferred.make_all()     # (and looks up the callees in their modules)
        return loaded
    return load_overload


def _initialize_nrt(rtsys, target_context, folder, lean):
    """``rtsys.initialize``, with the NRT's own small library of LLVM functions (reference
    counting, atomics) loaded from a file beside the interpreters' cache when one is there.

    Numba builds and compiles that library in every process that runs jitted code
    (0.06 s of a fresh process's first call); its machine code depends only on
    Numba, llvmlite, the CPU and Python, which name the file. A missing or
    unreadable file is compiled as Numba would, then saved.
    """
    import hashlib
    import pickle

    import llvmlite
    import numba
    from numba.core.runtime import nrtdynmod

    if getattr(rtsys, "_init", True) or not hasattr(nrtdynmod, "create_nrt_module"):
        return rtsys.initialize(target_context)

    codegen = target_context.codegen()
    key = repr((numba.__version__, llvmlite.__version__, codegen.magic_tuple(), sys.version_info[:2]))
    path = os.path.join(folder, f"numbad-nrt.{hashlib.sha1(key.encode()).hexdigest()[:16]}.nbc")
    compile_nrt = nrtdynmod.compile_nrt_functions

    def load_or_compile(ctx):
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
            if state[0] == key:
                return lean._unserialize(codegen, state[1])
        except Exception:           # (missing, partly written, another format: compile it)
            pass
        ir_module, library = nrtdynmod.create_nrt_module(ctx)
        library.enable_object_caching()
        library.add_ir_module(ir_module)
        library.finalize()
        try:
            state = library.serialize_using_object_code()
            os.makedirs(folder, exist_ok=True)
            part = f"{path}.{os.getpid()}.part"
            with open(part, "wb") as f:
                pickle.dump((key, state), f, protocol=4)
            os.replace(part, path)          # (readers see the whole file or none)
        except Exception:           # (an unwritable folder, say: compiled again next time)
            pass
        return library

    nrtdynmod.compile_nrt_functions = load_or_compile
    try:
        rtsys.initialize(target_context)
    finally:
        nrtdynmod.compile_nrt_functions = compile_nrt


@contextmanager
def _environments_without_imports():
    """Unpickle a cached library's environments without importing their modules.

    Each function in a cached library (the interpreter and every Numba helper
    compiled into it, about 120) has an environment that Numba's unpickler
    builds around its module's globals, importing the module: Numba's own array,
    string and unicode implementations, 0.05 s of a fresh process's first call.
    Only object-mode code reads those globals; numbad's is all nopython, so a
    module not imported yet gets its name alone (what pickling the environment
    again reads).
    """
    from numba.core import environment

    rebuild = getattr(environment, "_rebuild_env", None)
    if rebuild is None or not hasattr(environment, "lookup_environment"):
        yield                       # (a Numba without these internals: its own unpickling)
        return
    Environment = environment.Environment

    def rebuild_lightly(modname, consts, env_name):
        if modname in sys.modules or environment.lookup_environment(env_name) is not None:
            return rebuild(modname, consts, env_name)
        env = Environment({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        Environment._memo[env_name] = env
        return env

    environment._rebuild_env = rebuild_lightly
    try:
        yield
    finally:
        environment._rebuild_env = rebuild


#: Numba versions from this one on keep the normal cache load until :func:`_lean_library` is
#: checked against them (its loading code mirrors Numba's; a mismatch could leave a null entry
#: point: ``tests/test_compile_cache.py`` tests both paths that it changes).
_LEAN_BEFORE = (0, 70)


def _lean_library():
    """A subclass of Numba's JIT code library that loads from the cache without parsing
    the library's LLVM bitcode (``None`` where Numba lacks the internals it uses).

    A cached library holds its machine code and, for linking it into code compiled
    later, its whole LLVM module as bitcode. Numba parses that module on every load
    (0.1 s of a fresh process's first call for the reverse interpreter) and walks it
    for the names it defines. Running the loaded code needs neither: the machine
    code is what the JIT links, and the one name looked up, the entry point, is
    registered when asked for. The bitcode is parsed if Numba links the library into
    new code after all (another njit function compiled against it).
    """
    try:
        import numba
        from llvmlite import binding as ll
        from numba.core.codegen import JITCodeLibrary
    except ImportError:
        return None
    try:
        if tuple(int(p) for p in numba.__version__.split(".")[:2]) >= _LEAN_BEFORE:
            return None
    except ValueError:              # (a version string of another form: the normal path)
        return None
    needed = ("_unserialize", "enable_object_caching", "_set_compiled_object", "_finalize_final_module",
              "_get_module_for_linking", "get_pointer_to_function")
    if not all(hasattr(JITCodeLibrary, a) for a in needed):
        return None

    class LeanLibrary(JITCodeLibrary):
        _bitcode = None

        @classmethod
        def _unserialize(cls, codegen, state):
            name, kind, data = state
            if kind != "object" or not hasattr(codegen._engine, "_defined_symbols"):
                return super()._unserialize(codegen, state)
            object_code, bitcode = data
            self = codegen.create_library(name)
            self.enable_object_caching()
            self._set_compiled_object(object_code)
            self._bitcode = bitcode
            self._finalize_final_module()
            return self

        def get_pointer_to_function(self, name):
            if self._bitcode is not None:
                self._codegen._engine._defined_symbols.add(name)
            return super().get_pointer_to_function(name)

        def _get_module_for_linking(self):
            if self._bitcode is not None and self._shared_module is None:
                self._shared_module = ll.parse_bitcode(self._bitcode)
                self._codegen._engine._load_defined_symbols(self._shared_module)
            return super()._get_module_for_linking()

    return LeanLibrary


def workspace():
    """The calling thread's scratch integers for the kernels (never shared across threads)."""
    try:
        return _local.ws
    except AttributeError:
        _local.ws = np.zeros(WORKSPACE, np.int64)
        return _local.ws


def varying_nodes(tape, input_nodes, begin, end):
    """Boolean mask of nodes that depend on ``input_nodes`` through ops [begin, end)."""
    ops, off, size, ip, _ = tape.arrays()
    varying = np.zeros(off.shape[0], np.bool_)
    for n in input_nodes:
        varying[n] = True
    interpreters().mark_varying(ops, ip, varying, begin, end)
    return varying


class Identity:
    """A seed block equal to the identity (``n`` elements by ``n`` lanes): a Jacobian's
    seed, written straight into the sweep's arena instead of copied from ``np.eye``."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n


def _write_seed(buf, lo, hi, v, L, acc):
    """buf[lo:hi] (+)= v, a seed or tangent block (an array, a number or an Identity)."""
    if type(v) is Identity:
        if acc:
            buf[lo:hi:L + 1] += 1.0
        else:
            buf[lo:hi] = 0.0
            buf[lo:hi:L + 1] = 1.0
    elif acc:
        buf[lo:hi] += np.ravel(v)
    else:
        buf[lo:hi] = v.reshape(-1) if type(v) is np.ndarray else v


def _seed(tape, adj, adj_set, node, v, L):
    """``adj[node] (+)= v`` before a reverse sweep (``L`` lanes per element).

    A view (:func:`numbad.tensor.core.gather`) shares its base's storage, where the
    sweep adds the cotangents of the base and of all its views: as ``prepare_views``
    does for the views inside the sweep, the base first gets a zeroed cotangent, and the
    view's seed adds to it (as does a later seed of the base).
    """
    noff, nsize = tape.node_off, tape.node_size
    root = tape.view_root.get(node) if tape.view_root else None
    if root is not None and not adj_set[root]:
        adj[noff[root] * L:(noff[root] + nsize[root]) * L] = 0.0
        adj_set[root] = True
    _write_seed(adj, noff[node] * L, (noff[node] + nsize[node]) * L, v, L, adj_set[node] or root is not None)
    adj_set[node] = True


#: The last fresh tape's arrays (``Recording.arrays`` gives the same ones to a tape that
#: recorded the same lists: the same function on inputs of the same shapes), its ``redo``
#: rows' bytes, and the tiled reverse sweep's plans for it. Shared by threads: one tuple,
#: swapped whole; a plan is only read.
_last_plans = None


def _plans_of(ops, off, size, ip, redo):
    """The plans of :func:`_reverse_in_tiles` for a fresh tape: those of the last tape, if it
    had these very arrays and the same ``redo`` rows (its plan is this one's), else a new
    dict. The Rosenbrock sum's ``nb.vjp`` at 1.4*10^5 elements took 1.67 ms, 1.86 ms planning
    each call."""
    global _last_plans
    last = _last_plans
    rows = None if redo is None else redo.tobytes()
    if (last is not None and last[0] is ops and last[1] is off and last[2] is size and last[3] is ip
            and last[4] == rows):
        return last[5]
    plans = {}
    _last_plans = (ops, off, size, ip, rows, plans)
    return plans


def _read(arena, lo, n):
    """A result out of a sweep arena, as a copy: the arena goes back to the buffer cache."""
    return buffers.copy(arena[lo:lo + n])


def reverse(tape, begin, end, input_nodes, seeds, lanes=0):
    """Cotangents of ``input_nodes`` given ``seeds``: ``[(node, cotangent array), ...]``.

    With ``lanes = L > 0`` every seed carries a trailing axis of ``L`` cotangents
    (a block of VJPs in one sweep) and so does every result. Returns one flat
    array per input node (``size`` or ``size * L`` values), or ``None`` where no
    cotangent reached the input.
    """
    ops, off, size, ip, vals = tape.arrays()
    n_nodes = off.shape[0]
    L = lanes or 1
    flags = np.zeros(2 * n_nodes, np.bool_)
    varying, adj_set = flags[:n_nodes], flags[n_nodes:]
    for n in input_nodes:
        varying[n] = True
    adj = buffers.take(vals.shape[0] * L, vals.dtype)
    noff, nsize = tape.node_off, tape.node_size        # Python ints: cheaper than numpy's here
    for node, v in seeds:
        if type(v) is np.ndarray and not (adj_set[node] or tape.view_root):
            # the common seed, written here (_seed and _write_seed are two calls more per seed)
            adj[noff[node] * L:(noff[node] + nsize[node]) * L] = v.ravel()
            adj_set[node] = True
        else:
            _seed(tape, adj, adj_set, node, v, L)
    g = _G or interpreters()
    # values the arena lacks, that the sweep reads: recomputed first (Recording.redo_rows)
    redo = tape.redo_rows() if tape._redo else None
    if redo is not None:
        redo = ops[redo]
    if lanes or not (vals.shape[0] >= EAGER_TILED_MIN and _reverse_in_tiles(
            g, ops, off, size, ip, vals, adj, adj_set, varying, begin, end, seeds, redo,
            _plans_of(ops, off, size, ip, redo), EAGER_TILED_MIN)):
        if redo is not None:
            g.forward(redo, off, size, ip, vals, 0, redo.shape[0], workspace())
        if lanes:
            g.reverse_lanes(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, workspace(), L)
        else:
            g.reverse(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, workspace())
    result = [_read(adj, noff[n] * L, nsize[n] * L) if adj_set[n] and varying[n] else None
              for n in input_nodes]
    if adj.shape[0] >= buffers.MIN_FLOATS:      # (a small one would be kept in place of the tape's
        buffers.give(adj)                        # arena, which the call releases next)
    return result


#: :func:`reverse_inputs` serves tapes of fewer values than this (its cotangent arena is
#: allocated in the call: a large one comes from the buffer cache, see ``buffers``)...
SMALL_TAPE = buffers.MIN_FLOATS
#: ...with at most this many inputs (its bit mask of the inputs reached)
MAX_SMALL_INPUTS = 62


def fits_reverse_inputs(tape, input_nodes):
    """Can :func:`reverse_inputs` sweep this tape to these input nodes?"""
    k = len(input_nodes)
    return (0 < k <= MAX_SMALL_INPUTS and tape.top < SMALL_TAPE and tape.top < EAGER_TILED_MIN
            and not tape.view_root and not tape._redo and input_nodes[-1] == k - 1)


def seed_one(dtype):
    """A one-element seed 1.0 of ``dtype`` for :func:`reverse_inputs` (shared: never written)."""
    one = _ONES.get(dtype)
    if one is None:
        one = _ONES[dtype] = np.ones(1, dtype)
    return one


_ONES = {}


def reverse_inputs(tape, end, k, y, v):
    """:func:`reverse` of a small fresh tape (fewer than ``SMALL_TAPE`` values, no views, nothing
    to recompute) from one seed ``v`` of node ``y`` to its ``k`` inputs, nodes ``0 .. k-1``, in
    one njit call. ``v``: flat, C-contiguous, writable, of the tape's dtype.

    Returns ``(grad, reached)``: the inputs' cotangents end to end (zeros for an input that
    no cotangent reached) and a bit mask of the inputs reached. The seed example's ``nb.vjp``
    takes a fifth less time than through :func:`reverse`, whose arrays Python prepares and reads.
    """
    ops, off, size, ip, vals = tape.arrays()
    grad = np.empty(tape.node_size[0] if k == 1 else sum(tape.node_size[:k]), vals.dtype)
    reached = (_G or interpreters()).reverse_inputs(ops, off, size, ip, vals, 0, end, workspace(),
                                                    k, y, v, grad)
    return grad, reached


def tangent_inputs(tape, end, k, y, t):
    """:func:`tangent` of a small fresh tape (one that :func:`fits_reverse_inputs`) from the
    tangents ``t`` of its ``k`` inputs, nodes ``0 .. k-1`` (end to end: flat, C-contiguous,
    writable, of the tape's dtype), to node ``y``, in one njit call.

    Returns ``(tan, reached)``: ``y``'s tangent (zeros if ``y`` does not depend on the inputs)
    and whether it does. ``nb.jvp`` took a quarter to a third less time than through
    :func:`tangent`: 32 against 24 us on ``tanh(A @ x) * x`` in R^100, 19 against 12 us on the
    seed example.
    """
    ops, off, size, ip, vals = tape.arrays()
    tan = np.empty(tape.node_size[y], vals.dtype)
    reached = (_G or interpreters()).tangent_inputs(ops, off, size, ip, vals, 0, end, workspace(), k, t, y, tan)
    return tan, reached


#: Elements per tile of :func:`_reverse_in_tiles`, and the fewest elements a node needs for
#: the tiled sweep to be tried (every array node of the tape must have that many; at least
#: ``TILE``). A tile of Rosenbrock's sweep touches about ten ranges of ``TILE`` values: at
#: 2^14 that is 1.3 MiB, which a core's 2 MiB L2 cache holds (Intel Xeon: its whole vjp at
#: n = 10^6 took 9.6 ms against 10.6 ms with 2^15). On an AMD EPYC, whose 0.5-1 MiB L2 holds
#: neither, 2^15 measured best, out of its 32 MiB L3; 2^14 there doubles a small per-tile cost
#: (about 3 us a tile, measured with tiles of 2^10 and 2^11: 0.1 ms a call at 10^6).
TILE = 1 << 14
#: A recorded tape's replays, and ``nb.jvp``'s tangent sweep, tile arrays from 2^15 elements
#: (two tiles and more). On the Xeon, Rosenbrock's ``tape.vjp`` at 4*10^4 and 10^5 elements
#: took 327 and 795 us in tiles against 386 and 1,175 us untiled; its ``nb.jvp`` at 10^5,
#: 1.05 against 1.18 ms.
TILED_MIN = 1 << 15
#: ``nb.vjp``'s reverse sweep tiles arrays from 2^17 elements. Below, with the plan kept
#: (:func:`_plans_of`), its tiles gained 7-17% on the Xeon between 4*10^4 and 10^5 elements
#: (Rosenbrock at 10^5: 1.13 against 1.36 ms) but lost 3-8% just above 2^15 (``sum(x*x)`` at
#: 33,000: 110 against 102 us), and they made the Rosenbrock ``nb.vjp`` at 10^5 as fast as
#: ``nb.jvp`` (1.06-1.08 against 1.05 ms), whose true forward mode is to cost no more.
EAGER_TILED_MIN = 1 << 17
#: Two threads share the tiles of arrays of this many elements or more; smaller ones, the
#: calling thread alone. On the 2-core Xeon a second thread cost more than it gave below:
#: Rosenbrock's ``tape.vjp`` at 7*10^4 elements took 592 us on one thread, 836 us on two
#: (780 us untiled), and ``sum(tanh(x)**2)``'s at 1.4*10^5 769 us on one, 1,077 us on two.
TWO_THREADS_MIN = 1 << 17
_TILE_KIND = None          # per opcode: 1 elementwise (or nondiff), 2 view, 3 scatter, 0 other
_READS = None              # per opcode: does its reverse rule read operand a, b, c, its output?


def _tile_tables():
    global _TILE_KIND, _READS
    if _TILE_KIND is None:
        from ..ops import OPS
        from ..tape import value_reads
        n = max(op.code for op in OPS.values()) + 1
        kinds, reads = np.zeros(n, np.int8), np.zeros((n, 4), np.bool_)
        for op in OPS.values():
            kinds[op.code] = {"elementwise": 1, "nondiff": 1, "view": 2, "scatter": 3}.get(op.kind, 0)
        for code, rules in value_reads().items():
            if rules:                       # an elementwise op: what any of its partials reads
                names, used = rules
                every = frozenset().union(*used)
                for k, nm in enumerate(names):
                    reads[code, k] = nm in every
                reads[code, 3] = "y" in every
        _TILE_KIND, _READS = kinds, reads
    return _TILE_KIND, _READS


def _reverse_in_tiles(g, ops, off, size, ip, vals, adj, adj_set, varying, begin, end, seeds, redo=None,
                      plans=None, least=None):
    """The reverse sweep of a large elementwise tape, ``TILE`` elements at a time; ``False``
    (nothing done) where the tape is not of that form.

    The form: ``np.sum`` of elementwise ops and contiguous reads (views) of arrays of at
    least ``TILED_MIN`` elements, with one-element values only as constants. Element ``i``
    of every cotangent then depends on element ``i`` of the others alone (a view's, on
    its base's at a fixed shift), so the sweep can run over elements ``[lo, lo + TILE)``
    of every node, tile after tile: each tile's cotangents stay in the processor's cache
    between the ops that write and read them, instead of going to memory and back once per
    op (the sweep of a large tape is bound by memory traffic). The sum's cotangent reaches
    each element of its operand unchanged, so each tile starts from it; everything else
    is the plain reverse sweep, on shifted offsets and sizes: the same operations on the
    same values. One thing differs: where shifted reads of one array (``x[1:]``,
    ``x[:-1]``) pass cotangents to one element from both sides of a tile edge, they are
    added in another order, so such elements may differ from the plain sweep's in the
    last bit (both are sums of the same terms; PyTorch adds them in yet another order).

    ``redo``: op rows recomputing values the arena lacks (``Recording.redo_rows``). Each
    tile replays them first, into one window per value, like a transient cotangent's.

    ``plans``: a dict in which the plan (:func:`_plan_tiles`) is kept between calls on the
    same arrays: a recorded tape's (its ops, offsets, seed node and inputs are the same every
    call), or ``nb.vjp``'s tapes that record the same ops (:func:`_plans_of`). Making the plan
    is about 40 numpy calls on the op table (0.15 ms, a tenth of ``tape.vjp`` at 1.4*10^5
    elements).

    ``least``: the fewest elements of the summed array (``TILED_MIN`` if ``None``).
    """
    least = TILED_MIN if least is None else least
    # (what else the plan depends on; the arrays, and any redo rows, are the dict's)
    key = ("reverse", THREADS, TILE, TILED_MIN, TWO_THREADS_MIN, least, begin, end,
           tuple(n for n, _ in seeds), varying.tobytes(), adj_set.tobytes())
    if plans is not None and key in plans:
        plan = plans[key]
        if plan is None:
            return False
        varying[:] = plan.varying
        g.prepare_views(ops, ip, off, size, adj, adj_set, varying, begin, end, 1)    # zeroes whole bases
    else:
        plan = _plan_tiles(g, ops, off, size, ip, adj, adj_set, varying, begin, end, seeds, redo, least)
        if plans is not None:
            plans[key] = plan
        if plan is None:
            return False
    tiles, second_tiles, summed, seed_once, accumulate = (
        plan.tiles, plan.second_tiles, plan.summed, plan.seed_once, plan.accumulate)
    start = plan.start
    cot = adj[off[ops[end - 1, 1]]]
    if seed_once:
        a = off[summed]
        adj[a:a + min(TILE, size[summed])] = cot
        if second_tiles is not None:
            adj[a + TILE:a + 2 * TILE] = cot

    def sweep(tiles, flags):
        ws = workspace()
        for tile_off, tile_size in tiles:
            flags[:] = start
            if not seed_once:
                a = tile_off[summed]
                if accumulate:
                    adj[a:a + tile_size[summed]] += cot
                else:
                    adj[a:a + tile_size[summed]] = cot
                    flags[summed] = True
            if redo is not None:
                g.forward(redo, tile_off, tile_size, ip, vals, 0, redo.shape[0], ws)
            g.reverse(ops, tile_off, tile_size, ip, vals, adj, flags, varying, begin, end - 1, ws)

    if second_tiles is None:
        sweep(tiles, adj_set)
        return True
    # the worker starts tens of microseconds late and the caller runs tile m - 1 after both
    # halves: the caller takes tiles [0, m - 1), the worker as many or one fewer
    m = len(tiles) - len(second_tiles)
    second_flags = adj_set.copy()
    second = _worker().submit(sweep, second_tiles, second_flags)
    try:
        sweep(tiles[:m - 1], adj_set)
    finally:
        second.result()
    sweep(tiles[m - 1:m], adj_set)
    adj_set |= second_flags
    return True


def _tangent_in_tiles(g, ops, off, size, ip, vals, tan, varying, begin, end, y, plans):
    """The tangent sweep of a tape of the tiled form (:func:`elementwise_tiles`) to its sum
    ``y``, tile by tile on the calling thread. Element by element these are the plain sweep's
    operations on the same values: the same bits. ``False`` (nothing done) where the tape is
    not of that form.
    ``plans``: as for :func:`_reverse_in_tiles`. At 10^5 elements the Rosenbrock sum's
    ``nb.jvp`` took 1.05 ms against 1.18 ms untiled."""
    key = ("tangent", TILE, TILED_MIN, begin, end, y, varying.tobytes())
    if plans is not None and key in plans:
        plan = plans[key]
    else:
        plan = elementwise_tiles(ops, off, size, begin, end, y)
        if plans is not None:
            plans[key] = plan
    if plan is None:
        return False
    scalar_rows, big_rows, tiles, _ = plan
    ws = workspace()
    if scalar_rows.shape[0]:
        g.tangent(scalar_rows, off, size, ip, vals, tan, varying, 0, scalar_rows.shape[0], ws)
    for tile_off, tile_size in tiles:
        g.tangent(big_rows, tile_off, tile_size, ip, vals, tan, varying, 0, big_rows.shape[0], ws)
    g.tangent(ops, off, size, ip, vals, tan, varying, end - 1, end, ws)
    return True


def elementwise_tiles(ops, off, size, begin, end, y):
    """The tiles in which ops ``[begin, end)`` can run forward (values or tangents), as
    ``(one-element rows, other rows, tiles, largest array's size)``, or ``None`` where they
    are not of the form: elementwise ops, and views of nodes no op writes (an input: all its
    elements are set before the tiles), their array operands of their result's size, every
    array of ``TILED_MIN`` elements or more, and op ``end - 1`` the sum of one of them into
    ``y``. The one-element rows run first, once (their operands are one-element values); the
    others tile by tile, every large node's range moving with the tile; the sum last, over the
    whole arrays. Used by :func:`_tangent_in_tiles` and by a recorded tape's tiled replays."""
    if end - begin < 2:
        return None
    last = ops[end - 1]
    kinds, _ = _tile_tables()
    if kinds[last[0]] != 3 or last[1] != y or size[y] != 1 or size[last[2]] < TILED_MIN:
        return None
    rows = ops[begin:end - 1]
    row_kinds = kinds[rows[:, 0]]
    if not np.all((row_kinds == 1) | (row_kinds == 2)):     # elementwise (and comparisons), views
        return None
    nodes = rows[:, 1:5]
    used = nodes >= 0
    sizes = np.where(used, size[np.where(used, nodes, 0)], 1)
    elementwise = row_kinds == 1
    if not (np.all((sizes == 1) | (sizes >= TILED_MIN))
            and np.all(~elementwise[:, None] | (sizes[:, 1:] == 1) | (sizes[:, 1:] == sizes[:, :1]))):
        return None
    views = ~elementwise
    if np.any(np.isin(nodes[views, 1], rows[:, 1])):     # a view of a value an op makes
        return None
    scalar = sizes[:, 0] == 1
    big = size >= TILED_MIN
    los = np.arange(0, sizes.max(), TILE)[:, None]
    tiles = list(zip(off + big * los, np.where(big, np.clip(size - los, 0, TILE), size)))
    return np.ascontiguousarray(rows[scalar]), np.ascontiguousarray(rows[~scalar]), tiles, int(sizes.max())


class _TilePlan:
    """What :func:`_plan_tiles` decides for a tape (see there)."""

    __slots__ = ("tiles", "second_tiles", "summed", "seed_once", "accumulate", "start", "varying")

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


def _plan_tiles(g, ops, off, size, ip, adj, adj_set, varying, begin, end, seeds, redo, least):
    """The plan of :func:`_reverse_in_tiles` for this tape, or ``None`` where it is not of the
    tiled form: the tiles (offsets and sizes of every node, one row per tile), the second
    thread's tiles (``None`` for one thread), the summed node and how its cotangent is
    seeded, the cotangent flags each tile starts from, and ``varying`` as marked. Marks
    ``varying`` and prepares the views (``g.prepare_views``: it zeroes their bases in
    ``adj``) as the sweep needs them."""
    if len(seeds) != 1 or end - begin < 2:
        return None
    last = ops[end - 1]
    kinds, reads = _tile_tables()
    if kinds[last[0]] != 3 or last[1] != seeds[0][0] or size[last[1]] != 1 or size[last[2]] < least:
        return None
    rows = ops[begin:end - 1]
    row_kinds = kinds[rows[:, 0]]
    if not np.all(row_kinds > 0) or np.any(row_kinds == 3):
        return None
    nodes = rows[:, 1:5]
    used = nodes >= 0
    sizes = np.where(used, size[np.where(used, nodes, 0)], 1)
    if not np.all((sizes == 1) | (sizes >= TILED_MIN)):
        return None
    elementwise = row_kinds == 1
    # an elementwise op's array operands have its output's size (numpy broadcasts by gathers)
    if not np.all(~elementwise[:, None] | (sizes[:, 1:] == 1) | (sizes[:, 1:] == sizes[:, :1])):
        return None
    g.mark_varying(ops, ip, varying, begin, end)
    # a varying one-element node would sum its cotangent over every tile: not of the form
    if np.any(used & (sizes == 1) & varying[np.where(used, nodes, 0)]):
        return None
    g.prepare_views(ops, ip, off, size, adj, adj_set, varying, begin, end, 1)    # zeroes whole bases
    summed = last[2]
    start = adj_set.copy()
    big = size >= TILED_MIN
    # A node whose value no rule reads, and whose cotangent lives only between the ops
    # that write and read it (not an input, a view or a view's base), keeps one window
    # (its first TILE elements) for every tile: its cotangents never leave the cache.
    # Every other large node's range moves with the tile.
    kept = np.zeros(off.shape[0], np.bool_)
    codes = rows[:, 0]
    for k in range(3):
        kept[nodes[:, 1 + k][elementwise & used[:, 1 + k] & reads[codes, k]]] = True
    kept[nodes[:, 0][elementwise & reads[codes, 3]]] = True
    views = row_kinds == 2
    kept[nodes[:, 0][views]] = kept[nodes[:, 1][views]] = True
    produced = np.zeros(off.shape[0], np.bool_)
    produced[nodes[:, 0]] = True
    moves = big & (kept | ~produced)         # (inputs and constants are made by no op here)
    if redo is not None:
        redo_in = redo[:, 2:5][redo[:, 2:5] >= 0]
        moves[redo_in] = big[redo_in]            # their operands are read in place, tile by tile
        moves[redo[:, 1]] = False        # recomputed into a window (never an input or a view)
    los = np.arange(0, sizes.max(), TILE)[:, None]      # (every element of every node)
    tile_offs = off + moves * los                                   # (one row per tile)
    tile_sizes = np.where(big, np.clip(size - los, 0, TILE), size)
    windows = big & ~moves
    # Two threads take the tiles, each half with its own windows (the second TILE elements of
    # each window node for the second half). Tiles write their own elements of moving nodes,
    # but a view's shift carries a tile's cotangents up to ``shift`` elements into the next
    # tile's range of its base: the last tile of the first half runs after both halves, and
    # a base that an op made (whose rule the next tile runs on those elements) keeps to one
    # thread.
    shifts = off[nodes[:, 0][views]] - off[nodes[:, 1][views]]
    split = (THREADS > 1 and len(los) >= 4 and sizes.max() >= TWO_THREADS_MIN and np.all(size[windows] >= 2 * TILE)
             and np.all(shifts < TILE) and not np.any(produced[nodes[:, 1][views][shifts > 0]]))
    accumulate = bool(start[summed])
    # the summed node's cotangent is the seed throughout: in a window that no op writes
    # (no op but the sum reads the node), it is written once, not once a tile
    seed_once = not (accumulate or moves[summed] or np.any(nodes[:, 1:] == summed))
    if seed_once:
        start[summed] = True
    tiles = list(zip(tile_offs, tile_sizes))
    second_tiles = None
    if split:
        m = len(tiles) // 2 + 1
        second_tiles = list(zip(tile_offs[m:] + windows * TILE, tile_sizes[m:]))
    return _TilePlan(tiles=tiles, second_tiles=second_tiles, summed=summed, seed_once=seed_once,
                     accumulate=accumulate, start=start, varying=varying.copy())


#: Threads a tiled reverse sweep, or a large elementwise op's values
#: (:func:`numbad.tensor.core._ufunc_into`), run on (the calling one and a worker): two
#: where the process may use two cores or more, unless ``NUMBAD_THREADS=1``.
def _threads():
    setting = os.environ.get("NUMBAD_THREADS", "2")
    try:
        wanted = int(setting)
    except ValueError:
        raise ValueError(f"numbad: NUMBAD_THREADS must be a whole number of threads, "
                         f"not {setting!r}") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, wanted, cores))


THREADS = _threads()
_EXECUTORS = {}        # name -> (process id, executor): a forked child makes its own (the
_EXECUTORS_LOCK = threading.Lock()  # parent's threads are not in it: its executor never runs a job)


def executor(name, workers):
    """The process's thread pool ``name`` of ``workers`` threads, made by whichever thread
    asks first (and again in a forked child)."""
    made = _EXECUTORS.get(name)
    if made is None or made[0] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor
        with _EXECUTORS_LOCK:
            made = _EXECUTORS.get(name)
            if made is None or made[0] != os.getpid():
                made = _EXECUTORS[name] = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix=name))
    return made[1]


def _worker():
    """The process's worker thread (the second half of a tiled sweep, blocks of a large
    elementwise op)."""
    return executor("numbad-worker", 1)


#: Op kinds whose second-order share the generated ``second_order`` sweep knows: elementwise
#: ops (their Hessian rules, :mod:`numbad.sweeps.second_order`), matmul (bilinear), and the
#: linear or piecewise-linear kinds (no share). A tape holding any other kind (cumprod, the
#: factorizations) takes the differentiable path instead.
SECOND_ORDER_KINDS = frozenset({
    "elementwise", "nondiff", "matmul", "copy", "gather", "view", "scatter", "take", "put_add", "assemble",
    "extreme", "scan_sum", "take_along", "put_along", "assign", "arg_extreme", "argsort", "det_sign"})
_SECOND_ORDER = None          # per opcode: is its kind in SECOND_ORDER_KINDS?


def hvp_supported(tape, begin, end):
    """Can :func:`hvp` sweep ops [begin, end) (every op of a kind ``second_order`` knows)?"""
    global _SECOND_ORDER
    if _SECOND_ORDER is None:
        from ..ops import OPS
        known = np.zeros(max(op.code for op in OPS.values()) + 1, np.bool_)
        for op in OPS.values():
            known[op.code] = op.kind in SECOND_ORDER_KINDS
        _SECOND_ORDER = known
    codes = tape.arrays()[0][begin:end, 0]
    return bool(np.all(_SECOND_ORDER[codes])) if codes.size else True


def hvp(tape, begin, end, input_nodes, output_node, tangents):
    """``H v`` for the one-element ``output_node``, forward over reverse, all in compiled sweeps.

    A tangent sweep gives every node's tangent (``v`` at the inputs); a reverse
    sweep, every node's cotangent; ``second_order`` adds, per op, the tangent of
    its reverse rule with the cotangent held fixed; a second reverse sweep
    seeded with those sources carries them back to the inputs (the tangent of
    the cotangents obeys the cotangents' own linear recursion). Requires
    :func:`hvp_supported`. Returns one flat array per input, ``None`` where zero.
    """
    ops, off, size, ip, vals = tape.arrays()
    n_nodes = off.shape[0]
    flags = np.zeros(3 * n_nodes, np.bool_)
    varying, adj_set, src_set = flags[:n_nodes], flags[n_nodes:2 * n_nodes], flags[2 * n_nodes:]
    g, ws = interpreters(), workspace()
    noff, nsize = tape.node_off, tape.node_size        # Python ints, as in reverse()
    tan = buffers.take(vals.shape[0], vals.dtype)
    for node, t in zip(input_nodes, tangents):
        varying[node] = True
        _write_seed(tan, noff[node], noff[node] + nsize[node], t, 1, False)
    g.tangent(ops, off, size, ip, vals, tan, varying, begin, end, ws)
    adj = buffers.take(vals.shape[0], vals.dtype)
    _seed(tape, adj, adj_set, output_node, 1.0, 1)
    g.reverse(ops, off, size, ip, vals, adj, adj_set, varying, begin, end, ws)
    # the sources overwrite the cotangents in place: visiting ops in recording order, an op
    # reads its output's cotangent before any later op (its consumers) writes that node's
    # source, and writes only its operands' sources, whose cotangents were already read
    g.second_order(ops, off, size, ip, vals, tan, adj, adj_set, adj, src_set, varying, begin, end, ws)
    buffers.give(tan)
    del tan
    g.reverse(ops, off, size, ip, vals, adj, src_set, varying, begin, end, ws)
    result = [_read(adj, noff[n], nsize[n]) if src_set[n] and varying[n] else None for n in input_nodes]
    buffers.give(adj)
    return result


def tangent(tape, begin, end, input_nodes, tangents, output_nodes, lanes=0):
    """Tangents of ``output_nodes`` given ``tangents`` of ``input_nodes`` (forward mode).

    Returns one flat array per output node, or ``None`` for outputs that do not
    depend on the inputs.
    """
    ops, off, size, ip, vals = tape.arrays()
    L = max(lanes, 1)
    varying = np.zeros(off.shape[0], np.bool_)
    tan = buffers.take(vals.shape[0] * L, vals.dtype)
    noff, nsize = tape.node_off, tape.node_size        # Python ints: cheaper than numpy's here
    for node, t in zip(input_nodes, tangents):
        varying[node] = True
        _write_seed(tan, noff[node] * L, (noff[node] + nsize[node]) * L, t, L, False)
    g = interpreters()
    if lanes:
        g.tangent_lanes(ops, off, size, ip, vals, tan, varying, begin, end, workspace(), L)
    elif not (vals.shape[0] >= TILED_MIN and len(output_nodes) == 1 and not tape._redo and _tangent_in_tiles(
            g, ops, off, size, ip, vals, tan, varying, begin, end, output_nodes[0],
            _plans_of(ops, off, size, ip, None))):
        g.tangent(ops, off, size, ip, vals, tan, varying, begin, end, workspace())
    result = [_read(tan, noff[n] * L, nsize[n] * L) if varying[n] else None for n in output_nodes]
    buffers.give(tan)
    return result
