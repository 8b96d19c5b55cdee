"""Helpers shared by the examples: command line, plots, and a metrics file per run.

Not part of the package; every example imports it from its own folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "output"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every example has: ``--out``, ``--quick``, ``--seed``."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNG plots and the metrics JSON")
    p.add_argument("--quick", action="store_true", help="a few seconds' run (small data, few epochs) for CI")
    p.add_argument("--seed", type=int, default=0, help="seed of data, initial weights and shuffling")
    return p


def plt():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
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


def plot_history(history: dict, out: Path, name: str, title: str, keys: Optional[Sequence[str]] = None) -> Path:
    """Loss (and metric) curves per epoch, training solid and validation dashed."""
    pyplot = plt()
    keys = list(keys) if keys is not None else [k for k in history if not k.startswith("val_")]
    fig, axes = pyplot.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "--", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if key == "loss" and min(history[key]) > 0:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
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


def plot_activity(states: np.ndarray, out: Path, name: str, title: str, times: Optional[np.ndarray] = None,
                  labels: Optional[Sequence[str]] = None) -> Path:  # fmt: skip
    """Neuron activity over time: a heat map ``(neurons × steps)`` and the traces."""
    pyplot = plt()
    states = np.asarray(states)
    T, N = states.shape
    t = np.arange(T) if times is None else np.asarray(times)
    fig, (ax1, ax2) = pyplot.subplots(2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]})
    lim = float(np.abs(states).max()) or 1.0
    mesh = ax1.pcolormesh(t, np.arange(N), states.T, cmap="RdBu_r", vmin=-lim, vmax=lim, shading="nearest")
    fig.colorbar(mesh, ax=ax1, label="state")
    ax1.set_ylabel("neuron")
    if labels is not None:
        ax1.set_yticks(np.arange(N))
        ax1.set_yticklabels(labels, fontsize=6)
    for i in range(N):
        ax2.plot(t, states[:, i], lw=0.9)
    ax2.set_xlabel("time" if times is not None else "step")
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
