#!/usr/bin/env bash
# The GPU checks on an NVIDIA machine, in two calls staged by scripts/gpu_stage.sh
# (kernels/README.md "First hardware run" has the two device-tool calls):
#
#   bash scripts/gpu_check.sh --call 1 [--steps a,b] [--dry-run] [--stage DIR]
#   bash scripts/gpu_check.sh --call 2 [--steps a,b] [--dry-run] [--stage DIR]
#
# Call 1, the kernel bodies without MLX (useful alone):
#   machine    GPU, driver, nvcc, numpy/CuPy, compute-sanitizer versions
#   verify     the staged folder's SHA256SUMS, its size, its kernel sources = the working tree's
#   keep       copy the wheel's first part to $GPU_STAGE_KEEP (outside the tree; call 2 reads it)
#   kernels    nvcc builds MLX's exact cuda_kernel translation units (MLX's utils.cuh prelude
#              included) for this GPU, CuPy launches them (dynamic shared memory, > 48 KiB for one
#              case), outputs vs the emulation's (scripts/gpu_check.py run)
#   racecheck, memcheck, synccheck, initcheck
#              the same launches under compute-sanitizer (racecheck / synccheck / initcheck on the
#              small cases; memcheck on all); "device not supported" is a skip with the reason
# Call 2, the MLX path (issued right after call 1, while the machine is warm):
#   machine, verify
#   wheel      reassemble the mlx-cuda-13 wheel from its two parts, check its sha256, install it and
#              the mlx wheel into the image's python3 (pip --no-index --no-deps; no venv: a venv
#              would hide the image's CUDA 13 libraries, which libmlx.so finds relative to itself)
#   import     mlx on the GPU, ncps from the source tree
#   pytest     NCPS_GPU_KERNELS=1 pytest -m gpu tests/gpu
#   timing     scripts/gpu_timing.py (~60 s)
#
# --dry-run (here, no GPU): validates the staged layout (checksums, sizes, kernel-source hash, the
# wheel's parts reassembled to its sha256, a pip dry-run install for cp312) and every step's command
# (the prepared cases, the sanitizer command lines, the gpu tests' collection, the timing plan);
# without a staged layout (no download yet) it says so and validates the commands only.
# Results: $OUT/results.json and $OUT/results.md (OUT defaults to build/gpu_check_out), the whole
# log in $OUT/log.txt, the timings in $OUT/timing.{json,md}.
# Environment: PYTHON (default python3), NVCC (default nvcc), GPU_STAGE_KEEP (/tmp/ncps_gpu_stage),
# GPU_CHECK_SANITIZER_TIMEOUT (seconds per sanitizer step, default 120), GPU_TIMING_BUDGET (60).
# Exit status: 0 when no step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
CALL=
STEPS=
DRY=0
STAGE=build/gpu_stage
while [ $# -gt 0 ]; do
  case $1 in
    --call) CALL=$2; shift 2 ;;
    --steps) STEPS=${2//,/ }; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --stage) STAGE=$2; shift 2 ;;
    *) echo "usage: $0 --call 1|2 [--steps a,b,...] [--dry-run] [--stage DIR]" >&2; exit 2 ;;
  esac
done
ALL_1="machine verify keep kernels racecheck memcheck synccheck initcheck"
ALL_2="machine verify wheel import pytest timing"
case $CALL in
  1) ALL=$ALL_1 ;;
  2) ALL=$ALL_2 ;;
  *) echo "gpu_check: --call 1 or --call 2" >&2; exit 2 ;;
esac
STEPS=${STEPS:-$ALL}
for s in $STEPS; do
  [[ " $ALL " == *" $s "* ]] || { echo "gpu_check: call $CALL has no step '$s' (steps: $ALL)" >&2; exit 2; }
done

