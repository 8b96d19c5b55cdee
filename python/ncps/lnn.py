"""``LiquidNeuralNetwork``: the small "sklearn-ish" LNN wrapper, on ncps for MLX.

It follows the widely copied PyTorch wrapper ``LiquidNeuralNetwork(n_neurons=20, model_type='LTC')``
(``fit(X_train, y_train, epochs, clip_value=1, learning_rate=0.01, n_jobs=8)``, then
``predict(X_test)``): sequence-to-sequence regression with an LTC or CfC layer whose wiring is
``AutoNCP(n_neurons, output_size)``, trained with Adam on the mean squared error, gradient-norm
clipping and, by default, the whole data set as one batch.

.. code-block:: python

    from ncps import LiquidNeuralNetwork

    lnn = LiquidNeuralNetwork(n_neurons=20, model_type="LTC")
    lnn.fit(X_train, y_train, epochs=400, clip_value=1, learning_rate=0.01)  # (B, T, F), (B, T, k)
    prediction = lnn.predict(X_test)                                        # (B, T, k)

For a scikit-learn estimator (``clone``, pipelines, grid search) use
:class:`ncps.sklearn.LiquidRegressor`; for full control, :func:`ncps.training.fit`.
"""

from __future__ import annotations

import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import _checks, optimizers, training
from .layers import MODEL_TYPES
from .persistence import load, save
from .wirings import AutoNCP


