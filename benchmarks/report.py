"""The report: the sections in their order, and the results (the dict that ``run.py`` writes as
JSON) assembled into markdown and a PNG chart from each section's own tables and panels.

Cells of the timing tables read ``median / min`` (both in the median's unit); ratios are of the
medians (see :mod:`benchmarks.common.fmt`).
"""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks import accuracy, deploy, gpu, limits, memory, precision, scaling, speed, streaming, threads, training
from benchmarks.common.context import Section

# In the order they run (``--section`` takes their names).
SECTIONS: tuple[Section, ...] = (
    limits.SECTION,
    speed.LTC,
    speed.CFC,
    scaling.SECTION,
    threads.SECTION,
    memory.SECTION,
    precision.SECTION,
    streaming.SECTION,
    deploy.SECTION,
    accuracy.SECTION,
    training.SECTION,
    gpu.SECTION,
)
BY_NAME = {s.name: s for s in SECTIONS}
NAMES = tuple(BY_NAME)
# In the order they are shown (after the peer table); the chart shows the fraction of the
# machine's limit (the limits section's panel) next to the models' panels.
MARKDOWN_ORDER = (
    "limits",
    "ltc",
    "cfc",
    "scaling",
    "threads",
    "memory",
    "precision",
    "streaming",
    "deploy",
    "gpu",
    "accuracy",
    "training",
)
PANEL_ORDER = (
    "ltc",
    "cfc",
    "limits",
    "scaling",
    "threads",
    "memory",
    "precision",
    "streaming",
    "deploy",
    "accuracy",
    "training",
    "gpu",
)


def _header(results: dict) -> list[str]:
    """The title, the machine and the versions, the conventions, and a warning if it was busy."""
    m, off = results["machine"], results.get("official", {})
    kinfo = m.get("kernels", {})
    ext = "extension loaded" if kinfo.get("extension_loaded") else f"no extension ({kinfo.get('reason')})"
    official = (
        f"official ncps {m.get('official_ncps')} on torch {off.get('torch_version') or m.get('torch')} "
        f"({off.get('torch_threads') or results['config'].get('threads')} threads)"
        if off.get("available")
        else f"official: {off.get('reason')}"
    )
    mode = results["mode"]
    run_kind = "tiny test run" if mode.get("tiny") else ("--quick run" if mode.get("quick") else "full run")
    lines = [
        f"## ncps benchmark ({run_kind})",
        "",
        f"{m.get('cpu')}, {m.get('cores')} cores · mlx {m.get('mlx')} ({m.get('mlx_device')}) · "
        f"ncps {m.get('ncps')} ({m.get('ncps_git') or 'no git'}; {ext}, {kinfo.get('simd')}, "
        f"{kinfo.get('threads')} threads) · {official}",
        "",
        "Times are **median / min** over timed calls after warm-up (fewer repetitions for slow entries); "
        "every MLX call ends in `mx.eval`; ratios compare medians (> 1× means the first is slower).",
    ]
    load = (m.get("load_average_start"), m.get("load_average_end"))
    if all(load) and max(load[0][0], load[1][0]) > 0.5 * (m.get("cores") or 1):
        lines += [
            "",
            f"**Warning:** the machine was busy (load average {load[0][0]} → {load[1][0]}); timings are noisy.",
        ]
    return lines


def markdown(results: dict) -> str:
    """The whole report: the header, the peer table, then every section that ran."""
    sections = results["sections"]
    lines = _header(results)
    peers = speed.peer_table(results)
    if peers:
        lines += ["", *peers]
    for name in MARKDOWN_ORDER:
        if name in sections:
            lines += ["", *BY_NAME[name].markdown(sections[name], results)]
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    """A PNG with one panel per measured quantity (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = results["sections"]
    panels = [p for name in PANEL_ORDER if name in sections for p in BY_NAME[name].panels(sections[name], results)]
    ncols = min(4, max(1, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 4.4 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, panel in zip(flat, panels):
        panel(ax)
    for ax in flat[len(panels) :]:
        ax.axis("off")
    m = results["machine"]
    fig.suptitle(
        f"ncps benchmark ({results['name']}) — {m.get('cpu')}, {m.get('cores')} cores, mlx {m.get('mlx')}", fontsize=11
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (4.4 * nrows)))  # keep the title clear of the top row
    fig.savefig(path, dpi=110)
    plt.close(fig)
