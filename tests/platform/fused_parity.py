"""Fused kernels = reference path, forward and gradients, on a few small LTC and CfC models, in a
fresh process: the check the ISA tests run under a forced kernel target (``NCPS_ISA``) or an
emulated CPU (qemu-user), where the test process itself cannot run.

``python -m tests.platform.fused_parity [model ...]`` (all models by default) prints one JSON line:
the kernel target the extension chose (``simd``), the compiled ones, and per model the largest normalised differences
max|fused - reference| / max|reference| of the outputs and of the parameter gradients; exit
status 1 when one is over the project's tolerances (1e-5 outputs, 1e-4 gradients).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

import ncps
from ncps import kernels
from ncps.wirings import AutoNCP

OUTPUT_TOL, GRAD_TOL = 1e-5, 1e-4

# B = 21 covers full and padded lane tiles of every width (16, 8, 4).
MODELS: dict[str, Callable[[], nn.Module]] = {
    "ltc_ncp": lambda: ncps.LTC(3, AutoNCP(10, 2)),
    "ltc_mixed": lambda: ncps.LTC(3, 8, mixed_memory=True),
    "cfc": lambda: ncps.CfC(3, 12),
    "cfc_ncp": lambda: ncps.CfC(3, AutoNCP(10, 2)),
}


def normalised_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def outputs_and_grads(model: nn.Module, x: mx.array, mode: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    def loss(m: nn.Module, x: mx.array) -> tuple[mx.array, mx.array]:
        y = m(x)[0]
        return (y * y).sum(), y

    with kernels.use(mode):
        (_, y), grads = nn.value_and_grad(model, loss)(model, x)
        mx.eval(y, grads)
    return np.array(y), {k: np.array(v) for k, v in tree_flatten(grads)}


def check(names: list[str]) -> dict:
    info = kernels.info()
    report = {"simd": info["simd"], "simd_compiled": info["simd_compiled"], "reason": info["reason"], "models": {}}
    if not info["extension_loaded"]:
        return {**report, "ok": False}
    ok = True
    x = mx.array(np.random.RandomState(0).standard_normal((21, 7, 3)).astype(np.float32))
    for name in names:
        mx.random.seed(1)
        model = MODELS[name]()
        y_f, g_f = outputs_and_grads(model, x, "fused")
        y_r, g_r = outputs_and_grads(model, x, "reference")
        out_err = normalised_error(y_f, y_r)
        grad_err = max(normalised_error(g_f[k], g_r[k]) for k in g_r)
        report["models"][name] = {"output": out_err, "grad": grad_err}
        ok = ok and out_err <= OUTPUT_TOL and grad_err <= GRAD_TOL
    report["ok"] = bool(ok)
    return report


if __name__ == "__main__":
    result = check(sys.argv[1:] or list(MODELS))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)
