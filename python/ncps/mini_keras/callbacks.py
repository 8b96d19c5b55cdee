"""Keras-style callbacks for :meth:`Sequential.fit`, built on :class:`ncps.training.Callback`.

``Sequential.fit`` gives every callback that has a ``model`` attribute the model being trained
(as Keras' ``set_model`` does). Any :class:`ncps.training.Callback` or function
``fn(epoch, logs)`` works as well.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import Any

from mlx.utils import tree_map

from .. import _checks
from ..training import Callback, StopTraining

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LambdaCallback", "StopTraining"]


def _better(mode: str, current: float, best: float, min_delta: float) -> bool:
    return current < best - min_delta if mode == "min" else current > best + min_delta


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a key of the epoch logs, e.g. ``"val_loss"``, ``"loss"``, ``"val_accuracy"``.
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, min otherwise).
        restore_best_weights: put back the weights of the best epoch when training ends.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ):
        self.monitor = monitor
        self.patience = _checks.integer(patience, "patience", 0)
        self.min_delta = abs(_checks.real(min_delta, "min_delta"))
        self.mode = _mode_for(monitor, mode)
        self.restore_best_weights = _checks.boolean(restore_best_weights, "restore_best_weights")
        self.model: Any = None
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None

    def on_train_begin(self, logs):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_weights = None
        self.stopped_epoch = self.best_epoch = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which is not among the logs {sorted(logs)}")
        current = logs[self.monitor]
        if _better(self.mode, current, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights and self.model is not None:
                self.best_weights = tree_map(lambda p: p, self.model.parameters())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            raise StopTraining

    def on_train_end(self, logs):
        if self.best_weights is not None and self.model is not None:
            self.model.update(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``: architecture + weights) after epochs.

    Args:
        filepath: the file; ``{epoch}`` and log keys such as ``{val_loss:.4f}`` are formatted in.
        monitor: the quantity that decides "best".
        save_best_only: save only when ``monitor`` improves (else after every epoch).
        mode: ``"min"``, ``"max"`` or ``"auto"``.
    """

    def __init__(
        self, filepath: str | os.PathLike, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"
    ):
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.save_best_only = _checks.boolean(save_best_only, "save_best_only")
        self.mode = _mode_for(monitor, mode)
        self.model: Any = None

    def on_train_begin(self, logs):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs):
        if self.model is None:
            raise RuntimeError("ModelCheckpoint has no model; use it with Sequential.fit")
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                raise KeyError(f"ModelCheckpoint monitors {self.monitor!r}, which is not among the logs {sorted(logs)}")
            if not _better(self.mode, current, self.best, 0.0):
                return
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.model.save(path)


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_end(epoch, logs)``, ``on_batch_end(batch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``."""

    def __init__(
        self,
        on_epoch_end: Callable | None = None,
        on_batch_end: Callable | None = None,
        on_train_begin: Callable | None = None,
        on_train_end: Callable | None = None,
    ):
        self._fns = {
            "on_epoch_end": on_epoch_end,
            "on_batch_end": on_batch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
        }

    def on_epoch_end(self, epoch, logs):
        if self._fns["on_epoch_end"]:
            self._fns["on_epoch_end"](epoch, logs)

    def on_batch_end(self, batch, logs):
        if self._fns["on_batch_end"]:
            self._fns["on_batch_end"](batch, logs)

    def on_train_begin(self, logs):
        if self._fns["on_train_begin"]:
            self._fns["on_train_begin"](logs)

    def on_train_end(self, logs):
        if self._fns["on_train_end"]:
            self._fns["on_train_end"](logs)


class _EpochLine(Callback):
    """One line per epoch (``verbose=2``)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs):
        text = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        print(f"Epoch {epoch + 1}/{self.epochs} - {text}", file=sys.stdout, flush=True)
