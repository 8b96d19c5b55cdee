"""ncps.kernels.plan on a GPU device: GPU kernel, CPU primitive on the CPU stream, or reference, per
cell and mode, with the availability probes monkeypatched; and the whole layer path through the GPU
hooks with the C++ emulation standing in for the GPU."""

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

import ncps
import ncps.backends.gpu.cfc as gpu_cfc
import ncps.backends.gpu.ltc as gpu_ltc
from ncps import kernels
from ncps.backends.cpu import cfc as cpu_cfc
from ncps.backends.cpu import ltc as cpu_ltc
from ncps.backends.gpu import emulate
from ncps.wirings import AutoNCP
from tests.gpu.gpu_util import GRAD_TOL, OUT_TOL, assert_close, weighted_sum

pytestmark = pytest.mark.gpu_emulated


@pytest.fixture
def metal(monkeypatch):
    """A machine whose MLX has a Metal device, with the GPU kernels enabled."""
    monkeypatch.setattr(kernels, "_metal_why_not", lambda: None)
    monkeypatch.setenv("NCPS_GPU_KERNELS", "1")


def cells():
    return dict(
        ltc=ncps.LTCCell(AutoNCP(8, 2), 3),
        cfc=ncps.CfCCell(3, 4),
        cfc_gelu=ncps.CfCCell(3, 4, activation="gelu"),
        wired=ncps.WiredCfCCell(3, AutoNCP(8, 2)),
        ctrnn=ncps.CTRNNCell(3, 4),
    )


def test_without_a_gpu_backend_the_cpu_primitive_serves_gpu_calls(monkeypatch):
    monkeypatch.setattr(kernels, "_metal_why_not", lambda: "no Metal device")
    monkeypatch.setattr(kernels, "_cuda_why_not", lambda: "mlx built without CUDA")
    if not kernels.extension_available():
        pytest.skip("needs the extension")
    c = cells()
    for mode in ("auto", "fused"):  # fused mode does not raise: the CPU primitive covers the call
        with kernels.use(mode):
            p = kernels.plan(c["ltc"], stream=mx.gpu)
            assert (p.backend, p.kernel, p.stream) == ("cpu", cpu_ltc, mx.cpu)
            assert "no Metal device" in p.reason and "without CUDA" in p.reason
    with kernels.use("auto"):
        p = kernels.plan(c["ctrnn"], stream=mx.gpu)
        assert p == kernels.Plan("reference", None, p.reason) and "CTRNNCell" in p.reason
    with kernels.use("fused"), pytest.raises(NotImplementedError, match="CTRNNCell.*GPU: .*no Metal device"):
        kernels.plan(c["ctrnn"], stream=mx.gpu)


def test_plan_per_cell_on_a_gpu_device(metal):
    c = cells()
    with kernels.use("auto"):
        assert kernels.plan(c["ltc"], stream=mx.gpu) == kernels.Plan("metal", gpu_ltc)
        assert kernels.plan(c["cfc"], stream=mx.gpu) == kernels.Plan("metal", gpu_cfc)
        assert kernels.plan(c["wired"], stream=mx.gpu) == kernels.Plan("metal", gpu_cfc)
        assert kernels.plan(c["ltc"], stream=mx.cpu) == kernels.Plan("cpu", cpu_ltc, stream=mx.cpu)
        device = mx.Device(mx.gpu)
        assert kernels.plan(c["ltc"], stream=device).stream == device  # the launch runs on the call's device
        if kernels.extension_available():
            assert kernels.plan(c["cfc"], mixed_memory=True, stream=mx.gpu) == kernels.Plan("metal", gpu_cfc)
            assert kernels.plan(c["ltc"], mixed_memory=True, stream=mx.gpu) == kernels.Plan("metal", gpu_ltc)
            uncovered = [("cfc_gelu", False, cpu_cfc, "'gelu'"), ("wired", True, cpu_cfc, "mixed")]
            for name, mixed, module, why in uncovered:
                p = kernels.plan(c[name], mixed_memory=mixed, stream=mx.gpu)
                assert (p.backend, p.kernel, p.stream) == ("cpu", module, mx.cpu), name
                assert why in p.reason, (name, p.reason)
    with kernels.use("reference"):
        assert kernels.plan(c["ltc"], stream=mx.gpu) == kernels.REFERENCE


