"""Activation functions by their Keras names."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

from ..activations import lecun_tanh

ActivationLike = None | str | Callable[[mx.array], mx.array]


def linear(x: mx.array) -> mx.array:
    """The identity."""
    return x


def softmax(x: mx.array) -> mx.array:
    """Softmax over the last axis."""
    return mx.softmax(x, axis=-1)


def log_softmax(x: mx.array) -> mx.array:
    """Log-softmax over the last axis."""
    return x - mx.logsumexp(x, axis=-1, keepdims=True)


def hard_sigmoid(x: mx.array) -> mx.array:
    """Keras' piecewise-linear sigmoid, ``clip(0.2 x + 0.5, 0, 1)``."""
    return mx.clip(0.2 * x + 0.5, 0.0, 1.0)


ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "linear": linear,
    "relu": nn.relu,
    "relu6": nn.relu6,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "selu": nn.selu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "swish": nn.silu,
    "mish": nn.mish,
    "tanh": mx.tanh,
    "lecun_tanh": lecun_tanh,
    "sigmoid": mx.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "softplus": nn.softplus,
    "softsign": nn.softsign,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "exponential": mx.exp,
}


def get(activation: ActivationLike) -> Callable[[mx.array], mx.array]:
    """The function for ``activation``: None or ``"linear"`` (identity), a name of
    :data:`ACTIVATIONS`, or a callable (returned as is)."""
    if activation is None:
        return linear
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)} or a callable"
        ) from None


def name_of(activation: ActivationLike) -> str | None:
    """The serializable name of ``activation`` (None for a custom callable that has none)."""
    if activation is None or isinstance(activation, str):
        return activation
    for name, fn in ACTIVATIONS.items():
        if fn is activation:
            return name
    return None
