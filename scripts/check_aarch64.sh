#!/usr/bin/env bash
# Cross-build the extension for aarch64 Linux and run the fused-kernel tests under qemu-user.
#
#   bash scripts/check_aarch64.sh [--install] [pytest args...]
#
# What it uses (downloads cached under .cache/aarch64/, gitignored):
#   - Debian's g++-aarch64-linux-gnu and qemu-user-static (--install: apt-get them when root);
#   - an arm64 python3.11 "sysroot": Debian arm64 packages fetched with apt-get download and
#     extracted with dpkg-deb (nothing is installed into the system);
#   - the aarch64 wheels of mlx / mlx-cpu 0.32.4, numpy and pytest from PyPI (pip --platform);
#   - the host venv (.venv) for CMake, nanobind and ninja.
# The extension is built with cmake/aarch64-linux-gnu.cmake (kernel target "neon"), installed
# into the arm64 site-packages, and the tests run under qemu-aarch64 with the arm64 python.
# mx.compile's CPU JIT runs "g++" from inside the emulated process: a g++ -> aarch64-linux-gnu-g++
# link comes first on PATH, and TMPDIR is our own (MLX caches its JIT libraries there).
# Exit status: pytest's; 2 if a prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${NCPS_AARCH64_CACHE:-$ROOT/.cache/aarch64}
HOSTPY=${NCPS_HOST_PYTHON:-$ROOT/.venv/bin/python}
MLX_VERSION=0.32.4
PYVER=3.11
INSTALL=0
if [ "${1:-}" = "--install" ]; then INSTALL=1; shift; fi
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(tests/kernels/cfc/test_fused_cfc.py tests/kernels/ltc/test_primitive.py
                                 tests/kernels/test_simd_math.py tests/kernels/test_storage.py)
log() { echo "[check_aarch64 $(date +%H:%M:%S)] $*"; }
missing() { echo "[check_aarch64] missing prerequisite: $*" >&2; exit 2; }

# ---- prerequisites ------------------------------------------------------------------------------
if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  if [ $INSTALL = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "apt-get install g++-aarch64-linux-gnu qemu-user-static"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++-aarch64-linux-gnu qemu-user-static >/dev/null
  fi
fi
command -v aarch64-linux-gnu-g++ >/dev/null || missing "aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)"
command -v qemu-aarch64-static >/dev/null || missing "qemu-aarch64-static (apt-get install qemu-user-static)"
command -v dpkg-deb >/dev/null || missing "dpkg-deb"
[ -x "$HOSTPY" ] || missing "the host venv $HOSTPY (bash scripts/bootstrap.sh)"
"$HOSTPY" -c "import nanobind, cmake" 2>/dev/null || "$HOSTPY" -c "import nanobind" || missing "nanobind in $HOSTPY"
command -v cmake >/dev/null || missing cmake
mkdir -p "$CACHE"

# ---- the arm64 python sysroot (Debian packages, extracted) ------------------------------------------
SYSROOT=$CACHE/sysroot
DEBS=(libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libuuid1 libsqlite3-0
      libncursesw6 libtinfo6 libreadline8 libgomp1 python$PYVER-minimal libpython$PYVER-minimal
      libpython$PYVER-stdlib libpython$PYVER-dev libpython$PYVER)
if [ ! -x "$SYSROOT/usr/bin/python$PYVER" ] || [ ! -f "$SYSROOT/.complete" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$(id -u)" = 0 ] || missing "the arm64 dpkg architecture (dpkg --add-architecture arm64; apt-get update)"
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  mkdir -p "$CACHE/debs" "$SYSROOT"
  log "apt-get download (arm64): ${DEBS[*]}"
  (cd "$CACHE/debs" && apt-get download -qq "${DEBS[@]/%/:arm64}" >/dev/null) \
    || missing "the arm64 packages (apt-get update after dpkg --add-architecture arm64?)"
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
  touch "$SYSROOT/.complete"
fi

# ---- the aarch64 wheels -------------------------------------------------------------------------
SITE=$CACHE/site
if [ ! -f "$SITE/.complete" ]; then
  log "pip download + unpack (aarch64, cp311): mlx[cpu]==$MLX_VERSION numpy pytest"
  rm -rf "$SITE"
  "$HOSTPY" -m pip install -q --disable-pip-version-check --target "$SITE" --only-binary=:all: \
    --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_35_aarch64 \
    --python-version $PYVER --implementation cp --abi cp311 \
    --cache-dir "$CACHE/pip" "mlx==$MLX_VERSION" "mlx-cpu==$MLX_VERSION" numpy pytest
  touch "$SITE/.complete"
fi

# ---- cross-build --------------------------------------------------------------------------------
BUILD=$CACHE/build
log "cross-building the extension (aarch64)"
NB_DIR=$("$HOSTPY" -m nanobind --cmake_dir)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" \
  -DPython_EXECUTABLE="$HOSTPY" -DPython_INCLUDE_DIR="$SYSROOT/usr/include/python$PYVER" \
  -DCMAKE_CXX_FLAGS="-isystem $SYSROOT/usr/include" \
  -DSKBUILD_SOABI=cpython-311-aarch64-linux-gnu -Dnanobind_DIR="$NB_DIR" \
  -DMLX_ROOT="$SITE/mlx/share/cmake/MLX" >"$CACHE/cmake.log" 2>&1 || { tail -30 "$CACHE/cmake.log"; exit 1; }
cmake --build "$BUILD" >"$CACHE/build.log" 2>&1 || { grep -m 20 -A5 "error" "$CACHE/build.log"; exit 1; }
rm -rf "$SITE/ncps"
cp -r "$ROOT/python/ncps" "$SITE/ncps"
cp "$BUILD"/_ext.cpython-311-aarch64-linux-gnu.so "$SITE/ncps/"
file "$SITE/ncps/_ext.cpython-311-aarch64-linux-gnu.so" 2>/dev/null || true

# ---- run the tests under qemu-user ----------------------------------------------------------------
mkdir -p "$CACHE/bin" "$CACHE/tmp"
ln -sf "$(command -v aarch64-linux-gnu-g++)" "$CACHE/bin/g++"
QEMU=(qemu-aarch64-static -L "$SYSROOT")
export PYTHONPATH=$SITE:$ROOT PYTHONDONTWRITEBYTECODE=1 TMPDIR=$CACHE/tmp PATH=$CACHE/bin:$PATH
log "under qemu: ncps.kernels.info()"
"${QEMU[@]}" "$SYSROOT/usr/bin/python$PYVER" -c \
  "import platform, ncps; i = ncps.kernels.info(); print(platform.machine(), i['extension_loaded'], i['simd'], i['simd_compiled'], i['reason']); assert i['extension_loaded'] and i['simd'] == 'neon', i"
log "under qemu: pytest ${TESTS[*]}"
"${QEMU[@]}" "$SYSROOT/usr/bin/python$PYVER" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
