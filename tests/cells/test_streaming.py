"""Streaming inference: ``cell.infer`` computes one step immediately and equals ``cell(...)``."""

import mlx.core as mx
import numpy as np
import pytest

import ncps
from ncps import CfCCell, LTCCell, WiredCfCCell, kernels
from ncps.wirings import NCP, AutoNCP

CELLS = {
    "cfc_default": lambda: CfCCell(5, 8),
    "cfc_pure_deep": lambda: CfCCell(5, 8, mode="pure", backbone_units=[16, 12], activation="gelu"),
    "cfc_no_gate_masked": lambda: CfCCell(5, 6, mode="no_gate", backbone_layers=0, sparsity_mask=np.ones((11, 6))),
    "cfc_seed_style": lambda: CfCCell(wiring=AutoNCP(12, 3), input_size=5, backbone_layers=0, backbone_units=0),
    "wired": lambda: WiredCfCCell(5, NCP(4, 3, 2, 2, 2, 2, 2)),
    "ltc": lambda: LTCCell(AutoNCP(10, 2), in_features=5),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_infer_equals_a_cell_call_over_a_control_loop(name):
    mx.random.seed(0)
    cell = CELLS[name]()
    x = mx.random.normal((6, 3, 5))
    h_ref = h = mx.random.normal((3, cell.state_size))
    for t in range(6):
        ts = mx.array([0.5, 1.0, 2.0]) if t % 2 else 0.8
        with kernels.use("reference"):
            y_ref, h_ref = cell(x[t], h_ref, ts)
        y, h = cell.infer(x[t], h, ts)
        assert y.shape == y_ref.shape and h.shape == h_ref.shape
        assert float(mx.max(mx.abs(y - y_ref))) <= 1e-5
        assert float(mx.max(mx.abs(h - h_ref))) <= 1e-5


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
def test_infer_uses_the_immediate_kernel(monkeypatch):
    from ncps.cells import cfc_fused

    calls = []
    real = cfc_fused.infer
    monkeypatch.setattr(cfc_fused, "infer", lambda *a, **k: calls.append(1) or real(*a, **k))
    cell = CfCCell(4, 6)
    cell.infer(mx.zeros((1, 4)), mx.zeros((1, 6)))
    assert calls == [1]
    with kernels.use("reference"):
        cell.infer(mx.zeros((1, 4)), mx.zeros((1, 6)))
    assert calls == [1]


def test_infer_rejects_bad_input():
    cell = CfCCell(4, 6)
    with pytest.raises(ValueError, match=r"state must have shape \(batch, state_size\) = \(1, 6\)"):
        cell.infer(mx.zeros((1, 4)), mx.zeros((1, 5)))
    with pytest.raises(ValueError, match="input_size"):
        cell.infer(mx.zeros((1, 3)), mx.zeros((1, 6)))
    if kernels.extension_available():
        with pytest.raises(ValueError, match="readout columns"):
            ncps.cells.cfc_fused.infer(cell, mx.zeros((1, 4)), mx.zeros((1, 6)), 1.0, (4, 5))


LTC_CASES = {
    "ncp_affine": lambda: LTCCell(AutoNCP(10, 2), in_features=5),
    "fc_linear_none": lambda: LTCCell(ncps.wirings.FullyConnected(7), in_features=5, input_mapping="linear",
                                      output_mapping=None),
    "fc_none_linear_implicit": lambda: LTCCell(ncps.wirings.FullyConnected(6, output_dim=3), in_features=5,
                                               input_mapping=None, output_mapping="linear",
                                               implicit_param_constraints=True),
    "ncp_implicit_unfolds": lambda: LTCCell(NCP(4, 3, 2, 2, 2, 2, 2), in_features=5, ode_unfolds=3,
                                            implicit_param_constraints=True, epsilon=1e-3),
}


@pytest.mark.parametrize("name", sorted(LTC_CASES))
@pytest.mark.parametrize("ts", ["zero", "scalar", "per_sample"])
def test_ltc_infer_equals_the_reference_step(name, ts):
    """Wirings, both mappings, both constraint modes, Δt = 0, a float and per-sample (incl. 0)."""
    mx.random.seed(1)
    cell = LTC_CASES[name]()
    # Parameters away from their defaults, so the mappings and constraints matter.
    cell.update({k: v + 0.3 * mx.random.normal(v.shape) for k, v in cell.trainable_parameters().items()})
    dt = {"zero": 0.0, "scalar": 0.7, "per_sample": mx.array([[0.5], [0.0], [2.0], [1.0]])}[ts]
    x = mx.random.normal((5, 4, 5))
    h_ref = h = mx.random.normal((4, cell.state_size)) * 0.5
    for t in range(5):
        with kernels.use("reference"):
            y_ref, h_ref = cell(x[t], h_ref, dt)
        y, h = cell.infer(x[t], h, dt)
        assert y.shape == y_ref.shape == (4, cell.output_size) and h.shape == h_ref.shape
        np.testing.assert_allclose(np.array(y), np.array(y_ref), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.array(h), np.array(h_ref), rtol=1e-5, atol=1e-5)
    if ts == "zero":
        np.testing.assert_array_equal(np.array(h), np.array(h_ref))


def _assert_infer_sees_change(cell, x, h, y0):
    """After the parameters changed, ``infer`` equals the reference step and differs from ``y0``
    (its output before the change)."""
    y1, h1 = cell.infer(x, h)
    with kernels.use("reference"):
        y_ref, h_ref = cell(x, h)
    np.testing.assert_allclose(np.array(y1), np.array(y_ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(h1), np.array(h_ref), rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.array(y0), np.array(y1))


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
def test_ltc_infer_uses_the_immediate_kernel_and_sees_new_parameters(monkeypatch):
    from ncps.cells import ltc_fused

    calls = []
    real = ltc_fused.infer
    monkeypatch.setattr(ltc_fused, "infer", lambda *a, **k: calls.append(1) or real(*a, **k))
    mx.random.seed(2)
    cell = LTCCell(AutoNCP(8, 2), in_features=3)
    x, h = mx.random.normal((1, 3)), mx.random.normal((1, 8)) * 0.1
    y0, _ = cell.infer(x, h)
    assert calls == [1]
    # The kernel caches the prepared parameters: replacing one (as an optimizer step or
    # apply_weight_constraints does) must be seen by the next step.
    cell.output_b = cell.output_b + 1.0
    cell.w = cell.w * 2.0
    _assert_infer_sees_change(cell, x, h, y0)


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
def test_ltc_step_now_rejects_bad_shapes():
    cell = LTCCell(AutoNCP(8, 2), in_features=3)
    params = [cell.get(k) for k in ncps.cells.ltc_fused._RAW_PARAMS]
    ext = kernels._ext
    with pytest.raises(ValueError, match=r"dt must have shape \(B, 1\) = \(2, 1\)"):
        ext.ltc_step_now(mx.zeros((2, 3)), mx.zeros((2, 8)), mx.ones((2,)), params, None, None, None, None, 2, 6,
                         1e-8, False)  # fmt: skip
    with pytest.raises(ValueError, match=r"sensory_mu must have shape \(I, N\) = \(3, 8\)"):
        bad = list(params)
        bad[2] = mx.zeros((4, 8))
        ext.ltc_step_now(mx.zeros((1, 3)), mx.zeros((1, 8)), mx.ones((1, 1)), bad, None, None, None, None, 2, 6,
                         1e-8, False)  # fmt: skip
    with pytest.raises(ValueError, match=r"output_w must have shape \(motor,\) = \(2,\)"):
        ext.ltc_step_now(mx.zeros((1, 3)), mx.zeros((1, 8)), mx.ones((1, 1)), params, None, None, mx.ones((3,)), None,
                         2, 6, 1e-8, False)  # fmt: skip


@pytest.mark.parametrize("name", ["cfc_default", "wired"])
def test_cfc_infer_sees_replaced_parameters(name):
    """cfc_step_now caches its checked plan by the parameter arrays' identities: new arrays (an
    optimizer step, load_weights) must be used by the next step."""
    mx.random.seed(3)
    cell = CELLS[name]()
    x, h = mx.random.normal((2, 5)), mx.random.normal((2, cell.state_size))
    y0, _ = cell.infer(x, h)
    from mlx.utils import tree_map

    cell.update(tree_map(lambda v: v * 1.5, cell.trainable_parameters()))
    _assert_infer_sees_change(cell, x, h, y0)
