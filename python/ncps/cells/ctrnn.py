"""The continuous-time RNN (Funahashi & Nakamura 1993), solved with explicit Euler sub-steps.

.. math::

    \\frac{dh}{dt} = -\\frac{h}{\\tau} + \\mathrm{act}(x W_x + h W_h + b),
    \\qquad \\tau = \\mathrm{softplus}(\\tau_{raw}) > 0

Each time step of length ``Δt`` runs ``ode_unfolds`` Euler sub-steps of ``Δt / ode_unfolds``
(``Δt = 0`` leaves the state unchanged). Shapes: ``x`` ``(B, I)``, ``h`` ``(B, H)``; the output is
``h'``.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .. import _checks
from ..activations import get_activation
from ..init import glorot_linear, orthogonal_linear
from .base import Cell


class CTRNNCell(Cell):
    """``cell(x, h, ts=1.0) -> (h', h')`` with a learned per-neuron time constant ``tau``."""

    def __init__(
        self, input_size: int, units: int, activation: str = "tanh", ode_unfolds: int = 6, tau_init: float = 1.0
    ):
        super().__init__()
        input_size, units = _checks.integer(input_size, "input_size"), _checks.integer(units, "units")
        _checks.integer(ode_unfolds, "ode_unfolds", 1, _checks.MAX_ODE_UNFOLDS)
        if _checks.real(tau_init, "tau_init") <= 0:
            raise ValueError(f"tau_init must be positive, got {tau_init}")
        self._config = dict(
            input_size=input_size, units=units, activation=activation, ode_unfolds=ode_unfolds, tau_init=tau_init
        )
        self.input_size, self.hidden_size = int(input_size), int(units)
        self.activation = activation
        self._act = get_activation(activation)
        self.ode_unfolds = int(ode_unfolds)
        self.input_map = glorot_linear(self.input_size, self.hidden_size)
        self.recurrent_map = orthogonal_linear(self.hidden_size, self.hidden_size)
        self.tau = mx.full((self.hidden_size,), math.log(math.expm1(tau_init)))  # softplus(tau) = tau_init

    @property
    def state_size(self) -> int:
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def step(self, x: mx.array, h: mx.array, ts: float | mx.array) -> mx.array:
        drive = self.input_map(x)  # the input is held over the sub-steps
        decay = 1.0 / nn.softplus(self.tau)
        dt = ts / self.ode_unfolds
        for _ in range(self.ode_unfolds):
            h = h + dt * (-h * decay + self._act(drive + self.recurrent_map(h)))
        return h
