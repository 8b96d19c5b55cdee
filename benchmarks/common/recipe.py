"""The data and the training recipe that the accuracy and training sections share: UEA/UCR sets
bundled in ``aeon`` as front-padded, z-scored numpy arrays, and our side of the recipe under
torch's conventions (the official side is ``accuracy_torch.py``, run through
:mod:`benchmarks.oracle`). The recipe is described in :mod:`benchmarks.accuracy`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map

import ncps
from benchmarks.common.paths import HERE
from ncps._dtypes import PRECISIONS

TRAIN_SCRIPT = HERE / "accuracy_torch.py"  # the same recipe on the official package
AEON_HINT = "pip install aeon (or pip install -e '.[bench]')"


# ---------------------------------------------------------------------------------------------
# Data: numpy arrays x (n, T, F) float32, front-padded and z-scored
# ---------------------------------------------------------------------------------------------
class MissingData(Exception):
    """A task's data cannot be loaded here (e.g. aeon is not installed)."""


def front_pad(seqs: list) -> np.ndarray:
    """``(T_i, F)`` sequences → ``(n, max T_i, F)``, zeros *before* each sequence."""
    T = max(len(s) for s in seqs)
    out = np.zeros((len(seqs), T, seqs[0].shape[1]), np.float32)
    for i, s in enumerate(seqs):
        out[i, T - len(s) :] = s
    return out


def standardize(train: list, test: list) -> tuple[list, list]:
    """z-score every channel with the mean and sd of the training set's real steps."""
    steps = np.concatenate(train)
    mean, sd = steps.mean(axis=0), steps.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(s - mean) / sd for s in train], [(s - mean) / sd for s in test]


def _aeon_split(name: str, split: str, kind: str) -> tuple[list, np.ndarray]:
    """One split of a bundled aeon set as a list of ``(T_i, F)`` arrays and the raw targets."""
    try:
        from aeon.datasets import load_classification, load_regression
    except ImportError as exc:
        raise MissingData(f"aeon is not installed ({exc}) — {AEON_HINT}") from None
    loader = load_classification if kind == "classification" else load_regression
    X, y = loader(name, split=split)
    return [np.asarray(x, np.float32).T for x in X], np.asarray(y)  # aeon stores (F, T) per sample


def aeon_task(name: str, kind: str) -> dict:
    xs_train, y_train = _aeon_split(name, "train", kind)
    xs_test, y_test = _aeon_split(name, "test", kind)
    xs_train, xs_test = standardize(xs_train, xs_test)
    both = front_pad(xs_train + xs_test)  # one length for both splits
    return {
        "x_train": both[: len(xs_train)],
        "x_test": both[len(xs_train) :],
        **targets(kind, y_train, y_test),
        "lengths": sorted({len(s) for s in xs_train + xs_test}),
    }


def targets(kind: str, y_train: np.ndarray, y_test: np.ndarray) -> dict:
    """Class indices (classes numbered in sorted order), or regression targets and their scale."""
    if kind == "classification":
        classes = np.unique(y_train)
        return {
            "y_train": np.searchsorted(classes, y_train).astype(np.int64),
            "y_test": np.searchsorted(classes, y_test).astype(np.int64),
            "outputs": len(classes),
        }
    y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)
    mean, sd = float(y_train.mean()), float(y_train.std()) or 1.0
    return {
        "y_train": y_train,
        "y_test": y_test,
        "y_train_std": (y_train - mean) / sd,
        "y_mean": mean,
        "y_std": sd,
        "outputs": 1,
    }


