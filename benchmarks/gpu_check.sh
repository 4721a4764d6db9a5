#!/usr/bin/env bash
# Issue 5's GPU check, one prepared script: it installs what it needs, runs the GPU benchmark
# (benchmarks/bench_cuda.py) and the CUDA tests (tests/cuda) on the real device, and writes
# everything to one results file. Budget: under 8 minutes on an H100/H200 (two timeouts of 4.5 min).
#
#   On the GPU machine, from the repository root:
#       bash benchmarks/gpu_check.sh [RESULTS]
#   RESULTS defaults to $OUT/gpu_check.txt when $OUT is set (the device tool), else ./gpu_check.txt;
#   the benchmark's JSON lines go to RESULTS.jsonl beside it. BENCH_ARGS adds options to the
#   benchmark (`BENCH_ARGS=--quick NUMBA_ENABLE_CUDASIM=1` smoke-tests this script without a GPU).
#
#   Optional, beforehand, on a machine that reaches PyPI (no GPU needed):
#       bash benchmarks/gpu_check.sh --fetch-wheels
#   downloads the numba-cuda and numpy 2.4 wheels for CPython 3.12 into .whl/ (git-ignored; name
#   `.whl` in the device tool's carry). Carried wheels are installed first; without them the GPU
#   image's own numba and numba-cuda are used, and PyPI is tried only if they are missing. (numba
#   and llvmlite wheels would be 65 MB, over the device tool's 64 MiB carry: the image's are used.)
#   On 2026-11-27 the image's numba-cuda failed to load under its numpy 2.5.2 (np.row_stack is
#   gone); with numpy 2.4.6 carried, it ran.
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

log "benchmark: benchmarks/bench_cuda.py"
timeout 270 $PY benchmarks/bench_cuda.py --out "$RESULTS.jsonl" ${BENCH_ARGS:-} 2>&1 | tee -a "$RESULTS"
bench=${PIPESTATUS[0]}

log "CUDA tests on the device: tests/cuda"
XDIST=""
$PY -c "import xdist" 2>/dev/null && XDIST="-n 8"    # compiling kernels is most of the time
timeout 270 $PY -m pytest -q -p no:cacheprovider $XDIST tests/cuda 2>&1 | tee -a "$RESULTS"
tests=${PIPESTATUS[0]}

log "done in $(( $(date +%s) - start )) s: benchmark exit $bench, tests exit $tests"
[ "$bench" = 0 ] && [ "$tests" = 0 ]
