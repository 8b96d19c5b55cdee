"""Metrics with the Keras calling convention ``metric(y_true, y_pred) -> scalar``.

``"accuracy"`` is resolved from the loss, as in Keras: sparse categorical accuracy for sparse
integer targets, binary accuracy (threshold 0.5 on probabilities, 0 on logits) for binary
losses, categorical accuracy for one-hot targets.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx

from . import losses as _losses

MetricFn = Callable[[mx.array, mx.array], mx.array]


def sparse_categorical_accuracy(y_true: mx.array, y_pred: mx.array) -> mx.array:
    """Fraction of positions where the arg-max class equals the integer label."""
    y_true = _losses._sparse(y_true, y_pred)
    return mx.mean((mx.argmax(y_pred, axis=-1) == y_true).astype(mx.float32))


def categorical_accuracy(y_true: mx.array, y_pred: mx.array) -> mx.array:
    """Fraction of positions where the arg-max classes of target and prediction agree."""
    return mx.mean((mx.argmax(y_pred, axis=-1) == mx.argmax(y_true, axis=-1)).astype(mx.float32))


def binary_accuracy(y_true: mx.array, y_pred: mx.array, threshold: float = 0.5) -> mx.array:
    """Fraction of predictions on the same side of ``threshold`` as the 0/1 target."""
    y_true = _losses._align(y_true, y_pred)
    return mx.mean(((y_pred > threshold) == (y_true > 0.5)).astype(mx.float32))


def binary_accuracy_from_logits(y_true: mx.array, y_pred: mx.array) -> mx.array:
    """:func:`binary_accuracy` with threshold 0, for logits."""
    return binary_accuracy(y_true, y_pred, threshold=0.0)


def mean_absolute_error(y_true: mx.array, y_pred: mx.array) -> mx.array:
    """``mean(|y_pred - y_true|)``."""
    return _losses.MeanAbsoluteError()(y_true, y_pred)


def mean_squared_error(y_true: mx.array, y_pred: mx.array) -> mx.array:
    """``mean((y_pred - y_true)²)``."""
    return _losses.MeanSquaredError()(y_true, y_pred)


def root_mean_squared_error(y_true: mx.array, y_pred: mx.array) -> mx.array:
    """``sqrt(mean((y_pred - y_true)²))`` of the batch."""
    return mx.sqrt(mean_squared_error(y_true, y_pred))


_NAMED = {
    "mae": ("mae", mean_absolute_error),
    "mean_absolute_error": ("mean_absolute_error", mean_absolute_error),
    "mse": ("mse", mean_squared_error),
    "mean_squared_error": ("mean_squared_error", mean_squared_error),
    "rmse": ("rmse", root_mean_squared_error),
    "sparse_categorical_accuracy": ("sparse_categorical_accuracy", sparse_categorical_accuracy),
    "categorical_accuracy": ("categorical_accuracy", categorical_accuracy),
    "binary_accuracy": ("binary_accuracy", binary_accuracy),
}


def get(metric: str | MetricFn, loss: _losses.LossFn) -> tuple[str, MetricFn]:
    """``(name, fn)`` for a metric name or a callable ``fn(y_true, y_pred)``."""
    if callable(metric) and not isinstance(metric, str):
        return getattr(metric, "__name__", type(metric).__name__), metric
    if metric in ("accuracy", "acc"):
        if isinstance(loss, _losses.BinaryCrossentropy):
            return metric, (binary_accuracy_from_logits if loss.from_logits else binary_accuracy)
        if isinstance(loss, _losses.CategoricalCrossentropy):
            return metric, categorical_accuracy
        return metric, sparse_categorical_accuracy
    try:
        return _NAMED[metric]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown metric {metric!r}; expected 'accuracy' or one of {sorted(_NAMED)}, or a callable"
        ) from None
