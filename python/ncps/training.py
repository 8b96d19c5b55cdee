"""A small training loop over MLX optimizers: :func:`fit`, :func:`evaluate`, :func:`predict`.

.. code-block:: python

    import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
    import ncps
    from ncps.training import fit

    model = ncps.CfC(2, ncps.wirings.AutoNCP(16, 1), return_sequences=False)

    def mse(model, x, y):
        return nn.losses.mse_loss(model(x)[0], y)

    history = fit(model, mse, (X, y), optimizer=ncps.optimizers.adam(1e-2), epochs=20,
                  validation_data=(X_val, y_val), clip_norm=1.0, early_stopping_patience=5,
                  checkpoint_path="best.safetensors", seed=0)
    history.history["val_loss"], history.best_epoch

Data are tuples of arrays (numpy or MLX) that share their first axis: ``(X, y)``,
``(X, y, timespans)``, ... Every batch is handed to ``loss_fn(model, *batch)`` (and to each
metric) in that order.

Sequences of different lengths: give ``X`` as a list of per-sample arrays ``(T_i, F)``; they are
padded at the end to the longest (:func:`pad_sequences`) and their lengths are appended to the
data, so ``loss_fn(model, X, y, lengths)`` calls ``model(X, lengths=lengths)``. That is the same
as passing ``(X_padded, y, lengths)`` yourself; either way mini-batches slice the lengths with
the samples.

Data parallel. Started by ``mlx.launch`` (``mx.distributed.init()`` has ``W > 1`` processes),
:func:`fit` splits every global batch of ``batch_size`` samples of the common, identically
shuffled order into ``W`` contiguous shards, one per process; each process passes the *whole*
data set. The gradients are combined into exactly the gradient of the global batch (each shard
weighted by its size, so unequal shards are right), clipped after that, and applied on every
process; rank 0's initial parameters are broadcast first. Losses and metrics are reduced over the
processes; only rank 0 writes checkpoints and progress bars. The same ``seed`` and
``batch_size`` give the same parameters for any number of processes (to float rounding).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from . import _checks, _dtypes

ArrayLike = mx.array | np.ndarray
Data = ArrayLike | Sequence[ArrayLike]
LossFn = Callable[..., mx.array]

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "iterate_batches",
    "pad_sequences",
    "History",
    "Callback",
    "StopTraining",
    "BiasCorrectionWarning",
]


class BiasCorrectionWarning(UserWarning):
    """:func:`fit` was given an Adam-family optimizer without bias correction (MLX's default).

    Silence it with ``warnings.filterwarnings("ignore", category=BiasCorrectionWarning)`` or the
    environment variable ``NCPS_BIAS_CORRECTION_WARNING=0``.
    """


_warned_bias_correction = False


def _warn_if_uncorrected(optimizer: optim.Optimizer, stacklevel: int) -> None:
    """Warn once per process about an uncorrected Adam (see :mod:`ncps.optimizers` for why);
    ``stacklevel`` names the caller of :func:`fit`."""
    global _warned_bias_correction
    from .optimizers import lacks_bias_correction

    if _warned_bias_correction or os.environ.get("NCPS_BIAS_CORRECTION_WARNING", "1") == "0":
        return
    if lacks_bias_correction(optimizer):
        _warned_bias_correction = True
        warnings.warn(
            f"{type(optimizer).__name__} without bias correction (mlx.optimizers' default): its first "
            "hundreds of updates are 3-6x larger than torch's or Keras' Adam at the same learning rate. "
            "Use ncps.optimizers.adam(lr) or optim.Adam(lr, bias_correction=True) to train like PyTorch; "
            "set NCPS_BIAS_CORRECTION_WARNING=0 to silence this.",
            BiasCorrectionWarning,
            stacklevel=stacklevel,
        )


class StopTraining(Exception):
    """Raise from a callback to end :func:`fit` after the current epoch (or batch)."""


class Callback:
    """Base class of :func:`fit` callbacks; override the hooks you need.

    ``logs`` is a dict of floats: ``loss`` and the metrics (and ``val_...`` at epoch end). In a
    data-parallel run every process calls the hooks with identical logs; use
    :func:`ncps.distributed.is_main_process` for side effects that should happen once. Raise
    :class:`StopTraining` to end training. A plain function ``fn(epoch, logs)`` given as a
    callback is called at every epoch end.
    """

    def on_train_begin(self, logs: dict) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, logs: dict) -> None:
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[int, dict], Any]):
        self.fn = fn

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.fn(epoch, logs)


@dataclass
class History:
    """What :func:`fit` returns.

    Attributes:
        history: per-epoch values, Keras style: ``{"loss": [...], "val_loss": [...],
            "<metric>": [...], "val_<metric>": [...]}``.
        epoch: the epochs run (0-based).
        monitor: the quantity that picks the best epoch: ``"val_loss"`` with validation data,
            ``"loss"`` otherwise.
        best_epoch: 0-based index of the best epoch (lowest ``monitor``), None before any.
        best_value: ``monitor`` at ``best_epoch``.
        stopped_early: True when early stopping or a callback ended training before ``epochs``.
        restored_best: True when the best epoch's weights were put back at the end.
        epoch_times: wall seconds of every epoch (training and validation).
        checkpoint_path: where the best model was written, or None.
        world_size: number of data-parallel processes.
        compiled: whether the training step ran under ``mx.compile``.
    """

    history: dict = field(default_factory=dict)
    epoch: list = field(default_factory=list)
    monitor: str = "loss"
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    restored_best: bool = False
    epoch_times: list = field(default_factory=list)
    checkpoint_path: str | None = None
    world_size: int = 1
    compiled: bool = False


# -- data -----------------------------------------------------------------------------------------


def _to_mx(a: Any, name: str) -> mx.array:
    if isinstance(a, mx.array):
        return a
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return mx.array(arr)


def pad_sequences(sequences: Sequence[ArrayLike], value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pad per-sample sequences ``(T_i, ...)`` at the end into one batch.

    Args:
        sequences: arrays (numpy, MLX or nested lists) with the same trailing shape and
            ``T_i >= 1`` steps each.
        value: what the padding holds (the layers never read it when given ``lengths``).

    Returns:
        ``(padded, lengths)``: ``(n, max T_i, ...)`` (float32 for floating data) and the int32
        lengths ``(n,)``, ready for ``layer(padded, lengths=lengths)``.
    """
    arrays = [np.asarray(s) for s in sequences]
    if not arrays:
        raise ValueError("pad_sequences needs at least one sequence")
    tail = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] < 1 or a.shape[1:] != tail:
            raise ValueError(
                f"sequence {i} must have shape (T_i, {', '.join(map(str, tail))}) with T_i >= 1 like sequence 0 "
                f"{arrays[0].shape}, got {a.shape}"
            )
    dtype = np.float32 if arrays[0].dtype.kind == "f" else arrays[0].dtype
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int32)
    padded = np.full((len(arrays), int(lengths.max()), *tail), value, dtype=dtype)
    for i, a in enumerate(arrays):
        padded[i, : a.shape[0]] = a
    return padded, lengths