def test_cuda_probe_and_missing_extension(monkeypatch):
    monkeypatch.setattr(kernels, "_cuda_why_not", lambda: None)
    monkeypatch.setattr(kernels, "_ext", None)
    monkeypatch.setenv("NCPS_GPU_KERNELS", "1")
    c = cells()
    with kernels.use("fused"):
        assert kernels.plan(c["cfc"], stream=mx.gpu).backend == "cuda"  # the GPU kernel needs no extension
        with pytest.raises(NotImplementedError, match=r"not loaded.*GPU: a wired CfC with mixed memory"):
            kernels.plan(c["wired"], mixed_memory=True, stream=mx.gpu)
    with kernels.use("auto"):
        p = kernels.plan(c["cfc_gelu"], stream=mx.gpu)
        assert not p.fused and "'gelu'" in p.reason and "not loaded" in p.reason


def test_info_reports_each_kernel_backend(metal):
    backends = kernels.info()["kernel_backends"]
    assert set(backends) == {"cpu", "metal", "cuda"}
    assert backends["metal"] is None
    assert backends["cpu"] is None if kernels.extension_available() else "not loaded" in backends["cpu"]
    assert backends["cuda"] is None or "CUDA" in backends["cuda"]


@pytest.fixture
def emulated_gpu(monkeypatch):
    """Every call runs on a "GPU" whose backend is the C++ emulation; counts the kernel launches."""
    launches = []
    run = emulate.run
    monkeypatch.setattr(kernels, "_device_type", lambda stream: mx.gpu)
    monkeypatch.setattr(kernels, "_gpu_backend", lambda: ("emulate", None))
    monkeypatch.setenv("NCPS_GPU_KERNELS", "1")
    monkeypatch.setattr(emulate, "run", lambda spec, *a, **k: launches.append(spec.name) or run(spec, *a, **k))
    return launches


def layer_value_and_grads(layer, x, ts):
    def loss(model, x, ts):
        return weighted_sum(model(x, timespans=ts)[0])

    value, grads = nn.value_and_grad(layer, loss)(layer, x, ts)
    return value, dict(tree_flatten(grads)), mx.grad(loss, argnums=1)(layer, x, ts)


