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

from .cells import Cell, CfCCell, CTGRUCell, CTRNNCell, LTCCell, WiredCfCCell
from .layers import CTGRU, CTRNN, RNN, CfC, LTC
from .wirings import Wiring

FORMAT = "ncps-model/1"

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Make a cell class (a :class:`~ncps.cells.base.Cell` with ``get_config``) or a layer class
    (an :class:`~ncps.RNN` subclass whose constructor takes ``cell=`` and the options of
    ``get_config``) writable by :func:`save`; returns ``cls`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, (Cell, RNN))):
        raise TypeError(f"register takes a Cell or RNN subclass, got {cls!r}")
    known = _REGISTRY.get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"another class named {cls.__name__!r} is already registered ({known.__module__})")
    _REGISTRY[cls.__name__] = cls
    return cls


def is_registered(model: Any) -> bool:
    """True when ``model``'s exact class is a registered cell or layer (so :func:`save` can write it)."""
    return _REGISTRY.get(type(model).__name__) is type(model)


for _cls in (CfCCell, LTCCell, WiredCfCCell, CTRNNCell, CTGRUCell, CfC, LTC, CTRNN, CTGRU, RNN):
    register(_cls)


def encode_config(value: Any) -> Any:
    """A JSON-ready description of ``value``: wirings, registered cells and layers (recursively,
    configuration only, no weights); any other value is returned as is."""
    if isinstance(value, Wiring):
        return {"__wiring__": value.get_config()}
    if isinstance(value, nn.Module):
        if not is_registered(value):
            raise TypeError(
                f"ncps.save handles ncps cells and layers, not {type(value).__name__}; "
                "use model.save_weights(path) for other modules"
            )
        name = type(value).__name__
        if isinstance(value, RNN):
            return {"__layer__": name, "cell": encode_config(value.rnn_cell), "options": value.get_config()}
        return {"__cell__": name, "config": {k: encode_config(v) for k, v in value.get_config().items()}}
    return value


def decode_config(value: Any) -> Any:
    """Rebuild what :func:`encode_config` described (fresh parameters)."""
    if isinstance(value, dict) and "__wiring__" in value:
        return Wiring.from_config(value["__wiring__"])
    if isinstance(value, dict) and "__cell__" in value:
        return _REGISTRY[value["__cell__"]](**{k: decode_config(v) for k, v in value["config"].items()})
    if isinstance(value, dict) and "__layer__" in value:
        cell = decode_config(value["cell"])
        options = dict(value["options"])
        cls = _REGISTRY[value["__layer__"]]
        if cls is RNN:
            return RNN(cell, **options)
        if options.get("proj_size") is None:
            options.pop("proj_size", None)
        return cls(cell=cell, **options)
    return value


def save(model: nn.Module, path: Union[str, os.PathLike]) -> None:
    """Write ``model`` (an ncps layer or cell) to ``path`` (a ``.safetensors`` file)."""
    config = json.dumps({"format": FORMAT, "model": encode_config(model)})
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
    model = decode_config(config["model"])
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    return model
