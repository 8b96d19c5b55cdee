"""The kernels' SIMD math (csrc/common/simd.h) at the extremes, at every vector width it runs at."""

import math
import platform

import numpy as np
import pytest

from ncps import kernels

if not kernels.info()["extension_loaded"]:
    pytest.skip("the C++ extension is not built", allow_module_level=True)

from ncps import _ext  # noqa: E402

X86 = platform.machine().lower() in ("x86_64", "amd64")
SIMD = kernels.info()["simd"]  # the kernel target running (tests/kernels/test_isa.py runs this file on each)
NAN = float("nan")
INF = float("inf")
WIDTHS = [4, 8]


def probe(fn, xs, lanes):
    return _ext._math_probe(fn, [float(x) for x in xs], lanes)


def f32(x):
    """x as the float32 the kernel receives (the reference must see the same input)."""
    return float(np.float32(x))


@pytest.mark.parametrize("lanes", WIDTHS)
def test_exp_accuracy_and_extremes(lanes):
    xs = [-87.0, -10.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 10.0, 80.0, 88.7]
    for x, y in zip(xs, probe("exp", xs, lanes)):
        assert y == pytest.approx(math.exp(f32(x)), rel=3e-7), x
    over, under, nan = probe("exp", [89.0, -100.0, NAN], lanes)
    assert over == INF  # exp(89) > FLT_MAX: overflow is +inf, not a clamped finite value
    assert under == pytest.approx(math.exp(f32(-87.3)), rel=3e-7)  # clamped: no subnormals
    assert math.isnan(nan)


@pytest.mark.parametrize("lanes", WIDTHS)
def test_exp2_extremes(lanes):
    xs = [-20.0, -0.5, 0.0, 0.5, 20.0, 127.5]
    for x, y in zip(xs, probe("exp2", xs, lanes)):
        assert y == pytest.approx(2.0**x, rel=3e-7), x
    over, under, nan = probe("exp2", [129.0, -200.0, NAN], lanes)
    assert over == INF
    # Clamped at u = -126: 2^-126 times the polynomial's 2^0 = 1 + 2^-23 (one ulp over) where
    # vscalefps (AVX-512) does not take the scaling and its underflow.
    assert 0.0 <= under <= 2.0**-126 * (1.0 + 2.0**-23)
    assert math.isnan(nan)


@pytest.mark.parametrize("lanes", WIDTHS)
@pytest.mark.parametrize("fn", ["sigmoid", "sigmoid_log2"])
def test_sigmoid_extremes(fn, lanes):
    xs = [-100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0]
    # sigmoid_log2 takes u = -z * log2(e) and returns 1 / (1 + 2^u) = sigmoid(z).
    args = xs if fn == "sigmoid" else [-x * math.log2(math.e) for x in xs]
    ys = probe(fn, args, lanes)
    for x, y in zip(xs, ys):
        assert y == pytest.approx(1.0 / (1.0 + math.exp(-x)), rel=1e-6, abs=1e-30), x
    # Saturation: exactly 1 through a division, AVX-512's 14-bit reciprocal estimate or NEON's two
    # Newton steps; one ulp below 1 through SSE/AVX's 12-bit estimate and one step (vrcp_ge1: the
    # avx2 target's 4 and 8 lanes, baseline x86-64's 4).
    rcp12 = fn == "sigmoid_log2" and (SIMD == "avx2" or (SIMD == "baseline" and lanes == 4 and X86))
    top = 1.0 - 2.0**-24 if rcp12 else 1.0
    assert ys[-1] == top and 0.0 <= ys[0] < 1e-37
    assert math.isnan(probe(fn, [NAN], lanes)[0])


@pytest.mark.parametrize("lanes", WIDTHS)
def test_tanh_extremes(lanes):
    xs = [-100.0, -8.0, -1.0, -1e-4, 0.0, 1e-4, 0.5, 3.0, 8.0, 100.0]
    for x, y in zip(xs, probe("tanh", xs, lanes)):
        assert y == pytest.approx(math.tanh(x), rel=3e-7, abs=3e-7), x
    # Saturated: the rational form's value at its clamp, within 3e-7 of +-1, odd.
    hi, lo = probe("tanh", [100.0, -100.0], lanes)
    assert hi == -lo and 1.0 - 3e-7 <= hi <= 1.0
    assert math.isnan(probe("tanh", [NAN], lanes)[0])


def test_native_width_and_bad_arguments():
    native = {"avx512": 16}.get(kernels.info().get("simd"), 8)
    assert probe("exp", [0.0], native) == [1.0]
    with pytest.raises(ValueError, match="unknown function"):
        probe("log", [1.0], 4)
    with pytest.raises(ValueError, match="lanes"):
        probe("exp", [1.0], 3)
