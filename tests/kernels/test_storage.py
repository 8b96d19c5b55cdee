"""Half storage in the fused kernels (csrc/common/storage.h): the primitives read and write
bfloat16 and float16 arrays with float32 state and sums inside, so a half model's fused result is
its float32 result on the same (widened) values, rounded once; the rounding is numpy's / MLX's
round to nearest even on every kernel target (the forced targets and emulated CPUs run the same
checks through tests/platform/fused_parity.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

import ncps
from ncps import kernels
from ncps.wirings import AutoNCP
from tests.platform.fused_parity import half_mismatches, storage_mismatches

ROOT = Path(__file__).resolve().parents[2]

if not kernels.info()["extension_loaded"]:
    pytest.skip("the C++ extension is not built", allow_module_level=True)

HALF = (mx.bfloat16, mx.float16)
CFC = {
    "cfc": lambda: ncps.CfC(3, 12, backbone_units=16),
    "cfc_mixed": lambda: ncps.CfC(3, 8, backbone_units=16, mixed_memory=True),
    "cfc_wired": lambda: ncps.CfC(3, AutoNCP(10, 2, seed=1)),
}


def test_rounding_is_round_to_nearest_even():
    assert storage_mismatches() == {"bfloat16": 0, "float16": 0}


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="AVX-512 BF16 is x86-64's: one path elsewhere"
)
def test_the_integer_bfloat16_path_where_the_instruction_would_run():
    """NCPS_BF16_INSN=0 takes the integer rounding on a CPU with AVX-512 BF16 (elsewhere it is the
    only path): bit for bit round to nearest even, subnormals kept."""
    env = {**os.environ, "NCPS_BF16_INSN": "0"}
    code = (
        "import json; from ncps import kernels; from tests.platform.fused_parity import storage_mismatches;"
        "print(json.dumps([kernels.info()['bf16_rounding'], storage_mismatches()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '["integer", {"bfloat16": 0, "float16": 0}]'


def test_half_models_are_the_float32_result_rounded_once():
    x = mx.array(np.random.RandomState(0).standard_normal((21, 7, 3)).astype(np.float32))
    assert not any(half_mismatches(x).values())


def _grads(model: nn.Module, x: mx.array, r: mx.array) -> tuple[mx.array, dict]:
    """Output and parameter gradients of sum(y * r) (r is exactly y's cotangent)."""

    def loss(m, x):
        y = m(x)[0]
        return (y * r).sum(), y

    with kernels.use("fused"):
        (_, y), g = nn.value_and_grad(model, loss)(model, x)
    mx.eval(y, g)
    return y, dict(tree_flatten(g))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", CFC)
def test_cfc_half_gradients_are_the_float32_gradients_rounded(name, dtype):
    """The CfC backward keeps its float32 workspace: a half model's parameter gradients are the
    float32 gradients of the widened model (same cotangent) rounded once."""
    mx.random.seed(3)
    model = CFC[name]()
    model.set_dtype(dtype)
    rng = np.random.RandomState(1)
    x = mx.array(rng.standard_normal((5, 6, 3)).astype(np.float32)).astype(dtype)
    r = mx.array(rng.standard_normal((5, 6, model.output_size)).astype(np.float32)).astype(dtype)
    y_half, g_half = _grads(model, x, r)
    wide = CFC[name]()
    wide.update(tree_map(lambda a: a.astype(mx.float32), model.parameters()))
    y_wide, g_wide = _grads(wide, x.astype(mx.float32), r.astype(mx.float32))
    assert y_half.dtype == dtype and mx.array_equal(y_half, y_wide.astype(dtype)).item()
    for k, g in g_half.items():
        assert g.dtype == dtype, k
        assert mx.array_equal(g, g_wide[k].astype(dtype)).item(), k


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("make", [CFC["cfc_wired"], lambda: ncps.LTC(3, AutoNCP(10, 2, seed=1))], ids=["cfc", "ltc"])
def test_streaming_infer_reads_and_writes_half(make, dtype):
    """The prepared streaming step takes half x and state and returns the cell's dtype: the float32
    step of the widened values, rounded once."""
    mx.random.seed(4)
    cell = make().rnn_cell
    cell.set_dtype(dtype)
    cell.eval()
    rng = np.random.RandomState(2)
    x = mx.array(rng.standard_normal((4, 3)).astype(np.float32)).astype(dtype)
    h = mx.array(rng.standard_normal((4, cell.state_size)).astype(np.float32)).astype(dtype)
    with kernels.use("fused"):
        cell.infer(x, h, 0.5)  # prepares the step
        y, s = cell.infer(x, h, 0.5)
        assert cell._prepared is not None
        wide = make().rnn_cell
        wide.update(tree_map(lambda a: a.astype(mx.float32), cell.parameters()))
        wide.eval()
        y32, s32 = wide.infer(x.astype(mx.float32), h.astype(mx.float32), 0.5)
    assert y.dtype == s.dtype == dtype
    assert mx.array_equal(s, s32.astype(dtype)).item()
    assert mx.array_equal(y, y32.astype(dtype)).item()
