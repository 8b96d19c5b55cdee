#!/usr/bin/env bash
# Set up everything on a fresh Linux machine (idempotent; re-running only rebuilds what changed):
#   - a virtual environment in $NCPS_VENV (default .venv) with mlx, the build tools and the test tools
#   - torch 2.13.0 (CPU) and the official ncps 1.0.1 in .oracle/ (test and benchmark oracle only)
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

stamp="$VENV/.ncps-deps-v3"
if [ ! -f "$stamp" ]; then
  echo "[bootstrap] installing dependencies"
  pip install -q "mlx[cpu]==0.32.4" "nanobind>=3,<4" "scikit-build-core>=0.10" numpy \
    pytest matplotlib networkx tqdm scikit-learn hypothesis
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

echo "[bootstrap] building and installing ncps"
pip install -q --no-build-isolation --no-deps .
"$VPY" -c "import ncps, json; i = ncps.kernels.info(); print('[bootstrap] ncps', ncps.__version__, '| extension loaded:', i['extension_loaded'], '|', i.get('simd'), '|', i.get('reason') or '')"
