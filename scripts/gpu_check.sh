#!/usr/bin/env bash
# The GPU checks, as one command, for a machine with an NVIDIA GPU (README "GPU"):
#
#   1. the CUDA kernel bodies without MLX: nvcc builds MLX's exact cuda_kernel translation unit of
#      every kernel for the local GPU, CuPy launches it, and the outputs are compared with the C++
#      emulation's (scripts/gpu_check.py run); then the same launches under compute-sanitizer
#      racecheck (shared-memory races) and memcheck (out-of-bounds accesses);
#   2. the MLX path, where MLX's CUDA wheels were carried: the gpu-marked tests (kernels through
#      mx.fast.cuda_kernel vs the reference, layers through ncps.kernels.plan, mx.compile,
#      bit-for-bit repeatable gradients), then the GPU benchmark section (--quick).
#
# Inputs (ignored paths, carried to the GPU machine):
#   build/gpu_check/        written here first by `python scripts/gpu_check.py prepare` (needs mlx,
#                           no GPU); this script writes it itself when mlx and ncps import.
#   build/gpu_wheels/       optional: mlx, mlx-cuda-13 (cp312) and their deps as *.whl; a wheel too
#                           large for one transfer may come as NAME.whl.part-* pieces (split -b),
#                           carried in successive calls while the machine stays warm.
#   .oracle/                optional: the official ncps 1.0.1 (benchmark's official-cuda column).
# Environment: NVCC (default nvcc), PYTHON (default python3), GPU_CHECK_SKIP_MLX=1 skips step 2.
# Exit status: 0 when every step that ran passed; the log says which steps were skipped and why.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NVCC=${NVCC:-nvcc}
CASES=build/gpu_check
status=0
step() { echo; echo "=== $*"; }
fail() { echo "FAILED: $*"; status=1; }

step "0. machine"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>&1 | head -3
"$NVCC" --version | tail -1
"$PY" -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" || fail "CuPy/numpy missing"

if [ ! -f "$CASES/manifest.json" ]; then
  step "preparing $CASES (needs mlx and ncps)"
  PYTHONPATH=python "$PY" scripts/gpu_check.py prepare || fail "prepare (carry $CASES from a machine with mlx)"
fi

if [ -f "$CASES/manifest.json" ]; then
  step "1a. CUDA bodies vs the emulation (nvcc + CuPy, no MLX)"
  "$PY" scripts/gpu_check.py run --nvcc "$NVCC" || fail "CUDA kernels differ from the emulation"
  if command -v compute-sanitizer >/dev/null; then
    for tool in racecheck memcheck; do
      step "1b. compute-sanitizer --tool $tool"
      out=$(compute-sanitizer --tool "$tool" --error-exitcode 3 "$PY" scripts/gpu_check.py run --nvcc "$NVCC" 2>&1)
      rc=$?
      echo "$out" | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|hazard|Invalid" | head -20
      [ $rc -eq 0 ] || fail "compute-sanitizer $tool (exit $rc)"
    done
  else
    fail "compute-sanitizer not found"
  fi
fi

if [ -n "${GPU_CHECK_SKIP_MLX:-}" ]; then
  step "2. MLX path: skipped (GPU_CHECK_SKIP_MLX)"
elif ! ls build/gpu_wheels/*.whl build/gpu_wheels/*.part-* >/dev/null 2>&1; then
  step "2. MLX path: skipped (no wheels in build/gpu_wheels/)"
else
  step "2. MLX path (carried wheels)"
  for first in build/gpu_wheels/*.whl.part-aa; do  # reassemble split wheels
    [ -e "$first" ] || continue
    whl=${first%.part-aa}
    cat "$whl".part-* > "$whl" && rm -f "$whl".part-*
  done
  venv=/tmp/ncps-gpu-venv
  "$PY" -m venv --system-site-packages "$venv" \
    && "$venv/bin/pip" install -q --no-index --no-deps build/gpu_wheels/*.whl \
    || fail "installing the carried wheels"
  VPY="$venv/bin/python"
  # The GPU path needs no compiled extension: ncps runs from the source tree (the CPU primitives
  # are then absent and the benchmark's cpu column says so).
  export PYTHONPATH="$PWD/python:$PWD"
  "$VPY" -c "import mlx.core as mx, ncps; print('mlx', mx.__version__, mx.default_device(), ncps.kernels.kernel_backends())" \
    || fail "mlx/ncps import"
  step "2a. tests on the GPU (marker gpu; the emulated ones run in CI)"
  "$VPY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu -rs || fail "tests/gpu -m gpu"
  step "2b. GPU benchmark section (--quick)"
  "$VPY" benchmarks/run.py --quick --section gpu --out build/gpu_results --name gpu_quick \
    || fail "benchmark"
  cat build/gpu_results/gpu_quick.md 2>/dev/null | sed -n '/### GPU/,$p'
fi

echo
[ $status -eq 0 ] && echo "gpu_check: all steps that ran passed" || echo "gpu_check: FAILURES (see above)"
exit $status
