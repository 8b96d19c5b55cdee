"""16-bit storage in the GPU kernels (issue 23), checked by the C++ emulation only: per-sample
inputs and outputs stored as float16 / bfloat16 (``IOT``), state, sums and accumulation in float32.

Each kernel runs twice on the same rounded inputs: with 16-bit storage, and with float32 storage
(the inputs converted exactly). The forward outputs must then be bit-identical to the float32
kernel's outputs rounded by MLX (both round to nearest even; the float state never sees the
storage type). The backward reads the stored, rounded states where the float32 kernel reads float
states, and rounds dx / dh0 / dc0: its gradients are held to a tolerance per dtype, relative to the
largest magnitude, with the cotangents made equal (the loss multiplies by weights representable in
both types). Also: the emulation prelude's conversions against numpy's float16 and MLX's bfloat16,
bit for bit, and a bfloat16 layer reaching the kernels without a float32 round trip."""

import subprocess

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

import ncps
from ncps import kernels
from ncps.backends.gpu import cfc_sequence_gpu, emulate, ltc_sequence_gpu, ltc_synapse_plan
from ncps.backends.gpu._source import kernel_dir
from ncps.backends.ltc_args import lstm_params
from ncps.cells.cfc import CfCCell
from ncps.cells.lstm import LSTMCell
from ncps.wirings import AutoNCP, FullyConnected
from tests.gpu.gpu_util import assert_close, ltc_problem

pytestmark = pytest.mark.gpu_emulated

DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16}
# Gradient tolerance (relative to the largest magnitude): a few units of the format's rounding
# (bfloat16: 2^-8 = 3.9e-3 relative; float16: 2^-11 = 4.9e-4), since the backward recomputes every
# step from the stored, rounded states and sums products of them over the sequence.
GRAD_TOL = {"bfloat16": 1e-2, "float16": 2e-3}