def _is_ragged(item: Any) -> bool:
    """A list of per-sample arrays whose first axes differ (variable-length sequences)."""
    if not isinstance(item, list) or len(item) < 2:
        return False
    if not all(isinstance(a, (np.ndarray, mx.array)) and a.ndim >= 1 for a in item):
        return False
    return len({a.shape[0] for a in item}) > 1


def _pad_ragged(items: tuple, name: str) -> tuple:
    """``items`` with every ragged list padded (:func:`pad_sequences`) and, if any, the lengths
    appended as the last item; ragged items must share their lengths."""
    lengths = None
    out = []
    for i, item in enumerate(items):
        if _is_ragged(item):
            padded, these = pad_sequences(item)
            if lengths is not None and not np.array_equal(lengths, these):
                raise ValueError(
                    f"the variable-length sequences of {name}[{i}] do not have the lengths of the first ones"
                )
            lengths = these
            item = padded
        out.append(item)
    return tuple(out) if lengths is None else (*out, lengths)


def _as_arrays(data: Data, name: str) -> tuple[tuple[mx.array, ...], bool]:
    """``data`` as a tuple of MLX arrays with a common first axis, and whether it was one array.
    Variable-length sequences (a list of per-sample arrays) are padded, their lengths appended."""
    single = not isinstance(data, tuple) and not (isinstance(data, list) and not _is_ragged(data))
    items = (data,) if single else tuple(data)
    if not items:
        raise ValueError(f"{name} is empty: give a tuple of arrays such as (X, y)")
    items = _pad_ragged(items, name)
    single = single and len(items) == 1
    arrays = tuple(_to_mx(a, f"{name}[{i}]") for i, a in enumerate(items))
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"{name}[{i}] is a scalar; every array needs a first (sample) axis")
    n = arrays[0].shape[0]
    lengths = [a.shape[0] for a in arrays]
    if any(length != n for length in lengths):
        raise ValueError(f"the arrays of {name} must share their first axis (samples), got lengths {lengths}")
    if n == 0:
        raise ValueError(f"{name} has no samples")
    return arrays, single


def iterate_batches(arrays: Data, batch_size: int, shuffle: bool = True, seed: int | None = None) -> Iterator[Any]:
    """Yield mini-batches of ``arrays`` (one array, or a tuple of arrays with a common first axis).

    Args:
        arrays: an array or a tuple/list of arrays (numpy or MLX).
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: visit the samples in a random order (``np.random.default_rng(seed)``).
        seed: the seed of that order; the same seed gives the same batches.

    Yields:
        MLX arrays: a tuple of batches, or one batch when ``arrays`` was one array.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    data, single = _as_arrays(arrays, "arrays")
    n = data[0].shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            batch = tuple(a[start : start + batch_size] for a in data)
        else:
            idx = mx.array(order[start : start + batch_size])
            batch = tuple(a[idx] for a in data)
        yield batch[0] if single else batch


def _positive_int(value: Any, name: str) -> int:
    return _checks.integer(value, name, 1)


# -- evaluation and prediction -------------------------------------------------------------------


def _scalar(value: Any, name: str) -> mx.array:
    value = value if isinstance(value, mx.array) else mx.array(value)
    if value.size != 1:
        raise ValueError(f"{name} must return a scalar, got an array of shape {tuple(value.shape)}")
    return value.reshape(()).astype(mx.float32)


def _check_metrics(metrics: Mapping[str, Callable] | None) -> dict:
    metrics = dict(metrics or {})
    for name, fn in metrics.items():
        if not isinstance(name, str) or not name or name == "loss" or name.startswith("val_"):
            raise ValueError(f"metric names must be strings other than 'loss' and not start with 'val_', got {name!r}")
        if not callable(fn):
            raise TypeError(f"metric {name!r} must be a function fn(model, *batch) -> scalar")
    return metrics


def _check_loss_metrics(loss_metrics: Sequence[str] | None, metrics: dict) -> tuple:
    """The names of the metrics ``loss_fn`` returns with the loss, checked like metric names."""
    names = tuple(loss_metrics or ())
    if isinstance(loss_metrics, str):
        raise TypeError(f"loss_metrics must be a sequence of names, got the string {loss_metrics!r}")
    _check_metrics({name: (lambda *a: None) for name in names})
    duplicate = sorted({n for n in names if names.count(n) > 1 or n in metrics})
    if duplicate:
        raise ValueError(f"metric names must be unique across loss_metrics and metrics, got {duplicate} twice")
    return names


def _split_loss(out: Any, loss_metrics: tuple) -> tuple[Any, list]:
    """``loss_fn``'s result as ``(loss, [metric values])``: with ``loss_metrics`` it must be
    ``(loss, values)``, one scalar value per name (computed from the loss's forward pass)."""
    if not loss_metrics:
        return _scalar_loss(out), []
    if not (
        isinstance(out, (tuple, list))
        and len(out) == 2
        and isinstance(out[1], (tuple, list))
        and len(out[1]) == len(loss_metrics)
    ):
        raise ValueError(
            f"with loss_metrics={list(loss_metrics)}, loss_fn must return (loss, values) with "
            f"{len(loss_metrics)} scalar value(s), got {type(out).__name__}"
        )
    return _scalar_loss(out[0]), [_scalar(v, f"loss_fn's metric {name!r}") for name, v in zip(loss_metrics, out[1])]


def _scalar_loss(loss: Any) -> Any:
    """The loss as a scalar to differentiate: a one-element array is reshaped; anything larger
    is the classic mistake (a per-sample loss without ``.mean()``), named here before MLX's
    gradient says only ``[vjp] Output shape ... does not match cotangent shape ()``. Shapes are
    known while tracing, so this costs nothing in the compiled step."""
    if isinstance(loss, mx.array) and loss.ndim != 0:
        if loss.size != 1:
            raise ValueError(
                f"loss_fn must return a scalar (the mean loss of the batch, e.g. loss.mean()), got an array "
                f"of shape {tuple(loss.shape)}"
            )
        loss = loss.reshape(())
    return loss


def _evaluate_arrays(
    model: nn.Module,
    loss_fn: LossFn,
    arrays: tuple,
    batch_size: int,
    metrics: dict,
    group: Any = None,
    loss_metrics: tuple = (),
) -> dict:
    """Batch-size-weighted means of the loss and metrics; each process of ``group`` evaluates
    its contiguous shard and the sums are reduced."""
    from . import distributed

    n = arrays[0].shape[0]
    world = 1 if group is None else group.size()
    lo, hi = 0, n
    if world > 1:
        bounds = distributed.shard_bounds(n, world)
        lo, hi = bounds[group.rank()], bounds[group.rank() + 1]
    names = ["loss", *loss_metrics, *metrics]
    totals = np.zeros(len(names))
    count = 0
    for start in range(lo, hi, batch_size):
        stop = min(start + batch_size, hi)
        batch = tuple(a[start:stop] for a in arrays)
        loss, extras = _split_loss(loss_fn(model, *batch), loss_metrics)
        values = [_scalar(loss, "loss_fn"), *extras]
        values += [_scalar(fn(model, *batch), f"metric {name!r}") for name, fn in metrics.items()]
        values = mx.stack(values)
        mx.eval(values)
        totals += np.array(values, dtype=np.float64) * (stop - start)
        count += stop - start
    if world > 1:
        summed = distributed.all_sum(mx.array([*totals, count], dtype=mx.float32), group)
        summed = np.array(summed, dtype=np.float64)
        totals, count = summed[:-1], summed[-1]
    return {name: float(total / count) for name, total in zip(names, totals)}


def evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    batch_size: int = 32,
    metrics: Mapping[str, Callable] | None = None,
    loss_metrics: Sequence[str] | None = None,
) -> dict:
    """Mean loss and metrics of ``model`` on ``data``.

    Args:
        model: the model, passed as the first argument of ``loss_fn`` and of every metric.
        loss_fn: ``loss_fn(model, *batch) -> scalar``, the mean loss of a batch.
        data: a tuple of arrays with a common first axis, such as ``(X, y)``.
        batch_size: samples per forward pass.
        metrics: ``{name: fn(model, *batch) -> scalar}``.
        loss_metrics: names of metrics that ``loss_fn`` returns with the loss, as in :func:`fit`.

    Returns:
        ``{"loss": float, name: float, ...}``: every value is the mean over batches weighted by
        their size (the exact mean over samples when the functions are per-sample means).
    """
    arrays, _ = _as_arrays(data, "data")
    metrics = _check_metrics(metrics)
    return _evaluate_arrays(
        model,
        loss_fn,
        arrays,
        _positive_int(batch_size, "batch_size"),
        metrics,
        loss_metrics=_check_loss_metrics(loss_metrics, metrics),
    )


