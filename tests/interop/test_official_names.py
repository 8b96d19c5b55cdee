"""Drop-in use: code written for the official ``ncps.torch`` 1.0.1 runs on ncps after changing the
import (and, where unavoidable, ``torch.randn``/``torch.zeros`` to their ``mx`` equivalents).

The snippets are the official package's documented examples (the docstrings of
``ncps/torch/cfc.py`` and ``ltc.py``, and the model code of the official "First steps (PyTorch)"
and "Atari behavior cloning with PyTorch" guides), otherwise verbatim; then every official keyword
name of ``CfCCell``, ``LTCCell``, ``WiredCfCCell``, ``CfC`` and ``LTC`` and of their calls.
"""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from ncps import LTC, CfC, CfCCell, LTCCell, WiredCfCCell  # was: from ncps.torch import ...
from ncps.wirings import NCP, AutoNCP


@pytest.mark.parametrize("layer", [CfC, LTC])
def test_official_docstring_example(layer):
    rnn = layer(20, 50)
    x = mx.random.normal((2, 3, 20))  # (batch, time, features)
    h0 = mx.zeros((2, 50))  # (batch, units)
    output, hn = rnn(x, h0)
    assert output.shape == (2, 3, 50) and hn.shape == (2, 50)


def test_official_ltc_wired_docstring_example():
    wiring = NCP(10, 10, 8, 6, 6, 4, 6)
    rnn = LTC(20, wiring)

    x = mx.random.normal((2, 3, 20))  # (batch, time, features)
    h0 = mx.zeros((2, 28))  # (batch, units)
    output, hn = rnn(x, h0)
    assert output.shape == (2, 3, 8) and hn.shape == (2, 28)  # 8 motor neurons


def test_official_first_steps_model():
    N = 48  # Length of the time-series
    data_x = np.stack([np.sin(np.linspace(0, 3 * np.pi, N)), np.cos(np.linspace(0, 3 * np.pi, N))], axis=1)
    data_x = np.expand_dims(data_x, axis=0).astype(np.float32)  # Add batch dimension
    data_x = mx.array(data_x)  # was: torch.Tensor(data_x)
    out_features = 1
    in_features = 2

    wiring = AutoNCP(16, out_features)  # 16 units, 1 motor neuron

    ltc_model = LTC(in_features, wiring, batch_first=True)
    prediction = np.array(ltc_model(data_x)[0])  # was: ltc_model(data_x)[0].numpy()
    assert prediction.shape == (1, 48, 1)


def test_official_atari_model():
    class ConvCfC(nn.Module):  # the guide's ConvCfC, with a stand-in for its conv block
        def __init__(self, n_actions):
            super().__init__()
            self.conv_block = nn.Linear(4 * 8 * 8, 256)
            self.rnn = CfC(256, 64, batch_first=True, proj_size=n_actions)

        def forward(self, x, hx=None):
            batch_size, seq_len = x.shape[0], x.shape[1]
            x = x.reshape(batch_size * seq_len, -1)  # merge time and batch
            x = self.conv_block(x)
            x = x.reshape(batch_size, seq_len, *x.shape[1:])
            x, hx = self.rnn(x, hx)  # hx is the hidden state of the RNN
            return x, hx

    model = ConvCfC(n_actions=4)
    pred, hx = model.forward(mx.random.normal((2, 5, 4, 8, 8)))
    pred, hx = model.forward(mx.random.normal((1, 1, 4, 8, 8)), hx[:1])  # closed loop: one frame at a time
    assert pred.shape == (1, 1, 4) and hx.shape == (1, 64)


def _same_weights(a: nn.Module, b: nn.Module) -> None:
    b.update(a.parameters())


def test_official_cfc_cell_keywords():
    cell = CfCCell(
        input_size=3,
        hidden_size=5,
        mode="no_gate",
        backbone_activation="silu",
        backbone_units=8,
        backbone_layers=2,
        backbone_dropout=0.0,
        sparsity_mask=None,
    )
    ours = CfCCell(3, 5, mode="no_gate", activation="silu", backbone_units=8, backbone_layers=2)
    _same_weights(cell, ours)
    x, h = mx.random.normal((2, 3)), mx.random.normal((2, 5))
    out, new_h = cell(input=x, hx=h, ts=0.5)
    np.testing.assert_allclose(np.array(out), np.array(ours(x, h, 0.5)[0]), rtol=1e-6, atol=1e-6)
    assert new_h.shape == (2, 5)
    with pytest.raises(TypeError, match="got both 'hidden_size'.*and 'units'"):
        CfCCell(3, 5, hidden_size=5)
    with pytest.raises(TypeError, match="got both 'backbone_activation'.*and 'activation'"):
        CfCCell(3, 5, activation="tanh", backbone_activation="relu")
    with pytest.raises(TypeError, match="got both 'hx'.*and 'state'"):
        cell(x, h, hx=h)


def test_official_ltc_and_wired_cfc_cell_keywords():
    wiring = AutoNCP(8, 2, seed=1)
    cell = LTCCell(
        wiring=wiring,
        in_features=3,
        input_mapping="affine",
        output_mapping="affine",
        ode_unfolds=6,
        epsilon=1e-8,
        implicit_param_constraints=False,
    )
    x, h = mx.random.normal((2, 3)), mx.random.normal((2, 8))
    out, state = cell(inputs=x, states=h, elapsed_time=0.7)
    np.testing.assert_allclose(np.array(out), np.array(cell(x, h, 0.7)[0]), rtol=1e-6, atol=1e-6)
    assert state.shape == (2, 8)
    with pytest.raises(TypeError, match="got both 'elapsed_time'.*and 'ts'"):
        cell(x, h, 0.7, elapsed_time=0.7)

    wired = WiredCfCCell(input_size=3, wiring=AutoNCP(8, 2, seed=1), mode="default")
    out, state = wired(input=x, hx=h, timespans=0.7)
    np.testing.assert_allclose(np.array(out), np.array(wired(x, h, 0.7)[0]), rtol=1e-6, atol=1e-6)


def test_official_layer_keywords():
    rnn = CfC(
        input_size=3,
        units=6,
        proj_size=2,
        return_sequences=True,
        batch_first=True,
        mixed_memory=False,
        mode="default",
        activation="lecun_tanh",
        backbone_units=8,
        backbone_layers=1,
        backbone_dropout=0.0,
    )
    x, h0, ts = mx.random.normal((2, 4, 3)), mx.random.normal((2, 6)), mx.full((2, 4), 0.5)
    out, hn = rnn(input=x, hx=h0, timespans=ts)
    np.testing.assert_allclose(np.array(out), np.array(rnn(x, h0, timespans=ts)[0]), rtol=1e-6, atol=1e-6)
    ltc = LTC(
        input_size=3,
        units=AutoNCP(8, 2, seed=1),
        return_sequences=False,
        batch_first=True,
        mixed_memory=False,
        input_mapping="affine",
        output_mapping="affine",
        ode_unfolds=6,
        epsilon=1e-8,
        implicit_param_constraints=True,
    )
    out, hn = ltc(input=x, hx=None, timespans=ts)
    assert out.shape == (2, 2) and hn.shape == (2, 8)
    with pytest.raises(TypeError, match="got both 'input'.*and 'x'"):
        ltc(x, input=x)
