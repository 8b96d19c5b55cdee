"""The closed-form continuous-time (CfC) cell (Hasani et al., Nature Machine Intelligence 2022).

A CfC replaces the ODE solver of the LTC by its closed-form approximation. A backbone MLP reads
``z = act(... act([x, h] W_0 + b_0) ...)`` and four heads read ``z``:

.. math::

    f_1 = \\tanh(z W_1 + b_1),\\quad f_2 = \\tanh(z W_2 + b_2),\\quad
    g = \\sigma\\big((z W_a + b_a)\\,\\Delta t + z W_b + b_b\\big)

    h' = f_1 (1 - g) + g f_2 \\;\\; (\\text{default}),\\qquad
    h' = f_1 + g f_2 \\;\\; (\\text{no\\_gate})

and the direct solution ("pure", Cf-S) uses only the first head without tanh:

.. math::

    h' = -A \\exp\\big(-\\Delta t(|w_\\tau| + |f_1|)\\big) f_1 + A

Shapes: ``x`` ``(B, I)``, ``h`` ``(B, H)``, ``Δt`` a float, ``(B,)`` or ``(B, 1)``; the output is
``h'`` itself. This is the torch convention of the official package (tanh on the heads,
``σ(+t_a Δt + t_b)``).

Fixes against the official package: per-sample ``Δt`` is honoured; backbone dropout applies after
every backbone layer (upstream skips the first, so the default one-layer backbone never drops);
in pure mode ``w_tau`` starts at 0 and ``A`` at 1 as intended (upstream re-initialises both with
Xavier).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import _checks
from .._aliases import official_names
from .._cfc_modes import MODES
from ..activations import get_activation
from ..backends.cpu import cfc as cpu_cfc
from ..backends.gpu import cfc as gpu_cfc
from ..init import glorot_linear
from ..wirings import Wiring
from .base import Cell, built_copy


def _backbone_sizes(backbone_units: int | Sequence[int], backbone_layers: int | None) -> list[int]:
    if backbone_layers is not None:
        backbone_layers = _checks.integer(backbone_layers, "backbone_layers", 0)
    if isinstance(backbone_units, (list, tuple)):
        sizes = [_checks.integer(u, "backbone_units") for u in backbone_units]
        if backbone_layers is not None and backbone_layers != len(sizes):
            raise ValueError(
                f"backbone_units has {len(sizes)} entries but backbone_layers={backbone_layers}; "
                "give one width per layer"
            )
        return sizes
    layers = 1 if backbone_layers is None else backbone_layers
    return [_checks.integer(backbone_units, "backbone_units", 0 if layers == 0 else 1)] * layers


class CfCCell(Cell):
    """A closed-form continuous-time cell: ``cell(x, h, ts=1.0) -> (h', h')``.

    Args:
        input_size: input features ``I`` (taken from the wiring when ``wiring`` is given).
        units: hidden size ``H`` (the wiring's ``units`` when ``wiring`` is given). The official
            names ``hidden_size`` and ``backbone_activation`` are accepted for ``units`` and
            ``activation``, ``input=`` / ``hx=`` for ``x`` / ``state`` in calls.
        mode: ``"default"``, ``"no_gate"`` or ``"pure"``.
        activation: backbone activation: ``lecun_tanh``, ``tanh``, ``relu``, ``silu``, ``gelu``.
        backbone_units: width of the backbone, an int, or a list with one width per layer.
        backbone_layers: depth of the backbone (0 for none).
        backbone_dropout: dropout after each backbone layer (in training mode).
        sparsity_mask: optional ``(I+H, H)`` array; its absolute value masks the ``ff1``/``ff2``
            weights. Requires ``backbone_layers=0``.
        wiring: seed-style construction: sizes come from the (built) wiring, and without a
            backbone its adjacency becomes the sparsity mask. The output is then the motor neurons
            ``h'[:, :wiring.output_dim]``.
    """

    @official_names(hidden_size="units", backbone_activation="activation")
    def __init__(
        self,
        input_size: int | None = None,
        units: int | None = None,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | Sequence[int] = 128,
        backbone_layers: int | None = None,
        backbone_dropout: float = 0.0,
        sparsity_mask: np.ndarray | None = None,
        *,
        wiring: Wiring | None = None,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}, valid options are {list(MODES)}")
        if input_size is not None:
            input_size = _checks.integer(input_size, "input_size")
        if units is not None:
            units = _checks.integer(units, "units")
        backbone_dropout = _checks.real(backbone_dropout, "backbone_dropout", 0.0, below=1.0)
        self._config = dict(
            input_size=input_size,
            units=units,
            mode=mode,
            activation=activation,
            backbone_units=list(backbone_units) if isinstance(backbone_units, (list, tuple)) else backbone_units,
            backbone_layers=backbone_layers,
            backbone_dropout=backbone_dropout,
            sparsity_mask=None if sparsity_mask is None else np.asarray(sparsity_mask).tolist(),
            wiring=wiring,
        )
        sizes = _backbone_sizes(backbone_units, backbone_layers)
        self._wiring = None
        self.motor_size = None
        if wiring is not None:
            wiring = built_copy(wiring, input_size)
            if units is not None and int(units) != wiring.units:
                raise ValueError(f"units={units} contradicts the wiring's {wiring.units} units")
            self._wiring = wiring
            self._config["wiring"] = wiring
            input_size, units = wiring.input_dim, wiring.units
            self.motor_size = wiring.output_dim
            if not sizes and sparsity_mask is None:
                sparsity_mask = np.concatenate([wiring.sensory_adjacency_matrix, wiring.adjacency_matrix], axis=0)
        if input_size is None or units is None:
            raise ValueError("CfCCell needs input_size and units (or a built wiring)")
        self.input_size, self.hidden_size = int(input_size), int(units)
        if sparsity_mask is not None and sizes:
            raise ValueError("If sparsity of a CfC cell is set, then no backbone is allowed")
        self.mode = mode
        self.activation = activation
        self._act = get_activation(activation)
        self.backbone_dropout = float(backbone_dropout)
        if not 0.0 <= self.backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")

        I, H = self.input_size, self.hidden_size
        widths = [I + H] + sizes
        self.backbone = [glorot_linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
        self.dropout = nn.Dropout(self.backbone_dropout) if self.backbone_dropout > 0 and sizes else None
        head_in = widths[-1]
        if sparsity_mask is not None:
            mask = np.abs(np.asarray(sparsity_mask, dtype=np.float32))
            if mask.shape != (I + H, H):
                raise ValueError(
                    f"sparsity_mask must have shape (input_size + units, units) = {(I + H, H)}, got {mask.shape}"
                )
            self.sparsity_mask = mx.array(mask.T)
            self.freeze(keys=["sparsity_mask"], recurse=False)
        self.ff1 = glorot_linear(head_in, H)
        if mode == "pure":
            self.w_tau = mx.zeros((1, H))
            self.A = mx.ones((1, H))
        else:
            self.ff2 = glorot_linear(head_in, H)
            self.time_a = glorot_linear(head_in, H)
            self.time_b = glorot_linear(head_in, H)

    fused = cpu_cfc  # covers mixed memory too
    gpu_fused = gpu_cfc  # the GPU kernels; their why_not says what they cover

    # -- sizes -------------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size if self.motor_size is None else self.motor_size

    @property
    def wiring(self) -> Wiring | None:
        return self._wiring

    @property
    def backbone_layers(self) -> int:
        return len(self.backbone)

    # -- math --------------------------------------------------------------------------------
    def _head(self, layer: nn.Linear, z: mx.array, masked: bool) -> mx.array:
        if masked and "sparsity_mask" in self:
            return z @ (layer.weight * self.sparsity_mask).T + layer.bias
        return layer(z)

    def step(self, x: mx.array, h: mx.array, ts: float | mx.array) -> mx.array:
        """The new hidden state (no input checks; ``ts`` a float or ``(B, 1)``)."""
        z = mx.concatenate([x, h], axis=-1)
        for layer in self.backbone:
            z = self._act(layer(z))
            if self.dropout is not None:
                z = self.dropout(z)
        ff1 = self._head(self.ff1, z, masked=True)
        if self.mode == "pure":
            return -self.A * mx.exp(-ts * (mx.abs(self.w_tau) + mx.abs(ff1))) * ff1 + self.A
        ff1 = mx.tanh(ff1)
        ff2 = mx.tanh(self._head(self.ff2, z, masked=True))
        gate = mx.sigmoid(self.time_a(z) * ts + self.time_b(z))
        if self.mode == "no_gate":
            return ff1 + gate * ff2
        return ff1 * (1.0 - gate) + gate * ff2

    def readout(self, h: mx.array) -> mx.array:
        """The cell's output for hidden state ``h`` (the motor neurons in seed-style wired mode)."""
        return h if self.motor_size is None else h[..., : self.motor_size]

    @official_names(input="x", hx="state")
    def __call__(self, x: mx.array, state: mx.array | None = None, ts: float | mx.array = 1.0):
        """One step (see :meth:`Cell.__call__`); also takes the official names ``input=`` and ``hx=``."""
        return super().__call__(x, state, ts)
