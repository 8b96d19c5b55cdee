"""Interop with the official ``ncps.torch`` package (ncps 1.0.1).

- :func:`load_torch_state_dict` copies an official ``state_dict()`` (torch tensors or numpy
  arrays) into an equivalently configured ncps model, checking every key and shape.
- :func:`from_torch` builds the equivalent ncps model from a live official module (its
  configuration is read from the module's attributes) and loads its weights.

Parameter names are the official ones, except that the torch backbone is an ``nn.Sequential``
whose indices count activations and dropouts too (``backbone.0``, ``backbone.2``, ...), while
ours is a plain list of linear layers (``backbone.0``, ``backbone.1``, ...). torch itself is never
imported here: tensors are converted by duck typing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from . import wirings as _wirings
from .cells import Cell, CfCCell, LTCCell, WiredCfCCell
from .layers import LTC, RNN, CfC

_BACKBONE = re.compile(r"^(.*backbone)\.(\d+)\.(weight|bias)$")


def _to_numpy(value: Any) -> np.ndarray:
    """A tensor or array as float32 numpy (a half-precision torch tensor is widened first:
    numpy has no bfloat16)."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def _renumber_backbone(keys: list[str]) -> dict[str, str]:
    """Map torch ``...backbone.<sequential index>.*`` keys to ``...backbone.<linear index>.*``."""
    indices: dict[str, set] = {}
    for key in keys:
        m = _BACKBONE.match(key)
        if m:
            indices.setdefault(m.group(1), set()).add(int(m.group(2)))
    ranks = {prefix: {i: r for r, i in enumerate(sorted(ids))} for prefix, ids in indices.items()}
    renamed = {}
    for key in keys:
        m = _BACKBONE.match(key)
        renamed[key] = f"{m.group(1)}.{ranks[m.group(1)][int(m.group(2))]}.{m.group(3)}" if m else key
    return renamed


def load_torch_state_dict(model: nn.Module, state_dict: Mapping[str, Any]) -> nn.Module:
    """Load an official ``ncps.torch`` ``state_dict`` into ``model`` (in place; returns it).

    ``model`` must be configured like the official module (same sizes, mode, wiring, mixed
    memory, projection). Raises ``ValueError`` naming every missing, unexpected or misshapen key.
    Each value is cast explicitly to the dtype of the parameter it replaces (a float32 checkpoint
    loaded into a bfloat16 model stays bfloat16; README "Precision").
    """
    if not isinstance(model, (RNN, Cell)):
        raise TypeError(f"model must be an ncps layer or cell, got {type(model).__name__}")
    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) for k in state_dict):
        raise TypeError(f"state_dict must be a mapping of parameter names to tensors, got {type(state_dict).__name__}")
    if isinstance(model, RNN) and model.bidirectional:
        raise ValueError("the official ncps.torch layers are unidirectional; build the model with bidirectional=False")
    ours = dict(tree_flatten(model.parameters()))
    renamed = _renumber_backbone(list(state_dict))
    incoming = {renamed[k]: _to_numpy(v) for k, v in state_dict.items()}
    missing = sorted(set(ours) - set(incoming))
    unexpected = sorted(set(incoming) - set(ours))
    misshapen = [
        f"{k}: state_dict {tuple(incoming[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in sorted(set(ours) & set(incoming))
        if tuple(incoming[k].shape) != tuple(ours[k].shape)
    ]
    if missing or unexpected or misshapen:
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if misshapen:
            problems.append(f"shape mismatches {misshapen}")
        raise ValueError(
            f"state_dict does not fit {type(model).__name__}: "
            + "; ".join(problems)
            + " (is the model configured like the official one?)"
        )
    model.update(tree_unflatten([(k, mx.array(v).astype(ours[k].dtype)) for k, v in incoming.items()]))
    return model


