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