def _mse(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    return nn.losses.mse_loss(model(x)[0], y)


class LiquidNeuralNetwork:
    """Sequence-to-sequence regression with an NCP-wired LTC or CfC layer.

    Args:
        n_neurons: neurons of the ``AutoNCP(n_neurons, output_size)`` wiring; must exceed the
            number of targets by more than 2.
        model_type: ``"LTC"`` or ``"CfC"``.
        verbose: show a progress bar per epoch during :meth:`fit` (the original drew the
            wiring instead; :meth:`draw_model` does that here).
        seed: seeds the initial weights and the shuffling (None: not reproducible). The wiring
            itself always uses ``AutoNCP``'s default seed, as in the original.

    Attributes:
        model: the trained ncps layer (``LTC`` or ``CfC``, ``return_sequences=True``).
        wiring: its ``AutoNCP`` wiring.
        history: the :class:`ncps.training.History` of the last :meth:`fit`.
        metadata: a dict like the original's (``is_trained``, ``model_type``, ``n_neurons``,
            ``epochs``, ``clip_value``, ``learning_rate``, ``in_features``, ``out_features``).
    """

    def __init__(self, n_neurons: int = 20, model_type: str | None = "LTC", verbose: int = 0, seed: int | None = None):
        model_type = "LTC" if model_type is None else model_type
        if model_type not in MODEL_TYPES:
            raise ValueError(f'Model type selected ({model_type}) does not match any of the known ones: "LTC" / "CfC"')
        if isinstance(n_neurons, bool) or not isinstance(n_neurons, (int, np.integer)) or n_neurons < 4:
            raise ValueError(f"n_neurons must be an int of at least 4, got {n_neurons!r}")
        self.n_neurons = int(n_neurons)
        seed = _checks.optional_integer(seed, "seed", 0)
        self.model_type = model_type
        self.verbose = verbose
        self.seed = seed
        self.model: nn.Module | None = None
        self.wiring: AutoNCP | None = None
        self.history: training.History | None = None
        self.metadata: dict = {
            "is_trained": False,
            "model_type": model_type,
            "n_neurons": self.n_neurons,
            "verbose": verbose,
        }

    # -- shapes -----------------------------------------------------------------------------------
    @staticmethod
    def _as_batch(X: Any, name: str) -> tuple[np.ndarray, bool]:
        """``X`` as float32 ``(B, T, F)`` and whether it came as one unbatched ``(T, F)`` sequence."""
        X = np.asarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinite values; clean or impute them first")
        if X.ndim == 2:
            return X[None], True
        if X.ndim != 3:
            raise ValueError(f"{name} must be (batch, time, features) or one sequence (time, features), got {X.shape}")
        return X, False

    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int = 100,
        clip_value: float | None = 1,
        learning_rate: float = 0.01,
        n_jobs: int | None = None,
        batch_size: int | None = None,
        verbose: int | None = None,
    ) -> LiquidNeuralNetwork:
        """Build a new network for the shapes of ``X`` and ``y`` and train it.

        Args:
            X: inputs ``(B, T, F)``, or one sequence ``(T, F)``.
            y: targets for every step: ``(B, T, k)`` or ``(B, T)`` (``(T, k)``/``(T,)`` for one
                sequence).
            epochs: passes over the data.
            clip_value: clip the gradients' global norm to this value (as PyTorch Lightning's
                ``gradient_clip_val`` did in the original); None or 0: no clipping.
            learning_rate: Adam's learning rate (``torch.optim.Adam``'s update: :func:`ncps.optimizers.adam`).
            n_jobs: accepted for compatibility and ignored. The original handed it to PyTorch
                ``DataLoader`` workers; here the data already sit in memory and need no loader
                processes. The fused CPU kernels use OpenMP threads, chosen with the environment
                variable ``OMP_NUM_THREADS`` before ``ncps`` is imported
                (``ncps.kernels.info()["threads"]`` says how many).
            batch_size: sequences per update; None: all of them (one update per epoch, as in
                the original).
            verbose: overrides the constructor's ``verbose`` for this call.

        Returns:
            self.
        """
        X, _ = self._as_batch(X, "X")
        y = np.asarray(y, dtype=np.float32)
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite values; clean or impute them first")
        if y.ndim == X.ndim - 1 and y.shape[:2] == X.shape[:2]:
            y = y[..., None]
        elif y.ndim == 1 and X.shape[0] == 1 and y.shape[0] == X.shape[1]:  # one sequence, (T,)
            y = y[None, :, None]
        elif y.ndim == 2 and X.shape[0] == 1:  # one sequence, (T, k)
            y = y[None]
        if y.ndim != 3 or y.shape[:2] != X.shape[:2]:
            raise ValueError(f"y must give a target for every step of X {X.shape}: (B, T, k) or (B, T), got {y.shape}")
        in_features, out_features = X.shape[-1], y.shape[-1]
        if self.seed is not None:
            mx.random.seed(int(self.seed))
        self.wiring = AutoNCP(self.n_neurons, out_features)
        layer = MODEL_TYPES[self.model_type]
        self.model = layer(in_features, self.wiring, batch_first=True, return_sequences=True)
        mx.eval(self.model.parameters())
        verbose = self.verbose if verbose is None else verbose
        self.history = training.fit(
            self.model,
            _mse,
            (X, y),
            optimizer=optimizers.adam(_checks.real(learning_rate, "learning_rate", 0.0)),
            epochs=_checks.integer(epochs, "epochs", 0),
            batch_size=X.shape[0]
            if batch_size is None or batch_size == 0
            else _checks.integer(batch_size, "batch_size"),
            clip_norm=clip_value or None,
            progress=bool(verbose),
            seed=self.seed,
        )
        self.metadata.update(
            is_trained=True,
            epochs=int(epochs),
            clip_value=clip_value,
            learning_rate=learning_rate,
            in_features=in_features,
            out_features=out_features,
            n_jobs=n_jobs,
        )
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Outputs for every step: ``(B, T, k)``, or ``(T, k)`` for one ``(T, F)`` sequence."""
        if self.model is None:
            raise RuntimeError("LiquidNeuralNetwork is not trained yet: call fit(X, y) first")
        X, unbatched = self._as_batch(X, "X")
        out = np.array(training.predict(self.model, X, batch_size=max(1, X.shape[0])))
        return out[0] if unbatched else out

    def draw_model(self, **kwargs: Any):
        """Draw the wiring (``wiring.draw_graph``; needs matplotlib and networkx)."""
        if self.wiring is None:
            raise RuntimeError("fit the network first: the wiring is sized by the targets")
        return self.wiring.draw_graph(**kwargs)

    def save_model(self, model_path: str | os.PathLike) -> None:
        """Write the trained layer with :func:`ncps.save` (a safetensors file)."""
        if self.model is None:
            raise RuntimeError("nothing to save: call fit(X, y) first")
        directory = os.path.dirname(os.path.abspath(os.fspath(model_path)))
        os.makedirs(directory, exist_ok=True)
        save(self.model, model_path)

    def load_model(self, model_path: str | os.PathLike) -> LiquidNeuralNetwork:
        """Load a layer written by :meth:`save_model` (or :func:`ncps.save`); returns self."""
        model = load(model_path)
        if type(model).__name__ not in MODEL_TYPES:
            raise ValueError(f"{os.fspath(model_path)!r} holds a {type(model).__name__}, not an LTC or CfC layer")
        self.model = model
        self.model_type = type(model).__name__
        self.wiring = model.rnn_cell.get_config().get("wiring")
        self.metadata.update(
            is_trained=True, model_type=self.model_type, in_features=model.input_size, out_features=model.output_size
        )
        if self.wiring is not None:
            self.n_neurons = self.metadata["n_neurons"] = int(self.wiring.units)
        return self

    def __repr__(self) -> str:
        return f"LiquidNeuralNetwork(n_neurons={self.n_neurons}, model_type={self.model_type!r})"
