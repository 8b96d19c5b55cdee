"""The training-throughput benchmark: every ncps front against the official training loops.

Run it as the ``training`` section of ``benchmarks/run.py`` (``--only training``; also part of
the full run and of ``--quick``). One real data set, one recipe, one row per way of training:

Data
----
JapaneseVowels (UEA archive, bundled in ``aeon``; 12 channels, 9 classes, lengths 7-29), loaded,
z-scored and front-padded to T = 29 by :func:`benchmarks.common.recipe.aeon_task`. Throughput does not
care about generalisation, so the training and test splits are trained on together (640
sequences, 20 batches of 32 per epoch): twice the steps per epoch of the training split alone,
steadier epoch times.

Recipe (every row)
------------------
``CfC(12, 32)`` (default mode, backbone 128×1) and a linear head on its last output; sparse
cross-entropy on logits; Adam, lr 5e-3, bias-corrected; gradients clipped to a global norm of 1;
batch 32, a new shuffle every epoch; ``epochs`` epochs, the first of which is a warm-up (it
includes ``mx.compile``'s tracing and XLA's compilation) and is left out of the statistics. Our
rows run ``rounds`` times, round-robin (a fresh model each time), and their statistics pool the
timed epochs of every round: on a shared machine a burst of load then hits every row alike. The
official loops run once each (a subprocess per framework, before ours).

Rows
----
- ``bare MLX loop (eager)``: ``nn.value_and_grad`` + clipping + ``optimizer.update`` +
  ``mx.eval`` and ``loss.item()`` per batch (:func:`benchmarks.common.recipe.train_ours`);
- ``bare MLX loop (mx.compile)``: the same step under ``mx.compile``: the floor of our fronts,
  which compile their step by default; the overhead column is relative to it;
- ``ncps.training.fit``, ``ncps.sklearn LiquidClassifier.fit`` and ``ncps.mini_keras
  Sequential.fit`` on the same recipe (their own epoch clocks: ``History.epoch_times``);
- the official ``ncps.torch`` with the usual eager torch loop (``benchmarks/accuracy_torch.py``),
  and the official ``ncps.keras`` on Keras 3 + JAX, ``model.fit`` with ``jit_compile=True``
  (``benchmarks/training_keras.py``), each in its own subprocess (``benchmarks/oracle.py``); the
  torch loop runs ``torch_epochs`` epochs (fewer: seconds each, minutes under load);
- ``mini_keras`` and Keras 3 + JAX once more with ``metrics=["accuracy"]``, the per-batch metric
  Keras users usually ask for.

Columns: time per epoch (median and min over the timed epochs), samples/s (samples
per epoch ÷ median epoch time), a front's ``fit()`` time outside its epochs, the speed-up over
the official torch loop and over Keras 3 + JAX (their median ÷ ours; the metric rows against the
Keras row with the same metric), and the overhead over the compiled bare loop (our median ÷ its
median − 1, and the same for the minima).

A second table takes one step apart (batch 32, each part timed on its own, rounds interleaved):
forward, forward + backward, the bare step eager and compiled, ``training.fit``'s own compiled
step without and with an accuracy metric (through ``metrics=``, a second forward pass, or
``loss_metrics``, the loss's forward pass), and ``training.fit``'s epoch per batch.

Where the fronts' time went, and what was cut
---------------------------------------------
All three fronts run :func:`ncps.training.fit`, whose step was already under ``mx.compile``; the
compiled step is within a few % of forward + backward (clipping and Adam fuse into it), against
about twice that eagerly. cProfile of ``fit`` over 400 steps: ~20 µs of Python per batch
(batching, the host sync of the loss, history), 2 % of a ~1 ms step. Measured and not worth
cutting: overlapping the next batch's graph with the running step (``mx.async_eval`` instead of
the per-batch sync: no difference within the noise, and ``on_nonfinite`` and ``on_batch_end``
callbacks need each batch's values before the next update) and gathering the shuffled data once
per epoch (no difference; it would copy the training set every epoch). Cut: every metric ran
the model once more per batch (``metrics=`` functions call it themselves), so ``mini_keras``
with ``metrics=["accuracy"]`` paid ~+30 % per step; ``training.fit``/``evaluate`` now take
``loss_metrics``, metrics that ``loss_fn`` returns from its own forward pass, and ``mini_keras``
computes its metrics that way, as Keras does.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import mlx.core as mx
import mlx.nn as nn
import numpy as np

import ncps
import ncps.training
from benchmarks import oracle
from benchmarks.common import recipe
from benchmarks.common.chart import Panel
from benchmarks.common.config import Config
from benchmarks.common.context import Context, Section
from benchmarks.common.fmt import fmt_pair, fmt_ratio, fmt_time, ratio, table
from benchmarks.common.paths import HERE
from benchmarks.timing import Policy, guarded, measure, summarize

KERAS_SCRIPT = HERE / "training_keras.py"
FLOOR = "bare-compiled"  # the row the overhead column is relative to
# Row key -> (label, how it runs, per-batch metrics)
ROWS = {
    "bare-eager": ("bare MLX loop (eager)", "ncps", ()),
    "bare-compiled": ("bare MLX loop (mx.compile)", "ncps", ()),
    "fit": ("ncps.training.fit", "ncps", ()),
    "sklearn": ("ncps.sklearn LiquidClassifier.fit", "ncps", ()),
    "mini_keras": ("ncps.mini_keras Sequential.fit", "ncps", ()),
    "torch": ("official ncps.torch, eager torch loop", "official", ()),
    "keras-jax": ("official ncps.keras, Keras 3 + JAX model.fit (jit)", "keras-jax", ()),
    "mini_keras+acc": ("ncps.mini_keras Sequential.fit", "ncps", ("accuracy",)),
    "keras-jax+acc": ("official ncps.keras, Keras 3 + JAX model.fit (jit)", "keras-jax", ("accuracy",)),
}


@dataclass
class TrainingConfig(Config):
    """The data set, the recipe and the number of epochs of one run."""

    dataset: str = "JapaneseVowels"
    units: int = 32
    batch: int = 32
    lr: float = 5e-3
    clip: float = 1.0
    epochs: int = 8  # per round; the first is the warm-up
    rounds: int = 3  # our rows run round-robin, so that a burst of load hits them alike
    torch_epochs: int = 4  # the official torch loop: seconds per epoch on a loaded 2-core machine
    samples: int | None = None  # None: both splits; else the first n sequences (tiny runs)
    seed: int = 0
    threads: int = 2
    peers: tuple = ("official", "keras-jax")
    # per part and round; each timed call is an epoch's worth of steps (see step_breakdown)
    step_policy: Policy = Policy(warmup=2, reps=30, min_reps=5, budget_s=1.0)

    QUICK: ClassVar[dict[str, Any]] = {
        "epochs": 6,
        "rounds": 2,
        "torch_epochs": 3,
        "step_policy": Policy(warmup=1, reps=15, min_reps=5, budget_s=0.5),
    }
    TINY: ClassVar[dict[str, Any]] = {
        "epochs": 2,
        "rounds": 1,
        "torch_epochs": 2,
        "samples": 64,
        "step_policy": Policy(warmup=1, reps=3, min_reps=1, budget_s=0.05),
    }

    def recipe(self) -> dict:
        return {
            "units": self.units,
            "batch": self.batch,
            "lr": self.lr,
            "clip": self.clip,
            "betas": [0.9, 0.999],
            "bias_correction": True,
            "epochs": self.epochs,
            "warmup_epochs": 1,
            "rounds": self.rounds,
            "torch_epochs": self.torch_epochs,
        }


# ---------------------------------------------------------------------------------------------
# Data and the statistics of one run
# ---------------------------------------------------------------------------------------------
def load(cfg: TrainingConfig) -> dict:
    """Both splits of the data set as one training set ``x`` (n, T, F), ``y`` (n,)."""
    task = recipe.aeon_task(cfg.dataset, "classification")
    x = np.concatenate([task["x_train"], task["x_test"]])[: cfg.samples]
    y = np.concatenate([task["y_train"], task["y_test"]])[: cfg.samples]
    return {"x": x, "y": y, "outputs": int(task["outputs"]), "lengths": task["lengths"]}


def epoch_stats(times: list, n: int) -> dict:
    """Median and min epoch time after the warm-up epoch, and samples/s at the median."""
    times = [float(t) for t in times]
    if len(times) < 2 or not all(t > 0 for t in times):
        return {"status": "error", "reason": f"need >= 2 positive epoch times, got {times}"}
    timed = times[1:]
    med = statistics.median(timed)
    return {
        "status": "ok",
        "epoch_times_s": times,
        "warmup_s": times[0],
        "median_s": med,
        "min_s": min(timed),
        "samples_per_s": n / med,
        "samples": n,
    }


def merge_rounds(runs: list) -> dict:
    """One row from the runs of every round: the statistics over all their timed epochs (each
    round's first epoch is its warm-up); the warm-up is the first round's."""
    bad = next((r for r in runs if r.get("status") != "ok"), None)
    if bad is not None:
        return bad
    merged = epoch_stats([runs[0]["warmup_s"]] + [t for r in runs for t in r["epoch_times_s"][1:]], runs[0]["samples"])
    return {**runs[0], **merged, "rounds": [r["epoch_times_s"] for r in runs]}


# ---------------------------------------------------------------------------------------------
# Our rows
# ---------------------------------------------------------------------------------------------
def bare_job(cfg: TrainingConfig, data: dict, tmp: Path) -> tuple[dict, dict]:
    """The job and data of :func:`benchmarks.common.recipe.train_ours` (its test metric on 32 samples)."""
    job = {
        "kind": "classification",
        "seed": cfg.seed,
        "layer": "CfC",
        "units": cfg.units,
        "init_out": str(tmp / "torch-init.npz"),
        "recipe": {"batch": cfg.batch, "lr": cfg.lr, "clip": cfg.clip, "eval_batch": 512},
    }
    task = {
        "x_train": data["x"],
        "y_train": data["y"],
        "x_test": data["x"][:32],
        "y_test": data["y"][:32],
        "outputs": data["outputs"],
    }
    return job, task


def run_bare(cfg: TrainingConfig, data: dict, tmp: Path, compiled: bool) -> dict:
    job, task = bare_job(cfg, data, tmp)
    order = recipe.epoch_orders(len(data["x"]), cfg.epochs, cfg.seed)
    run = recipe.train_ours(job, task, order, compiled=compiled)
    cumulative = [0.0] + [e["train_s"] for e in run["epochs"]]
    return epoch_stats(np.diff(cumulative).tolist(), len(data["x"]))


def front_stats(history: ncps.training.History, n: int, t0: float) -> dict:
    """A front's row: its epoch statistics, and the time its ``fit`` call spent outside the
    epochs (checking and converting the data, building the model and the step)."""
    call_s = time.perf_counter() - t0
    return {
        **epoch_stats(history.epoch_times, n),
        "call_s": call_s,
        "outside_epochs_s": call_s - sum(history.epoch_times),
        "compiled": history.compiled,
    }


def run_fit(cfg: TrainingConfig, data: dict) -> dict:
    mx.random.seed(cfg.seed)
    model = recipe.Net("CfC", data["x"].shape[-1], cfg.units, data["outputs"])
    t0 = time.perf_counter()
    history = ncps.training.fit(
        model,
        recipe.loss_fn("classification"),
        (data["x"], data["y"]),
        optimizer=ncps.optimizers.adam(cfg.lr),
        epochs=cfg.epochs,
        batch_size=cfg.batch,
        clip_norm=cfg.clip,
        progress=False,
        seed=cfg.seed,
    )
    return front_stats(history, len(data["x"]), t0)


# The estimator's parameter for each field of the recipe (scikit-learn names them its own way).
SKLEARN_PARAMS = {
    "units": "units",
    "epochs": "epochs",
    "batch_size": "batch",
    "learning_rate": "lr",
    "clip_value": "clip",
    "random_state": "seed",
}


def run_sklearn(cfg: TrainingConfig, data: dict) -> dict:
    from ncps.sklearn import LiquidClassifier

    clf = LiquidClassifier(**{param: getattr(cfg, field) for param, field in SKLEARN_PARAMS.items()})
    t0 = time.perf_counter()
    clf.fit(data["x"], data["y"])
    return front_stats(clf.history_, len(data["x"]), t0)


def run_mini_keras(cfg: TrainingConfig, data: dict, metrics: tuple) -> dict:
    from ncps import mini_keras as keras

    mx.random.seed(cfg.seed)
    model = keras.models.Sequential(
        [keras.layers.InputLayer(data["x"].shape[1:]), keras.layers.CfC(cfg.units), keras.layers.Dense(data["outputs"])]
    )
    model.compile(
        optimizer=ncps.optimizers.make_optimizer("adam", cfg.lr, convention="keras"),
        loss="sparse_categorical_crossentropy",
        metrics=list(metrics),
        clipnorm=cfg.clip,
    )
    t0 = time.perf_counter()
    history = model.fit(data["x"], data["y"], batch_size=cfg.batch, epochs=cfg.epochs, verbose=0, seed=cfg.seed)
    return front_stats(history, len(data["x"]), t0)


# ---------------------------------------------------------------------------------------------
# Where a step's time goes
# ---------------------------------------------------------------------------------------------
def accuracy_metric(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
    """The accuracy of a batch as a ``metrics=`` function: it runs the model again."""
    return mx.mean((mx.argmax(model(x), axis=-1) == y).astype(mx.float32))


def loss_and_accuracy(model: nn.Module, x: mx.array, y: mx.array) -> tuple:
    """The loss and, from the same forward pass, the accuracy (``loss_metrics=["accuracy"]``)."""
    logits = model(x)
    accuracy_ = mx.mean((mx.argmax(logits, axis=-1) == y).astype(mx.float32))
    return nn.losses.cross_entropy(logits, y, reduction="mean"), [accuracy_]


def step_parts(cfg: TrainingConfig, data: dict) -> dict:
    """``{part: synchronised call}``: one training step on a batch of the data, taken apart."""
    mx.random.seed(cfg.seed)
    model = recipe.Net("CfC", data["x"].shape[-1], cfg.units, data["outputs"])
    mx.eval(model.parameters())
    x, y = mx.array(data["x"][: cfg.batch]), mx.array(data["y"][: cfg.batch])
    value_and_grad = nn.value_and_grad(model, recipe.loss_fn("classification"))
    parts = {"forward": lambda: mx.eval(model(x)), "forward + backward": lambda: mx.eval(value_and_grad(model, x, y))}
    for name, compiled in (("bare step, eager", False), ("bare step, mx.compile", True)):
        opt = recipe.torch_adam(cfg.lr)
        opt.init(model.trainable_parameters())
        step = recipe.train_step(model, opt, "classification", cfg.clip, compiled)
        parts[name] = lambda step=step, opt=opt: mx.eval(step(x, y), model.state, opt.state)
    # fit's own step (ncps.training's compiled step and its evaluation), without and with a metric
    fronts = {
        "fit's step": (recipe.loss_fn("classification"), {}, ()),
        "fit's step + accuracy, metrics= (a 2nd forward)": (
            recipe.loss_fn("classification"),
            {"accuracy": accuracy_metric},
            (),
        ),
        "fit's step + accuracy, loss_metrics (same forward)": (loss_and_accuracy, {}, ("accuracy",)),
    }
    weight = mx.array(1.0)
    for name, (loss_fn, metrics, loss_metrics) in fronts.items():
        opt = ncps.optimizers.adam(cfg.lr)
        opt.init(model.trainable_parameters())
        step = ncps.training._make_step(model, loss_fn, opt, metrics, cfg.clip, None, loss_metrics)
        stepper = ncps.training._Stepper(model, opt, step, True, cfg.seed)
        parts[name] = lambda stepper=stepper: np.array(stepper(weight, (x, y)))
    return parts


LOOP_PART = "training.fit, epoch ÷ batches (the whole loop)"


def step_breakdown(cfg: TrainingConfig, data: dict) -> list:
    """Every part of :func:`step_parts` timed in ``rounds`` interleaved rounds, times pooled;
    and in each round a short :func:`ncps.training.fit` (its epochs after the first, per batch):
    what the whole loop adds to fit's step (batching, the host sync, Python), measured at the
    same time as the step itself. Each timed call of a part runs it once per batch of an epoch,
    and its time per step is that call's ÷ the batches: the statistic of an epoch ÷ its batches
    (under load, the minimum of single calls is far luckier than the minimum of epochs)."""
    parts = step_parts(cfg, data)
    times: dict[str, list] = {name: [] for name in [*parts, LOOP_PART]}
    batches = -(-len(data["x"]) // cfg.batch)
    for _ in range(cfg.rounds):
        for name, call in parts.items():

            def epoch_of_calls(call=call):
                return [call() for _ in range(batches)]

            times[name] += [t / batches for t in measure(epoch_of_calls, cfg.step_policy)["times_s"]]
        fit_row = run_fit(replace(cfg, epochs=3), data)
        times[LOOP_PART] += [t / batches for t in fit_row["epoch_times_s"][1:]]
    out = [{"part": name, "status": "ok", **summarize(t)} for name, t in times.items()]
    compiled = next(p for p in out if p["part"] == "bare step, mx.compile")
    for p in out:
        p["of_compiled_step"] = p["median_s"] / compiled["median_s"]
    return out


# ---------------------------------------------------------------------------------------------
# The official rows (subprocesses)
# ---------------------------------------------------------------------------------------------
def run_torch(cfg: TrainingConfig, data: dict, tmp: Path) -> tuple[dict, dict]:
    """The official package's usual torch loop (``accuracy_torch.py``): (info, row)."""
    job, task = bare_job(cfg, data, tmp)
    path, order_path = tmp / "data.npz", tmp / "order.npy"
    np.savez(path, **task)
    np.save(order_path, recipe.epoch_orders(len(data["x"]), cfg.torch_epochs, cfg.seed))
    job = {**job, "id": "torch", "outputs": data["outputs"], "data": str(path), "order": str(order_path)}
    out = oracle.run_jobs([job], threads=cfg.threads, script=recipe.TRAIN_SCRIPT)
    if not out["available"]:
        return {"available": False, "reason": out["reason"]}, {"status": "n/a", "reason": out["reason"]}
    run = out["results"].get("torch", {"status": "error", "reason": "no result"})
    info = {"available": True, "version": f"torch {out.get('torch_version')}", "threads": out.get("threads")}
    if run.get("status") != "ok":
        return info, run
    cumulative = [0.0] + [e["train_s"] for e in run["epochs"]]
    return info, epoch_stats(np.diff(cumulative).tolist(), len(data["x"]))


def run_keras(cfg: TrainingConfig, data: dict, tmp: Path) -> tuple[dict, dict]:
    """``model.fit`` of the official ``ncps.keras`` on Keras 3 + JAX, without and with the
    accuracy metric: (info, {row key: row})."""
    path = tmp / "keras-data.npz"
    np.savez(path, x_train=data["x"], y_train=data["y"])
    keys = [k for k, (_, how, _) in ROWS.items() if how == "keras-jax"]
    jobs = [
        {
            "id": k,
            "units": cfg.units,
            "outputs": data["outputs"],
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "metrics": list(ROWS[k][2]),
            "data": str(path),
            "recipe": {"batch": cfg.batch, "lr": cfg.lr, "clip": cfg.clip},
        }
        for k in keys
    ]
    out = oracle.run_jobs(jobs, threads=cfg.threads, peer="keras-jax", script=KERAS_SCRIPT)
    if not out["available"]:
        return {"available": False, "reason": out["reason"]}, {
            k: {"status": "n/a", "reason": out["reason"]} for k in keys
        }
    info = {"available": True, "version": out.get("peer_version"), "threads": out.get("threads")}
    rows = {}
    for k in keys:
        r = out["results"].get(k, {"status": "error", "reason": "no result"})
        rows[k] = epoch_stats(r["epoch_times_s"], len(data["x"])) if r.get("status") == "ok" else r
    return info, rows


# ---------------------------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------------------------
def compute(ctx: Context) -> dict:
    cfg = ctx.cfg.training
    cfg.threads = ctx.cfg.threads
    cfg.peers = tuple(p for p in ctx.cfg.peers if p in ("official", "keras-jax"))
    return section(cfg, ctx.log)


def section(cfg: TrainingConfig, log: Callable[[str], None]) -> dict:
    """Every row of the table; the official peers first (subprocesses), then ours."""
    try:
        data = load(cfg)
    except recipe.MissingData as exc:
        log(f"training: skipped: {exc}")
        return {"config": cfg.public(), "recipe": cfg.recipe(), "skipped": True, "reason": str(exc), "rows": []}
    n, T, F = data["x"].shape
    results: dict[str, dict] = {}
    official: dict[str, dict] = {}
    not_asked = {"status": "skipped", "reason": "peer not selected (--peers)"}
    with tempfile.TemporaryDirectory() as tmp:
        if "official" in cfg.peers:
            log("training: official ncps.torch loop in a subprocess ...")
            official["torch"], results["torch"] = run_torch(cfg, data, Path(tmp))
        else:
            results["torch"] = dict(not_asked)
        if "keras-jax" in cfg.peers:
            log("training: official ncps.keras on Keras 3 + JAX in a subprocess ...")
            official["keras-jax"], rows = run_keras(cfg, data, Path(tmp))
            results.update(rows)
        else:
            results.update({k: dict(not_asked) for k, (_, how, _) in ROWS.items() if how == "keras-jax"})
        ours = {
            "bare-eager": lambda: run_bare(cfg, data, Path(tmp), compiled=False),
            "bare-compiled": lambda: run_bare(cfg, data, Path(tmp), compiled=True),
            "fit": lambda: run_fit(cfg, data),
            "sklearn": lambda: run_sklearn(cfg, data),
            "mini_keras": lambda: run_mini_keras(cfg, data, ()),
            "mini_keras+acc": lambda: run_mini_keras(cfg, data, ("accuracy",)),
        }
        runs: dict[str, list] = {key: [] for key in ours}
        with ncps.kernels.use("fused"):
            for _ in range(cfg.rounds):
                for key, run in ours.items():
                    runs[key].append(guarded(run))
        results.update({key: merge_rounds(r) for key, r in runs.items()})
        with ncps.kernels.use("fused"):
            breakdown = guarded(lambda: {"status": "ok", "parts": step_breakdown(cfg, data)})
    rows = []
    for key, (label, how, metrics) in ROWS.items():
        r = results[key]
        log(f"training: {label} {'+'.join(metrics)}: {describe(r)}")
        rows.append({"key": key, "label": label, "impl": how, "metrics": list(metrics), **r})
    add_ratios(rows)
    return {
        "config": cfg.public(),
        "recipe": cfg.recipe(),
        "official": official,
        "rows": rows,
        "steps": breakdown,
        "dataset": {
            "name": cfg.dataset,
            "samples": n,
            "time": T,
            "features": F,
            "outputs": data["outputs"],
            "lengths": f"{data['lengths'][0]}-{data['lengths'][-1]}",
        },
    }


def add_ratios(rows: list) -> None:
    """Speed-ups over the official loops (their median ÷ ours; the Keras row with the same
    metrics) and the overhead over the compiled bare loop, in place."""
    by_key = {r["key"]: r for r in rows}

    def median_of(key: str, stat: str = "median_s") -> float | None:
        r = by_key.get(key, {})
        return r.get(stat) if r.get("status") == "ok" else None

    floor, floor_min = median_of(FLOOR), median_of(FLOOR, "min_s")
    for r in rows:
        if r.get("status") != "ok":
            continue
        keras_key = "keras-jax+acc" if r["metrics"] else "keras-jax"
        r["speedup_torch"] = ratio(median_of("torch"), r["median_s"])
        r["speedup_keras"] = ratio(median_of(keras_key), r["median_s"])
        if r["impl"] == "ncps" and floor:
            r["overhead_pct"] = 100.0 * (r["median_s"] / floor - 1.0)
            r["overhead_min_pct"] = 100.0 * (r["min_s"] / floor_min - 1.0)


def describe(r: dict) -> str:
    if r.get("status") == "ok":
        return f"{fmt_time(r['median_s'])} per epoch (min {fmt_time(r['min_s'])}), {r['samples_per_s']:.0f} samples/s"
    return f"{r.get('status')}: {r.get('reason')}"


# ---------------------------------------------------------------------------------------------
# Markdown and chart panel
# ---------------------------------------------------------------------------------------------
def fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{v:+.0f} %"


def fmt_overhead(r: dict) -> str:
    """``+5 % / +2 %``: the overhead of the medians and of the minima."""
    if r.get("overhead_pct") is None:
        return "—"
    return f"{fmt_pct(r['overhead_pct'])} / {fmt_pct(r['overhead_min_pct'])}"


def markdown(sec: dict, results: dict) -> list[str]:
    lines = ["### Training throughput: every front against the official training loops", ""]
    if sec.get("skipped"):
        return lines + [f"Skipped: {sec['reason']}."]
    d, rc = sec["dataset"], sec["recipe"]
    lines += [
        f"{d['name']} (aeon, both splits: {d['samples']} sequences, T = {d['time']} front-padded from lengths "
        f"{d['lengths']}, {d['features']} channels, {d['outputs']} classes); CfC({d['features']}, {rc['units']}) "
        f"+ linear head, Adam lr {rc['lr']:g} (bias-corrected), global grad-norm clip {rc['clip']:g}, batch "
        f"{rc['batch']}, {rc['epochs']} epochs ({rc['torch_epochs']} for the official torch loop). "
        "Time per epoch: median / min over the epochs after the first "
        "(warm-up: tracing, XLA compilation); a front's fit() outside its epochs: "
        "checking and converting the data, building the model. "
        "Speed-up = the official loop's median ÷ ours (> 1: we are "
        "faster); overhead = our median (min) ÷ the compiled bare MLX loop's median (min) − 1. Our rows: "
        f"{rc['rounds']} round(s), round-robin, timed epochs pooled.",
        "",
    ]
    header = [
        "front",
        "per-batch metrics",
        "time per epoch",
        "samples/s",
        "warm-up epoch",
        "fit() outside epochs",
        "speed-up vs official torch",
        "speed-up vs Keras 3 + JAX",
        "overhead vs bare (compiled), median / min",
    ]
    rows = []
    for r in sec["rows"]:
        metrics = "loss, " + ", ".join(r["metrics"]) if r["metrics"] else "loss"
        if r.get("status") != "ok":
            rows.append([r["label"], metrics, str(r.get("status")), "—", "—", "—", "—", "—", "—"])
            continue
        rows.append(
            [
                r["label"],
                metrics,
                fmt_pair(r["median_s"], r["min_s"]),
                f"{r['samples_per_s']:.0f}",
                fmt_time(r["warmup_s"]),
                fmt_time(r.get("outside_epochs_s")),
                fmt_ratio(r.get("speedup_torch")),
                fmt_ratio(r.get("speedup_keras")),
                fmt_overhead(r),
            ]
        )
    lines += table(header, rows)
    lines += ["", *steps_markdown(sec.get("steps", {}), rc["batch"])]
    notes = [f"- {r['label']}: {r.get('status')} — {r.get('reason')}" for r in sec["rows"] if r.get("status") != "ok"]
    peers = [
        f"{name}: {info.get('version')} ({info.get('threads')} threads)"
        for name, info in sec["official"].items()
        if info.get("available")
    ]
    if peers:
        notes.append("- Peers: " + "; ".join(peers) + ".")
    return lines + (["", *dict.fromkeys(notes)] if notes else [])


def steps_markdown(steps: dict, batch: int) -> list[str]:
    """The table of where one step's time goes."""
    if steps.get("status") != "ok":
        return [f"Step breakdown: {steps.get('status')} — {steps.get('reason')}"] if steps else []
    lines = [
        f"Where one step goes (batch {batch} of the same data; each part timed on its own, an epoch's worth of "
        "calls at a time, rounds interleaved; share = median ÷ the compiled bare step's):",
        "",
    ]
    rows = [
        [p["part"], fmt_pair(p["median_s"], p["min_s"]), f"{100 * p['of_compiled_step']:.0f} %"] for p in steps["parts"]
    ]
    return lines + table(["part", "per step (median / min)", "share"], rows)


def panels(sec: dict, results: dict) -> list[Panel]:
    """A bar chart of samples/s per row."""

    def draw(ax) -> None:
        rows = [r for r in sec.get("rows", []) if r.get("status") == "ok"]
        if not rows:
            ax.set_title("training throughput", fontsize=10)
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
            return
        names = [
            (r["label"] if r["impl"] == "ncps" else r["label"].replace("official ", "").split(",")[0] + " (official)")
            + (" +acc" if r["metrics"] else "")
            for r in rows
        ]
        colors = {"ncps": "#1f77b4", "official": "#2ca02c", "keras-jax": "#d62728"}
        ax.barh(range(len(rows)), [r["samples_per_s"] for r in rows], color=[colors[r["impl"]] for r in rows])
        ax.set_yticks(range(len(rows)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("training samples/s (median epoch, log)", fontsize=8)
        ax.set_title(f"training throughput: {sec['dataset']['name']}, CfC({sec['recipe']['units']})", fontsize=10)
        ax.grid(alpha=0.3, axis="x")

    return [draw]


SECTION = Section("training", compute, markdown, panels)
