"""What the resume and interruption tests (test_resume.py, test_interruption.py and its child
process train_child.py) share: random sequence-regression data, ``fit`` with a sequence MSE loss,
Adam and no progress bar, and a model's parameters as numpy arrays."""

from __future__ import annotations

from typing import Any

import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from ncps import optimizers, training


def noise_task(rng: np.random.Generator, n: int, T: int, inputs: int, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``n`` float32 standard-normal input sequences ``(n, T, inputs)`` and targets
    ``(n, T, outputs)``, drawn from ``rng`` in that order."""
    x = rng.normal(size=(n, T, inputs)).astype(np.float32)
    return x, rng.normal(size=(n, T, outputs)).astype(np.float32)


def sequence_mse(model: nn.Module, x, y):
    """The mean squared error of every step's output (a layer returns ``(outputs, state)``)."""
    return nn.losses.mse_loss(model(x)[0], y)


def fit_sequences(model: nn.Module, data: tuple, learning_rate: float, **kwargs: Any) -> training.History:
    """``fit`` of ``model`` on ``data`` = ``(x, y)`` with :func:`sequence_mse`,
    ``ncps.optimizers.adam(learning_rate)`` and no progress bar."""
    return training.fit(model, sequence_mse, data, optimizer=optimizers.adam(learning_rate), progress=False, **kwargs)


def params_of(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's parameters by flattened name, as numpy arrays."""
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}