PY=${PYTHON:-python3}
NVCC=${NVCC:-nvcc}
RESULTS=${OUT:-build/gpu_check_out}
KEEP=${GPU_STAGE_KEEP:-/tmp/ncps_gpu_stage}
SAN_TIMEOUT=${GPU_CHECK_SANITIZER_TIMEOUT:-120}
BUDGET=${GPU_TIMING_BUDGET:-60}
DIR=$STAGE/call$CALL
CASES=$STAGE/call1/cases
LIMIT=$((60 * 1024 * 1024))
mkdir -p "$RESULTS"
LOG=$RESULTS/log.txt
TSV=$(mktemp)
export PYTHONPATH="$PWD/python:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
staged() { [ -f "$DIR/SHA256SUMS" ]; }
json_field() { "$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
WHEEL=$(staged && json_field "$DIR/STAGE.json" wheel || echo mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl)
# run CMD...: print it; in a dry run only print it.
run() { echo "+ $*"; [ $DRY -eq 1 ] || "$@"; }

# -- the steps: each returns 0 (passed), 1 (failed) or 3 (skipped; reason in $REASON) -------------
REASON=
step_machine() {
  if [ $DRY -eq 1 ]; then
    echo "+ nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv"
    echo "+ $NVCC --version; compute-sanitizer --version; $PY -c 'import numpy, cupy'"
    return 0
  fi
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || return 1
  "$NVCC" --version | tail -2
  compute-sanitizer --version 2>&1 | tail -1
  "$PY" -c "import sys, numpy; print(sys.version.split()[0], sys.executable, 'numpy', numpy.__version__)" || return 1
  if [ "$CALL" = 1 ]; then "$PY" -c "import cupy; print('cupy', cupy.__version__)" || return 1; fi
}

step_verify() {
  if ! staged; then
    REASON="no staged layout in $DIR: run scripts/gpu_stage.sh (it downloads the ~86 MiB wheels)"
    [ $DRY -eq 1 ] && return 3
    return 1
  fi
  (cd "$DIR" && sha256sum -c --quiet SHA256SUMS) || { REASON="checksums of $DIR differ"; return 1; }
  local size
  size=$(du -sb "$DIR" | cut -f1)
  echo "$DIR: $size bytes, checksums ok"
  [ "$size" -le $LIMIT ] || { REASON="$DIR is $size bytes, over 60 MiB"; return 1; }
  local ksrc
  ksrc=$("$PY" -c 'import sys; sys.path.insert(0, "scripts"); import gpu_check; print(gpu_check.kernel_sources_hash())')
  [ "$(json_field "$DIR/STAGE.json" kernel_sources)" = "$ksrc" ] \
    || { REASON="kernels/ changed since staging: run scripts/gpu_stage.sh again"; return 1; }
  if [ "$CALL" = 1 ]; then "$PY" scripts/gpu_check.py check "$CASES" || return 1; fi
}

step_keep() {
  staged || { REASON="nothing staged"; [ $DRY -eq 1 ] && return 3; return 1; }
  [ -f "$DIR/wheel/$WHEEL.part-aa" ] || { REASON="$DIR/wheel/$WHEEL.part-aa missing"; return 1; }
  run mkdir -p "$KEEP" && run cp "$DIR/wheel/$WHEEL.part-aa" "$DIR/wheel/$WHEEL.sha256" "$KEEP/"
}

step_kernels() {
  if [ $DRY -eq 1 ]; then
    echo "+ $PY scripts/gpu_check.py run $CASES --nvcc $NVCC"
    staged || { REASON="no prepared cases (nothing staged)"; return 3; }
    "$PY" scripts/gpu_check.py check "$CASES"
    return
  fi
  "$PY" scripts/gpu_check.py run "$CASES" --nvcc "$NVCC"
}

sanitize() {  # sanitize TOOL [--small]
  local tool=$1 small=${2:-}
  local cmd=(timeout "$SAN_TIMEOUT" compute-sanitizer --tool "$tool" --error-exitcode 3)
  cmd+=("$PY" scripts/gpu_check.py run "$CASES" --nvcc "$NVCC" $small)
  if [ $DRY -eq 1 ]; then
    echo "+ ${cmd[*]}"
    "$PY" scripts/gpu_check.py --help | grep -q -- "--small" || { REASON="gpu_check.py lacks --small"; return 1; }
    return 0
  fi
  command -v compute-sanitizer >/dev/null || { REASON="compute-sanitizer is not on PATH"; return 1; }
  local out rc
  out=$("${cmd[@]}" 2>&1)
  rc=$?
  echo "$out" | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|hazard|Invalid|Barrier|Uninitialized|not supported|launches on" | head -30
  local unsupported
  unsupported=$(echo "$out" | grep -i -m1 "not supported")
  if [ -n "$unsupported" ]; then
    REASON="compute-sanitizer: $unsupported"
    return 3
  fi
  [ $rc -eq 124 ] && { REASON="timed out after ${SAN_TIMEOUT}s"; return 1; }
  [ $rc -eq 0 ] || { REASON="exit $rc"; return 1; }
}
step_racecheck() { sanitize racecheck --small; }
step_memcheck() { sanitize memcheck; }
step_synccheck() { sanitize synccheck --small; }
step_initcheck() { sanitize initcheck --small; }

step_wheel() {
  local first=$KEEP/$WHEEL.part-aa
  [ -f "$first" ] || first=$STAGE/call1/wheel/$WHEEL.part-aa
  local second=$DIR/wheel/$WHEEL.part-ab
  local mlx_whl
  mlx_whl=$(ls "$DIR"/wheel/mlx-0.32.4-*.whl 2>/dev/null)
  if ! staged; then
    REASON="nothing staged"
    [ $DRY -eq 1 ] && return 3
    return 1
  fi
  if [ ! -f "$first" ]; then
    REASON="the wheel's first part is neither in $KEEP nor in $STAGE/call1 (the machine went cold since call 1? run call 1, then call 2 at once)"
    return 1
  fi
  local tmp=/tmp/ncps_gpu_wheel
  [ $DRY -eq 1 ] && tmp=$(mktemp -d)
  mkdir -p "$tmp"
  echo "+ cat $first $second > $tmp/$WHEEL"
  cat "$first" "$second" > "$tmp/$WHEEL"
  local sums
  sums=$(cd "$DIR/wheel" && pwd)/$WHEEL.sha256
  (cd "$tmp" && sha256sum -c --quiet "$sums") || { REASON="the reassembled wheel's sha256 differs"; return 1; }
  echo "reassembled $WHEEL: sha256 ok"
  local pip=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir)
  if [ $DRY -eq 1 ]; then
    echo "+ ${pip[*]} $tmp/$WHEEL $mlx_whl"
    # The same wheels, checked for a cp312 manylinux_2_35 x86-64 interpreter without installing.
    "$PY" -m pip install --dry-run --ignore-installed --no-index --no-deps --python-version 3.12 \
      --implementation cp --platform manylinux_2_35_x86_64 --only-binary=:all: --target "$tmp/site" \
      "$tmp/$WHEEL" "$mlx_whl" | tail -1
    local rc=${PIPESTATUS[0]}
    rm -rf "$tmp"
    return "$rc"
  fi
  "${pip[@]}" "$tmp/$WHEEL" "$mlx_whl"
}

