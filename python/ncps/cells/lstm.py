"""The LSTM cell of the mixed-memory architecture (Lechner & Hasani 2020, "ODE-LSTM").

With ``mixed_memory=True`` a sequence layer runs this LSTM on ``(x_t, (h, c))`` first and hands
its output ``h`` to the continuous-time cell as the state, exactly as the official torch layers:

.. math::

    [i, i_g, f_g, o_g] = x W_x + b + h W_h, \\qquad
    c' = c\\,\\sigma(f_g + 1) + \\tanh(i)\\,\\sigma(i_g), \\qquad h' = \\tanh(c')\\,\\sigma(o_g)

Shapes: ``x`` ``(B, I)``, ``h`` and ``c`` ``(B, H)``.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .. import _checks


class LSTMCell(nn.Module):
    """``cell(x, (h, c)) -> (h', c')``; parameters ``input_map`` (with bias) and
    ``recurrent_map`` (without), initialised as upstream: Xavier / orthogonal, biases U(±0.1)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = _checks.integer(input_size, "input_size")
        self.hidden_size = _checks.integer(hidden_size, "hidden_size")
        self.input_map = nn.Linear(self.input_size, 4 * self.hidden_size, bias=True)
        self.recurrent_map = nn.Linear(self.hidden_size, 4 * self.hidden_size, bias=False)
        self.input_map.weight = nn.init.glorot_uniform()(self.input_map.weight)
        self.input_map.bias = mx.random.uniform(-0.1, 0.1, self.input_map.bias.shape)
        self.recurrent_map.weight = nn.init.orthogonal()(self.recurrent_map.weight)

    def __call__(self, x: mx.array, state: tuple) -> tuple:
        h, c = state
        i, ig, fg, og = mx.split(self.input_map(x) + self.recurrent_map(h), 4, axis=-1)
        c = c * mx.sigmoid(fg + 1.0) + mx.tanh(i) * mx.sigmoid(ig)
        return mx.tanh(c) * mx.sigmoid(og), c
