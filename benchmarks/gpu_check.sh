#!/usr/bin/env bash
# The GPU check, one prepared script: it installs what it needs, compiles numbad's CPU
# interpreters (one process per interpreter: the CUDA tests and the benchmark compare against the
# CPU), then runs the GPU benchmark (benchmarks/bench_cuda.py, on two cores) and the CUDA tests
# (tests/cuda, on the other cores) side by side on the real device, writing everything to one
# results file. Budget: under 9.5 minutes on a 16-core H100/H200 machine (timeouts 4 + 5 min).
#
#   On the GPU machine, from the repository root:
#       bash benchmarks/gpu_check.sh [RESULTS]
#   RESULTS defaults to $OUT/gpu_check.txt when $OUT is set (the device tool), else ./gpu_check.txt;
#   the benchmark's JSON lines go to RESULTS.jsonl beside it, the tests' log to RESULTS.tests.
#   BENCH_ARGS adds options to the benchmark (`BENCH_ARGS=--quick NUMBA_ENABLE_CUDASIM=1`
#   smoke-tests this script without a GPU).
#
#   Optional, beforehand, on a machine that reaches PyPI (no GPU needed):
#       bash benchmarks/gpu_check.sh --fetch-wheels
#   downloads the numba-cuda and numpy 2.4 wheels for CPython 3.12 into .whl/ (git-ignored; name
#   `.whl` in the device tool's carry). Carried wheels are installed first; without them the GPU
#   image's own numba and numba-cuda are used, and PyPI is tried only if they are missing. (numba
#   and llvmlite wheels would be 65 MB, over the device tool's 64 MiB carry: the image's are used.)
#   On 2026-11-27 the image's numba-cuda failed to load under its numpy 2.5.2 (np.row_stack is
#   gone); with numpy 2.4.6 carried, it ran. That first run also showed that the tests spent
#   their time compiling the CPU interpreters, each pytest worker for itself: hence the compile
#   step here.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p .whl
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
  exec $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl numba-cuda==0.30.4 numpy==2.4.6
fi

RESULTS=${1:-${OUT:+$OUT/}gpu_check.txt}
: > "$RESULTS"
log() { echo "== $*" | tee -a "$RESULTS"; }
start=$(date +%s)
log "numbad GPU check, $(date -u '+%F %T') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$RESULTS"

if ls .whl/*.whl >/dev/null 2>&1; then
  log "installing the carried wheels: $(ls .whl | tr '\n' ' ')"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/numbad-site .whl/*.whl 2>&1 | tee -a "$RESULTS"
  export PYTHONPATH=/tmp/numbad-site
fi
if ! $PY -c "import numba, numba.cuda, scipy, pytest" 2>/dev/null; then
  log "numba/numba-cuda missing: installing from PyPI"
  $PY -m pip install -q 'numba>=0.60' 'numba-cuda[cu13]' scipy pytest 2>&1 | tee -a "$RESULTS"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"    # numbad from this checkout, no install
export PYTHONUNBUFFERED=1
$PY - <<'PYEOF' 2>&1 | tee -a "$RESULTS"
import sys
import numba, numpy, scipy
from numba import cuda
print("python", sys.version.split()[0], "| numpy", numpy.__version__, "| scipy", scipy.__version__,
      "| numba", numba.__version__, "| numba.cuda:", getattr(cuda, "implementation", "?"), cuda.__file__)
print("cuda available:", cuda.is_available())
PYEOF

cores=$(nproc)
log "numbad's CPU interpreters: python -m numbad.compile_cache --jobs $cores"
timeout 240 $PY -m numbad.compile_cache --jobs "$cores" 2>&1 | tee -a "$RESULTS"
compiled=${PIPESTATUS[0]}

XDIST=""
if [ "$cores" -gt 4 ] && $PY -c "import xdist" 2>/dev/null; then
  XDIST="-n $(( cores - 3 ))"        # (the benchmark holds cores 0 and 1)
fi
log "CUDA tests on the device, beside the benchmark: tests/cuda $XDIST (log: $RESULTS.tests)"
( pin=""
  if [ "$cores" -gt 4 ] && command -v taskset >/dev/null; then pin="taskset -c 2-$(( cores - 1 ))"; fi
  timeout 300 $pin $PY -m pytest -q -p no:cacheprovider $XDIST tests/cuda > "$RESULTS.tests" 2>&1
  echo $? > "$RESULTS.tests.rc" ) &
tests_pid=$!

log "benchmark: benchmarks/bench_cuda.py (two cores)"
timeout 300 $PY benchmarks/bench_cuda.py --out "$RESULTS.jsonl" ${BENCH_ARGS:-} 2>&1 | tee -a "$RESULTS"
bench=${PIPESTATUS[0]}

wait $tests_pid
tests=$(cat "$RESULTS.tests.rc" 2>/dev/null || echo 1)
log "CUDA tests: exit $tests; their failures and summary:"
grep -E "^(FAILED|ERROR)| passed| failed|[0-9] errors? " "$RESULTS.tests" | tail -n 40 | tee -a "$RESULTS"

log "done in $(( $(date +%s) - start )) s: compile exit $compiled, benchmark exit $bench, tests exit $tests"
[ "$compiled" = 0 ] && [ "$bench" = 0 ] && [ "$tests" = 0 ]
