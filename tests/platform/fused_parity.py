"""Fused kernels = reference path, forward and gradients, on a few small LTC and CfC models, in a
fresh process: the check the ISA tests run under a forced kernel target (``NCPS_ISA``) or an
emulated CPU (qemu-user), where the test process itself cannot run.

``python -m tests.platform.fused_parity [model ...]`` (all models by default) prints one JSON line:
the kernel target the extension chose (``simd``), the compiled ones, and per model the largest normalised differences
max|fused - reference| / max|reference| of the outputs and of the parameter gradients; exit
status 1 when one is over the project's tolerances (1e-5 outputs, 1e-4 gradients).

Half storage (csrc/common/storage.h), on the same target: the kernels' float32 -> bfloat16 /
float16 rounding against numpy's round-to-nearest-even (bit for bit, NaN as NaN; with AVX-512 BF16
subnormal inputs round to zero, the instruction's rule), and a bfloat16 / float16 model's fused
output against the float32 fused output on the same widened inputs, rounded once (bit for bit:
the kernels compute in float32 and round only what they write).
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


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even (quiet NaN)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), ((u >> 16) | 0x40).astype(np.uint16), r)


def storage_mismatches() -> dict[str, int]:
    """Values the kernels round differently from numpy (NaN payloads aside), per half type."""
    rng = np.random.RandomState(2)
    ties = ((rng.randint(0, 2**31, 4000).astype(np.uint32) & 0xFFFFE000) | 0x1000).view(np.float32)
    x = np.concatenate(
        [
            rng.standard_normal(4000).astype(np.float32) * 10,
            (rng.standard_normal(2000) * 1e-6).astype(np.float32),  # float16 subnormals
            (rng.standard_normal(2000) * 1e5).astype(np.float32),  # float16 overflow
            ties,
            np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 65519.0, 65520.0, 2.9e-8, 3.0e-8, 1e-45], np.float32),
        ]
    )
    from ncps import _ext

    subnormal_flushed = _ext.bf16_instructions()
    out = {}
    with np.errstate(over="ignore"):  # float16 overflow to inf is among the cases
        f16 = x.astype(np.float16).view(np.uint16)
    for dtype, want in (("bfloat16", bf16_bits(x)), ("float16", f16)):
        bits, back = _ext._storage_probe(x.tolist(), dtype)
        bits = np.array(bits, np.uint16)
        bad = (bits != want) & ~np.isnan(x)
        if dtype == "bfloat16" and subnormal_flushed:
            bad &= ~((np.abs(x) < np.finfo(np.float32).tiny) & ((bits & 0x7FFF) == 0))
        nan_kept = np.isnan(np.array(back, np.float32)[np.isnan(x)]).all()
        out[dtype] = int(bad.sum()) + (0 if nan_kept else 1)
    return out


def half_mismatches(x: mx.array) -> dict[str, int]:
    """Elements where a half model's fused states differ from its float32 fused states rounded: the
    wired CfC layer, and the LTC primitive on the cell's solver parameters (the LTC layer maps its
    inputs with MLX ops first, which round in the half type)."""
    from ncps.backends.cpu.ltc import ltc_sequence

    B, T = x.shape[:2]
    out = {}
    for name in ("ltc_ncp", "cfc_ncp"):
        for dtype in (mx.bfloat16, mx.float16):
            mx.random.seed(1)
            model = MODELS[name]()
            model.set_dtype(dtype)

            def states(m: nn.Module, xs: mx.array, wide: bool = False) -> mx.array:
                if name.startswith("cfc"):
                    return m(xs)[0]
                cell = m.rnn_cell  # its solver parameters (softplus, masks) as the half model makes them
                params = {k: v.astype(mx.float32) if wide else v for k, v in cell.solver_params().items()}
                h0 = mx.zeros((B, cell.state_size), xs.dtype)
                return ltc_sequence(xs, h0, mx.ones((B, T)), params, cell.ode_unfolds, cell.epsilon)

            with kernels.use("fused"):
                y_half = states(model, x.astype(dtype))
                if name.startswith("cfc"):
                    model.set_dtype(mx.float32)
                y_wide = states(model, x.astype(dtype).astype(mx.float32), wide=True).astype(dtype)
            same = np.array((y_half == y_wide) | (mx.isnan(y_half) & mx.isnan(y_wide)))
            out[f"{name}_{dtype}".replace("mlx.core.", "")] = int((~same).sum()) + int(y_half.dtype != dtype)
    return out


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
    report["storage"] = storage_mismatches()
    report["half_models"] = half_mismatches(x)
    ok = ok and not any(report["storage"].values()) and not any(report["half_models"].values())
    report["ok"] = bool(ok)
    return report


if __name__ == "__main__":
    result = check(sys.argv[1:] or list(MODELS))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)
