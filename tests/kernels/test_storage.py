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


# A half CfC saves its activations in its own type, and a bfloat16 one keeps the gradients of
# every step's activations in bfloat16 too (csrc/cfc/problem.h: Plan::act, Plan::grads), so its
# gradients are not the float32 ones rounded once. Relative (Frobenius) error against the float32
# gradients of the widened model, worst over six seeds, bfloat16 / float16: all parameters
# together 4.4e-3 / 4.2e-4 (dense), 3.7e-3 / 4.3e-4 (mixed), 9.6e-3 / 1.2e-3 (the 10-neuron
# wiring); one parameter at worst 6.3e-3 / 6.6e-4 (dense, mixed), 3.5e-2 / 2.9e-3 (the 10-neuron
# wiring's time-head biases: small sums whose terms cancel); CfC(16, AutoNCP(64, 8)) 5.6e-3 /
# 5.8e-4 for every parameter.
GRAD_TOLERANCE = {mx.bfloat16: 1.5e-2, mx.float16: 2e-3}  # all parameters together
GRAD_TOLERANCE_ONE = {mx.bfloat16: 5e-2, mx.float16: 6e-3}  # any single parameter
GRAD_TOLERANCE_USUAL = {mx.bfloat16: 1e-2, mx.float16: 1.5e-3}  # each parameter of CfC(16, AutoNCP(64, 8))


def _relative(a: mx.array, b: mx.array) -> float:
    a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _half_and_wide(make, dtype, shape: tuple[int, int, int], seed: int) -> tuple:
    mx.random.seed(seed)
    model = make()
    model.set_dtype(dtype)
    rng = np.random.RandomState(seed)
    x = mx.array(rng.standard_normal(shape).astype(np.float32)).astype(dtype)
    r = mx.array(rng.standard_normal((*shape[:2], model.output_size)).astype(np.float32)).astype(dtype)
    y_half, g_half = _grads(model, x, r)
    wide = make()
    wide.update(tree_map(lambda a: a.astype(mx.float32), model.parameters()))
    y_wide, g_wide = _grads(wide, x.astype(mx.float32), r.astype(mx.float32))
    return y_half, g_half, y_wide, g_wide


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", CFC)
def test_cfc_half_gradients_agree_with_float32(name, dtype):
    """A half model's outputs are the float32 outputs rounded once, bit for bit; its gradients
    (in its dtype) agree with the float32 gradients of the widened model within the dtype's
    tolerance."""
    for seed in range(3):
        y_half, g_half, y_wide, g_wide = _half_and_wide(CFC[name], dtype, (5, 6, 3), seed)
        assert y_half.dtype == dtype and mx.array_equal(y_half, y_wide.astype(dtype)).item()
        assert g_half.keys() == g_wide.keys()
        for k, g in g_half.items():
            assert g.dtype == dtype, k
            assert _relative(g, g_wide[k]) < GRAD_TOLERANCE_ONE[dtype], (k, seed)
        every = mx.concatenate([g.reshape(-1) for g in g_half.values()])
        assert _relative(every, mx.concatenate([g_wide[k].reshape(-1) for k in g_half])) < GRAD_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", HALF)
def test_cfc_half_gradients_of_a_usual_model(dtype):
    _, g_half, _, g_wide = _half_and_wide(lambda: ncps.CfC(16, AutoNCP(64, 8)), dtype, (16, 50, 16), 0)
    worst = max(_relative(g, g_wide[k]) for k, g in g_half.items())
    assert worst < GRAD_TOLERANCE_USUAL[dtype]


@pytest.mark.parametrize("name", ["cfc", "cfc_wired"])
def test_cfc_half_model_saves_half_the_activations(name):
    """The memory a forward under a gradient leaves for its backward (states and saved
    activations, 2.3 KB per row-step in float32 for CfC(16, 64)'s workspace) is about halved in
    bfloat16 (0.62x: the input's transposed copy and the elapsed times stay float32)."""
    make = {"cfc": lambda: ncps.CfC(16, 64), "cfc_wired": lambda: ncps.CfC(16, AutoNCP(64, 8))}[name]

    def saved_bytes(dtype) -> int:
        mx.random.seed(0)
        model = make()
        model.set_dtype(dtype)
        x = mx.random.normal((32, 100, 16)).astype(dtype)
        mx.eval(model.parameters(), x)
        cot = mx.zeros((32, 100, model.output_size), dtype)
        with kernels.use("fused"):
            kernels.clear_cache()
            before = mx.get_active_memory()
            mx.reset_peak_memory()
            y, _ = mx.vjp(lambda a: [model(a)[0]], [x], [cot])
            mx.eval(y)
            return mx.get_peak_memory() - before

    assert saved_bytes(mx.bfloat16) < 0.7 * saved_bytes(mx.float32)


@pytest.mark.parametrize("name,share", [("cfc", 0.7), ("cfc_wired", 0.7), ("ltc", 0.9)])
def test_half_training_step_allocates_less(name, share):
    """A bfloat16 forward+backward (with a contiguous cotangent, as a loss on the outputs makes)
    allocates less than a float32 one: the saved activations and the CfC's per-step gradients are
    bfloat16, and no backward widens a half sequence (saved states, cotangent, input) into a
    float32 copy of it. Measured 0.61x (CfC, wired CfC) and 0.81x (LTC)."""
    make = {
        "cfc": lambda: ncps.CfC(16, 64),
        "cfc_wired": lambda: ncps.CfC(16, AutoNCP(64, 8)),
        "ltc": lambda: ncps.LTC(16, AutoNCP(64, 8)),
    }[name]

    def step_bytes(dtype) -> int:
        mx.random.seed(0)
        model = make()
        model.set_dtype(dtype)
        x = mx.random.normal((32, 100, 16)).astype(dtype)
        r = mx.random.normal((32, 100, model.output_size)).astype(dtype)
        mx.eval(model.parameters(), x, r)
        step = nn.value_and_grad(model, lambda m, inp: (m(inp)[0] * r).sum())
        with kernels.use("fused"):
            mx.eval(step(model, x))
            kernels.clear_cache()
            before = mx.get_active_memory()
            mx.reset_peak_memory()
            mx.eval(step(model, x))
            return mx.get_peak_memory() - before

    assert step_bytes(mx.bfloat16) < share * step_bytes(mx.float32)


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