def predict(model: nn.Module, X: Data, *, batch_size: int = 256, fn: Callable[..., mx.array] | None = None) -> mx.array:
    """Run ``model`` over ``X`` in batches and concatenate the outputs along the first axis.

    Args:
        model: the model.
        X: one array, or a tuple of arrays with a common first axis (such as ``(X, timespans)``),
            or a list of per-sample sequences of different lengths (padded, lengths appended).
        batch_size: samples per forward pass.
        fn: ``fn(model, *batch) -> array``. Default: ``model(x)`` for one array; for a model
            that takes ``lengths`` (an ncps sequence layer, or a model whose ``__call__`` has that
            keyword) ``(x, lengths)`` with integer lengths ``(n,)`` gives
            ``model(x, lengths=lengths)``; for an ncps sequence layer ``(x, timespans)`` gives
            ``model(x, timespans=timespans)`` and ``(x, timespans, lengths)`` both. When the model
            returns a tuple (ncps layers return ``(output, state)``) its first item is used.

    Returns:
        An MLX array with one row per sample of ``X``.
    """
    arrays, _ = _as_arrays(X, "X")
    batch_size = _positive_int(batch_size, "batch_size")
    if fn is None:
        fn = _default_forward(model, arrays)
    outputs = []
    for start in range(0, arrays[0].shape[0], batch_size):
        out = fn(model, *(a[start : start + batch_size] for a in arrays))
        if isinstance(out, (tuple, list)):
            out = out[0]
        mx.eval(out)
        outputs.append(out)
    return mx.concatenate(outputs, axis=0)


def _default_forward(model: nn.Module, arrays: tuple) -> Callable:
    n_arrays = len(arrays)
    if n_arrays == 1:
        return lambda m, x: m(x)
    import inspect

    from .layers import RNN

    last = arrays[-1]
    has_lengths = last.ndim == 1 and mx.issubdtype(last.dtype, mx.integer)
    takes_lengths = isinstance(model, RNN) or "lengths" in inspect.signature(model.__call__).parameters
    if n_arrays == 2 and has_lengths and takes_lengths:
        return lambda m, x, lengths: m(x, lengths=lengths)
    if n_arrays == 2 and isinstance(model, RNN):
        return lambda m, x, ts: m(x, timespans=ts)
    if n_arrays == 3 and has_lengths and isinstance(model, RNN):
        return lambda m, x, ts, lengths: m(x, timespans=ts, lengths=lengths)
    raise TypeError(f"predict got {n_arrays} arrays; pass fn=lambda model, *batch: ... to say how they feed the model")


# -- checkpoints ---------------------------------------------------------------------------------


def _is_ncps_model(model: nn.Module) -> bool:
    """True for the exact ncps layer and cell classes that :func:`ncps.save` can write."""
    from .persistence import is_registered

    return is_registered(model)


def _save_checkpoint(model: nn.Module, path: str) -> None:
    """Write ``model`` to ``path`` atomically: ``ncps.save`` for ncps layers and cells,
    ``model.save_weights`` otherwise (``.npz`` or safetensors by the file name)."""
    from .persistence import atomic_write, save

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if _is_ncps_model(model):
        save(model, path)  # atomic itself
        return
    ext = ".npz" if path.endswith(".npz") else ".safetensors"
    atomic_write(path, model.save_weights, ext)


# -- resumable training state -------------------------------------------------------------------

_STATE_FORMAT = "ncps-train-state/1"


@dataclass
class _TrainState:
    """Where a :func:`fit` call stands between two epochs, beyond the model and optimizer arrays.

    With a ``state_path`` it is written after every epoch (:func:`_save_train_state`) and a
    resumed ``fit`` starts from it. ``history`` is the :class:`History` being filled: its epochs,
    values and best epoch belong to the saved state too.
    """

    history: History
    next_epoch: int = 0
    best_value: float = math.inf  # lowest monitored value so far (inf before the first epoch)
    wait: int = 0  # epochs since best_value last improved (early stopping)
    # Seed of mx.random for every epoch (with a state path), so that a resumed run draws the same.
    random_base: int | None = None
    best_params: Any = None  # the best epoch's parameters, kept when they are to be restored

    def to_meta(self) -> dict:
        """The JSON part of a state file (``ncps-train-state/1``: these eight keys)."""
        return dict(
            next_epoch=self.next_epoch,
            best_value=self.best_value,
            wait=self.wait,
            epochs=self.history.epoch,
            random_base=self.random_base,
            history=self.history.history,
            best_epoch=self.history.best_epoch,
            best_value_reported=self.history.best_value,
        )

    def restore(self, meta: Mapping[str, Any], best_params: Any) -> None:
        """Take up what :meth:`to_meta` wrote (and the best parameters stored beside it)."""
        self.next_epoch, self.best_value, self.wait = meta["next_epoch"], meta["best_value"], meta["wait"]
        self.random_base, self.best_params = meta["random_base"], best_params
        self.history.epoch, self.history.history = meta["epochs"], meta["history"]
        self.history.best_epoch, self.history.best_value = meta["best_epoch"], meta["best_value_reported"]


