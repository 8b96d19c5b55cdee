"""scikit-learn estimators around CfC and LTC networks: :class:`LiquidRegressor`, :class:`LiquidClassifier`.

.. code-block:: python

    from ncps.sklearn import LiquidClassifier, LiquidRegressor
    from ncps.wirings import AutoNCP

    clf = LiquidClassifier(units=32, epochs=30, random_state=0).fit(X_train, labels)  # X: (n, T, F)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, labels_test)

    reg = LiquidRegressor(model_type="LTC", units=AutoNCP(16, 1), return_sequences=True)
    reg.fit(X, Y)                   # Y: (n, T) or (n, T, k): one target per step

Inputs are sequences ``(n_samples, T, n_features)``; a 2-D ``(n_samples, n_features)`` is a
sequence of length 1. Sequences of different lengths: pass ``X`` as a list of ``(T_i, n_features)``
arrays (padded at the end for you), or padded with ``lengths=`` (``fit(X, y, lengths=L)``,
``predict(X, lengths=L)``, ...). Training runs :func:`ncps.training.fit` (Adam, gradient-norm clipping,
optional early stopping on a held-out fraction), so it is data-parallel under ``mlx.launch``.
Needs scikit-learn (``pip install ncps[sklearn]``); ``import ncps`` alone does not.
"""

from __future__ import annotations

import copy
import numbers
import warnings
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    FLOAT_DTYPES,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _checks, _dtypes, distributed, optimizers, training
from .layers import LTC, MODEL_TYPES, CfC
from .wirings import Wiring

__all__ = ["LiquidRegressor", "LiquidClassifier"]


class LiquidNet(nn.Module):
    """A CfC or LTC layer and, where its output size differs from the target's, a linear head.

    ``net(x, timespans=None, lengths=None)`` returns the outputs: ``(B, k)``, or ``(B, T, k)`` with
    ``return_sequences=True`` (zeros after each sequence's length).
    """

    def __init__(
        self,
        model_type: str,
        input_size: int,
        units: int | Wiring,
        n_outputs: int,
        return_sequences: bool = False,
        mode: str = "default",
        backbone_units: int | None = None,
    ):
        super().__init__()
        if isinstance(units, Wiring):
            units = copy.deepcopy(units)
        if model_type == "CfC":
            kwargs = {} if isinstance(units, Wiring) else {"backbone_units": backbone_units}
            self.rnn = CfC(input_size, units, return_sequences=return_sequences, mode=mode, **kwargs)
        else:
            self.rnn = LTC(input_size, units, return_sequences=return_sequences)
        self.head = nn.Linear(self.rnn.output_size, n_outputs) if self.rnn.output_size != n_outputs else None

    def __call__(self, x: mx.array, timespans: Any = None, lengths: Any = None) -> mx.array:
        out, _ = self.rnn(x, timespans=timespans, lengths=lengths)
        if self.head is None:
            return out
        out = self.head(out)
        if lengths is not None and out.ndim == 3:  # the head's bias is not 0 on the padding
            out = mx.where((mx.arange(out.shape[1])[None] < lengths[:, None])[..., None], out, 0.0)
        return out


