"""The continuous-time GRU of Mozer, Kazakov & Lindsey (2017), with elapsed time honoured.

Each unit keeps ``M`` traces ``ĥ_k`` that decay with time constants ``τ_k = 10^{k/2}``
(``k = 0..M-1``); the visible state is their sum ``h = Σ_k ĥ_k``. With ``z = [x, h]``:

.. math::

    r = \\mathrm{softmax}_k\\big(-(z W_r + b_r - \\ln\\tau_k)^2\\big), \\qquad
    q = \\tanh\\big([x, \\textstyle\\sum_k r_k ĥ_k] W_q + b_q\\big)

    s = \\mathrm{softmax}_k\\big(-(z W_s + b_s - \\ln\\tau_k)^2\\big), \\qquad
    ĥ'_k = \\big((1 - s_k)\\,ĥ_k + s_k\\,q\\big)\\,e^{-\\Delta t/\\tau_k}

``r`` picks the timescale a unit reads from, ``s`` the one it stores into. Shapes: ``x``
``(B, I)``; the state is the flattened traces ``(B, H·M)``; the output is ``h' = Σ_k ĥ'_k``
``(B, H)``. (The LTC repository's CT-GRU decays by ``exp(-1/ln τ_k)``, which ignores ``Δt`` and
zeroes the first trace; this is the decay of the paper.)
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .. import _checks
from ..init import glorot_linear
from .base import Cell


class CTGRUCell(Cell):
    """``cell(x, state, ts=1.0) -> (h', state')`` with ``state`` of shape ``(B, units * num_timescales)``."""

    def __init__(self, input_size: int, units: int, num_timescales: int = 8):
        super().__init__()
        input_size, units = _checks.integer(input_size, "input_size"), _checks.integer(units, "units")
        num_timescales = _checks.integer(num_timescales, "num_timescales")
        self._config = dict(input_size=input_size, units=units, num_timescales=num_timescales)
        self.input_size, self.hidden_size, self.num_timescales = int(input_size), int(units), int(num_timescales)
        H, M, I = self.hidden_size, self.num_timescales, self.input_size
        self.tau_r = glorot_linear(I + H, H * M)
        self.tau_s = glorot_linear(I + H, H * M)
        self.detect_signal = glorot_linear(I + H, H)
        self._ln_tau = mx.array([k * 0.5 * math.log(10.0) for k in range(M)])

    @property
    def state_size(self) -> int:
        return self.hidden_size * self.num_timescales

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def _scale(self, layer: nn.Linear, z: mx.array) -> mx.array:
        ln_tau = layer(z).reshape(z.shape[0], self.hidden_size, self.num_timescales)
        return mx.softmax(-mx.square(ln_tau - self._ln_tau.astype(ln_tau.dtype)), axis=-1)

    def step(self, x: mx.array, state: mx.array, ts: float | mx.array) -> mx.array:
        traces = state.reshape(state.shape[0], self.hidden_size, self.num_timescales)
        z = mx.concatenate([x, traces.sum(axis=-1)], axis=-1)
        retrieved = (self._scale(self.tau_r, z) * traces).sum(axis=-1)
        q = mx.tanh(self.detect_signal(mx.concatenate([x, retrieved], axis=-1)))[..., None]
        s = self._scale(self.tau_s, z)
        ts = ts if isinstance(ts, (int, float)) else ts[..., None]
        decay = mx.exp(-ts / mx.exp(self._ln_tau.astype(traces.dtype)))  # a constant: the state's dtype
        return (((1.0 - s) * traces + s * q) * decay).reshape(state.shape)

    def readout(self, state: mx.array) -> mx.array:
        return state.reshape(state.shape[0], self.hidden_size, self.num_timescales).sum(axis=-1)
