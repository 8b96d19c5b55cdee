#!/usr/bin/env bash
# Set up everything on a fresh Linux machine (idempotent; re-running only rebuilds what changed):
#   - a virtual environment in $NCPS_VENV (default .venv) with mlx, the build tools and the test tools
#     (aeon included: its bundled UEA/UCR data sets feed the accuracy benchmark)
#   - torch 2.13.0 (CPU) and the official ncps 1.0.1 in .oracle/ (test and benchmark oracle only)
#   - JAX and Keras 3 in .peers/ (benchmark peer only: the official ncps.keras on Keras 3 + JAX)
#   - this package, built from source (C++ extension included) and installed into the venv
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${NCPS_VENV:-.venv}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
pip() { "$VPY" -m pip "$@"; }

stamp="$VENV/.ncps-deps-v7"  # bump when the list changes, so that existing venvs pick it up
if [ ! -f "$stamp" ]; then
  echo "[bootstrap] installing dependencies"
  # aeon: the UEA/UCR data sets bundled in its wheel feed the accuracy benchmark (test/bench only).
  # ruff and clang-format: the style test (tests/test_style.py); pinned, as their output changes by version.
  # ziglang and delocate: the macOS arm64 cross build and its link checks (tests/platform/test_macos.py).
  pip install -q "mlx[cpu]==0.32.4" "nanobind>=3,<4" "scikit-build-core>=0.10" numpy \
    pytest matplotlib networkx tqdm scikit-learn aeon hypothesis "ruff==0.17.6" "clang-format==23.1.5" \
    onnx onnxruntime "ziglang==0.17.1" "delocate==0.13.0"
  # atheris (fuzzing tests) has wheels for common platforms only; its tests skip without it locally.
  pip install -q atheris 2>/dev/null || echo "[bootstrap] atheris not installable here: fuzzing tests will skip"
  # torch is a test/benchmark dependency only (the official package's oracle). Prefer the CPU build.
  pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || pip install -q "torch==2.13.0"
  touch "$stamp"
fi

if [ ! -d .oracle/ncps/torch ]; then
  echo "[bootstrap] installing the official ncps 1.0.1 into .oracle/ (oracle only)"
  pip install -q --no-deps --target .oracle "ncps==1.0.1"
fi

# The strongest CPU peer of the benchmark: the official ncps.keras on Keras 3 + JAX (jax.jit).
# Its own directory, like the oracle (the official package imports as ncps); never on our path.
peers_stamp=".peers/.ncps-peers-v1"
if [ ! -f "$peers_stamp" ]; then
  echo "[bootstrap] installing jax 0.10.2 and keras 3.15.1 into .peers/ (benchmark peer only)"
  if pip install -q --target .peers "jax[cpu]==0.10.2" "keras==3.15.1"; then
    touch "$peers_stamp"
  else
    echo "[bootstrap] could not install jax/keras: the benchmark will skip the Keras 3 + JAX peer"
  fi
fi

# System tools of the test suite, from Debian's packages (only as root with apt-get, never with a
# prompt; without them those tests skip locally and fail in CI):
#   qemu-user-static, g++-aarch64-linux-gnu, binutils: tests/platform (emulated older x86-64 CPUs,
#     the aarch64 cross build run under qemu, objdump for the ISA check);
#   clang-14, libclang-rt-14-dev: the Metal front-end check (tests/gpu) and the ASan/UBSan build
#     (scripts/sanitize.sh);
#   gcc-arm-none-eabi, libnewlib-arm-none-eabi: the Cortex-M4 build of the exported C (tests/export).
#   NCPS_NO_APT=1 opts out.
if [ -z "${NCPS_NO_APT:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
  command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
  command -v objdump >/dev/null || need+=(binutils)
  command -v clang++-14 >/dev/null || need+=(clang-14)
  dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
  command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
  dpkg -s libnewlib-arm-none-eabi >/dev/null 2>&1 || need+=(libnewlib-arm-none-eabi)
  if [ ${#need[@]} -gt 0 ]; then
    echo "[bootstrap] apt-get install ${need[*]}"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
      || echo "[bootstrap] could not install ${need[*]}: the tests that need them skip locally, fail in CI"
  fi
fi

echo "[bootstrap] building and installing ncps"
pip install -q --no-build-isolation --no-deps .
"$VPY" -c "import ncps, json; i = ncps.kernels.info(); print('[bootstrap] ncps', ncps.__version__, '| extension loaded:', i['extension_loaded'], '|', i.get('simd'), '|', i.get('reason') or '')"
