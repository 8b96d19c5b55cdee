"""``Sequential`` models with Keras' ``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``summary`` /
``save``, trained by :func:`ncps.training.fit`.

Inputs: an array ``x``, or a tuple ``(x, timespans)`` / ``(x, timespans, mask)`` as in the Keras
``ncps`` irregular mode. The timespans (``(n, T)`` or ``(n, T, 1)``) and mask (``(n, T)``) go to
every recurrent layer until the first one that returns only its last step. Sequences of different
lengths: ``x`` a list of ``(T_i, F)`` arrays (padded at the end), or a padded ``x`` with
``lengths=`` in ``fit`` / ``evaluate`` / ``predict``; both become the mask ``t < lengths``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from .. import _checks
from .. import optimizers as _optimizers
from ..persistence import read_safetensors
from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics

FORMAT = "ncps-mini-keras/1"
_META_KEY = "ncps_mini_keras"

ArrayLike = mx.array | np.ndarray | Sequence
Inputs = ArrayLike | tuple

__all__ = ["Sequential", "load_model"]


def _to_mx(a: Any) -> mx.array:
    if isinstance(a, mx.array):
        return a
    a = np.asarray(a)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype == np.int64:
        a = a.astype(np.int32)
    return mx.array(a)


def _split_inputs(x: Inputs, lengths: Any = None) -> list[mx.array]:
    """``x`` or ``(x, timespans[, mask])`` as a list of MLX arrays with a common first axis; a list
    of sequences of different lengths, or ``lengths`` ``(n,)``, adds the mask ``t < lengths``."""
    from ..training import _is_ragged, pad_sequences

    if _is_ragged(x):
        if lengths is not None:
            raise ValueError("lengths is for a padded x; a list of sequences carries its own lengths")
        x, lengths = pad_sequences(x)
    parts = [_to_mx(p) for p in x] if isinstance(x, (tuple, list)) and not _is_plain_sequence(x) else [_to_mx(x)]
    if lengths is not None:
        parts = _with_mask(parts, lengths)
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"inputs must be x, (x, timespans) or (x, timespans, mask); got a tuple of {len(parts)}")
    n = parts[0].shape[0]
    for name, p in zip(("x", "timespans", "mask"), parts):
        if p.ndim and p.shape[0] != n:  # a scalar timespan applies to every sample
            raise ValueError(f"{name} has {p.shape[0]} samples but x has {n}")
    return parts


def _with_mask(parts: list, lengths: Any) -> list:
    """``[x, timespans, mask]`` with ``mask = t < lengths`` (timespans 1 when not given)."""
    x = parts[0]
    if len(parts) == 3:
        raise ValueError("pass either a mask in x = (x, timespans, mask) or lengths=, not both")
    if x.ndim != 3:
        raise ValueError(f"lengths needs sequences x of shape (n, T, F), got {tuple(x.shape)}")
    n, T = x.shape[:2]
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (n,):
        raise ValueError(f"lengths must have shape (n,) = ({n},), one per sequence of x, got {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(
            f"lengths must satisfy 1 <= lengths[i] <= T = {T}, got values in [{lengths.min()}, {lengths.max()}]"
        )
    ts = parts[1] if len(parts) == 2 else mx.ones((n, T))
    return [x, ts, mx.arange(T)[None] < mx.array(lengths.astype(np.int32))[:, None]]


def _is_plain_sequence(x: Any) -> bool:
    """A nested list of numbers (data), rather than a tuple of arrays (x, timespans[, mask])."""
    return isinstance(x, list) and len(x) > 0 and not isinstance(x[0], (mx.array, np.ndarray))


def _optimizer(spec: str | optim.Optimizer) -> optim.Optimizer:
    """An optimizer instance as given, or a name built with Keras' defaults and update formulas."""
    if isinstance(spec, optim.Optimizer):
        return spec
    return _optimizers.make_optimizer(str(spec), convention="keras")


