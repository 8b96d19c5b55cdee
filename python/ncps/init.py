"""Parameter initialisers shared by the cells (torch's defaults, as the official package uses)."""

from __future__ import annotations

import mlx.nn as nn


def glorot_linear(in_dims: int, out_dims: int, bias: bool = True) -> nn.Linear:
    """An ``nn.Linear`` with torch's init: Xavier-uniform weight, ``U(±1/sqrt(in))`` bias."""
    layer = nn.Linear(in_dims, out_dims, bias=bias)
    layer.weight = nn.init.glorot_uniform()(layer.weight)
    return layer


def orthogonal_linear(in_dims: int, out_dims: int, bias: bool = False) -> nn.Linear:
    """An ``nn.Linear`` with an orthogonal weight (the recurrent maps of the LSTM and CT-RNN)."""
    layer = nn.Linear(in_dims, out_dims, bias=bias)
    layer.weight = nn.init.orthogonal()(layer.weight)
    return layer
