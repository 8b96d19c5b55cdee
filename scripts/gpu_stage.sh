#!/usr/bin/env bash
# Stage the GPU machine's two calls (no GPU needed; kernels/README.md "First hardware run").
#
#   bash scripts/gpu_stage.sh [--out DIR]      (default DIR: build/gpu_stage)
#
# One call to the GPU machine carries at most 64 MiB (working tree + carried paths), and the
# mlx-cuda-13 wheel alone is ~86 MiB, so the run is split in two calls issued back to back while
# the machine is warm (30 s):
#   DIR/call1/  cases/      the prepared kernel cases (scripts/gpu_check.py prepare: MLX's exact
#                           cuda_kernel translation units with its utils.cuh prelude, inputs, the
#                           emulation's outputs), useful alone: no MLX needed
#               wheel/      the first part of the mlx-cuda-13 wheel (kept under /tmp there by call 1)
#   DIR/call2/  wheel/      the second part, the mlx wheel (cp312) and the whole wheel's sha256
#   each with STAGE.json (commit, kernel-source hash, wheel and parts) and SHA256SUMS.
# The scripts and tests travel with the working tree (scripts/gpu_check.sh, gpu_check.py,
# gpu_timing.py, tests/gpu). Each call folder is kept at most 60 MiB and, with the tracked files,
# under 64 MiB. The wheels are cached in build/gpu_wheels/ (scripts/gpu_prelude.py download).
# Environment: PYTHON (default .venv/bin/python, else python3) with this package and mlx.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=build/gpu_stage
while [ $# -gt 0 ]; do
  case $1 in
    --out) STAGE=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WHEELS=build/gpu_wheels
PRELUDE=build/mlx_cuda_prelude/0.32.4
LIMIT=$((60 * 1024 * 1024))
TREE_LIMIT=$((64 * 1024 * 1024))

"$PY" scripts/gpu_prelude.py download "$WHEELS"
CUDA_WHL=$(ls "$WHEELS"/mlx_cuda_13-0.32.4-*.whl)
MLX_WHL=$(ls "$WHEELS"/mlx-0.32.4-cp312-*.whl)
"$PY" scripts/gpu_prelude.py extract "$CUDA_WHL" "$PRELUDE"

rm -rf "$STAGE"
mkdir -p "$STAGE/call1/wheel" "$STAGE/call2/wheel"
PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH} "$PY" scripts/gpu_check.py prepare "$STAGE/call1/cases" --prelude "$PRELUDE"

# Split the CUDA wheel so that both calls carry about the same: call 1 also carries the cases,
# call 2 the mlx wheel.
name=$(basename "$CUDA_WHL")
whl_size=$(stat -c %s "$CUDA_WHL")
cases_size=$(du -sb "$STAGE/call1/cases" | cut -f1)
mlx_size=$(stat -c %s "$MLX_WHL")
part1=$(((whl_size + mlx_size - cases_size + 1) / 2))
[ "$part1" -gt 0 ] || part1=1
head -c "$part1" "$CUDA_WHL" > "$STAGE/call1/wheel/$name.part-aa"
tail -c +$((part1 + 1)) "$CUDA_WHL" > "$STAGE/call2/wheel/$name.part-ab"
cp "$MLX_WHL" "$STAGE/call2/wheel/"
whl_sha=$(sha256sum "$CUDA_WHL" | cut -d' ' -f1)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
ksrc=$("$PY" -c 'import sys; sys.path.insert(0, "scripts"); import gpu_check; print(gpu_check.kernel_sources_hash())')
for call in 1 2; do
  d=$STAGE/call$call
  echo "$whl_sha  $name" > "$d/wheel/$name.sha256"
  cat > "$d/STAGE.json" <<EOF
{"call": $call, "commit": "$commit", "kernel_sources": "$ksrc", "wheel": "$name", "wheel_sha256": "$whl_sha",
 "parts": ["$name.part-aa", "$name.part-ab"], "mlx_wheel": "$(basename "$MLX_WHL")"}
EOF
  (cd "$d" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
done

tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
status=0
for call in 1 2; do
  size=$(du -sb "$STAGE/call$call" | cut -f1)
  awk -v c="$call" -v d="$STAGE/call$call" -v s="$size" -v t="$tracked" \
    'BEGIN { printf "call %s: %s (%d bytes = %.1f MiB; with the tracked files %.1f MiB)\n", c, d, s, s / 1048576, (s + t) / 1048576 }'
  if [ "$size" -gt "$LIMIT" ] || [ $((size + tracked)) -gt "$TREE_LIMIT" ]; then
    echo "gpu_stage: call $call is over the limit (60 MiB staged, 64 MiB with the working tree)" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "staged in $STAGE; check with: bash scripts/gpu_check.sh --dry-run --call 1 (and --call 2)"
exit $status
