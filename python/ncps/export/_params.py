"""The parameters every exporter reads: a model reduced to plain float32 numpy arrays.

:func:`extract` turns an ncps layer (:class:`ncps.layers.RNN` and its subclasses) or a bare
cell into a :class:`LayerSpec`. Every array is the *effective* parameter of the reference path:
LTC's solver parameters come from :meth:`LTCCell.solver_params` (softplus of the implicit
constraints applied, wiring masks attached), a CfC head's weight is ``weight * sparsity_mask``
exactly as :meth:`CfCCell._head` multiplies it, CT-RNN's decay is ``1 / softplus(tau)`` and
CT-GRU's time constants ``exp(ln_tau)``, each evaluated by MLX with the cells' own expressions,
so that an exporter only re-implements the arithmetic that follows, never a parameter transform.

Inference only: backbone dropout is the identity, as in a model in ``eval()`` mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..activations import ACTIVATIONS
from ..cells import CfCCell, CTGRUCell, CTRNNCell, LTCCell, WiredCfCCell
from ..cells.base import Cell
from ..layers import RNN


def _np(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32), dtype=np.float32)


@dataclass
class Dense:
    """``y = x @ weight.T + bias``: ``weight`` ``(out, in)``, ``bias`` ``(out,)`` or None.
    ``mask`` (``(out, in)`` bool) marks the synapses of a sparse layer (None: dense)."""

    weight: np.ndarray
    bias: np.ndarray | None
    mask: np.ndarray | None = None

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]


def _dense(layer: nn.Linear, mask: mx.array | None = None) -> Dense:
    w = layer.weight if mask is None else layer.weight * mask  # CfCCell._head's product
    bias = _np(layer.bias) if "bias" in layer else None
    return Dense(_np(w), bias, None if mask is None else _np(mask) != 0)


@dataclass
class CfCSpec:
    """One CfC cell (see :mod:`ncps.cells.cfc`); ``readout`` the output size (the first
    ``readout`` neurons) or None for the whole state."""

    input_size: int
    hidden: int
    mode: str
    activation: str
    backbone: list[Dense]
    ff1: Dense
    ff2: Dense | None = None
    time_a: Dense | None = None
    time_b: Dense | None = None
    w_tau: np.ndarray | None = None  # pure mode, (H,)
    A: np.ndarray | None = None  # pure mode, (H,)
    readout: int | None = None
    kind: str = "cfc"


@dataclass
class WiredCfCSpec:
    """A wired CfC: one backbone-free sparse :class:`CfCSpec` per wiring layer; the output is the
    last layer's neurons (the last ``output_size`` of the state)."""

    input_size: int
    layers: list[CfCSpec]
    kind: str = "wired_cfc"

    @property
    def hidden(self) -> int:
        return sum(l.hidden for l in self.layers)


@dataclass
class LTCSpec:
    """An LTC cell (see :mod:`ncps.cells.ltc`): ``p`` the effective solver parameters by the
    names of :data:`ncps.cells.ltc.SOLVER_PARAMS` (masks included), ``leak = gleak * vleak``;
    input/output mappings as arrays or None."""

    input_size: int
    hidden: int
    motor: int
    p: dict
    leak: np.ndarray
    input_w: np.ndarray | None
    input_b: np.ndarray | None
    output_w: np.ndarray | None
    output_b: np.ndarray | None
    ode_unfolds: int
    epsilon: float
    kind: str = "ltc"


@dataclass
class CTRNNSpec:
    input_size: int
    hidden: int
    activation: str
    input_map: Dense
    recurrent_map: Dense
    decay: np.ndarray  # 1 / softplus(tau), (H,)
    ode_unfolds: int
    kind: str = "ctrnn"


@dataclass
class CTGRUSpec:
    input_size: int
    hidden: int
    timescales: int
    tau_r: Dense
    tau_s: Dense
    detect: Dense
    ln_tau: np.ndarray  # (M,)
    tau: np.ndarray  # exp(ln_tau), (M,)
    kind: str = "ctgru"


CellSpec = CfCSpec | WiredCfCSpec | LTCSpec | CTRNNSpec | CTGRUSpec


@dataclass
class LSTMSpec:
    """The mixed-memory LSTM: gates ``x Wx^T + bx + h Wh^T`` split as ``i, ig, fg, og``."""

    input_map: Dense
    recurrent_map: Dense


@dataclass
class DirectionSpec:
    """One direction of a layer: cell, optional mixed-memory LSTM and projection."""

    cell: CellSpec
    lstm: LSTMSpec | None
    proj: Dense | None

    @property
    def state_size(self) -> int:
        return cell_state_size(self.cell)

    @property
    def output_size(self) -> int:
        return self.proj.out_features if self.proj is not None else cell_output_size(self.cell)


@dataclass
class LayerSpec:
    """A whole sequence layer (a bare cell: one direction, no LSTM, no projection, sequences)."""

    forward: DirectionSpec
    backward: DirectionSpec | None = None
    return_sequences: bool = True
    batch_first: bool = True
    merge_mode: str | None = "concat"
    name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return self.forward.cell.input_size

    @property
    def mixed_memory(self) -> bool:
        return self.forward.lstm is not None

    @property
    def bidirectional(self) -> bool:
        return self.backward is not None


def cell_state_size(c: CellSpec) -> int:
    return c.hidden * c.timescales if c.kind == "ctgru" else c.hidden