step_import() {
  local code="import mlx.core as mx, ncps; print('mlx', mx.__version__, mx.default_device(), 'cuda', mx.cuda.is_available()); print(mx.device_info()); print(ncps.kernels.kernel_backends())"
  if [ $DRY -eq 1 ]; then
    echo "+ $PY -c \"$code\""
    "$PY" -c "import ncps.backends.gpu, ncps.kernels" || return 1
    return 0
  fi
  "$PY" -c "$code"
}

step_pytest() {
  local cmd=("$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu -rs)
  if [ $DRY -eq 1 ]; then
    echo "+ NCPS_GPU_KERNELS=1 ${cmd[*]}"
    local n
    n=$("$PY" -m pytest -q -p no:cacheprovider --collect-only -m gpu tests/gpu 2>&1 | grep -c "::")
    echo "$n gpu tests collected"
    [ "$n" -gt 0 ] || { REASON="no gpu-marked test collected"; return 1; }
    return 0
  fi
  NCPS_GPU_KERNELS=1 "${cmd[@]}"
}

step_timing() {
  local cmd=("$PY" scripts/gpu_timing.py --budget "$BUDGET" --out "$RESULTS")
  if [ $DRY -eq 1 ]; then
    echo "+ ${cmd[*]}"
    "$PY" scripts/gpu_timing.py --budget "$BUDGET" --plan
    return
  fi
  timeout $((BUDGET * 3)) "${cmd[@]}"
}

# -- run the selected steps in order ---------------------------------------------------------------
main() {
status=0
echo "gpu_check: call $CALL, steps: $STEPS$([ $DRY -eq 1 ] && echo ' (dry run)'), stage $DIR"
for s in $STEPS; do
  echo
  echo "=== $s"
  REASON=
  t0=$(date +%s.%N)
  "step_$s"
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  case $rc in
    0) st=passed ;;
    3) st=skipped ;;
    *) st=failed; status=1 ;;
  esac
  [ $DRY -eq 1 ] && [ $st = passed ] && st=validated
  echo "--- $s: $st${REASON:+ ($REASON)}"
  printf '%s\t%s\t%.1f\t%s\n' "$s" "$st" "$secs" "$REASON" >> "$TSV"
done

"$PY" - "$TSV" "$RESULTS" "$CALL" "$DRY" <<'EOF'
import json, sys, time
from pathlib import Path
tsv, out, call, dry = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
steps = []
for line in Path(tsv).read_text().splitlines():
    name, status, secs, reason = line.split("\t")
    steps.append({"step": name, "status": status, "seconds": float(secs), "reason": reason})
doc = {"call": call, "dry_run": dry, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "steps": steps,
       "ok": all(s["status"] != "failed" for s in steps)}
(out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
rows = [f"| {s['step']} | {s['status']} | {s['seconds']:.1f} | {s['reason']} |" for s in steps]
title = f"# gpu_check call {call}{' (dry run)' if dry else ''}: {'ok' if doc['ok'] else 'FAILED'}"
md = [title, "", "| step | status | s | reason |", "|---|---|---|---|", *rows]
(out / "results.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
EOF
rm -f "$TSV"
echo
[ $status -eq 0 ] && echo "gpu_check: no step failed" || echo "gpu_check: FAILURES (see above and $RESULTS/log.txt)"
return $status
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
