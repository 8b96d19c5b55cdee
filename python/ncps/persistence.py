"""Save and load whole models: ``ncps.save(model, path)`` / ``ncps.load(path)``.

One ``.safetensors`` file holds the weights and, in its metadata, the JSON configuration needed to
rebuild the model (layer options, cell options and the full wiring, matrices included). Plain
``model.save_weights`` / ``model.load_weights`` keep working as everywhere in MLX.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from . import _checks
from .cells import Cell, CfCCell, CTGRUCell, CTRNNCell, LTCCell, WiredCfCCell
from .layers import CTGRU, CTRNN, LTC, RNN, CfC
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


def _registered(name: Any) -> type:
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"the configuration names the class {name!r}, which is not a registered ncps cell or layer "
            f"(known: {sorted(_REGISTRY)}; register it with ncps.persistence.register)"
        )
    return cls


def decode_config(value: Any) -> Any:
    """Rebuild what :func:`encode_config` described (fresh parameters). Only registered classes
    are built, from JSON values: loading never executes code from a file."""
    if isinstance(value, dict) and "__wiring__" in value:
        return Wiring.from_config(value["__wiring__"])
    if isinstance(value, dict) and "__cell__" in value:
        cls = _registered(value["__cell__"])
        config = value.get("config")
        if not isinstance(config, dict):
            raise ValueError(f"the configuration of {cls.__name__} must be a JSON object, got {config!r}")
        return cls(**{k: decode_config(v) for k, v in config.items()})
    if isinstance(value, dict) and "__layer__" in value:
        cls = _registered(value["__layer__"])
        if not isinstance(value.get("options"), dict):
            raise ValueError(f"the configuration of {cls.__name__} must hold its options as a JSON object")
        cell = decode_config(value.get("cell"))
        options = dict(value["options"])
        if cls is RNN:
            return RNN(cell, **options)
        if options.get("proj_size") is None:
            options.pop("proj_size", None)
        return cls(cell=cell, **options)
    return value


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """Run ``write(tmp)`` on a temporary file next to ``path`` (ending in ``suffix``, for writers
    that choose the format by the name), flush it to disk, then rename it onto ``path``: a reader,
    or a crash at any moment, sees the old file or the new one, never a partial one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from other users
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            dir_fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model`` (an ncps layer or cell) to ``path``, atomically (see :func:`atomic_write`).

    The file is written at exactly ``path`` (conventionally ``*.safetensors``; without that
    suffix it is not added).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an ncps cell or layer (an mlx.nn.Module), got {type(model).__name__}")
    path = _checks.path(path, "path")
    config = json.dumps({"format": FORMAT, "model": encode_config(model)})
    weights = dict(tree_flatten(model.parameters()))
    atomic_write(path, lambda tmp: mx.save_safetensors(tmp, weights, metadata={"ncps": config}), ".safetensors")


def read_safetensors(path: str) -> tuple[dict[str, mx.array], dict[str, str]]:
    """The weights and metadata of the safetensors file at ``path``, which exists; a ValueError
    naming ``path`` if it is not a readable safetensors file."""
    try:
        return mx.load(path, format="safetensors", return_metadata=True)
    except Exception as exc:
        raise ValueError(f"{path!r} is not a readable safetensors file: {exc}") from exc


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild a model written by :func:`save`; it gives identical outputs. ``path`` may omit a
    ``.safetensors`` suffix that the file has."""
    path = _checks.path(path, "path")
    if not os.path.isfile(path) and os.path.isfile(path + ".safetensors"):
        path += ".safetensors"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no ncps model file at {path!r}")
    weights, metadata = read_safetensors(path)
    if "ncps" not in metadata:
        raise ValueError(f"{path!r} has no ncps model configuration (was it written by ncps.save?)")
    try:
        config = json.loads(metadata["ncps"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} has a corrupt ncps configuration: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path!r} has a corrupt ncps configuration: a JSON object was expected")
    if config.get("format") != FORMAT:
        raise ValueError(f"{path!r} has format {config.get('format')!r}, expected {FORMAT!r}")
    if "model" not in config:
        raise ValueError(f"{path!r} has no model in its ncps configuration")
    try:
        model = decode_config(config["model"])
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path!r} has an invalid ncps model configuration: {exc}") from exc
    if not isinstance(model, (Cell, RNN)):
        raise ValueError(f"{path!r} has an invalid ncps model configuration: it describes no ncps cell or layer")
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as exc:
        raise ValueError(f"{path!r}: its weights do not fit the model it describes: {exc}") from exc
    mx.eval(model.parameters())
    return model