def cell_output_size(c: CellSpec) -> int:
    if c.kind == "cfc":
        return c.hidden if c.readout is None else c.readout
    if c.kind == "wired_cfc":
        return c.layers[-1].hidden
    if c.kind == "ltc":
        return c.motor
    return c.hidden


def _activation(name: str, where: str) -> str:
    if name not in ACTIVATIONS:
        raise NotImplementedError(f"{where}: activation {name!r} has no exported form")
    return name


def _cfc(cell: CfCCell) -> CfCSpec:
    mask = cell.sparsity_mask if "sparsity_mask" in cell else None
    spec = CfCSpec(
        input_size=cell.input_size,
        hidden=cell.hidden_size,
        mode=cell.mode,
        activation=_activation(cell.activation, "CfCCell"),
        backbone=[_dense(l) for l in cell.backbone],
        ff1=_dense(cell.ff1, mask),
        readout=cell.motor_size,
    )
    if cell.mode == "pure":
        spec.w_tau, spec.A = _np(cell.w_tau).reshape(-1), _np(cell.A).reshape(-1)
    else:
        spec.ff2 = _dense(cell.ff2, mask)
        spec.time_a, spec.time_b = _dense(cell.time_a), _dense(cell.time_b)
    return spec


def _ltc(cell: LTCCell) -> LTCSpec:
    p = {k: _np(v) for k, v in cell.solver_params().items()}
    leak = _np(cell.solver_params()["gleak"] * cell.vleak)  # ltc_step's product, in float32

    def opt(name: str) -> np.ndarray | None:
        return _np(getattr(cell, name)) if name in cell else None

    return LTCSpec(
        input_size=cell.sensory_size,
        hidden=cell.state_size,
        motor=cell.motor_size,
        p=p,
        leak=leak,
        input_w=opt("input_w") if cell.input_mapping in ("affine", "linear") else None,
        input_b=opt("input_b") if cell.input_mapping == "affine" else None,
        output_w=opt("output_w") if cell.output_mapping in ("affine", "linear") else None,
        output_b=opt("output_b") if cell.output_mapping == "affine" else None,
        ode_unfolds=cell.ode_unfolds,
        epsilon=cell.epsilon,
    )


def extract_cell(cell: Cell) -> CellSpec:
    """The :data:`CellSpec` of one cell (a ``NotImplementedError`` for a cell with no exported form)."""
    if isinstance(cell, WiredCfCCell):
        return WiredCfCSpec(cell.input_size, [_cfc(l) for l in cell.layers])
    if isinstance(cell, CfCCell):
        return _cfc(cell)
    if isinstance(cell, LTCCell):
        return _ltc(cell)
    if isinstance(cell, CTRNNCell):
        return CTRNNSpec(
            input_size=cell.input_size,
            hidden=cell.hidden_size,
            activation=_activation(cell.activation, "CTRNNCell"),
            input_map=_dense(cell.input_map),
            recurrent_map=_dense(cell.recurrent_map),
            decay=_np(1.0 / nn.softplus(cell.tau)),  # CTRNNCell.step's expression
            ode_unfolds=cell.ode_unfolds,
        )
    if isinstance(cell, CTGRUCell):
        return CTGRUSpec(
            input_size=cell.input_size,
            hidden=cell.hidden_size,
            timescales=cell.num_timescales,
            tau_r=_dense(cell.tau_r),
            tau_s=_dense(cell.tau_s),
            detect=_dense(cell.detect_signal),
            ln_tau=_np(cell._ln_tau),
            tau=_np(mx.exp(cell._ln_tau)),  # CTGRUCell.step's expression
        )
    raise NotImplementedError(f"export of {type(cell).__name__} is not implemented")


def _direction(layer: RNN) -> DirectionSpec:
    lstm = None
    if layer.mixed_memory:
        lstm = LSTMSpec(_dense(layer.lstm.input_map), _dense(layer.lstm.recurrent_map))
    proj = _dense(layer.fc) if layer.proj_size is not None else None
    return DirectionSpec(extract_cell(layer.rnn_cell), lstm, proj)


def extract(model: RNN | Cell) -> LayerSpec:
    """The :class:`LayerSpec` of an ncps sequence layer or cell, parameters evaluated now."""
    if isinstance(model, RNN):
        spec = LayerSpec(
            forward=_direction(model),
            backward=_direction(model.backward_layer) if model.bidirectional else None,
            return_sequences=model.return_sequences,
            batch_first=model.batch_first,
            merge_mode=model.merge_mode,
            name=type(model).__name__,
        )
    elif isinstance(model, Cell):
        spec = LayerSpec(forward=DirectionSpec(extract_cell(model), None, None), name=type(model).__name__)
    else:
        raise TypeError(f"model must be an ncps layer (ncps.layers.RNN) or cell, got {type(model).__name__}")
    return spec


def describe(spec: LayerSpec) -> str:
    """A short name of the configuration, for error messages."""
    c = spec.forward.cell
    parts = [spec.name or c.kind]
    if c.kind in ("cfc", "wired_cfc"):
        parts.append(f"mode={c.mode if c.kind == 'cfc' else c.layers[0].mode!r}")
    if spec.mixed_memory:
        parts.append("mixed_memory=True")
    if spec.forward.proj is not None:
        parts.append(f"proj_size={spec.forward.proj.out_features}")
    if spec.bidirectional:
        parts.append("bidirectional=True")
    return ", ".join(parts)