# -- the CPU prelude's 16-bit types -----------------------------------------------------------------
@pytest.fixture(scope="module")
def converter(tmp_path_factory):
    """A program that converts float32 values (stdin file) to half and bfloat16 bits and every
    16-bit pattern back to float, with ncps_emu::half_t / bfloat16_t of kernels/dialect/cpu.h."""
    d = tmp_path_factory.mktemp("conv")
    src = d / "conv.cpp"
    src.write_text(
        '#include "cpu.h"\n#include <cstdio>\n#include <vector>\nint main(int, char** argv) {\n'
        '  FILE* f = std::fopen(argv[1], "rb"); std::vector<float> v(1 << 20);\n'
        "  v.resize(std::fread(v.data(), 4, v.size(), f)); std::fclose(f);\n"
        '  FILE* o = std::fopen(argv[2], "wb");\n'
        "  for (float x : v) { uint16_t h = ncps_emu::half_t(x).bits, b = ncps_emu::bfloat16_t(x).bits;\n"
        "    std::fwrite(&h, 2, 1, o); std::fwrite(&b, 2, 1, o); }\n"
        "  for (uint32_t k = 0; k < 65536; ++k) { ncps_emu::half_t h; h.bits = k; ncps_emu::bfloat16_t b; b.bits = k;\n"
        "    float fh = static_cast<float>(h), fb = static_cast<float>(b); std::fwrite(&fh, 4, 1, o);\n"
        "    std::fwrite(&fb, 4, 1, o); }\n  std::fclose(o);\n}\n"
    )
    exe = d / "conv"
    cmd = [emulate.cxx(), "-std=c++20", "-O2", "-I", str(kernel_dir() / "dialect"), str(src), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def test_emulated_16bit_conversions_round_to_nearest_even(converter, tmp_path):
    rng = np.random.default_rng(0)
    f16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):  # the NaN patterns
        halfway = (f16[:-1].astype(np.float32) + f16[1:].astype(np.float32)) / 2  # float16 ties (exact in float32)
    bf = (np.arange(65536, dtype=np.uint32) << 16).view(np.float32)
    bf_tie = (np.arange(65536, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # bfloat16 ties
    values = np.concatenate(
        [
            rng.standard_normal(20000).astype(np.float32) * np.float32(10.0) ** rng.integers(-9, 6, 20000),
            halfway[np.isfinite(halfway)],
            bf_tie[np.isfinite(bf_tie)],
            bf[np.isfinite(bf)],
            np.array([65504, 65519.99, 65520, 65536, 1e9, 2**-24, 2**-25, 3 * 2**-26, 2**-14, 0.0, -0.0], np.float32),
            np.array([np.inf, -np.inf], np.float32),
        ]
    ).astype(np.float32)
    (tmp_path / "in.bin").write_bytes(values.tobytes())
    subprocess.run([str(converter), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True)
    raw = (tmp_path / "out.bin").read_bytes()
    pairs = np.frombuffer(raw[: 4 * values.size], dtype=np.uint16).reshape(-1, 2)
    back = np.frombuffer(raw[4 * values.size :], dtype=np.float32).reshape(-1, 2)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(pairs[:, 0], values.astype(np.float16).view(np.uint16))
    want_bf = np.array(mx.array(values).astype(mx.bfloat16).view(mx.uint16))
    np.testing.assert_array_equal(pairs[:, 1], want_bf)
    np.testing.assert_array_equal(back[:, 0], f16.astype(np.float32))  # NaN compares equal to NaN here
    np.testing.assert_array_equal(back[:, 1], bf)
    nan = ncps_nan_bits(converter, tmp_path)
    assert (nan[0] & 0x7C00) == 0x7C00 and nan[0] & 0x3FF and (nan[1] & 0x7F80) == 0x7F80 and nan[1] & 0x7F


def ncps_nan_bits(converter, tmp_path) -> tuple:
    (tmp_path / "nan.bin").write_bytes(np.array([np.nan], np.float32).tobytes())
    subprocess.run([str(converter), str(tmp_path / "nan.bin"), str(tmp_path / "nan.out")], check=True)
    return tuple(np.frombuffer((tmp_path / "nan.out").read_bytes()[:4], dtype=np.uint16))


# -- kernels: 16-bit storage against float32 storage on the same rounded inputs ---------------------
def _bits(a: mx.array) -> np.ndarray:
    return np.array(a.view(mx.uint16))


def _grads(fn, args: tuple, weights):
    """Gradients w.r.t. every argument (a tuple of arrays and parameter dicts) of
    ``sum(outputs . weights)``, each output as float32."""

    def loss(*a):
        outs = fn(*a)
        outs = outs if isinstance(outs, tuple) else (outs,)
        return sum((o.astype(mx.float32) * w).sum() for o, w in zip(outs, weights))

    return mx.grad(loss, argnums=tuple(range(len(args))))(*args)


def _weights(shapes, dtype):
    """Per-element loss weights representable in ``dtype``, so both runs get the same cotangents."""
    out = []
    for k, shape in enumerate(shapes):
        n = int(np.prod(shape))
        w = mx.sin(mx.arange(n, dtype=mx.float32) + k).reshape(shape) + 0.5
        out.append(w.astype(dtype).astype(mx.float32))
    return out


def _compare(fn, half_args, f32_args, dtype_name, what):
    """Forward bit-identity after rounding, and every gradient within GRAD_TOL[dtype]."""
    dtype = DTYPES[dtype_name]
    got, want = fn(*half_args), fn(*f32_args)
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == dtype and w.dtype == mx.float32, (g.dtype, w.dtype)
        np.testing.assert_array_equal(_bits(g), _bits(w.astype(dtype)), err_msg=f"{what}: output {k}")
    weights = _weights([w.shape for w in want], dtype)
    g_half, g_f32 = _grads(fn, half_args, weights), _grads(fn, f32_args, weights)
    for k, (gh, gf) in enumerate(zip(g_half, g_f32)):
        if isinstance(gf, dict):
            for name in gf:
                assert_close(gh[name].astype(mx.float32), gf[name], GRAD_TOL[dtype_name], f"{what}: d{name}")
        else:
            assert gh.dtype == half_args[k].dtype
            assert_close(gh.astype(mx.float32), gf, GRAD_TOL[dtype_name], f"{what}: d(argument {k})")


def _rounded(dtype, *arrays):
    """``(half, float32)`` copies of ``arrays``: rounded to ``dtype``, and that rounding in float32."""
    half = tuple(a.astype(dtype) for a in arrays)
    return half, tuple(a.astype(mx.float32) for a in half)


CFC_CASES = [
    ("default-2layers", dict(backbone_units=[7, 5]), False, 4),
    ("pure-nobackbone", dict(mode="pure", backbone_layers=0), False, 8),
    ("no_gate-mixed", dict(mode="no_gate", backbone_units=6), True, 4),
]


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("case", CFC_CASES, ids=[c[0] for c in CFC_CASES])
def test_cfc_16bit_storage_matches_float32_kernel(case, dtype_name):
    _, kw, mixed, threads = case
    mx.random.seed(3)
    cell = CfCCell(5, 9, **kw)
    B, T = 3, 5
    x, h0, c0 = mx.random.normal((B, T, 5)), 0.5 * mx.random.normal((B, 9)), 0.5 * mx.random.normal((B, 9))
    dt = mx.random.uniform(0.2, 1.5, (B, T))
    lstm = LSTMCell(5, 9) if mixed else None
    if mixed:
        half, f32 = _rounded(DTYPES[dtype_name], x, h0, c0)
        fn = lambda x, h0, c0, dt: cfc_sequence_gpu(  # noqa: E731
            cell, x, h0, dt, lstm=lstm, c0=c0, backend="emulate", threads=threads
        )
        _compare(fn, (*half, dt), (*f32, dt), dtype_name, "cfc mixed")
    else:
        half, f32 = _rounded(DTYPES[dtype_name], x, h0)
        fn = lambda x, h0, dt: cfc_sequence_gpu(cell, x, h0, dt, backend="emulate", threads=threads)  # noqa: E731
        _compare(fn, (*half, dt), (*f32, dt), dtype_name, "cfc")
    # the parameters' gradients (float32 parameters, 16-bit per-sample arrays)
    weights = _weights([(B, T, 9)], DTYPES[dtype_name])

    def param_grads(x, h0):
        def loss(m):
            out = cfc_sequence_gpu(m, x, h0, dt, backend="emulate", threads=threads)
            return (out.astype(mx.float32) * weights[0]).sum()

        return dict(tree_flatten(nn.value_and_grad(cell, loss)(cell)[1]))

    gh, gf = param_grads(*half[:2]), param_grads(*f32[:2])
    assert gh.keys() == gf.keys()
    for name in gf:
        assert_close(gh[name], gf[name], GRAD_TOL[dtype_name], f"cfc d{name}")


LTC_CASES = [("autoncp10", lambda: AutoNCP(10, 2), False), ("fc7-mixed", lambda: FullyConnected(7), True)]


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("case", LTC_CASES, ids=[c[0] for c in LTC_CASES])
def test_ltc_16bit_storage_matches_float32_kernel(case, dtype_name):
    _, make, mixed = case
    cell, x, h0, dt = ltc_problem(make(), 3, 2, 4, dt_zero=[(1, 2)])
    p = cell.solver_params()
    plan = ltc_synapse_plan(p)
    dtype = DTYPES[dtype_name]
    if mixed:
        lp = lstm_params(LSTMCell(3, cell.state_size))
        c0 = 0.3 * mx.random.normal(h0.shape)
        half, f32 = _rounded(dtype, x, h0, c0)

        def fn(x, h0, c0, dt, p):
            return ltc_sequence_gpu(
                x, h0, dt, p, 3, 1e-8, plan=plan, lstm_input=x, lstm=lp, c0=c0, backend="emulate", threads=4
            )

        _compare(fn, (*half, dt, p), (*f32, dt, p), dtype_name, "ltc mixed")
    else:
        half, f32 = _rounded(dtype, x, h0)
        fn = lambda x, h0, dt, p: ltc_sequence_gpu(x, h0, dt, p, 3, 1e-8, plan=plan, backend="emulate", threads=4)  # noqa: E731
        _compare(fn, (*half, dt, p), (*f32, dt, p), dtype_name, "ltc")


def test_bfloat16_layer_reaches_the_kernels_in_bfloat16(monkeypatch):
    """A bfloat16 CfC layer on the (emulated) GPU: every launch stores bfloat16 (no float32 round
    trip at the boundary), and its outputs equal the float32 kernel's on the same rounded inputs,
    rounded."""
    seen = []
    run = emulate.run
    monkeypatch.setattr(kernels, "_device_type", lambda stream: mx.gpu)
    monkeypatch.setattr(kernels, "_gpu_backend", lambda: ("emulate", None))
    monkeypatch.setenv("NCPS_GPU_KERNELS", "1")
    monkeypatch.setattr(
        emulate, "run", lambda spec, i, s, t, *a, **k: seen.append((spec.name, t["IOT"])) or run(spec, i, s, t, *a, **k)
    )
    mx.random.seed(0)
    layer = ncps.CfC(3, 6, backbone_units=7)
    layer.set_dtype(mx.bfloat16)
    x = mx.random.normal((2, 4, 3)).astype(mx.bfloat16)
    with kernels.use("fused"):
        out = layer(x)[0]
        mx.eval(mx.grad(lambda x: layer(x)[0].astype(mx.float32).sum())(x))
    assert out.dtype == mx.bfloat16 and {name for name, _ in seen} == {"ncps_cfc_forward", "ncps_cfc_backward"}
    assert {iot for _, iot in seen} == {"bfloat16"}