def epoch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """``(epochs, n)``: the sample order of every epoch, shared by both packages."""
    rng = np.random.RandomState(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Our side: the same network, trained under torch's conventions
# ---------------------------------------------------------------------------------------------
class Net(nn.Module):
    """Our recurrent layer and a linear head on its last output (names as on the torch side)."""

    def __init__(self, layer: str, inputs: int, units: int, outputs: int):
        super().__init__()
        self.rnn = {"CfC": ncps.CfC, "LTC": ncps.LTC}[layer](inputs, units, return_sequences=False)
        self.head = nn.Linear(units, outputs)

    def __call__(self, x: mx.array) -> mx.array:
        return self.head(self.rnn(x)[0])


def load_official_init(model: Net, path: Path) -> None:
    """Start from the official model's initial weights (``state_dict`` saved by the job)."""
    state = dict(np.load(path))
    ncps.interop.load_torch_state_dict(model.rnn, {k[4:]: v for k, v in state.items() if k.startswith("rnn.")})
    model.head.update({"weight": mx.array(state["head.weight"]), "bias": mx.array(state["head.bias"])})


def clip_grad_norm(grads: dict, max_norm: float) -> dict:
    """``torch.nn.utils.clip_grad_norm_``: scale every gradient by min(1, max_norm / (‖g‖ + 1e-6)),
    ‖g‖ the 2-norm over all parameters together."""
    total = mx.sqrt(sum(mx.sum(mx.square(g)) for _, g in tree_flatten(grads)))
    scale = mx.minimum(max_norm / (total + 1e-6), 1.0)
    return tree_map(lambda g: g * scale, grads)


def torch_adam(lr: float) -> optim.Adam:
    """``torch.optim.Adam(lr)``: same betas and eps, and bias correction (MLX's default is off)."""
    return optim.Adam(learning_rate=lr, betas=[0.9, 0.999], eps=1e-8, bias_correction=True)


def loss_fn(kind: str) -> Callable:
    if kind == "classification":
        return lambda model, x, y: nn.losses.cross_entropy(model(x), y, reduction="mean")
    return lambda model, x, y: nn.losses.mse_loss(model(x)[:, 0], y, reduction="mean")


def test_metric(model: Net, data: dict, kind: str, eval_batch: int) -> float:
    """Accuracy, or RMSE in the target's units (the model predicts standardised targets)."""
    x = data["x_test"]
    preds = []
    for i in range(0, len(x), eval_batch):
        p = model(mx.array(x[i : i + eval_batch]))
        mx.eval(p)
        preds.append(np.array(p))
    pred = np.concatenate(preds)
    if kind == "classification":
        return float((pred.argmax(axis=1) == data["y_test"]).mean())
    pred = pred[:, 0] * data["y_std"] + data["y_mean"]
    return float(np.sqrt(np.mean((pred - data["y_test"]) ** 2)))


def warm_up(value_and_grad: Callable, model: Net, x: mx.array, y: mx.array) -> float:
    """One untimed forward+backward (no step), as on the torch side."""
    t0 = time.perf_counter()
    mx.eval(value_and_grad(model, x, y))
    return time.perf_counter() - t0


def train_loss(kind: str, precision: str = "fp32") -> Callable:
    """The task's loss; with a half ``precision`` (``"bf16"``, ``"fp16"``) computed the way
    ``ncps.training.fit(precision=...)`` does: on half copies of the float32 master weights and
    of the inputs, the gradients arriving in float32 for the float32 update."""
    fn = loss_fn(kind)
    if precision == "fp32":
        return fn
    return ncps.training._half_loss(fn, PRECISIONS[precision])


def train_step(
    model: Net, opt: optim.Optimizer, kind: str, clip: float, compiled: bool, precision: str = "fp32"
) -> Callable:
    """``step(x, y) -> loss``: value_and_grad, clipping and the optimizer update; with
    ``compiled`` the whole step under ``mx.compile`` (model and optimizer state as its state);
    ``precision`` as in :func:`train_loss`."""
    value_and_grad = nn.value_and_grad(model, train_loss(kind, precision))

    def step(x: mx.array, y: mx.array) -> mx.array:
        loss, grads = value_and_grad(model, x, y)
        opt.update(model, clip_grad_norm(grads, clip))
        return loss

    state = [model.state, opt.state]
    return mx.compile(step, inputs=state, outputs=state) if compiled else step


def train_ours(job: dict, data: dict, order: np.ndarray, compiled: bool = False, precision: str = "fp32") -> dict:
    """Train our model on one task and seed; the curve of (training time, test metric) per epoch.
    ``compiled``: the step under ``mx.compile`` (the training benchmark's floor; the accuracy
    section runs it eagerly, the plain MLX loop). ``precision``: ``"fp32"``, or mixed precision
    ``"bf16"`` / ``"fp16"`` (:func:`train_loss`: float32 master weights and optimizer, half
    forward and backward); the test metric is evaluated in float32 either way."""
    kind, recipe = job["kind"], job["recipe"]
    mx.random.seed(int(job["seed"]))
    model = Net(job["layer"], data["x_train"].shape[-1], int(job["units"]), int(data["outputs"]))
    init = Path(job["init_out"])
    if init.is_file():
        load_official_init(model, init)
    mx.eval(model.parameters())
    opt = torch_adam(recipe["lr"])
    opt.init(model.trainable_parameters())  # before the compiled step captures its state
    value_and_grad = nn.value_and_grad(model, train_loss(kind, precision))
    step = train_step(model, opt, kind, recipe["clip"], compiled, precision)
    x = mx.array(data["x_train"])
    y = mx.array(data["y_train"] if kind == "classification" else data["y_train_std"])
    train_s, epochs, batch = 0.0, [], int(recipe["batch"])
    with ncps.kernels.use("fused"):
        warmup_s = warm_up(value_and_grad, model, x[:batch], y[:batch])
        for epoch, perm in enumerate(order):
            t0, losses = time.perf_counter(), []
            for start in range(0, len(perm), batch):
                idx = mx.array(perm[start : start + batch])
                loss = step(x[idx], y[idx])
                mx.eval(loss, model.parameters(), opt.state)
                losses.append(loss.item())
            train_s += time.perf_counter() - t0
            metric = test_metric(model, data, kind, int(recipe["eval_batch"]))
            epochs.append({"epoch": epoch + 1, "train_s": train_s, "metric": metric, "loss": float(np.mean(losses))})
    init_from = "official" if init.is_file() else "own"
    return {"status": "ok", "init": init_from, "precision": precision, "warmup_s": warmup_s, "epochs": epochs}