# -- from a live official module ---------------------------------------------------------------
def wiring_from_torch(wiring: Any) -> _wirings.Wiring:
    """The ncps wiring equal to an official wiring object (matrices copied entry for entry)."""
    name = type(wiring).__name__
    if name == "AutoNCP":
        ours = _wirings.AutoNCP(wiring.units, wiring._output_size, wiring._sparsity_level, wiring._seed)
    elif name == "NCP" or hasattr(wiring, "_num_inter_neurons"):
        ours = _wirings.NCP(
            wiring._num_inter_neurons,
            wiring._num_command_neurons,
            wiring._num_motor_neurons,
            wiring._sensory_fanout,
            wiring._inter_fanout,
            wiring._recurrent_command_synapses,
            wiring._motor_fanin,
        )
    elif name == "FullyConnected":
        ours = _wirings.FullyConnected(wiring.units, wiring.output_dim, wiring._erev_init_seed, wiring.self_connections)
    elif name == "Random":
        ours = _wirings.Random(wiring.units, wiring.output_dim, wiring.sparsity_level, wiring._random_seed)
    else:
        ours = _wirings.Wiring(wiring.units)
        if wiring.output_dim is not None:
            ours.set_output_dim(wiring.output_dim)
    if wiring.input_dim is not None:
        ours.build(int(wiring.input_dim))
        ours.sensory_adjacency_matrix = np.array(wiring.sensory_adjacency_matrix, dtype=np.int32)
    ours.adjacency_matrix = np.array(wiring.adjacency_matrix, dtype=np.int32)
    return ours


_ACTIVATION_NAMES = {"LeCun": "lecun_tanh", "SiLU": "silu", "ReLU": "relu", "Tanh": "tanh", "GELU": "gelu"}


def _cfc_cell_kwargs(cell: Any) -> dict:
    backbone = list(cell.backbone) if cell.backbone is not None else []
    linears = [m for m in backbone if type(m).__name__ == "Linear"]
    acts = [type(m).__name__ for m in backbone if type(m).__name__ in _ACTIVATION_NAMES]
    dropouts = [m.p for m in backbone if type(m).__name__ == "Dropout"]
    return dict(
        input_size=cell.input_size,
        units=cell.hidden_size,
        mode=cell.mode,
        activation=_ACTIVATION_NAMES[acts[0]] if acts else "lecun_tanh",
        backbone_units=linears[0].out_features if linears else 0,
        backbone_layers=len(linears),
        backbone_dropout=dropouts[0] if dropouts else 0.0,
    )


def from_torch(module: Any) -> nn.Module:
    """The ncps equivalent of a live official ``ncps.torch`` module, with its weights loaded.

    Supports ``CfC``, ``LTC``, ``CfCCell``, ``LTCCell`` and ``WiredCfCCell``.
    """
    name = type(module).__name__
    if name not in ("CfC", "LTC", "CfCCell", "LTCCell", "WiredCfCCell") or not hasattr(module, "state_dict"):
        raise TypeError(
            f"from_torch takes an official ncps.torch module (CfC, LTC, CfCCell, LTCCell or WiredCfCCell), got {name}"
        )
    if name == "CfC":
        cell = module.rnn_cell
        if type(cell).__name__ == "WiredCfCCell":
            ours_cell = WiredCfCCell(None, wiring_from_torch(cell._wiring), cell._layers[0].mode)
        else:
            kw = _cfc_cell_kwargs(cell)
            if kw["backbone_layers"] == 0:
                kw["backbone_units"] = 0
            ours_cell = CfCCell(**kw)
        fc = module.fc
        proj = fc.out_features if type(fc).__name__ == "Linear" else None
        model = CfC(
            cell=ours_cell,
            proj_size=proj,
            return_sequences=module.return_sequences,
            batch_first=module.batch_first,
            mixed_memory=module.use_mixed,
        )
    elif name == "LTC":
        model = LTC(
            cell=_ltc_cell(module.rnn_cell),
            return_sequences=module.return_sequences,
            batch_first=module.batch_first,
            mixed_memory=module.use_mixed,
        )
    elif name == "CfCCell":
        model = CfCCell(**_cfc_cell_kwargs(module), sparsity_mask=_mask_of(module))
    elif name == "LTCCell":
        model = _ltc_cell(module)
    elif name == "WiredCfCCell":
        model = WiredCfCCell(None, wiring_from_torch(module._wiring), module._layers[0].mode)
    else:
        raise TypeError(f"from_torch supports CfC, LTC, CfCCell, LTCCell and WiredCfCCell, got {name}")
    return load_torch_state_dict(model, module.state_dict())


def _mask_of(cell: Any):
    mask = getattr(cell, "sparsity_mask", None)
    return None if mask is None else _to_numpy(mask).T


def _ltc_cell(cell: Any) -> LTCCell:
    return LTCCell(
        wiring_from_torch(cell._wiring),
        None,
        cell._input_mapping,
        cell._output_mapping,
        cell._ode_unfolds,
        cell._epsilon,
        cell._implicit_param_constraints,
    )