def _save_train_state(
    path: str, model: nn.Module, optimizer: optim.Optimizer, rng: np.random.Generator, state: _TrainState
) -> None:
    """Everything a resumed ``fit`` needs, in one safetensors file written atomically: model
    parameters, optimizer state and best parameters as arrays (``model.*``, ``optimizer.*``,
    ``best.*``), the shuffling state and ``state`` as JSON metadata. (``mx.random``'s key cannot
    be set from Python: with a ``state_path``, ``fit`` reseeds it at every epoch from
    ``state.random_base`` and the epoch instead.)"""
    from .persistence import atomic_write

    arrays = {f"model.{k}": v for k, v in tree_flatten(model.parameters())}
    arrays.update({f"optimizer.{k}": v for k, v in tree_flatten(optimizer.state)})
    if state.best_params is not None:
        arrays.update({f"best.{k}": v for k, v in tree_flatten(state.best_params)})
    meta = dict(state.to_meta(), format=_STATE_FORMAT, numpy_rng=rng.bit_generator.state)
    mx.eval(list(arrays.values()))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(
        path,
        lambda tmp: mx.save_safetensors(tmp, arrays, metadata={"ncps_train_state": json.dumps(meta)}),
        ".safetensors",
    )


def _load_train_state(
    path: str, model: nn.Module, optimizer: optim.Optimizer, rng: np.random.Generator, state: _TrainState
) -> None:
    """Restore what :func:`_save_train_state` wrote into ``model``, ``optimizer``, ``rng`` and ``state``."""
    try:
        arrays, metadata = mx.load(path, format="safetensors", return_metadata=True)
        meta = json.loads(metadata["ncps_train_state"])
    except Exception as exc:
        raise ValueError(f"state_path {path!r} is not a training state written by fit: {exc}") from exc
    if meta.get("format") != _STATE_FORMAT:
        raise ValueError(f"state_path {path!r} has format {meta.get('format')!r}, expected {_STATE_FORMAT!r}")

    def part(prefix: str) -> list:
        return [(k[len(prefix) :], v) for k, v in arrays.items() if k.startswith(prefix)]

    model.load_weights(part("model."), strict=True)
    optimizer.state = tree_unflatten(part("optimizer."))
    rng.bit_generator.state = meta.pop("numpy_rng")
    best = part("best.")
    mx.eval(model.parameters(), optimizer.state)
    state.restore(meta, tree_unflatten(best) if best else None)


def _fingerprint(arrays: tuple | None) -> list[int]:
    """Sample count and a CRC of the bytes of every array (-1 for no data)."""
    if arrays is None:
        return [-1, -1]
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(np.array(a)).tobytes(), crc)
    return [int(arrays[0].shape[0]), crc & 0x7FFFFFFF]


def _check_same_data(arrays: tuple, val_arrays: tuple | None, group: Any) -> None:
    """Every process of a data-parallel ``fit`` must pass the same data: it shards them itself."""
    from . import distributed

    prints = distributed.all_gather_ints(_fingerprint(arrays) + _fingerprint(val_arrays), group)
    if any(p != prints[0] for p in prints):
        sizes = [(p[0], p[2]) if p[2] >= 0 else p[0] for p in prints]
        raise ValueError(
            f"rank {group.rank()}: the data sets differ between processes (training/validation samples per "
            f"rank: {sizes}; or the same sizes with different values); every process must pass the whole "
            "data set, fit shards it"
        )


# -- the training step ---------------------------------------------------------------------------


def _make_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: optim.Optimizer,
    metrics: dict,
    clip_norm: float | None,
    group: Any,
    loss_metrics: tuple = (),
    precision: str = "fp32",
) -> Callable:
    """``step(weight, *batch) -> [loss, *loss_metrics, *metrics]``: one optimizer update.

    With ``W > 1`` processes, ``weight = W * n_local / n_global`` scales this process's
    gradient so that the average over processes is the gradient of the global batch; the
    returned values are then global-batch means too. With a half ``precision`` the loss runs
    on half copies of the parameters and inputs (:func:`_half_loss`).
    """
    world = 1 if group is None else group.size()
    if precision != "fp32":
        loss_fn = _half_loss(loss_fn, _dtypes.PRECISIONS[precision])
    scaler = LossScaler() if precision == "fp16" else None

    def split(*batch: mx.array) -> tuple[Any, list]:
        loss, extras = _split_loss(loss_fn(model, *batch), loss_metrics)
        return (loss if scaler is None else loss * scaler.scale), extras

    # The function differentiated returns (loss, [loss_metrics values]): MLX takes the gradient
    # of the first item, and the metrics come from the same forward pass.
    value_and_grad = nn.value_and_grad(model, split)
    metric_fns = list(metrics.items())

    def step(weight: mx.array, *batch: mx.array) -> mx.array:
        # Metrics see the parameters before the update, like the loss (Keras convention).
        values = [_scalar(fn(model, *batch), f"metric {name!r}") for name, fn in metric_fns]
        (loss, extras), grads = value_and_grad(*batch)
        if scaler is not None:
            loss, grads = scaler.unscale(loss, grads)
        values = mx.stack([_scalar(loss, "loss_fn"), *extras, *values])
        if world > 1:
            tree = tree_map(lambda g: g * weight.astype(g.dtype), {"grads": grads, "values": values})
            tree = nn.average_gradients(tree, group=group)
            grads, values = tree["grads"], tree["values"]
        if clip_norm is not None:
            grads, _ = optim.clip_grad_norm(grads, clip_norm)
        if scaler is None:
            optimizer.update(model, grads)
        else:
            scaler.update(model, optimizer, grads)
        return values

    step.state = [] if scaler is None else [scaler.state]  # compiled with the model's (see _Stepper)
    return step