class Sequential(nn.Module):
    """A linear stack of layers, Keras style.

    Example::

        from ncps import mini_keras as keras
        from ncps.wirings import AutoNCP

        model = keras.models.Sequential([
            keras.layers.InputLayer((None, 2)),
            keras.layers.LTC(AutoNCP(16, 1), return_sequences=True),
        ])
        model.compile(optimizer="adam", loss="mse")
        history = model.fit(x, y, epochs=100, batch_size=1)
        model.summary()
        model.save("sine.safetensors")
        model = keras.models.load_model("sine.safetensors")

    Args:
        layers: the layers, optionally starting with an :class:`~ncps.mini_keras.layers.InputLayer`.
        name: the model name shown by :meth:`summary`.
    """

    def __init__(self, layers: Sequence[_layers.Layer] | None = None, name: str = "sequential"):
        super().__init__()
        self.model_name = name
        self.layers: list[_layers.Layer] = []
        self.input_shape: tuple | None = None
        self.built = False
        self.compiled = False
        object.__setattr__(self, "_compile_config", None)
        for layer in layers or []:
            self.add(layer)

    # -- structure --------------------------------------------------------------------------
    def add(self, layer: _layers.Layer) -> None:
        """Append a layer (an ``InputLayer`` only sets the input shape)."""
        if not isinstance(layer, _layers.Layer):
            raise TypeError(f"Sequential takes mini_keras layers, got {type(layer).__name__}")
        if self.built:
            raise RuntimeError("cannot add layers to a built model")
        if isinstance(layer, _layers.InputLayer):
            if self.layers or self.input_shape is not None:
                raise ValueError("an InputLayer must come first, and only once")
            self.input_shape = layer.shape
            return
        if not self.layers and self.input_shape is None and layer.input_shape_hint is not None:
            self.input_shape = layer.input_shape_hint
        if layer.layer_name is None:
            layer.layer_name = self._unique_name(_NAMES.get(type(layer).__name__) or _snake(type(layer).__name__))
        elif any(l.layer_name == layer.layer_name for l in self.layers):
            raise ValueError(f"duplicate layer name {layer.layer_name!r}")
        self.layers.append(layer)

    def _unique_name(self, base: str) -> str:
        names = {l.layer_name for l in self.layers}
        if base not in names:
            return base
        i = 1
        while f"{base}_{i}" in names:
            i += 1
        return f"{base}_{i}"

    def build(self, input_shape: Sequence[int | None] | None = None) -> Sequential:
        """Create every layer's weights for samples of shape ``input_shape`` (batch axis excluded;
        default: the ``InputLayer``'s shape). Returns the model."""
        if input_shape is not None and self.input_shape is not None:
            if not _layers._compatible(self.input_shape, tuple(input_shape)):
                raise ValueError(
                    f"the model expects inputs of shape {_layers._shape_str(self.input_shape)}, "
                    f"got {_layers._shape_str(tuple(input_shape))}"
                )
            input_shape = None  # keep the declared shape (its free axes stay free)
        if input_shape is None:
            input_shape = self.input_shape
        if input_shape is None:
            raise ValueError(
                "the input shape is unknown: start with an InputLayer, pass input_shape= to the "
                "first layer, or call build(input_shape) / fit / predict with data"
            )
        shape = tuple(input_shape)
        if not self.layers:
            raise ValueError("the model has no layers")
        for layer in self.layers:
            layer.ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        if self.input_shape is None:
            self.input_shape = tuple(input_shape)
        self.built = True
        mx.eval(self.parameters())
        return self

    @property
    def output_shape(self) -> tuple:
        """The output shape of one sample (the model must have an input shape)."""
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def _output_activation(self) -> str | None:
        for layer in reversed(self.layers):
            if isinstance(layer, (_layers.Dense, _layers.Activation)):
                return layer.activation if isinstance(layer.activation, str) else None
            if not isinstance(layer, (_layers.Dropout, _layers.Flatten, _layers.Reshape)):
                return None
        return None

    # -- forward ----------------------------------------------------------------------------
    def __call__(self, inputs: Inputs) -> mx.array:
        """Run the model on ``x`` or ``(x, timespans[, mask])`` (MLX arrays, batch first)."""
        parts = _split_inputs(inputs) if isinstance(inputs, (tuple, list)) else [_to_mx(inputs)]
        x, ts, mask = (parts + [None, None])[:3]
        if not self.built:
            self.build(tuple(x.shape[1:]))
        for layer in self.layers:
            if layer.recurrent:
                x = layer(x, timespans=ts, mask=mask)
                if not layer.return_sequences:
                    ts = mask = None
            else:
                x = layer(x)
        return x

    # -- training ---------------------------------------------------------------------------
    def compile(
        self,
        optimizer: str | optim.Optimizer = "adam",
        loss: str | _losses.Loss | Callable = "mse",
        metrics: Sequence[str | Callable] | None = None,
        clipnorm: float | None = None,
        jit_compile: bool = True,
    ) -> None:
        """Choose the optimizer, the loss and the metrics.

        Args:
            optimizer: a name (``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, ``"adagrad"``,
                ``"adamax"``, ``"lion"``): the ``keras.optimizers`` class with Keras 3's defaults
                and update formula (``"adam"``: lr 1e-3, bias-corrected, epsilon 1e-7; see
                :mod:`ncps.optimizers`), or an ``mlx.optimizers`` instance (learning-rate
                schedules included; an Adam without ``bias_correction=True`` trains unlike Keras).
            loss: ``"mse"``, ``"mae"``, ``"huber"``, ``"sparse_categorical_crossentropy"``,
                ``"categorical_crossentropy"``, ``"binary_crossentropy"``, a
                :class:`~ncps.mini_keras.losses.Loss` or a callable ``loss(y_true, y_pred)``.
                A crossentropy named by a string reads logits unless the model ends in the
                matching softmax / sigmoid (see :func:`ncps.mini_keras.losses.get`).
            metrics: names (``"accuracy"``, ``"mae"``, ``"mse"``, ``"rmse"``, …) or callables
                ``fn(y_true, y_pred)``; reported per epoch for the training and validation data.
            clipnorm: clip the global gradient norm to this value (Keras puts it on the optimizer).
            jit_compile: run the training step under ``mx.compile``. Faster per step, but tracing
                a long unrolled recurrence (e.g. an LTC over many steps) takes a while up front.
        """
        self.optimizer = _optimizer(optimizer)
        self._loss_spec = loss
        self.loss = _losses.get(loss, self._output_activation())
        object.__setattr__(self, "_metric_specs", list(metrics or []))
        object.__setattr__(self, "metrics_fns", dict(_metrics.get(m, self.loss) for m in self._metric_specs))
        self.clipnorm = clipnorm
        self.jit_compile = _checks.boolean(jit_compile, "jit_compile")
        self.compiled = True
        object.__setattr__(self, "_compile_config", _compile_config(optimizer, loss, self._metric_specs, clipnorm))
        if self._compile_config is not None:
            self._compile_config["jit_compile"] = self.jit_compile

    def _require_compiled(self) -> None:
        if not self.compiled:
            raise RuntimeError("call model.compile(optimizer=..., loss=...) first")

    def _loss_fn(self) -> Callable:
        """``loss_fn(model, *batch)`` for :func:`ncps.training.fit`: the loss, or with metrics
        ``(loss, [metric values])`` from the same predictions (``loss_metrics=self.metrics_fns``),
        so that the model runs once per batch, as in Keras, not once more per metric."""
        loss, metric_fns = self.loss, list(self.metrics_fns.values())

        def loss_fn(model, *batch):
            inputs, y = batch[:-1], batch[-1]
            y_pred = model(inputs if len(inputs) > 1 else inputs[0])
            if not metric_fns:
                return loss(y, y_pred)
            return loss(y, y_pred), [fn(y, y_pred) for fn in metric_fns]

        return loss_fn

    def fit(
        self,
        x: Inputs = None,
        y: ArrayLike = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int = 1,
        callbacks: list | None = None,
        validation_split: float = 0.0,
        validation_data: tuple | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        early_stopping_patience: int | None = None,
        restore_best: bool = False,
        checkpoint_path: str | os.PathLike | None = None,
        lengths: ArrayLike | None = None,
        precision: str = "fp32",
    ):
        """Train for ``epochs`` passes over ``(x, y)``; returns the ``History`` of
        :func:`ncps.training.fit` (``history.history`` maps ``"loss"``, ``"val_loss"`` and each
        metric, plain and ``val_``-prefixed, to a list with one value per epoch).

        Args:
            x: inputs, ``x`` or ``(x, timespans[, mask])`` (numpy or MLX arrays), or a list of
                sequences ``(T_i, F)`` of different lengths (padded at the end, masked).
            y: targets.
            batch_size: samples per step (default 32).
            epochs: passes over the data.
            verbose: 1 shows a progress bar per epoch, 2 one line per epoch, 0 nothing.
            callbacks: :mod:`ncps.mini_keras.callbacks` objects (``EarlyStopping``,
                ``ModelCheckpoint``, ...), :class:`ncps.training.Callback` objects or functions
                ``fn(epoch, logs)``; callbacks with a ``model`` attribute get this model.
            validation_split: the fraction of samples, taken from the end before shuffling (as
                Keras does), held out for validation.
            validation_data: ``(x_val, y_val)``, with ``x_val`` shaped like ``x``.
            shuffle, seed: shuffle the samples every epoch, reproducibly with ``seed``.
            early_stopping_patience, restore_best, checkpoint_path: see :func:`ncps.training.fit`.
                Unlike there, ``restore_best`` defaults to False: as in Keras, the model keeps the
                final weights unless asked otherwise (or given
                ``callbacks.EarlyStopping(restore_best_weights=True)``).
            lengths: ``(n,)`` integers for a padded ``x``: sequence ``i`` is its first
                ``lengths[i]`` steps (the mask ``t < lengths``).
            precision: ``"fp32"``, or mixed precision ``"bf16"`` / ``"fp16"`` (float32 master
                weights, half compute): see :func:`ncps.training.fit`.
        """
        from .. import training

        self._require_compiled()
        if y is None:
            raise ValueError("fit needs targets y")
        inputs = _split_inputs(x, lengths)
        y = _to_mx(y)
        if y.shape[0] != inputs[0].shape[0]:
            raise ValueError(f"x has {inputs[0].shape[0]} samples but y has {y.shape[0]}")
        if not self.built:
            self.build(tuple(inputs[0].shape[1:]))
        if isinstance(self.loss, _losses.SparseCategoricalCrossentropy):
            _losses.check_sparse_labels(np.array(y), self.output_shape[-1])
        data = (*inputs, y)
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be (x_val, y_val)")
            val = (*_split_inputs(validation_data[0]), _to_mx(validation_data[1]))
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            n = y.shape[0]
            cut = n - int(round(n * validation_split))
            if cut <= 0 or cut >= n:
                raise ValueError(
                    f"validation_split={validation_split} leaves no training or no validation samples of {n}"
                )
            data, val = tuple(a[:cut] for a in data), tuple(a[cut:] for a in data)
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if hasattr(cb, "model") and getattr(cb, "model", None) is None:
                cb.model = self
        if verbose == 2:
            callbacks.append(_callbacks._EpochLine(epochs))
        self.train()
        history = training.fit(
            self,
            self._loss_fn(),
            data,
            optimizer=self.optimizer,
            epochs=epochs,
            batch_size=32 if batch_size is None else _checks.integer(batch_size, "batch_size"),
            validation_data=val,
            clip_norm=self.clipnorm,
            loss_metrics=list(self.metrics_fns),
            early_stopping_patience=early_stopping_patience,
            restore_best=restore_best,
            checkpoint_path=None if checkpoint_path is None else os.fspath(checkpoint_path),
            progress=verbose == 1,
            shuffle=shuffle,
            seed=seed,
            callbacks=callbacks,
            compile=self.jit_compile,
            precision=precision,
        )
        object.__setattr__(self, "history", history)
        return history

    def evaluate(
        self,
        x: Inputs,
        y: ArrayLike,
        batch_size: int | None = None,
        verbose: int = 0,
        return_dict: bool = False,
        lengths: ArrayLike | None = None,
    ) -> float | list | dict:
        """The loss (and metrics) on ``(x, y)`` in evaluation mode (dropout off); ``x`` and
        ``lengths`` as in :meth:`fit`.

        Returns the loss as a float without metrics, else ``[loss, *metrics]`` in compile order,
        or a dict ``{"loss": …, name: …}`` with ``return_dict=True``.
        """
        from .. import training

        self._require_compiled()
        data = (*_split_inputs(x, lengths), _to_mx(y))
        if not self.built:
            self.build(tuple(data[0].shape[1:]))
        with _eval_mode(self):
            result = training.evaluate(
                self,
                self._loss_fn(),
                data,
                batch_size=32 if batch_size is None else _checks.integer(batch_size, "batch_size"),
                loss_metrics=list(self.metrics_fns),
            )
        result = {k: float(v) for k, v in result.items()}
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        if return_dict:
            return result
        if not self.metrics_fns:
            return result["loss"]
        return [result["loss"], *(result[name] for name in self.metrics_fns)]

    def predict(
        self, x: Inputs, batch_size: int | None = None, verbose: int = 0, lengths: ArrayLike | None = None
    ) -> mx.array:
        """The model's outputs for ``x`` (or ``(x, timespans[, mask])``), in evaluation mode,
        computed ``batch_size`` samples at a time (default 32); ``x`` and ``lengths`` as in
        :meth:`fit`."""
        parts = _split_inputs(x, lengths)
        if not self.built:
            self.build(tuple(parts[0].shape[1:]))
        batch_size = 32 if batch_size is None else _checks.integer(batch_size, "batch_size")
        n = parts[0].shape[0]
        outputs = []
        with _eval_mode(self):
            for start in range(0, n, batch_size):
                batch = [p[start : start + batch_size] for p in parts]
                out = self(tuple(batch) if len(batch) > 1 else batch[0])
                mx.eval(out)
                outputs.append(out)
        return mx.concatenate(outputs, axis=0) if outputs else mx.zeros((0, *self.output_shape))

    # -- reporting --------------------------------------------------------------------------
    def count_params(self) -> int:
        """The number of parameters (all of them, trainable or not)."""
        self._require_built()
        return sum(v.size for _, v in tree_flatten(self.parameters()))

    def _require_built(self) -> None:
        if not self.built:
            if self.input_shape is None:
                raise ValueError("the model is not built: give it an InputLayer or call build(input_shape) first")
            self.build()

    def summary(self, print_fn: Callable[[str], Any] | None = None, line_length: int = 72) -> str:
        """Print (with ``print_fn``, default ``print``) and return a table of the layers with their
        output shapes and parameter counts, and the totals."""
        self._require_built()
        rows = []
        shape = self.input_shape
        total = trainable = 0
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            n_all, n_train = layer.count_params()
            total += n_all
            trainable += n_train
            rows.append((f"{layer.layer_name} ({type(layer).__name__})", _layers._shape_str(shape), f"{n_all:,}"))
        w0 = max([28] + [len(r[0]) for r in rows]) + 2
        w1 = max([22] + [len(r[1]) for r in rows]) + 2
        width = max(line_length, w0 + w1 + 12)
        lines = [
            f'Model: "{self.model_name}"',
            "_" * width,
            f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>10}",
            "=" * width,
        ]
        for i, (a, b, c) in enumerate(rows):
            lines.append(f"{a:<{w0}}{b:<{w1}}{c:>10}")
            lines.append("_" * width if i < len(rows) - 1 else "=" * width)
        lines += [
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            "_" * width,
        ]
        text = "\n".join(lines)
        (print_fn or print)(text)
        return text

    # -- persistence ------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON-serializable data (wirings included)."""
        return {
            "name": self.model_name,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "layers": [
                {"class_name": type(l).__name__, "name": l.layer_name, "config": l.get_config()} for l in self.layers
            ],
        }

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        """A new, unbuilt model from :meth:`get_config`'s output (built when it has an input shape)."""
        model = cls([_layers.deserialize(entry) for entry in config["layers"]], name=config.get("name", "sequential"))
        if config.get("input_shape") is not None:
            model.build(tuple(config["input_shape"]))
        return model

    def save(self, path: str | os.PathLike) -> None:
        """Write the architecture, the weights and the compile settings to one ``.safetensors`` file
        (the configuration is JSON in the file's metadata). Optimizer state is not saved."""
        self._require_built()
        meta = {
            "format": FORMAT,
            "class_name": type(self).__name__,
            "config": self.get_config(),
            "compile": self._compile_config,
        }
        weights = dict(tree_flatten(self.parameters()))
        mx.save_safetensors(os.fspath(path), weights, metadata={_META_KEY: json.dumps(meta)})


