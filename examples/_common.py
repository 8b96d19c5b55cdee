"""Helpers shared by the examples: command line, plots, and a metrics file per run.

Not part of the package; every example imports it from its own folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "output"


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the options every example has: ``--out``, ``--quick``, ``--seed``.

    Args:
        doc: the example's module docstring; its first paragraph (whole sentences, joined into
            one line) becomes the ``--help`` description.
    """
    paragraph = doc.strip().split("\n\n")[0]
    description = " ".join(line.strip() for line in paragraph.splitlines()).replace("``", "")
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Folder for the PNG plots and the metrics JSON.")
    p.add_argument(
        "--quick",
        action="store_true",
        help="Run for a few seconds (small data, few epochs) to check that everything works, as CI does.",
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of the data, the initial weights and the shuffling.")
    return p


def training_args(
    doc: str,
    argv: Sequence[str] | None,
    helps: dict[str, str],
    *,
    epochs: int,
    samples: int,
    units: int,
    lr: float,
    quick: tuple[int, int],
) -> argparse.Namespace:
    """Parse the command line of an example that trains a model on generated sequences.

    The options are those of :func:`parser` plus ``--epochs``, ``--samples``, ``--units`` and
    ``--lr`` (of Adam), with these defaults; ``helps`` maps each of ``"epochs"``, ``"samples"`` and
    ``"units"`` (and optionally ``"lr"``) to its help text. With ``--quick``, ``args.epochs`` and
    ``args.samples`` are replaced by ``quick`` (a few seconds' run, as CI does).
    """
    p = parser(doc)
    p.add_argument("--epochs", type=int, default=epochs, help=helps["epochs"])
    p.add_argument("--samples", type=int, default=samples, help=helps["samples"])
    p.add_argument("--units", type=int, default=units, help=helps["units"])
    lr_help = helps.get("lr", "Learning rate of Adam (updates as torch.optim.Adam does).")
    p.add_argument("--lr", type=float, default=lr, help=lr_help)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.samples = quick
    return args


# The modules of the ``plot`` extra (pyproject.toml) that the plots need.
PLOT_MODULES = ("matplotlib", "networkx")


@contextlib.contextmanager
def plotting() -> Iterator[None]:
    """Run an example's plotting code, after its metrics are written: without the ``plot`` extra
    the plots are skipped with one line saying what to install, and the run still succeeds."""
    try:
        yield
    except ImportError as exc:
        missing = next((m for m in PLOT_MODULES if m in (exc.name or "") or m in str(exc)), None)
        if missing is None:
            raise
        print(f"plots skipped: {missing} is not installed; install the plotting extra with: pip install 'ncps[plot]'")


def plt():
    """matplotlib.pyplot on the non-interactive Agg backend, with constrained layout everywhere
    (so that a figure title never overlaps the subplot titles, and colour bars and outside
    legends get their room)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["figure.constrained_layout.use"] = True
    import matplotlib.pyplot as pyplot

    return pyplot


def save(fig: Any, out: Path, name: str, dpi: int = 90) -> Path:
    """Write ``fig`` to ``out/name`` (PNG), close it and print the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt().close(fig)
    print(f"wrote {path}")
    return path


def plot_history(
    history: dict, out: Path, name: str, title: str, keys: Sequence[str] | None = None, val_label: str = "validation"
) -> Path:
    """Loss (and metric) curves per epoch, training solid and validation dashed; one legend
    under the panels, so that it never covers a curve. ``val_label`` names the ``val_*`` data."""
    pyplot = plt()
    keys = list(keys) if keys is not None else [k for k in history if not k.startswith("val_")]
    fig, axes = pyplot.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], "o-", ms=3, color="tab:blue", label="training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s--", ms=3, color="tab:orange", label=val_label)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        values = np.asarray(history[key] + history.get(f"val_{key}", []), dtype=float)
        if key == "loss" and values.min() > 0 and values.max() > 10 * values.min():  # log only for a wide range
            ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(title)
    return save(fig, out, name)


