#!/usr/bin/env bash
# Cross-build the extension for macOS arm64 (Apple Silicon) on Linux, link it against MLX's real
# libmlx.dylib, assemble a wheel and check how it links. Nothing is executed: there is no Mac here.
#
#   bash scripts/check_macos.sh
#
# What it uses (downloads cached under build/macos/, gitignored):
#   - MLX's macOS wheels from PyPI: mlx (core.cpython-3XX-darwin.so) and mlx-metal (libmlx.dylib,
#     the C++ headers and MLX's CMake config), `pip download --platform macosx_14_0_arm64`;
#   - zig's clang (PyPI `ziglang`) as the compiler and linker, for aarch64-macos at the deployment
#     target of pyproject.toml [tool.cibuildwheel.macos] (cmake/zig-macos-arm64.cmake);
#   - the host venv (.venv): CMake, nanobind, the Python headers, macholib (PyPI `delocate`).
# The build is CMakeLists.txt itself (its APPLE branch), configured as the cibuildwheel macOS build
# configures it (build type and cmake.define of [tool.scikit-build], MACOSX_DEPLOYMENT_TARGET),
# 2 parallel jobs. The target Python version is the host venv's: its headers are the ones there are.
# Result: build/macos/dist/ncps-<version>-cp3XX-cp3XX-macosx_14_0_arm64.whl, unpacked beside MLX's
# wheels in build/macos/installed-cp3XX; last line "[check_macos] ok: <wheel>".
# Exit status: 0 ok; 1 a build or check failure; 2 a prerequisite is missing (the download included).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${NCPS_MACOS_DIR:-$ROOT/build/macos}
HOSTPY=${NCPS_HOST_PYTHON:-$ROOT/.venv/bin/python}
MLX_VERSION=0.32.4
log() { echo "[check_macos $(date +%H:%M:%S)] $*"; }
missing() { echo "[check_macos] missing prerequisite: $*" >&2; exit 2; }

# ---- prerequisites ------------------------------------------------------------------------------
[ -x "$HOSTPY" ] || missing "the host venv $HOSTPY (bash scripts/bootstrap.sh)"
"$HOSTPY" -c "import nanobind" 2>/dev/null || missing "nanobind in $HOSTPY"
"$HOSTPY" -c "import ziglang, macholib, delocate" 2>/dev/null \
  || missing "ziglang and delocate in $HOSTPY (pip install ziglang delocate; scripts/bootstrap.sh does)"
command -v cmake >/dev/null || missing cmake
command -v ninja >/dev/null || missing ninja
HELPER=("$HOSTPY" "$ROOT/scripts/macos_cross.py")
eval "$("${HELPER[@]}" config)"  # MACOSX_DEPLOYMENT_TARGET ARCH BUILD_TYPE CMAKE_DEFINES, from pyproject.toml
export MACOSX_DEPLOYMENT_TARGET
PYVER=$("$HOSTPY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PYTAG=${PYVER/./}
ZIG=$("$HOSTPY" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
PYINC=$("$HOSTPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$PYINC/Python.h" ] || missing "the Python $PYVER headers ($PYINC/Python.h)"
mkdir -p "$OUT"

# ---- MLX's macOS wheels (cached) ----------------------------------------------------------------
PLATFORM=macosx_${MACOSX_DEPLOYMENT_TARGET/./_}_$ARCH
SITE=$OUT/site-cp$PYTAG
if [ ! -f "$SITE/.complete" ]; then
  log "pip download ($PLATFORM, cp$PYTAG): mlx==$MLX_VERSION mlx-metal==$MLX_VERSION"
  rm -rf "$SITE" "$OUT/wheels-cp$PYTAG"
  "$HOSTPY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform "$PLATFORM" --python-version "$PYVER" --implementation cp --abi "cp$PYTAG" \
    --cache-dir "$OUT/pip-cache" -d "$OUT/wheels-cp$PYTAG" "mlx==$MLX_VERSION" "mlx-metal==$MLX_VERSION" \
    || missing "MLX's macOS wheels (pip download failed: no network to PyPI?)"
  mkdir -p "$SITE"
  for whl in "$OUT/wheels-cp$PYTAG"/*.whl; do "$HOSTPY" -m zipfile -e "$whl" "$SITE"; done
  touch "$SITE/.complete"
fi

# ---- cross-build: CMakeLists.txt with the zig toolchain ---------------------------------------------
STUBS=$OUT/stubs
"${HELPER[@]}" stubs "$SITE" "$STUBS"
BUILD=$OUT/cmake-cp$PYTAG
log "configuring ($BUILD_TYPE, $CMAKE_DEFINES, aarch64-macos.$MACOSX_DEPLOYMENT_TARGET, python $PYVER)"
# shellcheck disable=SC2086  # CMAKE_DEFINES: one -D per word
cmake --fresh -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" $CMAKE_DEFINES \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/zig-macos-arm64.cmake" -DNCPS_ZIG="$ZIG" -DNCPS_MACOS_STUBS="$STUBS" \
  -DPython_EXECUTABLE="$HOSTPY" -DPython_INCLUDE_DIR="$PYINC" -DSKBUILD_SOABI="cpython-$PYTAG-darwin" \
  -Dnanobind_DIR="$("$HOSTPY" -m nanobind --cmake_dir)" -DMLX_ROOT="$SITE/mlx/share/cmake/MLX" \
  >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
log "building (2 jobs; zig builds its runtime once, cached in ~/.cache/zig)"
cmake --build "$BUILD" -j 2 >"$OUT/build.log" 2>&1 \
  || { grep -v "unable to open library directory" "$OUT/build.log" | grep -m 30 -B2 -A8 -i "error" || tail -40 "$OUT/build.log"; exit 1; }
EXT=$BUILD/_ext.cpython-$PYTAG-darwin.so
[ -f "$EXT" ] || { echo "[check_macos] no $EXT after the build" >&2; exit 1; }

# ---- the wheel and its checks ---------------------------------------------------------------------
WHEEL=$("${HELPER[@]}" wheel "$SITE" "$EXT" "$OUT/dist")
log "wheel: $WHEEL"
"${HELPER[@]}" check "$SITE" "$EXT"
# delocate's view of the installed layout (MLX's wheels and ours unpacked side by side, as pip
# would install them): every library the binaries load, each with the binaries that load it.
# delocate runs `otool`, which exists only on macOS: scripts/macos_cross.py otool stands in.
INSTALLED=$OUT/installed-cp$PYTAG
rm -rf "$INSTALLED" && cp -r "$SITE" "$INSTALLED" && "$HOSTPY" -m zipfile -e "$WHEEL" "$INSTALLED"
mkdir -p "$OUT/bin"
printf '#!/bin/sh\nexec "%s" "%s" otool "$@"\n' "$HOSTPY" "$ROOT/scripts/macos_cross.py" >"$OUT/bin/otool"
chmod +x "$OUT/bin/otool"
log "delocate-listdeps --all --depending $INSTALLED"
PATH=$OUT/bin:$PATH "$HOSTPY" -c \
  'import sys; from delocate.cmd.delocate_listdeps import main; sys.argv[0] = "delocate-listdeps"; sys.exit(main())' \
  --all --depending "$INSTALLED"
echo "[check_macos] ok: $WHEEL"