def load_model(path: str | os.PathLike, compile: bool = True) -> Sequential:
    """Rebuild a model written by :meth:`Sequential.save`; it gives identical outputs.

    With ``compile=True`` the model is compiled again with the saved loss, metrics and optimizer
    (a fresh optimizer state) when these were given by name or as a plain mlx optimizer.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    weights, metadata = read_safetensors(path)
    if _META_KEY not in metadata:
        raise ValueError(f"{path!r} holds no mini_keras model (was it written by Sequential.save?)")
    meta = json.loads(metadata[_META_KEY])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    model = Sequential.from_config(meta["config"])
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    spec = meta.get("compile")
    if compile and spec is not None:
        opt = spec["optimizer"]
        if isinstance(opt, dict):
            cls = getattr(_optimizers, opt["class"], None) or getattr(optim, opt["class"])
            opt = cls(learning_rate=opt["learning_rate"], **opt.get("options", {}))
        model.compile(
            optimizer=opt,
            loss=spec["loss"],
            metrics=spec["metrics"],
            clipnorm=spec["clipnorm"],
            jit_compile=spec.get("jit_compile", True),
        )
    return model


def _compile_config(optimizer, loss, metrics, clipnorm) -> dict | None:
    """The compile arguments if they can be written as JSON, else None (the model then loads uncompiled)."""
    if isinstance(optimizer, str):
        opt: Any = optimizer
    else:
        lr = optimizer.learning_rate
        if callable(lr) or not isinstance(lr, (int, float, mx.array)) or (isinstance(lr, mx.array) and lr.size != 1):
            return None
        cls = type(optimizer)
        if cls not in (getattr(optim, cls.__name__, None), getattr(_optimizers, cls.__name__, None)):
            return None
        opt = {
            "class": cls.__name__,
            "learning_rate": float(lr.item() if isinstance(lr, mx.array) else lr),
            "options": _optimizer_options(optimizer),
        }
    if not isinstance(loss, str) or not all(isinstance(m, str) for m in metrics):
        return None
    return {"optimizer": opt, "loss": loss, "metrics": list(metrics), "clipnorm": clipnorm}


def _optimizer_options(optimizer: optim.Optimizer) -> dict:
    """The constructor arguments of ``optimizer`` other than the learning rate (``bias_correction``,
    ``betas``, ``eps``, ...), read back from its attributes, so that a reloaded model trains alike."""
    import inspect

    names = [n for n in inspect.signature(type(optimizer).__init__).parameters if n not in ("self", "learning_rate")]
    options = {}
    for name in names:
        value = getattr(optimizer, name, None)
        if isinstance(value, (bool, int, float)) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value)
        ):
            options[name] = list(value) if isinstance(value, tuple) else value
    return options


class _eval_mode:
    """Context manager: evaluation mode inside, the previous mode restored after."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


_NAMES = {"CfC": "cfc", "LTC": "ltc"}


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