def plot_classes(
    out: Path,
    name: str,
    title: str,
    classes: Sequence[str],
    y: np.ndarray,
    draw: Callable[[Any, int, np.ndarray], str],
    xlabel: str = "step",
    ylabel: str | None = None,
) -> Path:
    """Samples of each class, one panel per class (all sharing the y-axis).

    ``draw(ax, k, idx)`` plots the samples ``idx`` (the indices of the first three with ``y == k``)
    on the panel ``ax`` of class ``k`` and returns that panel's title."""
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(classes), figsize=(12, 2.8), sharey=True)
    for k, ax in enumerate(axes):
        ax.set_title(draw(ax, k, np.flatnonzero(y == k)[:3]), fontsize=10)
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    return save(fig, out, name)


def plot_confusion(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    out: Path,
    name: str,
    title: str,
    rotation: float = 0,
) -> Path:
    """The confusion matrix ``(true class × predicted class)`` of the labels ``y_true`` and the
    predictions ``y_pred`` (both ``(n,)`` class indices), each cell with its count;
    ``rotation`` turns the predicted-class labels (long names)."""
    conf = np.zeros((len(classes), len(classes)), int)
    np.add.at(conf, (np.asarray(y_true), np.asarray(y_pred)), 1)
    fig, ax = plt().subplots(figsize=(4.4, 3.8))
    ax.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(len(classes)), classes, rotation=rotation)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save(fig, out, name)


def plot_wiring(wiring: Any, out: Path, name: str, title: str) -> Path:
    """The wiring drawn by ``Wiring.draw_graph`` in columns (sensory → inter → command → motor),
    with a legend of the neuron types and synapse polarities."""
    pyplot = plt()
    fig = pyplot.figure(figsize=(8, 5.5))
    handles = wiring.draw_graph(layout="layered", draw_labels=True)
    pyplot.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    pyplot.title(title)
    return save(fig, out, name)


def plot_activity(
    states: np.ndarray,
    out: Path,
    name: str,
    title: str,
    times: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    traces: int = 6,
    time_label: str = "time",
    always: Sequence[int] = (),
) -> Path:
    """Neuron activity over time: a heat map of every neuron ``(neurons × steps)`` and, below it,
    the traces of the ``traces`` neurons that vary most, each named in a legend (all of them would
    be an unreadable tangle of 16-64 lines).

    Args:
        states: ``(T, N)`` states.
        times: the time of each step (default: the step index).
        labels: a name per neuron (e.g. ``"0 motor"``); default ``"neuron i"``.
        traces: how many traces to draw.
        time_label: the x-axis label when ``times`` is given.
        always: neurons traced whatever their variance (e.g. the motor output).
    """
    pyplot = plt()
    states = np.asarray(states)
    T, N = states.shape
    t = np.arange(T) if times is None else np.asarray(times)
    names = list(labels) if labels is not None else [f"neuron {i}" for i in range(N)]
    fig, (ax1, ax2) = pyplot.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]})
    lim = float(np.abs(states).max()) or 1.0
    mesh = ax1.pcolormesh(t, np.arange(N), states.T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
    fig.colorbar(mesh, ax=ax1, label="state")
    ax1.set_ylabel("neuron")
    ax1.set_title(f"all {N} neurons", fontsize=10)
    if labels is not None and N <= 24:
        ax1.set_yticks(np.arange(N))
        ax1.set_yticklabels(names, fontsize=7)
    by_variance = [i for i in np.argsort(states.std(axis=0))[::-1] if i not in always]
    shown = np.sort(np.array([*always, *by_variance][: max(traces, len(always))], dtype=int))
    for i in shown:
        ax2.plot(t, states[:, i], lw=1.2, label=names[i])
    subset = f"{len(shown)} of {N}: " + (", ".join(names[i] for i in always) + " and " if len(always) else "")
    ax2.set_title(f"{subset}the neurons whose state varies most" if len(shown) < N else "every neuron", fontsize=10)
    ax2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax2.set_xlabel(time_label if times is not None else "step")
    ax2.set_ylabel("state")
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    return save(fig, out, name)


class Timer:
    """Wall-clock seconds since creation."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def write_metrics(out: Path, name: str, metrics: dict) -> Path:
    """Write ``metrics`` as ``out/name_metrics.json`` and print it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}_metrics.json"
    path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(json.dumps(metrics, indent=2, default=float))
    return path
