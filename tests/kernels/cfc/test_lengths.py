"""What variable lengths need from the fused CfC primitive: the mixed-memory LSTM cell state
after every step (``cells`` ``(B, T, N)``), forward and backward, so that a layer can take each
padded sequence's final cell state at its own last step.
"""

import mlx.core as mx
import numpy as np
import pytest

import ncps
from ncps import kernels
from ncps.backends.cpu import cfc as cpu_cfc
from ncps.wirings import AutoNCP

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")


def reference_cells(cell, lstm, x, h0, c0, dt):
    """States and LSTM cells after every step, by the reference loop."""
    h, c, hs, cs = h0, c0, [], []
    for t in range(x.shape[1]):
        h, c = lstm(x[:, t], (h, c))
        h = cell.step(x[:, t], h, dt[:, t : t + 1])
        hs.append(h)
        cs.append(c)
    return mx.stack(hs, 1), mx.stack(cs, 1)


@pytest.mark.parametrize(
    "make", [lambda: ncps.CfCCell(3, 5, backbone_units=8), lambda: ncps.WiredCfCCell(3, AutoNCP(7, 2))]
)
def test_mixed_cells_after_every_step_and_their_gradient(make):
    mx.random.seed(0)
    cell = make()
    lstm = ncps.LSTMCell(3, cell.state_size)
    B, T, N = 4, 6, cell.state_size
    x, h0, c0 = mx.random.normal((B, T, 3)), mx.random.normal((B, N)), mx.random.normal((B, N))
    dt = mx.random.uniform(0.5, 1.5, (B, T))
    states, cells = cpu_cfc.cfc_sequence(cell, x, h0, dt, lstm, c0)
    ref_states, ref_cells = reference_cells(cell, lstm, x, h0, c0, dt)
    assert cells.shape == (B, T, N)
    np.testing.assert_allclose(np.array(states), np.array(ref_states), atol=1e-5)
    np.testing.assert_allclose(np.array(cells), np.array(ref_cells), atol=1e-5)

    # A cotangent on the cells of every step (the layer's gather puts one on a middle step).
    R = mx.random.normal((B, T, N))
    S = mx.random.normal((B, T, N))

    def loss(fn):
        return lambda x, h0, c0, dt: sum(((a * r).sum() for a, r in zip(fn(x, h0, c0, dt), (S, R))))

    fused = mx.grad(loss(lambda *a: cpu_cfc.cfc_sequence(cell, a[0], a[1], a[3], lstm, a[2])), argnums=[0, 1, 2, 3])
    ref = mx.grad(loss(lambda *a: reference_cells(cell, lstm, *a)), argnums=[0, 1, 2, 3])
    for g, r in zip(fused(x, h0, c0, dt), ref(x, h0, c0, dt)):
        g, r = np.array(g), np.array(r)
        assert np.abs(g - r).max() <= 1e-4 * max(1.0, np.abs(r).max())


def test_step_form_with_mixed_memory_returns_cells_shaped_as_states():
    cell = ncps.CfCCell(3, 4, backbone_units=6)
    lstm = ncps.LSTMCell(3, 4)
    x, h0, c0 = mx.random.normal((2, 3)), mx.zeros((2, 4)), mx.zeros((2, 4))
    params = cpu_cfc._unit_args(cpu_cfc.cell_units(cell))
    lp = [lstm.input_map.weight, lstm.input_map.bias, lstm.recurrent_map.weight]
    states, cells = cpu_cfc._ext.cfc_sequence(x, h0, mx.ones((2, 1)), *params, lp, c0)
    _, want_c = lstm(x, (h0, c0))
    assert states.shape == cells.shape == (2, 4)
    np.testing.assert_allclose(np.array(cells), np.array(want_c), atol=1e-6)
