"""Losses with the Keras calling convention ``loss(y_true, y_pred) -> scalar`` (mean over everything).

Targets are aligned with predictions as Keras does: a ``(B,)`` target against a ``(B, 1)``
prediction gets a trailing axis (regression and binary losses), and a sparse target with a trailing
axis of 1 loses it (sparse categorical losses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import _checks

LossFn = Callable[[mx.array, mx.array], mx.array]

_EPS = 1e-7


def _align(y_true: mx.array, y_pred: mx.array) -> mx.array:
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    return y_true.astype(y_pred.dtype)


def check_sparse_labels(y: Any, n_classes: int) -> None:
    """Raise a ``ValueError`` unless every label of ``y`` is an integer in ``[0, n_classes)``."""
    y = np.asarray(y)
    if y.size == 0:
        return
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(
                f"sparse categorical labels must be integers (class indices), got dtype {y.dtype} "
                f"with values such as {y.ravel()[:5].tolist()}"
            )
    lo, hi = y.min(), y.max()
    if lo < 0 or hi >= n_classes:
        raise ValueError(
            f"sparse categorical labels must be class indices in [0, {n_classes}) (the model has {n_classes} "
            f"outputs), got labels in [{lo}, {hi}]"
            + ("; labels start at 0, not 1" if lo == 1 and hi == n_classes else "")
        )


def _sparse(y_true: mx.array, y_pred: mx.array) -> mx.array:
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.ndim != y_pred.ndim - 1:
        raise ValueError(
            f"sparse categorical targets must have the prediction's shape without its class axis: "
            f"predictions {tuple(y_pred.shape)}, targets {tuple(y_true.shape)}"
        )
    return y_true.astype(mx.int32)


class Loss:
    """Base class: a named, configurable ``loss(y_true, y_pred)``."""

    name = "loss"

    def __call__(self, y_true: mx.array, y_pred: mx.array) -> mx.array:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)²)``."""

    name = "mean_squared_error"

    def __call__(self, y_true, y_pred):
        return mx.mean(mx.square(y_pred - _align(y_true, y_pred)))


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)``."""

    name = "mean_absolute_error"

    def __call__(self, y_true, y_pred):
        return mx.mean(mx.abs(y_pred - _align(y_true, y_pred)))


class Huber(Loss):
    """The Huber loss with threshold ``delta``."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        self.delta = float(delta)

    def __call__(self, y_true, y_pred):
        return mx.mean(nn.losses.huber_loss(y_pred, _align(y_true, y_pred), delta=self.delta))

    def get_config(self):
        return {"delta": self.delta}


class _ProbabilisticLoss(Loss):
    """A loss of predicted probabilities, or of logits with ``from_logits=True``."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = _checks.boolean(from_logits, "from_logits")

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}


class SparseCategoricalCrossentropy(_ProbabilisticLoss):
    """Cross-entropy against integer class labels (the class axis is the last one).

    ``from_logits=False`` (Keras' default) expects probabilities, e.g. from a softmax layer.
    """

    name = "sparse_categorical_crossentropy"

    def __call__(self, y_true, y_pred):
        y_true = _sparse(y_true, y_pred)
        logits = y_pred if self.from_logits else mx.log(mx.clip(y_pred, _EPS, 1.0))
        # A label outside [0, n_classes) would index out of range inside MLX's cross-entropy
        # (memory corruption); it is clamped for the lookup and its loss made NaN instead, so that
        # fit stops on the non-finite loss. Sequential.fit checks the labels up front.
        n_classes = y_pred.shape[-1]
        valid = (y_true >= 0) & (y_true < n_classes)
        losses = nn.losses.cross_entropy(logits, mx.clip(y_true, 0, n_classes - 1))
        return mx.mean(mx.where(valid, losses, float("nan")))


class CategoricalCrossentropy(_ProbabilisticLoss):
    """Cross-entropy against one-hot (or soft) targets of the prediction's shape."""

    name = "categorical_crossentropy"

    def __call__(self, y_true, y_pred):
        y_true = y_true.astype(y_pred.dtype)
        if self.from_logits:
            log_p = y_pred - mx.logsumexp(y_pred, axis=-1, keepdims=True)
        else:
            p = y_pred / mx.sum(y_pred, axis=-1, keepdims=True)
            log_p = mx.log(mx.clip(p, _EPS, 1.0))
        return mx.mean(-mx.sum(y_true * log_p, axis=-1))


class BinaryCrossentropy(_ProbabilisticLoss):
    """Binary cross-entropy against 0/1 targets; ``from_logits=False`` expects probabilities."""

    name = "binary_crossentropy"

    def __call__(self, y_true, y_pred):
        y_true = _align(y_true, y_pred)
        if self.from_logits:
            return mx.mean(nn.losses.binary_cross_entropy(y_pred, y_true, with_logits=True))
        p = mx.clip(y_pred, _EPS, 1.0 - _EPS)
        return mx.mean(-(y_true * mx.log(p) + (1.0 - y_true) * mx.log(1.0 - p)))


_CLASSES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
}

_OUTPUT_ACTIVATION = {
    SparseCategoricalCrossentropy: "softmax",
    CategoricalCrossentropy: "softmax",
    BinaryCrossentropy: "sigmoid",
}


def get(loss: str | Loss | LossFn, output_activation: str | None = None) -> LossFn:
    """Resolve ``loss``: a :class:`Loss`, a callable ``(y_true, y_pred)``, or a name.

    For a crossentropy given by name, ``from_logits`` follows the model: probabilities when
    ``output_activation`` is the matching ``"softmax"`` / ``"sigmoid"``, logits otherwise (a
    deliberate difference from Keras, which always assumes probabilities for a string loss and
    then trains a model without a final softmax badly and silently).
    """
    if isinstance(loss, Loss) or (callable(loss) and not isinstance(loss, str)):
        return loss
    try:
        cls = _CLASSES[loss]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown loss {loss!r}; expected one of {sorted(_CLASSES)}, a Loss or a callable") from None
    if cls in _OUTPUT_ACTIVATION:
        return cls(from_logits=output_activation != _OUTPUT_ACTIVATION[cls])
    return cls()
