"""Activation functions accepted by the cells, by the names the official package uses."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn


def lecun_tanh(x: mx.array) -> mx.array:
    """LeCun's scaled tanh, ``1.7159 * tanh(0.666 x)`` (the constants of the official package)."""
    return 1.7159 * mx.tanh(0.666 * x)


ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "lecun_tanh": lecun_tanh,
    "tanh": mx.tanh,
    "relu": nn.relu,
    "silu": nn.silu,
    "gelu": nn.gelu,  # the exact (erf) GELU, as torch.nn.GELU()
    "sigmoid": mx.sigmoid,
    "softplus": nn.softplus,
}


def get_activation(name: str) -> Callable[[mx.array], mx.array]:
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None