class _LiquidBase(BaseEstimator):
    """Shared parameters, validation and training of the two estimators."""

    def _store_params(self, args: dict[str, Any]) -> None:
        """Keep each constructor argument (from ``locals()``) unchanged under its own name, as
        scikit-learn's ``get_params``/``clone`` expect: no validation here, that is fit's job."""
        for name in self._get_param_names():
            setattr(self, name, args[name])

    def _validate_params(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {tuple(MODEL_TYPES)}, got {self.model_type!r}")
        if not isinstance(self.units, Wiring) and (
            isinstance(self.units, bool) or not isinstance(self.units, numbers.Integral) or self.units < 1
        ):
            raise ValueError(f"units must be a positive int or a Wiring, got {self.units!r}")
        for name in ("epochs", "batch_size", "n_iter_no_change"):
            _checks.integer(getattr(self, name), name, 1)
        for name in ("return_sequences", "early_stopping", "normalize_y", "compile"):
            if hasattr(self, name):
                _checks.boolean(getattr(self, name), name)
        if self.random_state is not None and not isinstance(self.random_state, np.random.RandomState):
            _checks.seed(self.random_state, "random_state")
        if _checks.real(self.learning_rate, "learning_rate") <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.clip_value is not None and _checks.real(self.clip_value, "clip_value") <= 0:
            raise ValueError(f"clip_value must be a positive number or None, got {self.clip_value!r}")
        _checks.real(self.validation_fraction, "validation_fraction", 0.0, below=1.0)
        if not isinstance(self.precision, str) or self.precision not in _dtypes.PRECISIONS:
            raise ValueError(f"precision must be one of {list(_dtypes.PRECISIONS)}, got {self.precision!r}")

    # -- input validation ---------------------------------------------------------------------
    def _check_X(self, X: Any, *, reset: bool, lengths: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(X, lengths)``: ``X`` as a float32 ``(n, T, F)`` array (a 2-D ``(n, F)`` becomes
        ``(n, 1, F)``; a list of ``(T_i, F)`` sequences of different lengths is padded) and the
        validated int32 lengths ``(n,)``, or None."""
        if training._is_ragged(X):
            if lengths is not None:
                raise ValueError("lengths is for a padded array X; a list of sequences carries its own lengths")
            X, lengths = training.pad_sequences(X)
            X = X[..., None] if X.ndim == 2 else X  # sequences of scalars: one feature
        X = self._check_padded_X(X, reset=reset)
        return X, _check_lengths(lengths, X)

    def _check_padded_X(self, X: Any, *, reset: bool) -> np.ndarray:
        ndim = _ndim(X)
        if ndim > 3:
            raise ValueError(
                f"X must be 3-D (n_samples, n_timesteps, n_features) or 2-D (n_samples, n_features), got a "
                f"{ndim}-D array of shape {np.shape(X)}"
            )
        if ndim == 3:
            X = check_array(X, allow_nd=True, dtype=FLOAT_DTYPES, input_name="X")
            if reset:
                self.n_features_in_ = X.shape[2]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif X.shape[2] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[2]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            if X.shape[1] < 1:
                raise ValueError(f"X has sequences of length 0 (shape {X.shape})")
        else:
            X = validate_data(self, X, reset=reset, dtype=FLOAT_DTYPES)
            X = X[:, None, :]
        return np.ascontiguousarray(X, dtype=np.float32)

    def _seed(self) -> int:
        """An int seed from ``random_state`` (None draws a fresh one)."""
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state) % (2**31)
        # Data-parallel (under mlx.launch): every process uses rank 0's draw.
        return distributed.broadcast_int(int(check_random_state(self.random_state).randint(0, 2**31 - 1)))

    def _build(self, n_features: int, n_outputs: int, seed: int) -> None:
        mx.random.seed(seed)
        self.model_ = LiquidNet(
            self.model_type,
            n_features,
            self.units,
            n_outputs,
            return_sequences=getattr(self, "return_sequences", False),
            mode=self.mode,
            backbone_units=self.backbone_units,
        )
        mx.eval(self.model_.parameters())
        self._optimizer = optimizers.adam(float(self.learning_rate))

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int,
        seed: int,
        early_stopping: bool,
        lengths: np.ndarray | None = None,
    ) -> None:
        """Train ``model_`` on ``(X, y[, lengths])``; hold out ``validation_fraction`` for early stopping."""
        data = (X, y) if lengths is None else (X, y, lengths)
        validation = None
        n = X.shape[0]
        if early_stopping and self.validation_fraction > 0 and n >= 2:
            n_val = min(max(1, int(round(self.validation_fraction * n))), n - 1)
            order = np.random.default_rng(seed).permutation(n)
            val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
            validation = tuple(a[val_idx] for a in data)
            data = tuple(a[train_idx] for a in data)
        history = training.fit(
            self.model_,
            self._loss,
            data,
            optimizer=self._optimizer,
            epochs=int(epochs),
            batch_size=int(self.batch_size),
            validation_data=validation,
            clip_norm=self.clip_value,
            early_stopping_patience=int(self.n_iter_no_change) if early_stopping else None,
            restore_best=True,
            progress=bool(self.verbose),
            seed=seed,
            compile=self.compile,
            precision=self.precision,
        )
        self.history_ = history
        self.loss_curve_ = list(getattr(self, "loss_curve_", [])) + history.history.get("loss", [])
        if "val_loss" in history.history:
            self.validation_scores_ = list(getattr(self, "validation_scores_", [])) + history.history["val_loss"]
        self.n_iter_ = getattr(self, "n_iter_", 0) + len(history.epoch)

    def _forward(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """The network's outputs for validated ``X`` (and lengths), as float64 numpy."""
        out = training.predict(
            self.model_, X if lengths is None else (X, lengths), batch_size=max(int(self.batch_size), 256)
        )
        return np.array(out, dtype=np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class LiquidRegressor(RegressorMixin, _LiquidBase):
    """Sequence regression with a CfC or LTC network, as a scikit-learn estimator.

    Args:
        model_type: ``"CfC"`` or ``"LTC"``.
        units: neurons of the recurrent layer (fully connected), or a :class:`~ncps.wirings.Wiring`
            such as ``AutoNCP(32, k)``. A linear head maps the layer's outputs to the ``k``
            targets unless the wiring already has ``k`` motor neurons.
        epochs: passes over the training data in :meth:`fit`.
        batch_size: samples per update.
        learning_rate: Adam's learning rate (``torch.optim.Adam``'s update: :func:`ncps.optimizers.adam`).
        clip_value: clip the gradient's global norm to this value (None: no clipping).
        random_state: seeds the initial weights, the shuffling and the validation split; an int
            makes :meth:`fit` reproducible.
        return_sequences: predict a target at every step (``y`` is ``(n, T)`` or ``(n, T, k)``)
            instead of after the last step (``y`` is ``(n,)`` or ``(n, k)``).
        mode: CfC mode (``"default"``, ``"pure"``, ``"no_gate"``); ignored for LTC.
        backbone_units: width of the CfC backbone (None: the CfC default of 128); ignored for LTC
            and wired CfC.
        validation_fraction: the fraction of the training data held out when ``early_stopping``.
        early_stopping: stop when the held-out loss has not improved for ``n_iter_no_change``
            epochs, and keep the best epoch's weights.
        n_iter_no_change: the patience of early stopping.
        normalize_y: train on standardized targets (predictions are scaled back).
        verbose: show a progress bar per epoch.
        compile: compile the training step with ``mx.compile`` (fastest for long runs; False
            skips the one-off tracing cost, better for many small fits).
        precision: ``"fp32"``, or mixed precision ``"bf16"`` / ``"fp16"``: the forward and backward
            run in that half type on float32 master weights (:func:`ncps.training.fit`); the
            fitted model stays float32.

    Attributes:
        model_: the trained :class:`LiquidNet` (``model_.rnn`` is the ncps layer).
        n_features_in_: features per time step.
        n_outputs_: targets per prediction (``k``).
        history_: the :class:`ncps.training.History` of the last call to fit/partial_fit.
        loss_curve_: the training loss (of the standardized targets) of every epoch run.
        n_iter_: epochs run.
    """

    def __init__(
        self,
        model_type: str = "CfC",
        units: int | Wiring = 32,
        epochs: int = 50,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        clip_value: float | None = 1.0,
        random_state: Any = None,
        return_sequences: bool = False,
        mode: str = "default",
        backbone_units: int | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        normalize_y: bool = True,
        verbose: bool = False,
        compile: bool = True,
        precision: str = "fp32",
    ):
        self._store_params(locals())

    @staticmethod
    def _loss(model: nn.Module, x: mx.array, y: mx.array, lengths: mx.array | None = None) -> mx.array:
        out = model(x, lengths=lengths)
        if lengths is None or out.ndim == 2:
            return nn.losses.mse_loss(out, y)
        # One target per valid step: the mean over those steps only.
        valid = (mx.arange(y.shape[1])[None] < lengths[:, None])[..., None]
        return mx.where(valid, (out - y) ** 2, 0.0).sum() / (valid.sum() * y.shape[-1])

    def _check_y(self, y: Any, X: np.ndarray) -> np.ndarray:
        """``y`` as float32 ``(n, k)`` (or ``(n, T, k)`` with return_sequences)."""
        _require_y(self, y)
        y = check_array(y, ensure_2d=False, allow_nd=True, dtype=FLOAT_DTYPES, input_name="y")
        check_consistent_length(X, y)
        if self.return_sequences:
            if y.ndim not in (2, 3) or y.shape[1] != X.shape[1]:
                raise ValueError(
                    f"with return_sequences=True, y must be (n_samples, T) or (n_samples, T, k) with "
                    f"T = {X.shape[1]} (the length of X), got shape {y.shape}"
                )
            return y[..., None] if y.ndim == 2 else y
        if y.ndim > 2:
            raise ValueError(
                f"y must be (n_samples,) or (n_samples, k); got shape {y.shape} "
                "(use return_sequences=True for one target per step)"
            )
        return y[:, None] if y.ndim == 1 else y

    def fit(self, X: Any, y: Any, lengths: Any = None) -> LiquidRegressor:
        """Train a new network on ``X`` ``(n, T, F)`` (or ``(n, F)``, or a list of ``(T_i, F)``
        sequences) and targets ``y``; ``lengths`` ``(n,)`` for a padded ``X``."""
        self._validate_params()
        X, lengths = self._check_X(X, reset=True, lengths=lengths)
        y = _pad_targets(y)
        y_raw = np.asarray(y) if not hasattr(y, "shape") else y
        y = self._check_y(y, X)
        self._y_ndim = np.ndim(y_raw)
        self.n_outputs_ = y.shape[-1]
        seed = self._seed()
        self._set_target_scaling(y, lengths)
        self._build(X.shape[2], self.n_outputs_, seed)
        for name in ("loss_curve_", "validation_scores_", "n_iter_"):
            self.__dict__.pop(name, None)
        self._train(X, self._scale(y), self.epochs, seed, self.early_stopping, lengths)
        return self

    def partial_fit(self, X: Any, y: Any, lengths: Any = None) -> LiquidRegressor:
        """One more epoch on ``(X, y)``; the first call builds the network (like :meth:`fit`
        with one epoch). The target scaling is fixed by the first call."""
        first = not hasattr(self, "model_")
        if first:
            self._validate_params()
        X, lengths = self._check_X(X, reset=first, lengths=lengths)
        y = _pad_targets(y)
        if first:
            y_raw = np.asarray(y) if not hasattr(y, "shape") else y
        y = self._check_y(y, X)
        seed = self._seed() + getattr(self, "n_iter_", 0)  # a new shuffle each call
        if first:
            self._y_ndim = np.ndim(y_raw)
            self.n_outputs_ = y.shape[-1]
            self._set_target_scaling(y, lengths)
            self._build(X.shape[2], self.n_outputs_, seed)
        elif y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[-1]} targets, but the model was fit with {self.n_outputs_}")
        self._train(X, self._scale(y), 1, seed, early_stopping=False, lengths=lengths)
        return self

    def _set_target_scaling(self, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        axes = tuple(range(y.ndim - 1))
        if lengths is not None and y.ndim == 3:  # per-step targets: only the valid steps count
            y, axes = y[np.arange(y.shape[1])[None] < lengths[:, None]], (0,)
        if self.normalize_y:
            mean = y.mean(axis=axes)
            scale = y.std(axis=axes)
            scale[scale < 1e-12] = 1.0
        else:
            mean, scale = np.zeros(y.shape[-1]), np.ones(y.shape[-1])
        self._y_mean, self._y_scale = mean.astype(np.float64), scale.astype(np.float64)

    def _scale(self, y: np.ndarray) -> np.ndarray:
        return ((y - self._y_mean) / self._y_scale).astype(np.float32)

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Predictions (float64): ``(n,)`` or ``(n, k)`` like ``y`` in fit; ``(n, T)`` /
        ``(n, T, k)`` with ``return_sequences`` (0 after each sequence's length)."""
        check_is_fitted(self, "model_")
        X, lengths = self._check_X(X, reset=False, lengths=lengths)
        out = self._forward(X, lengths) * self._y_scale + self._y_mean
        if lengths is not None and out.ndim == 3:
            out = np.where((np.arange(out.shape[1])[None] < lengths[:, None])[..., None], out, 0.0)
        if self.return_sequences:
            return out[..., 0] if self._y_ndim == 2 else out
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of the predictions (every step counts as a sample with ``return_sequences``)."""
        if not self.return_sequences:
            return super().score(X, y, sample_weight=sample_weight)
        y_pred = self.predict(X)
        y = np.asarray(y, dtype=np.float64)
        k = 1 if y.ndim == 2 else y.shape[-1]
        weights = None if sample_weight is None else np.repeat(np.asarray(sample_weight), y.shape[1])
        return float(r2_score(y.reshape(-1, k), y_pred.reshape(-1, k), sample_weight=weights))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class LiquidClassifier(ClassifierMixin, _LiquidBase):
    """Sequence classification with a CfC or LTC network, as a scikit-learn estimator.

    One label per sequence, read after the last step; labels may be any values
    (strings too). The loss is the cross-entropy of a softmax over the classes.

    Args:
        model_type, units, epochs, batch_size, learning_rate, clip_value, random_state, mode,
        backbone_units, validation_fraction, early_stopping, n_iter_no_change, verbose,
        compile, precision: as for :class:`LiquidRegressor`.

    Attributes:
        classes_: the class labels, sorted.
        model_, n_features_in_, history_, loss_curve_, n_iter_: as for :class:`LiquidRegressor`.
    """

    def __init__(
        self,
        model_type: str = "CfC",
        units: int | Wiring = 32,
        epochs: int = 50,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        clip_value: float | None = 1.0,
        random_state: Any = None,
        mode: str = "default",
        backbone_units: int | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = False,
        n_iter_no_change: int = 10,
        verbose: bool = False,
        compile: bool = True,
        precision: str = "fp32",
    ):
        self._store_params(locals())

    @staticmethod
    def _loss(model: nn.Module, x: mx.array, y: mx.array, lengths: mx.array | None = None) -> mx.array:
        return nn.losses.cross_entropy(model(x, lengths=lengths), y, reduction="mean")

    def _check_labels(self, y: Any, X: np.ndarray) -> np.ndarray:
        _require_y(self, y)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        return y

    def fit(self, X: Any, y: Any, lengths: Any = None) -> LiquidClassifier:
        """Train a new network on ``X`` ``(n, T, F)`` (or ``(n, F)``, or a list of ``(T_i, F)``
        sequences) and labels ``y`` ``(n,)``; ``lengths`` ``(n,)`` for a padded ``X``."""
        self._validate_params()
        X, lengths = self._check_X(X, reset=True, lengths=lengths)
        y = self._check_labels(y, X)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError("Classifier can't train when only one class is present.")
        self.classes_ = encoder.classes_
        seed = self._seed()
        self._build(X.shape[2], len(self.classes_), seed)
        for name in ("loss_curve_", "validation_scores_", "n_iter_"):
            self.__dict__.pop(name, None)
        self._train(X, encoder.transform(y).astype(np.int32), self.epochs, seed, self.early_stopping, lengths)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None, lengths: Any = None) -> LiquidClassifier:
        """One more epoch on ``(X, y)``. The first call builds the network for ``classes`` (all
        the labels that will ever appear; default: those of this ``y``)."""
        first = not hasattr(self, "model_")
        if first:
            self._validate_params()
        X, lengths = self._check_X(X, reset=first, lengths=lengths)
        y = self._check_labels(y, X)
        if first:
            labels = np.unique(column_or_1d(classes) if classes is not None else y)
            if len(labels) < 2:
                raise ValueError("Classifier can't train when only one class is present.")
            self.classes_ = labels
            seed = self._seed()
            self._build(X.shape[2], len(labels), seed)
        else:
            seed = self._seed() + self.n_iter_  # a new shuffle each call
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={classes!r} differs from the classes of the first call: {self.classes_!r}")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not in classes_: {unknown!r}")
        self._train(
            X, np.searchsorted(self.classes_, y).astype(np.int32), 1, seed, early_stopping=False, lengths=lengths
        )
        return self

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        logits = self._forward(*self._check_X(X, reset=False, lengths=lengths))
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X, lengths))

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """The most probable class of every sequence."""
        proba = self.predict_proba(X, lengths)
        return self.classes_[np.argmax(proba, axis=1)]


def _require_y(estimator: BaseEstimator, y: Any) -> None:
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")


def _pad_targets(y: Any) -> Any:
    """Per-step targets of sequences of different lengths (a list of ``(T_i,)`` or ``(T_i, k)``
    arrays), padded like their sequences; anything else as given."""
    return training.pad_sequences(y)[0] if training._is_ragged(y) else y


def _check_lengths(lengths: Any, X: np.ndarray) -> np.ndarray | None:
    """``lengths`` as int32 ``(n,)`` with ``1 <= lengths[i] <= T`` for ``X`` ``(n, T, F)``, or None."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    n, T = X.shape[:2]
    if arr.shape != (n,):
        raise ValueError(f"lengths must have shape (n_samples,) = ({n},), got {arr.shape}")
    if arr.min() < 1 or arr.max() > T:
        raise ValueError(f"lengths must satisfy 1 <= lengths[i] <= T = {T}, got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int32)


def _ndim(X: Any) -> int:
    ndim = getattr(X, "ndim", None)
    if isinstance(ndim, int):
        return ndim
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.ndim(X)
    except Exception:  # ragged lists: let check_array produce the error
        return 2