LAYERS = {
    "ltc": (lambda: ncps.LTC(3, AutoNCP(8, 2)), ["ncps_ltc_forward", "ncps_ltc_backward"]),
    "cfc": (lambda: ncps.CfC(3, 6, backbone_units=7), ["ncps_cfc_forward", "ncps_cfc_backward"]),
    "ltc_mixed": (lambda: ncps.LTC(3, AutoNCP(8, 2), mixed_memory=True), ["ncps_ltc_forward", "ncps_ltc_backward"]),
    "cfc_mixed": (
        lambda: ncps.CfC(3, 6, backbone_units=7, mixed_memory=True),
        ["ncps_cfc_forward", "ncps_cfc_backward"],
    ),
    # three units: three forward launches, then three backward launches in reverse order
    "wired_cfc": (lambda: ncps.CfC(3, AutoNCP(9, 2)), ["ncps_cfc_forward"] * 3 + ["ncps_cfc_backward"] * 3),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_forward_and_grad_through_the_gpu_path(emulated_gpu, name):
    mx.random.seed(3)
    make, launches = LAYERS[name]
    layer = make()
    x = mx.random.normal((2, 5, 3))
    ts = mx.random.uniform(0.5, 1.5, (2, 5))
    with kernels.use("fused"):
        got = layer_value_and_grads(layer, x, ts)
    assert emulated_gpu == launches * 2  # value_and_grad, then grad
    with kernels.use("reference"):
        want = layer_value_and_grads(layer, x, ts)
    assert_close(got[0], want[0], OUT_TOL, "loss")
    assert got[1].keys() == want[1].keys()
    for key, ref in want[1].items():
        assert_close(got[1][key], ref, GRAD_TOL, f"d{key}")
    assert_close(got[2], want[2], GRAD_TOL, "dx")


@pytest.mark.parametrize("name", ["ltc", "cfc_mixed"])
def test_half_layers_through_the_gpu_path(emulated_gpu, name):
    """A bfloat16 layer on the GPU hooks returns bfloat16 (README "Precision"), close to the float32
    reference on its rounded weights; a float32 input promotes to float32."""
    mx.random.seed(4)
    layer = LAYERS[name][0]()
    layer.set_dtype(mx.bfloat16)
    x = mx.random.normal((2, 5, 3)).astype(mx.bfloat16)
    with kernels.use("fused"):
        out, state = layer(x)
        promoted = layer(x.astype(mx.float32))[0]
    assert emulated_gpu
    assert out.dtype == mx.bfloat16 and (state[0] if isinstance(state, tuple) else state).dtype == mx.bfloat16
    assert promoted.dtype == mx.float32
    layer.set_dtype(mx.float32)
    with kernels.use("reference"):
        want = layer(x.astype(mx.float32))[0]
    assert_close(out.astype(mx.float32), want, 2e-2, "output")
    with kernels.use("fused"):  # a half input to a float32 layer: float32 (the kernels return x's dtype)
        assert layer(x)[0].dtype == mx.float32


def test_cell_step_through_the_gpu_path(emulated_gpu):
    cell = ncps.LTCCell(AutoNCP(8, 2), 3)
    x, h = mx.random.normal((2, 3)), 0.1 * mx.random.normal((2, 8))
    with kernels.use("fused"):
        out, state = cell(x, h, 0.7)
    assert emulated_gpu == ["ncps_ltc_forward"]
    with kernels.use("reference"):
        ref_out, ref_state = cell(x, h, 0.7)
    assert_close(state, ref_state, OUT_TOL, "state")
    assert_close(out, ref_out, OUT_TOL, "output")


def test_cell_synapse_plan_comes_from_the_wiring_once():
    """The GPU hook's synapse lists are those of the cell's masks, built on the host from its
    wiring (no device read, so mx.compile can trace the call) and once per cell."""
    cell = ncps.LTCCell(AutoNCP(12, 3), 4)
    plan = gpu_ltc.cell_synapse_plan(cell)
    want = gpu_ltc.ltc_synapse_plan(cell.solver_params())
    for name in ("rec_ptr", "rec_src", "sens_ptr", "sens_src", "rec_optr", "rec_odst", "rec_flat", "sens_flat"):
        assert mx.array_equal(getattr(plan, name), getattr(want, name)).item(), name
    assert gpu_ltc.cell_synapse_plan(cell) is plan
    assert "_gpu_synapse_plan" not in dict(tree_flatten(cell.parameters()))


@pytest.mark.parametrize("name", ["ltc", "ltc_mixed", "cfc_mixed"])
def test_variable_lengths_through_the_gpu_path(emulated_gpu, name):
    """lengths= through the GPU hooks: outputs, final state (each sequence's own last step; with
    mixed memory its own last cell state too) and gradients as on the reference path."""
    mx.random.seed(6)
    layer = LAYERS[name][0]()
    x, lengths = mx.random.normal((3, 5, 3)), mx.array([5, 2, 4])

    def run():
        def loss(m, x):
            out, state = m(x, lengths=lengths)
            state = state if isinstance(state, mx.array) else state[0] + 0.5 * state[1]
            return weighted_sum(out) + (state**2).sum()

        return nn.value_and_grad(layer, loss)(layer, x)

    with kernels.use("fused"):
        value, grads = run()
    assert emulated_gpu and all(n.startswith(f"ncps_{name[:3]}") for n in emulated_gpu)
    with kernels.use("reference"):
        ref_value, ref_grads = run()
    assert_close(value, ref_value, OUT_TOL, "loss")
    ref = dict(tree_flatten(ref_grads))
    for key, g in tree_flatten(grads):
        assert_close(g, ref[key], GRAD_TOL, f"d{key}")


def test_gpu_kernels_are_opt_in_until_validated_on_hardware(monkeypatch):
    """With a Metal device but without NCPS_GPU_KERNELS=1, a GPU call runs the CPU primitive on the
    CPU stream and the plan says why."""
    monkeypatch.setattr(kernels, "_metal_why_not", lambda: None)
    monkeypatch.delenv("NCPS_GPU_KERNELS", raising=False)
    cell = ncps.LTCCell(AutoNCP(8, 2), 3)
    p = kernels.plan(cell, stream=mx.gpu)
    assert p.backend == "cpu" and "NCPS_GPU_KERNELS=1" in p.reason
    assert kernels.info()["gpu_kernels_enabled"] is False
    monkeypatch.setenv("NCPS_GPU_KERNELS", "1")
    assert kernels.plan(cell, stream=mx.gpu).backend == "metal"


@pytest.mark.parametrize("name", ["ltc", "cfc", "wired_cfc"])
def test_an_infinite_input_gives_nan_through_the_gpu_path(emulated_gpu, name):
    """docs/reliability.md: inf in the input follows NaN's path on the GPU kernels too (the layer
    turns it into NaN before the dispatch)."""
    mx.random.seed(3)
    layer = LAYERS[name][0]()
    x = mx.random.normal((2, 5, 3))
    x = mx.where((mx.arange(5)[None, :, None] == 2) & (mx.arange(2)[:, None, None] == 0), mx.inf, x)
    with kernels.use("fused"):
        y = layer(x)[0]
    assert emulated_gpu  # the GPU kernels ran
    assert mx.isnan(y[0, 2:]).all().item() and mx.isfinite(y[0, :2]).all().item() and mx.isfinite(y[1]).all().item()