class LossScaler:
    """Dynamic loss scaling for float16 mixed precision (``precision="fp16"``), as torch.amp's
    GradScaler: the loss is multiplied by ``scale`` before the backward so that small gradients
    survive float16 (whose smallest subnormal is 6e-8), and the float32 gradients are divided by
    it again. A step whose gradients are not all finite (an overflow) changes nothing (parameters
    and optimizer state keep their values) and halves the scale; after ``GROWTH_INTERVAL`` finite
    steps in a row the scale doubles. bfloat16 has float32's range and needs none."""

    INIT_SCALE = 2.0**15
    GROWTH_INTERVAL = 2000

    def __init__(self) -> None:
        self.state = {"scale": mx.array(self.INIT_SCALE, mx.float32), "good_steps": mx.array(0, mx.int32)}

    @property
    def scale(self) -> mx.array:
        return self.state["scale"]

    def unscale(self, loss: mx.array, grads: dict) -> tuple[mx.array, dict]:
        """The loss and the gradients divided by the scale (in float32)."""
        inv = 1.0 / self.scale
        return loss * inv, tree_map(lambda g: g.astype(mx.float32) * inv, grads)

    def update(self, model: nn.Module, optimizer: optim.Optimizer, grads: dict) -> None:
        """``optimizer.update(model, grads)`` when every gradient is finite, else nothing (as a
        select, so that the step stays one compiled graph); then the scale's update."""
        finite = mx.array(True)
        for _, g in tree_flatten(grads):
            finite = mx.logical_and(finite, mx.isfinite(g).all())
        if not optimizer._initialized:  # the state to keep must exist before the first update
            optimizer.init(model.trainable_parameters())
        params, state = model.trainable_parameters(), optimizer.state
        optimizer.update(model, tree_map(lambda g: mx.where(finite, g, 0.0), grads))

        def keep(new: Any, old: Any) -> Any:
            return mx.where(finite, new, old) if isinstance(new, mx.array) else new

        model.update(tree_map(keep, model.trainable_parameters(), params))
        optimizer.state = tree_map(keep, optimizer.state, state)
        good = mx.where(finite, self.state["good_steps"] + 1, 0)
        grow = good >= self.GROWTH_INTERVAL
        self.state["scale"] = mx.where(finite, mx.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5)
        self.state["good_steps"] = mx.where(grow, 0, good)


def _half_loss(loss_fn: LossFn, dtype: mx.Dtype) -> LossFn:
    """``loss_fn`` computed in ``dtype`` from float32 master weights (mixed precision).

    The model's floating parameters (the differentiated float32 masters, inside
    ``nn.value_and_grad``) and the first batch array (the inputs ``X``) are cast to ``dtype``, so
    the forward and backward run in half; ``astype`` is differentiable, so the gradients arrive
    in float32 for the float32 update. The other batch arrays (targets, timespans, lengths) and
    the loss stay as they are (a float32 target promotes the loss to float32); the loss value is
    returned in float32. The master parameters are put back before returning.
    """

    def half(a: Any) -> Any:
        return a.astype(dtype) if isinstance(a, mx.array) and mx.issubdtype(a.dtype, mx.floating) else a

    def loss(model: nn.Module, *batch: mx.array) -> Any:
        master = model.parameters()
        model.update(tree_map(half, master))
        try:
            out = loss_fn(model, *((half(batch[0]), *batch[1:]) if batch else batch))
        finally:
            model.update(master)
        if isinstance(out, tuple):
            return (out[0].astype(mx.float32), *out[1:])
        return out.astype(mx.float32) if isinstance(out, mx.array) else out

    return loss


def _check_precision(precision: Any, model: nn.Module) -> str:
    """``precision`` validated: one of :data:`ncps._dtypes.PRECISIONS`; a half one needs float32
    master weights (the model's trainable floating parameters)."""
    if not isinstance(precision, str) or precision not in _dtypes.PRECISIONS:
        raise ValueError(f"precision must be one of {list(_dtypes.PRECISIONS)}, got {precision!r}")
    if precision != "fp32":
        other = sorted({str(a.dtype) for _, a in tree_flatten(model.trainable_parameters()) if a.dtype != mx.float32})
        if other:
            raise ValueError(
                f"precision={precision!r} keeps float32 master weights, but the model has parameters of dtype "
                f"{', '.join(other)}; call model.set_dtype(mx.float32) first"
            )
    return precision


class _Stepper:
    """Runs the step compiled when ``mx.compile`` can trace it, uncompiled otherwise."""

    def __init__(self, model, optimizer, step, compile_step: bool, seed: int | None, stacklevel: int = 3):
        self.model, self.optimizer, self.raw, self.seed = model, optimizer, step, seed
        self.stacklevel = stacklevel  # of the fallback warning: the frame that called the stepper's caller
        # The step's own state (the float16 loss scaler) is compiled in with the model's.
        self.state = [model.state, optimizer.state, mx.random.state, *getattr(step, "state", [])]
        self.compiled = False
        self.fn = step
        self._first = compile_step
        if compile_step:
            self.fn = mx.compile(step, inputs=self.state, outputs=self.state)
            self.compiled = True

    def __call__(self, weight: mx.array, batch: tuple) -> mx.array:
        if not self._first:
            values = self.fn(weight, *batch)
            mx.eval(values, self.state)
            return values
        self._first = False
        params = tree_flatten(self.model.parameters())
        opt_state = tree_map(lambda x: x, self.optimizer.state)
        extra = getattr(self.raw, "state", [])
        extra_saved = [dict(e) for e in extra]
        try:
            values = self.fn(weight, *batch)
            mx.eval(values, self.state)
            return values
        except Exception as exc:  # an untraceable loss, metric or kernel: run uncompiled
            self.model.update(tree_unflatten(params))
            self.optimizer.state = opt_state
            self.optimizer.init(self.model.trainable_parameters())
            # The failed trace may have left a tracer in mx.random.state: seed it afresh.
            mx.random.seed(self.seed if self.seed is not None else int(np.random.randint(0, 2**31 - 1)))
            self.fn, self.compiled = self.raw, False
            for kept, saved in zip(extra, extra_saved):
                kept.update(saved)
            self.state = [self.model.state, self.optimizer.state, mx.random.state, *extra]
            values = self.fn(weight, *batch)  # a real error in loss_fn raises here, unmasked
            mx.eval(values, self.state)
            warnings.warn(
                f"mx.compile could not trace the training step ({type(exc).__name__}: {exc}); training runs uncompiled",
                RuntimeWarning,
                stacklevel=self.stacklevel,
            )
            return values


# -- progress ------------------------------------------------------------------------------------


