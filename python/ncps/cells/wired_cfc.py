"""The wired CfC: one sparse, backbone-free CfC layer per layer of a wiring.

For an NCP wiring the layers are inter → command → motor. Layer ``l`` is a :class:`CfCCell`
without backbone whose ``ff1``/``ff2`` weights are masked by the wiring's feed-forward block
(sensory → inter for ``l = 0``, layer ``l-1`` → layer ``l`` otherwise) stacked over a dense
intra-layer recurrent block, exactly as the official ``WiredCfCCell``:

.. math::

    h'_l = \\mathrm{CfC}_l\\big([\\,h'_{l-1}, h_l\\,], \\Delta t\\big), \\qquad h'_{-1} = x

The state is ``[inter | command | motor]`` (``(B, N)``), the output the last layer's state
``(B, M)``.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from .. import _checks
from .._aliases import official_names
from ..backends.cpu import cfc as cpu_cfc
from ..backends.gpu import cfc as gpu_cfc
from ..wirings import Wiring
from .base import Cell, WiredSizes, built_copy
from .cfc import MODES, CfCCell


class WiredCfCCell(WiredSizes, Cell):
    """A CfC cell on a wiring: ``cell(x, state, ts=1.0) -> (motor_output, new_state)``.

    Args:
        input_size: input features (optional if the wiring is built). The cell keeps its own
            built copy of the wiring.
        wiring: the connectivity (``NCP``, ``AutoNCP``, ``Random``, ...).
        mode: ``"default"``, ``"no_gate"`` or ``"pure"``.

    Sub-cells are ``layer_0 .. layer_{L-1}`` (the official parameter names).
    """

    def __init__(self, input_size: int | None, wiring: Wiring, mode: str = "default"):
        super().__init__()
        self._wiring = wiring = built_copy(wiring, input_size)
        self.mode = _checks.choice(mode, "mode", MODES)
        self._config = dict(input_size=wiring.input_dim, wiring=wiring, mode=mode)
        in_features = wiring.input_dim
        self.layer_sizes = []
        for l in range(wiring.num_layers):
            neurons = wiring.get_neurons_of_layer(l)
            if l == 0:
                feed = wiring.sensory_adjacency_matrix[:, neurons]
            else:
                feed = wiring.adjacency_matrix[wiring.get_neurons_of_layer(l - 1)][:, neurons]
            mask = np.concatenate([feed, np.ones((len(neurons), len(neurons)))], axis=0)
            cell = CfCCell(in_features, len(neurons), mode, "lecun_tanh", 0, 0, 0.0, sparsity_mask=mask)
            setattr(self, f"layer_{l}", cell)
            self.layer_sizes.append(len(neurons))
            in_features = len(neurons)

    fused = cpu_cfc  # one primitive runs every layer; covers mixed memory too
    gpu_fused = gpu_cfc  # the GPU kernels; their why_not says what they cover

    @property
    def layers(self) -> list:
        return [getattr(self, f"layer_{l}") for l in range(len(self.layer_sizes))]

    @property
    def num_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def motor_size(self) -> int:
        return self.layer_sizes[-1]

    @property
    def output_size(self) -> int:
        return self.layer_sizes[-1]

    def step(self, x: mx.array, state: mx.array, ts: float | mx.array) -> mx.array:
        """The new state ``[inter | command | motor]`` (no input checks)."""
        bounds = np.cumsum(self.layer_sizes)[:-1].tolist()
        new_states, inp = [], x
        for cell, h in zip(self.layers, mx.split(state, bounds, axis=-1)):
            inp = cell.step(inp, h, ts)
            new_states.append(inp)
        return mx.concatenate(new_states, axis=-1)

    def readout(self, state: mx.array) -> mx.array:
        return state[..., -self.motor_size :]

    @official_names(input="x", hx="state", timespans="ts")
    def __call__(self, x: mx.array, state: mx.array | None = None, ts: float | mx.array = 1.0):
        """One step (see :meth:`Cell.__call__`); also takes the official names ``input=``, ``hx=``
        and ``timespans=``."""
        return super().__call__(x, state, ts)
