"""The GPU kernels launched through MLX on a real GPU (Metal or CUDA default device), against the
pure-MLX reference. Skipped where MLX has no GPU back-end (CI, this project's Linux machines)."""

import mlx.core as mx
import pytest

from ncps.backends.gpu import default_backend, ltc_sequence_gpu, ltc_synapse_plan
from ncps.cells.ltc import SOLVER_PARAMS
from ncps.wirings import AutoNCP, FullyConnected, Random
from tests.gpu.gpu_util import GRAD_TOL, OUT_TOL, assert_close, ltc_grads, ltc_problem, reference_seq

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(default_backend(mx.gpu) is None, reason="no Metal or CUDA GPU back-end in this MLX"),
]


@pytest.fixture(autouse=True)
def gpu_kernels_enabled(monkeypatch):
    """The layers' GPU kernels are opt-in until validated on hardware: these tests are that validation."""
    monkeypatch.setenv("NCPS_GPU_KERNELS", "1")


@pytest.mark.parametrize(
    "make,I",
    [(lambda: FullyConnected(33), 5), (lambda: AutoNCP(48, 6), 12), (lambda: Random(70, 8, sparsity_level=0.7), 9)],
)
def test_ltc_on_gpu_matches_reference(make, I):
    cell, x, h0, dt = ltc_problem(make(), I, 5, 7, dt_zero=[(2, 3)])
    p = cell.solver_params()
    plan = ltc_synapse_plan(p)
    with mx.stream(mx.cpu):
        ref = reference_seq()(x, h0, dt, p)
        g_ref = ltc_grads(reference_seq(), x, h0, dt, p)
    gpu = lambda *a: ltc_sequence_gpu(*a, 6, 1e-8, plan=plan, stream=mx.gpu)  # noqa: E731
    assert_close(gpu(x, h0, dt, p), ref, OUT_TOL, "states")
    g = ltc_grads(gpu, x, h0, dt, p)
    for k, name in enumerate(("x", "h0", "dt")):
        assert_close(g[k], g_ref[k], GRAD_TOL, f"d/d{name}")
    for k in SOLVER_PARAMS:
        if not k.endswith("mask"):
            assert_close(g[3][k], g_ref[3][k], GRAD_TOL, f"d/d{k}")
    # compiled, and bit-for-bit deterministic (no atomics in the gradient)
    step = mx.compile(lambda *a: ltc_grads(gpu, *a))
    g1, g2 = step(x, h0, dt, p), step(x, h0, dt, p)
    assert mx.array_equal(g1[3]["w"], g2[3]["w"]).item()
    assert_close(g1[3]["w"], g_ref[3]["w"], GRAD_TOL, "compiled d/dw")


def test_cfc_and_layers_on_gpu_match_reference():
    """CfC (two backbone layers) and wired CfC / LTC layers through ncps.kernels.plan on the GPU."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    import ncps
    from ncps import kernels

    mx.random.seed(5)
    x, ts = mx.random.normal((4, 6, 5)), mx.random.uniform(0.3, 1.5, (4, 6))
    for layer in (ncps.CfC(5, 24, backbone_units=[32, 16]), ncps.CfC(5, AutoNCP(16, 3)), ncps.LTC(5, AutoNCP(16, 3))):
        assert kernels.plan(layer.rnn_cell, stream=mx.gpu).backend in ("metal", "cuda")

        def loss(m, x):
            return (m(x, timespans=ts)[0] ** 2).sum()

        with kernels.use("fused"), mx.stream(mx.gpu):
            value, grads = nn.value_and_grad(layer, loss)(layer, x)
        with kernels.use("reference"), mx.stream(mx.cpu):
            ref_value, ref_grads = nn.value_and_grad(layer, loss)(layer, x)
        assert_close(value, ref_value, OUT_TOL, "loss")
        ref = dict(tree_flatten(ref_grads))
        for k, g in tree_flatten(grads):
            assert_close(g, ref[k], GRAD_TOL, f"d/d{k}")


@pytest.mark.skipif(
    default_backend(mx.gpu) != "cuda", reason="N = 1024 needs CUDA's dynamic shared memory (Metal: 32 KiB)"
)
def test_ltc_n1024_in_dynamic_shared_memory_matches_reference():
    """The LTC backward at N = 1024, 6 unfolds (~82 KiB of shared memory, opted in above 48 KiB)."""
    cell, x, h0, dt = ltc_problem(FullyConnected(1024), 3, 2, 3)
    p = cell.solver_params()
    with mx.stream(mx.cpu):
        ref = reference_seq()(x, h0, dt, p)
        g_ref = ltc_grads(reference_seq(), x, h0, dt, p)
    gpu = lambda *a: ltc_sequence_gpu(*a, 6, 1e-8, stream=mx.gpu)  # noqa: E731
    assert_close(gpu(x, h0, dt, p), ref, OUT_TOL, "states")
    g = ltc_grads(gpu, x, h0, dt, p)
    for k, name in enumerate(("x", "h0")):
        assert_close(g[k], g_ref[k], GRAD_TOL, f"d/d{name}")
