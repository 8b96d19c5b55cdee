"""Save and load whole models: ``ncps.save(model, path)`` / ``ncps.load(path)``.

One ``.safetensors`` file holds the weights and, in its metadata, the JSON configuration needed to
rebuild the model (layer options, cell options and the full wiring, matrices included). Plain
``model.save_weights`` / ``model.load_weights`` keep working as everywhere in MLX.
"""

from __future__ import annotations

import json
import os
from typing import Any, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from . import cfc, ctgru, ctrnn, ltc, sequence, wired_cfc
from .wirings import Wiring

FORMAT = "ncps-model/1"
_CELLS = {c.__name__: c for c in (cfc.CfCCell, ltc.LTCCell, wired_cfc.WiredCfCCell, ctrnn.CTRNNCell, ctgru.CTGRUCell)}
_LAYERS = {c.__name__: c for c in (sequence.CfC, sequence.LTC, sequence.CTRNN, sequence.CTGRU, sequence.RNN)}


def _encode(value: Any) -> Any:
    if isinstance(value, Wiring):
        return {"__wiring__": value.get_config()}
    if isinstance(value, nn.Module):
        name = type(value).__name__
        if name in _CELLS:
            return {"__cell__": name, "config": {k: _encode(v) for k, v in value.get_config().items()}}
        if name in _LAYERS:
            return {"__layer__": name, "cell": _encode(value.rnn_cell), "options": value.get_config()}
        raise TypeError(
            f"ncps.save handles ncps cells and layers, not {name}; use model.save_weights(path) for other modules"
        )
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__wiring__" in value:
        return Wiring.from_config(value["__wiring__"])
    if isinstance(value, dict) and "__cell__" in value:
        return _CELLS[value["__cell__"]](**{k: _decode(v) for k, v in value["config"].items()})
    if isinstance(value, dict) and "__layer__" in value:
        cell = _decode(value["cell"])
        options = dict(value["options"])
        if value["__layer__"] == "RNN":
            return sequence.RNN(cell, **options)
        if options.get("proj_size") is None:
            options.pop("proj_size", None)
        return _LAYERS[value["__layer__"]](cell=cell, **options)
    return value


def save(model: nn.Module, path: Union[str, os.PathLike]) -> None:
    """Write ``model`` (an ncps layer or cell) to ``path`` (a ``.safetensors`` file)."""
    config = json.dumps({"format": FORMAT, "model": _encode(model)})
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(os.fspath(path), weights, metadata={"ncps": config})


def load(path: Union[str, os.PathLike]) -> nn.Module:
    """Rebuild a model written by :func:`save`; it gives identical outputs."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no ncps model file at {path!r}")
    try:
        weights, metadata = mx.load(path, format="safetensors", return_metadata=True)
    except Exception as exc:
        raise ValueError(f"{path!r} is not a readable safetensors file: {exc}") from exc
    if "ncps" not in metadata:
        raise ValueError(f"{path!r} has no ncps model configuration (was it written by ncps.save?)")
    try:
        config = json.loads(metadata["ncps"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} has a corrupt ncps configuration: {exc}") from exc
    if config.get("format") != FORMAT:
        raise ValueError(f"{path!r} has format {config.get('format')!r}, expected {FORMAT!r}")
    model = _decode(config["model"])
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    return model
