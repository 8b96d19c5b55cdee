"""Chart helpers shared by the sections' panels (matplotlib, imported only when a chart is drawn).

A panel is a function of one matplotlib ``Axes`` that draws on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.common.fmt import IMPL_NAMES, median

Panel = Callable[[Any], None]

COLORS = {
    "fused": "#1f77b4",
    "reference": "#ff7f0e",
    "official": "#2ca02c",
    "mlx.nn": "#7f7f7f",
    "torch.compile": "#8c564b",
    "keras-jax": "#d62728",
    "fused forward": "#1f77b4",
    "fused fwd+bwd": "#aec7e8",
    "eager": "#1f77b4",
    "mx.compile": "#9467bd",
    "infer": "#17becf",
    "C": "#bcbd22",
    "onnxruntime": "#e377c2",
    ".mlxfn": "#9467bd",
    "float32": "#1f77b4",
    "bfloat16": "#ff7f0e",
    "float16": "#2ca02c",
}


def no_data(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def log2_x(ax: Any, values: list[float], fontsize: int = 7, rotation: int = 0) -> None:
    """A base-2 log x axis with a tick at each of ``values`` (their plain numbers), no minor labels."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:g}" for v in values], fontsize=fontsize, rotation=rotation)


def log_y(ax: Any) -> None:
    """Plain numbers on a log y axis (1, 2, 5, 10, ... rather than 10^0); call after plotting."""
    from matplotlib.ticker import FuncFormatter

    lo, hi = ax.get_ylim()
    minor = "123456789" if hi / max(lo, 1e-30) < 10 else "25"  # label every tick within one decade
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in minor else ""))
    ax.yaxis.set_tick_params(which="both", labelsize=7)


def bars(ax: Any, title: str, groups: list[str], series: dict[str, list[float | None]], ylabel: str, log: bool) -> None:
    """Grouped bars; ``series`` maps an implementation to one value (or None) per group. Each
    group shows only the implementations that have a value there, centred on the group."""
    if not any(v is not None for values in series.values() for v in values):
        return no_data(ax, title)
    width = 0.8 / max(1, max(sum(values[g] is not None for values in series.values()) for g in range(len(groups))))
    labelled = set()
    for g in range(len(groups)):
        present = [(impl, values[g]) for impl, values in series.items() if values[g] is not None]
        for i, (impl, v) in enumerate(present):
            x = g + (i - (len(present) - 1) / 2) * width
            name = IMPL_NAMES.get(impl, impl)
            ax.bar(x, v, width, color=COLORS.get(impl), label=None if name in labelled else name)
            labelled.add(name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7 if len(groups) < 4 else 6)
    # Headroom above the tallest bar for the legend, so that it never covers a bar.
    if log:
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * (hi / lo) ** 0.5)
        log_y(ax)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    ax.grid(axis="y", alpha=0.3)


def short(model: str) -> str:
    """A label that fits under a bar: one line per part."""
    return model.replace(" · ", "\n").replace("mlx.nn.", "")


def scaled(v: float | None, scale: float) -> float | None:
    """``v * scale`` (seconds to ms: 1e3), None stays None."""
    return None if v is None else v * scale


def step_bars(rows: list[dict], title: str, impls: tuple[str, ...]) -> Panel:
    """The panel of a batch-1 step section: per model (``row["model"]``), the median seconds of
    each implementation in ``impls`` (``row["impl"]``) as µs bars on a log axis."""
    idx = {(r["model"], r["impl"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))

    def panel(ax: Any) -> None:
        series = {i: [scaled(median(idx.get((m, i))), 1e6) for m in models] for i in impls}
        bars(ax, title, [short(m) for m in models], series, "µs (median, log)", log=True)

    return panel