def _progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar on an interactive terminal, else None (then ``fit`` prints one line per epoch).

    Off a terminal (a log file, a pipe, CI) tqdm's carriage-return redraws pile up as several
    copies of the bar per epoch, so there the plain line is the readable choice.
    """
    if not enabled or not _is_terminal(sys.stderr):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    if _terminal_columns(sys.stderr) > 0:
        return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True, file=sys.stderr)
    # A terminal that reports 0 columns (some CI consoles, a pty without a size): tqdm would size
    # the bar to nothing at every redraw; a fixed 80-column bar is readable everywhere.
    return tqdm(total=total, desc=desc, unit="batch", leave=True, ncols=80, file=sys.stderr)


def _terminal_columns(stream: Any) -> int:
    """The width the terminal behind ``stream`` reports (0 when it reports none)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _format_logs(logs: Mapping[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


# -- the parts of fit ----------------------------------------------------------------------------


@dataclass
class _Run:
    """One :func:`fit` call's checked arguments and the processes it runs on: what an epoch needs."""

    model: nn.Module
    loss_fn: LossFn
    arrays: tuple
    val_arrays: tuple | None
    epochs: int
    batch_size: int
    metrics: dict
    loss_metrics: tuple
    early_stopping_patience: int | None
    checkpoint_path: str | None
    state_path: str | None
    callbacks: list
    on_nonfinite: str
    shuffle: bool
    show: bool = False  # progress reports (rank 0 only)
    group: Any = None  # None for one process
    world: int = 1
    rank: int = 0

    @property
    def names(self) -> list[str]:
        """The values every training step returns, in order."""
        return ["loss", *self.loss_metrics, *self.metrics]


def _checked_run(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Data,
    optimizer: optim.Optimizer,
    epochs: int,
    batch_size: int,
    validation_data: Data | None,
    clip_norm: float | None,
    metrics: Mapping[str, Callable] | None,
    loss_metrics: Sequence[str] | None,
    early_stopping_patience: int | None,
    checkpoint_path: str | os.PathLike | None,
    progress: bool,
    shuffle: bool,
    callbacks: Sequence[Callback | Callable[[int, dict], Any]] | None,
    on_nonfinite: str,
    state_path: str | os.PathLike | None,
    resume: bool,
) -> _Run:
    """:func:`fit`'s arguments checked (errors name the argument) and normalised: data as MLX
    arrays, paths as strings, functions as callbacks. Warns about an uncorrected Adam."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an mlx.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"optimizer must be an mlx.optimizers.Optimizer, got {type(optimizer).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be a function loss_fn(model, *batch) -> scalar")
    epochs = _checks.integer(epochs, "epochs", 0)
    batch_size = _positive_int(batch_size, "batch_size")
    if clip_norm is not None and _checks.real(clip_norm, "clip_norm") <= 0:
        raise ValueError(f"clip_norm must be a positive number or None, got {clip_norm!r}")
    early_stopping_patience = _checks.optional_integer(early_stopping_patience, "early_stopping_patience")
    for name, flag in (("progress", progress), ("shuffle", shuffle), ("resume", resume)):
        _checks.boolean(flag, name)
    metrics = _check_metrics(metrics)
    loss_metrics = _check_loss_metrics(loss_metrics, metrics)
    if on_nonfinite not in ("raise", "continue"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'continue', got {on_nonfinite!r}")
    if resume and state_path is None:
        raise ValueError("resume=True needs state_path (the file fit writes the training state to)")
    _warn_if_uncorrected(optimizer, stacklevel=4)
    arrays, _ = _as_arrays(train_data, "train_data")
    val_arrays = None if validation_data is None else _as_arrays(validation_data, "validation_data")[0]
    if val_arrays is not None and len(val_arrays) != len(arrays):
        raise ValueError(
            f"validation_data must hold as many arrays as train_data ({len(arrays)}, as loss_fn(model, *batch) "
            f"takes them), got {len(val_arrays)}"
        )
    cbs = [cb if isinstance(cb, Callback) else _FunctionCallback(cb) for cb in (callbacks or [])]
    for cb in cbs:
        if isinstance(cb, _FunctionCallback) and not callable(cb.fn):
            raise TypeError(f"callbacks must be Callback objects or functions, got {type(cb.fn).__name__}")
    return _Run(
        model,
        loss_fn,
        arrays,
        val_arrays,
        int(epochs),
        batch_size,
        metrics,
        loss_metrics,
        early_stopping_patience,
        None if checkpoint_path is None else os.fspath(checkpoint_path),
        None if state_path is None else os.fspath(state_path),
        cbs,
        on_nonfinite,
        shuffle,
        show=bool(progress),
    )


def _join_processes(run: _Run, group: Any, seed: int | None) -> int | None:
    """Fill in ``run``'s process group, rank and world size; with several processes check that
    they hold the same data and make them start alike (rank 0's parameters and seed). Returns
    the seed every process uses."""
    from . import distributed

    group = distributed.init(group)
    run.world = 1 if group is None else group.size()
    run.rank = 0 if group is None else group.rank()
    run.group = group if run.world > 1 else None
    run.show = run.show and run.rank == 0
    if run.world > 1:
        _check_same_data(run.arrays, run.val_arrays, group)
        # Every process must shuffle identically: rank 0's seed (or a random one) is used everywhere.
        seed = distributed.broadcast_int(np.random.randint(0, 2**31 - 1) if seed is None else int(seed), group)
        _sync_parameters(run)
    return seed


def _sync_parameters(run: _Run) -> None:
    """Rank 0's parameters on every process (nothing to do for one process)."""
    from . import distributed

    if run.world > 1:
        run.model.update(distributed.broadcast(run.model.parameters(), run.group))


def _start_state(
    run: _Run, optimizer: optim.Optimizer, rng: np.random.Generator, seed: int | None, resume: bool
) -> _TrainState:
    """A fresh :class:`_TrainState`, or the one saved at ``run.state_path`` when resuming (the
    model, optimizer and shuffling state restored with it, before the step captures them)."""
    monitor = "val_loss" if run.val_arrays is not None else "loss"
    history = History(monitor=monitor, world_size=run.world, checkpoint_path=run.checkpoint_path)
    state = _TrainState(history)
    if run.state_path is not None:
        # mx.random (dropout) is reseeded per epoch from this, so that a resumed run draws the same.
        state.random_base = int(seed) if seed is not None else int(rng.integers(0, 2**31 - 1))
        if resume and os.path.exists(run.state_path):
            _load_train_state(run.state_path, run.model, optimizer, rng, state)
            _sync_parameters(run)
    return state


def _set_up(
    run: _Run, optimizer: optim.Optimizer, group: Any, seed: int | None, resume: bool
) -> tuple[_TrainState, np.random.Generator, int | None]:
    """Everything before the first epoch: the processes joined, the random states seeded, the
    optimizer initialised and the training state started (or resumed). Returns the state, the
    shuffling generator and the seed every process uses."""
    seed = _join_processes(run, group, seed)
    if seed is not None:
        mx.random.seed(int(seed))
    rng = np.random.default_rng(seed)
    mx.eval(run.model.parameters())
    optimizer.init(run.model.trainable_parameters())
    state = _start_state(run, optimizer, rng, seed, resume)
    return state, rng, None if seed is None else int(seed)


def _shard(idx: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, float]:
    """This process's contiguous share of the global batch ``idx`` and its gradient weight
    ``world * len(share) / len(idx)`` (the processes' weighted mean is the global batch's mean)."""
    if world <= 1:
        return idx, 1.0
    from . import distributed

    bounds = distributed.shard_bounds(len(idx), world)
    local = idx[bounds[rank] : bounds[rank + 1]]
    if len(local) == 0:  # fewer samples than processes: take part with weight 0
        return idx[:1], 0.0
    return local, world * len(local) / len(idx)


def _stop_requested(callbacks: list, hook: Callable[[Callback], None]) -> bool:
    """Run ``hook`` on each callback in turn; True when one raised :class:`StopTraining` (the
    callbacks after it are skipped)."""
    try:
        for cb in callbacks:
            hook(cb)
    except StopTraining:
        return True
    return False


def _train_epoch(run: _Run, stepper: _Stepper, order: np.ndarray, epoch: int, bar: Any) -> tuple[dict, bool]:
    """One pass over the training batches, in ``order``: the batch-size-weighted means of the
    step's values, and whether a callback stopped training at a batch end."""
    names = run.names
    totals = np.zeros(len(names))
    seen = 0
    for b, first in enumerate(range(0, len(order), run.batch_size)):
        idx = order[first : first + run.batch_size]
        local, weight = _shard(idx, run.rank, run.world)
        batch = tuple(a[mx.array(local)] for a in run.arrays)
        values = np.array(stepper(mx.array(weight, dtype=mx.float32), batch), dtype=np.float64)
        if run.on_nonfinite == "raise" and not math.isfinite(values[0]):
            raise FloatingPointError(
                f"the training loss is {values[0]} at epoch {epoch + 1}, batch {b + 1}: check the data for "
                "NaN/inf (inputs, targets, timespans) and the learning rate; pass on_nonfinite='continue' "
                "to train on anyway"
            )
        totals += values * len(idx)
        seen += len(idx)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{totals[0] / seen:.4g}", refresh=False)
        if run.callbacks:
            logs = dict(zip(names, values.tolist()))
            if _stop_requested(run.callbacks, lambda cb: cb.on_batch_end(b, logs)):
                return _means(names, totals, seen), True
    return _means(names, totals, seen), False


def _means(names: list[str], totals: np.ndarray, count: int) -> dict:
    return {name: float(total / max(count, 1)) for name, total in zip(names, totals)}


def _epoch_logs(run: _Run, train_logs: dict) -> dict:
    """The epoch's logs: the training means, then ``val_...`` on the validation data; with several
    processes, identical on all of them (so that every process takes the same decisions)."""
    from . import distributed

    logs = dict(train_logs)
    _sync_parameters(run)  # keeps the replicas bit-identical (a no-op unless reductions rounded differently)
    if run.val_arrays is not None:
        val = _evaluate_arrays(
            run.model, run.loss_fn, run.val_arrays, run.batch_size, run.metrics, run.group, run.loss_metrics
        )
        logs.update({f"val_{k}": v for k, v in val.items()})
    if run.world > 1:
        keys = list(logs)
        synced = distributed.broadcast(mx.array([logs[k] for k in keys], dtype=mx.float32), run.group)
        logs = dict(zip(keys, np.array(synced, dtype=np.float64).tolist()))
    return logs


def _track_best(state: _TrainState, epoch: int, logs: dict, model: nn.Module, keep_params: bool) -> bool:
    """Record ``epoch`` in the history and the best epoch so far (the lowest ``monitor``); True
    when this epoch is the new best. ``keep_params``: keep a copy of the best parameters."""
    history = state.history
    history.epoch.append(epoch)
    for k, v in logs.items():
        history.history.setdefault(k, []).append(v)
    current = logs[history.monitor]
    if not current < state.best_value:
        state.wait += 1
        return False
    state.best_value = current
    history.best_epoch, history.best_value = epoch, current
    state.wait = 0
    if keep_params:
        state.best_params = tree_map(lambda p: p, model.parameters())
    return True


def _report_epoch(run: _Run, bar: Any, epoch: int, logs: dict, seconds: float) -> None:
    """Close the epoch's progress bar with its logs, or print its one line (rank 0)."""
    if bar is not None:
        bar.set_postfix_str(_format_logs(logs), refresh=True)
        bar.close()
    elif run.show:
        print(f"Epoch {epoch + 1}/{run.epochs} - {_format_logs(logs)} - {seconds:.2f}s", file=sys.stderr, flush=True)


def _restore_best(state: _TrainState, model: nn.Module) -> None:
    """Put back the best epoch's parameters, if kept and not the last epoch's."""
    history = state.history
    if state.best_params is not None and history.best_epoch != history.epoch[-1]:
        model.update(state.best_params)
        mx.eval(model.parameters())
        history.restored_best = True


# -- fit -----------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Data,
    *,
    optimizer: optim.Optimizer,
    epochs: int = 10,
    batch_size: int = 32,
    validation_data: Data | None = None,
    clip_norm: float | None = None,
    metrics: Mapping[str, Callable] | None = None,
    loss_metrics: Sequence[str] | None = None,
    early_stopping_patience: int | None = None,
    restore_best: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    progress: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    callbacks: Sequence[Callback | Callable[[int, dict], Any]] | None = None,
    compile: bool = True,
    group: Any | None = None,
    on_nonfinite: str = "raise",
    state_path: str | os.PathLike | None = None,
    resume: bool = False,
    precision: str = "fp32",
) -> History:
    """Train ``model`` with ``optimizer`` on ``train_data``; data-parallel under ``mlx.launch``.

    Args:
        model: an ``mlx.nn.Module``; its trainable parameters are updated in place.
        loss_fn: ``loss_fn(model, *batch) -> scalar``, the *mean* loss of a batch.
        train_data: a tuple of arrays (numpy or MLX) with a common first axis, e.g.
            ``(X, y)``, ``(X, y, timespans)`` or ``(X, y, lengths)``; float64 numpy arrays become
            float32. ``X`` may be a list of per-sample sequences of different lengths: it is
            padded and the lengths are appended (``loss_fn(model, X, y, lengths)``).
        optimizer: an ``mlx.optimizers.Optimizer`` (its state carries over between calls), used
            as given. Prefer :mod:`ncps.optimizers` (``adam(lr)`` is ``torch.optim.Adam``):
            ``mlx.optimizers.Adam`` defaults to ``bias_correction=False``, which makes the first
            hundreds of updates 3-6x larger than torch's or Keras' Adam at the same learning rate
            (the moments start at zero and are not rescaled by ``1 - beta^t``), so learning
            rates tuned for PyTorch train erratically. Given such an optimizer, ``fit`` emits a
            :class:`BiasCorrectionWarning` once per process (``NCPS_BIAS_CORRECTION_WARNING=0``
            or ``warnings.filterwarnings`` silences it).
        epochs: passes over ``train_data``.
        batch_size: samples per update (the *global* batch when data-parallel).
        validation_data: evaluated after every epoch; gives ``val_loss`` and ``val_<metric>``.
        clip_norm: clip the global gradient norm to this value, after averaging over processes:
            ``mlx.optimizers.clip_grad_norm``, the same as ``torch.nn.utils.clip_grad_norm_``
            (one L2 norm over all parameters; gradients scaled by
            ``min(1, clip_norm / (norm + 1e-6))``).
        metrics: ``{name: fn(model, *batch) -> scalar}``, reported as batch-size-weighted means
            on the training batches (before each update, like the loss) and on the validation data.
            Each runs the model once more per batch.
        loss_metrics: names of metrics that ``loss_fn`` computes from its own forward pass:
            ``loss_fn(model, *batch)`` then returns ``(loss, [value, ...])``, one scalar per
            name, and the gradient is that of ``loss`` alone. The model runs once per batch
            (a metric in ``metrics`` costs a second forward pass, ~30 % of a small CfC's
            step); reported like ``metrics``, before them.
        early_stopping_patience: stop after this many epochs without a lower ``val_loss``
            (``loss`` without validation data). None: never stop early.
        restore_best: at the end, put back the weights of the best epoch. Applies when there is
            validation data or early stopping; the optimizer state is not rewound.
        checkpoint_path: write the model whenever the monitored loss improves: with
            :func:`ncps.save` for an ncps layer or cell (reload with :func:`ncps.load`), with
            ``model.save_weights`` for any other module. Rank 0 only.
        progress: report each epoch (rank 0 only, on stderr): a tqdm progress bar when stderr is a
            terminal and tqdm is installed, otherwise exactly one line per epoch.
        shuffle: visit the training samples in a new random order every epoch.
        seed: seeds the shuffling and ``mx.random`` (dropout), so that the same model, data and
            seed give the same parameters. Seed *before building the model* for identical
            initial weights (data-parallel runs broadcast rank 0's weights anyway).
        callbacks: :class:`Callback` objects, or functions ``fn(epoch, logs)`` called at every
            epoch end. Raise :class:`StopTraining` to end training.
        compile: run the step under ``mx.compile`` (with a warning and an uncompiled step when
            it cannot be traced).
        group: the ``mx.distributed`` group; default ``mx.distributed.init()`` (one process
            unless started by ``mlx.launch``).
        on_nonfinite: ``"raise"`` (default): a NaN or infinite training loss stops training with
            a ``FloatingPointError`` naming the epoch and batch (the data or the learning rate
            is the usual cause; the parameters are then already non-finite or about to be);
            ``"continue"``: keep going, as plain MLX would.
        state_path: after every epoch, write the whole training state (model, optimizer state,
            epoch, the shuffling and ``mx.random`` states, history, best weights) to this file,
            atomically (rank 0 only). With ``resume=True`` and an existing file, training
            continues from it and ends with the parameters an uninterrupted run would have.
        resume: continue from ``state_path`` when that file exists (start afresh otherwise).
        precision: ``"fp32"`` (default), or mixed precision ``"bf16"`` / ``"fp16"``: the model
            keeps float32 master weights (it must be float32) and the optimizer updates them in
            float32, while each training step's forward and backward run on bfloat16 / float16
            copies of the parameters and of the first batch array (the inputs); targets and the
            loss stay float32. Metrics, validation and the saved weights use the float32
            masters. No loss scaling is done: float16 gradients below ~6e-8 flush to zero, so
            bfloat16 is the safer choice (README "Precision").

    Returns:
        A :class:`History`.
    """
    _checks.boolean(restore_best, "restore_best")
    _checks.boolean(compile, "compile")
    seed = _checks.optional_integer(seed, "seed", 0)
    run = _checked_run(
        model,
        loss_fn,
        train_data,
        optimizer,
        epochs,
        batch_size,
        validation_data,
        clip_norm,
        metrics,
        loss_metrics,
        early_stopping_patience,
        checkpoint_path,
        progress,
        shuffle,
        callbacks,
        on_nonfinite,
        state_path,
        resume,
    )
    precision = _check_precision(precision, model)
    state, rng, seed = _set_up(run, optimizer, group, seed, resume)
    history = state.history
    step = _make_step(model, loss_fn, optimizer, run.metrics, clip_norm, run.group, run.loss_metrics, precision)
    stepper = _Stepper(model, optimizer, step, compile, seed, stacklevel=4)
    keep_best = (run.val_arrays is not None or run.early_stopping_patience is not None) and restore_best
    n = run.arrays[0].shape[0]
    try:
        for cb in run.callbacks:
            cb.on_train_begin({})
        for epoch in range(state.next_epoch, run.epochs):
            start_time = time.perf_counter()
            if state.random_base is not None:
                mx.random.seed((state.random_base * 1_000_003 + epoch) % 2**32)
            for cb in run.callbacks:
                cb.on_epoch_begin(epoch, {})
            order = rng.permutation(n) if run.shuffle else np.arange(n)
            bar = _progress_bar(run.show, -(-n // run.batch_size), f"Epoch {epoch + 1}/{run.epochs}")
            train_logs, stop = _train_epoch(run, stepper, order, epoch, bar)
            history.compiled = stepper.compiled
            logs = _epoch_logs(run, train_logs)
            if _track_best(state, epoch, logs, model, keep_best) and run.checkpoint_path is not None and run.rank == 0:
                _save_checkpoint(model, run.checkpoint_path)
            history.epoch_times.append(time.perf_counter() - start_time)
            state.next_epoch = epoch + 1
            if run.state_path is not None and run.rank == 0:
                _save_train_state(run.state_path, model, optimizer, rng, state)
            _report_epoch(run, bar, epoch, logs, history.epoch_times[-1])
            stop = _stop_requested(run.callbacks, lambda cb: cb.on_epoch_end(epoch, dict(logs))) or stop
            patience = run.early_stopping_patience
            if stop or (patience is not None and state.wait >= patience):
                history.stopped_early = epoch + 1 < run.epochs
                break
        _restore_best(state, model)
        for cb in run.callbacks:
            cb.on_train_end({k: v[-1] for k, v in history.history.items()})
    except BaseException as exc:
        if run.world > 1 and not isinstance(exc, KeyboardInterrupt):
            print(
                f"ncps.training.fit: rank {run.rank} of {run.world} failed: {type(exc).__name__}: {exc}",
                file=sys.stderr,
                flush=True,
            )
        raise
    return history
