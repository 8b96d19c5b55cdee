#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer (clang) into build/asan/
# and run the fused-kernel and property tests under it, then LeakSanitizer on repeated fused calls.
# Any sanitizer report fails the script. Needs clang (14 or newer) with its runtime
# (Debian: apt-get install clang libclang-rt-14-dev) and the bootstrapped .venv.
#   bash scripts/sanitize.sh            # build + tests + leak check
#   SANITIZE_TESTS="tests/kernels/ltc" bash scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=${NCPS_VENV:-.venv}/bin/python
CXX=${SANITIZE_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
[ -n "$CXX" ] || { echo "[sanitize] clang++ not found" >&2; exit 2; }
RT=$("$CXX" -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$RT" ] || { echo "[sanitize] the ASan runtime of $CXX is missing (libclang-rt-dev)" >&2; exit 2; }
OUT=build/asan
FLAGS="-fsanitize=address,undefined -fno-sanitize=vptr,function -fno-sanitize-recover=all -fno-omit-frame-pointer -g"

echo "[sanitize] building with $CXX ($FLAGS)"
# RelWithDebInfo: no LTO (nanobind's LTO is for Release), debug info for the reports.
"$VPY" -m pip install -q --no-build-isolation --no-deps --upgrade --target "$OUT/site" \
  -Cbuild-dir="$OUT/build" -Ccmake.build-type=RelWithDebInfo \
  -Ccmake.define.CMAKE_CXX_COMPILER="$CXX" \
  -Ccmake.define.CMAKE_CXX_FLAGS="$FLAGS" \
  -Ccmake.define.CMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" . 2>&1 | grep -v "^WARNING" || true
[ -f "$OUT"/site/ncps/_ext*.so ] || { echo "[sanitize] build failed" >&2; exit 1; }

run() {  # python under the sanitizers, our instrumented build first on the path
  PYTHONPATH="$PWD/$OUT/site:$PWD" LD_PRELOAD="$RT" PYTHONMALLOC=malloc \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$@"
}
export NCPS_KERNELS=auto
echo "[sanitize] tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0 run "$VPY" - <<'PY'
import ncps, sys
assert "build/asan/site" in ncps.__file__, ncps.__file__
print("[sanitize] instrumented ncps:", ncps.__file__, "| extension:", ncps.kernels.info()["extension_loaded"])
PY
# pytest captures file descriptor 2, so the reports go to files, printed when there are any.
REPORTS=$(mktemp -d)
status=0
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:log_path=$REPORTS/asan UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan \
  PYTHONPATH="$PWD/$OUT/site:$PWD" LD_PRELOAD="$RT" PYTHONMALLOC=malloc \
  "$VPY" -m pytest -q -p no:cacheprovider -x ${SANITIZE_TESTS:-tests/kernels tests/reliability/test_properties.py} || status=$?
if ls "$REPORTS"/* >/dev/null 2>&1; then
  echo "[sanitize] reports:" >&2
  head -60 "$REPORTS"/* >&2
  exit 1
fi
[ "$status" -eq 0 ] || exit "$status"

echo "[sanitize] LeakSanitizer on repeated fused calls"
LOG=$(mktemp -d)/lsan
ASAN_OPTIONS=detect_leaks=1:log_path=$LOG:exitcode=0 run "$VPY" tests/reliability/leak_child.py
# Python and MLX keep some allocations for the process lifetime; only leaks whose stack passes
# through our extension count.
if ls "$LOG".* >/dev/null 2>&1 && grep -l "ncps::\|/csrc/" "$LOG".* >/dev/null 2>&1; then
  echo "[sanitize] leaks in ncps:" >&2
  grep -B2 -A25 "ncps::\|/csrc/" "$LOG".* | head -80 >&2
  exit 1
fi
echo "[sanitize] no sanitizer reports"
