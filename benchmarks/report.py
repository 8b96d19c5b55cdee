"""Turn benchmark results (the dict that ``run.py`` writes as JSON) into markdown and a PNG chart.

Cells of the timing tables read ``median / min`` (both in the median's unit); ratios are of the
medians. An entry that did not run shows ``n/a`` (no fused kernel, official package absent),
``skipped`` (too slow for this run) or ``error``, with the reason listed under its table.
"""

from __future__ import annotations

import math
from pathlib import Path

IMPL_NAMES = {
    "fused": "ncps fused",
    "reference": "ncps reference",
    "official": "official ncps.torch",
    "torch.compile": "official ncps.torch + torch.compile",
    "keras-jax": "official ncps.keras, Keras 3 + JAX (jit)",
    "mlx.nn": "mlx.nn",
    "eager": "ncps eager",
    "mx.compile": "ncps mx.compile",
    "infer": "ncps cell.infer",
}


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------
def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 1.0:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def _num(v: float) -> str:
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    scale, unit = _unit(seconds)
    return f"{_num(seconds * scale)} {unit}"


def fmt_pair(median: float, minimum: float) -> str:
    """``12.3 / 11.9 ms``: median and minimum in the median's unit."""
    scale, unit = _unit(median)
    return f"{_num(median * scale)} / {_num(minimum * scale)} {unit}"


def fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "—"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.0f} KiB"


def ok(r: dict | None) -> bool:
    return bool(r) and r.get("status") == "ok"


def median(r: dict | None) -> float | None:
    return r["median_s"] if ok(r) and "median_s" in r else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


class Notes:
    """Reasons of the entries that did not run, listed once under a table."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, impl: str, r: dict | None) -> None:
        if not r or r.get("status") == "ok":
            return
        text = f"{IMPL_NAMES.get(impl, impl)}: {r.get('status')} — {r.get('reason')}"
        if text not in self.items:
            self.items.append(text)

    def lines(self) -> list[str]:
        return [f"- {t}" for t in self.items]


def cell(r: dict | None, notes: Notes, impl: str) -> str:
    notes.add(impl, r)
    if not r:
        return "—"
    if r.get("status") != "ok":
        return str(r.get("status"))
    return fmt_pair(r["median_s"], r["min_s"])


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _index(rows: list[dict]) -> dict:
    return {(r["model"], r.get("pass"), r["impl"]): r for r in rows}


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _comparison(title: str, section: dict) -> list[str]:
    shape, rows = section["shape"], section["results"]
    idx, notes = _index(rows), Notes()
    models = list(dict.fromkeys(r["model"] for r in rows if r["impl"] != "mlx.nn"))
    body = []
    for model in models:
        for kind in ("forward", "fwd+bwd"):
            f, ref, off = (idx.get((model, kind, i)) for i in ("fused", "reference", "official"))
            body.append(
                [
                    model,
                    kind,
                    cell(f, notes, "fused"),
                    cell(ref, notes, "reference"),
                    cell(off, notes, "official"),
                    fmt_ratio(ratio(median(ref), median(f))),
                    fmt_ratio(ratio(median(off), median(f))),
                    fmt_ratio(ratio(median(off), median(ref))),
                ]
            )
    lines = [
        f"### {title}",
        "",
        f"Batch {shape['batch']}, T = {shape['time']}, {shape['inputs']} inputs"
        + (f", {shape['ode_unfolds']} ODE unfolds" if title.startswith("LTC") else "")
        + ".",
        "",
    ]
    lines += table(
        [
            "model",
            "pass",
            "ncps fused",
            "ncps reference",
            "official ncps.torch",
            "reference ÷ fused",
            "official ÷ fused",
            "official ÷ reference",
        ],
        body,
    )
    base = [r for r in rows if r["impl"] == "mlx.nn"]
    if base:
        fastest = {}  # the fastest fused model's median per pass, or None
        for kind in ("forward", "fwd+bwd"):
            times = [median(idx.get((m, kind, "fused"))) for m in models]
            fastest[kind] = min((t for t in times if t is not None), default=None)
        brows = []
        for model in dict.fromkeys(r["model"] for r in base):
            fw, fb = idx.get((model, "forward", "mlx.nn")), idx.get((model, "fwd+bwd", "mlx.nn"))
            brows.append(
                [
                    model,
                    cell(fw, notes, "mlx.nn"),
                    cell(fb, notes, "mlx.nn"),
                    fmt_ratio(ratio(fastest["forward"], median(fw))),
                    fmt_ratio(ratio(fastest["fwd+bwd"], median(fb))),
                ]
            )
        lines += ["", "Familiar baselines, same shapes (MLX eager):", ""]
        lines += table(
            ["baseline", "forward", "fwd+bwd", "fastest fused ÷ baseline (fwd)", "fastest fused ÷ baseline (fwd+bwd)"],
            brows,
        )
    if notes.items:
        lines += ["", *notes.lines()]
    return lines


def _scaling(section: dict) -> list[str]:
    notes = Notes()
    lines = ["### Scaling (fused forward)", ""]
    svd = section.get("sparse_vs_dense", [])
    if svd:
        rows = [[r["model"], cell(r, notes, "fused")] for r in svd]
        lines += table(["model", "ncps fused forward"], rows)
        r = ratio(median(svd[0]), median(svd[1])) if len(svd) == 2 else None
        target = section.get("target_sparse_over_dense", 0.5)
        verdict = "n/a" if r is None else ("met" if r <= target else "NOT met")
        lines += ["", f"Sparse ÷ dense: **{fmt_ratio(r)}** (target ≤ {target}: {verdict}).", ""]
    scan = section.get("scan", [])
    if scan:
        body = []
        for p in scan:
            value = f"{p['value']:g}" if isinstance(p["value"], float) else str(p["value"])
            mem = (p.get("memory") or {}).get("peak_bytes")
            body.append(
                [
                    p["sweep"],
                    value,
                    p["model"],
                    str(p["batch"]),
                    str(p["time"]),
                    cell(p.get("fused"), notes, "fused"),
                    fmt_bytes(mem) if mem else "—",
                    cell(p.get("reference"), notes, "reference"),
                    fmt_ratio(ratio(median(p.get("reference")), median(p.get("fused")))),
                ]
            )
        lines += table(
            [
                "sweep",
                "value",
                "model",
                "batch",
                "T",
                "ncps fused",
                "fused peak memory",
                "ncps reference",
                "reference ÷ fused",
            ],
            body,
        )
    fits = section.get("growth") or {}
    if fits:
        lines += [
            "",
            "Growth of the fused forward (least-squares exponent k of y ∝ value^k in log-log; time from the "
            "minimum, memory from the peak):",
            "",
        ]
        lines += table(
            ["sweep", "time exponent", "peak-memory exponent"],
            [[sweep, _exp(f.get("time")), _exp(f.get("memory"))] for sweep, f in fits.items()],
        )
    if notes.items:
        lines += ["", *notes.lines()]
    return lines


def _exp(k: float | None) -> str:
    return "—" if k is None else f"{k:.2f}"


def _memory(section: dict) -> list[str]:
    rows, notes = section["results"], Notes()
    idx = _index(rows)
    targets = section.get("target_fused_over_reference", {})
    body = []
    for model in dict.fromkeys(r["model"] for r in rows):
        f, ref = idx.get((model, "fwd+bwd", "fused")), idx.get((model, "fwd+bwd", "reference"))
        notes.add("fused", f)
        notes.add("reference", ref)
        fp = f.get("peak_bytes") if ok(f) else None
        rp = ref.get("peak_bytes") if ok(ref) else None
        r = ratio(fp, rp)
        target = next((t for prefix, t in targets.items() if model.startswith(prefix + " ")), None)
        verdict = "" if target is None else ("n/a" if r is None else ("met" if r <= target else "NOT met"))
        body.append(
            [
                model,
                fmt_bytes(fp) if fp is not None else (f or {}).get("status", "—"),
                fmt_bytes(rp) if rp is not None else (ref or {}).get("status", "—"),
                fmt_ratio(r),
                "" if target is None else f"≤ {target}: {verdict}",
            ]
        )
    shape = section.get("shape", {})
    lines = [
        "### Peak memory of forward+backward",
        "",
        f"Batch {shape.get('batch')}, T = {shape.get('time')}; `mx.get_peak_memory()` after "
        "`mx.reset_peak_memory()` (includes parameters and input).",
        "",
    ]
    lines += table(["model", "ncps fused", "ncps reference", "fused ÷ reference", "target"], body)
    if notes.items:
        lines += ["", *notes.lines()]
    return lines


def _streaming(section: dict) -> list[str]:
    rows, notes = section["results"], Notes()
    idx = {(r["model"], r["impl"]): r for r in rows}
    body = []
    peers = [(impl, name) for impl, name in PEER_COLUMNS if any(r["impl"] == impl for r in rows)]
    for model in dict.fromkeys(r["model"] for r in rows):
        e, c, n = (idx.get((model, i)) for i in ("eager", "mx.compile", "infer"))
        body.append(
            [model, cell(e, notes, "eager"), cell(c, notes, "mx.compile"), cell(n, notes, "infer")]
            + [cell(idx.get((model, impl)), notes, impl) for impl, _ in peers]
            + [fmt_ratio(ratio(median(idx.get((model, impl))), median(n))) for impl, _ in peers]
        )
    lines = [
        "### Streaming inference: one cell step, batch 1",
        "",
        "`out, h = cell(x, h); mx.eval(out, h)` (eager, or under `mx.compile`) and `out, h = cell.infer(x, h)` "
        "(computed immediately on the calling thread, no graph) vs the official cell under "
        "`torch.no_grad()`.",
        "",
    ]
    lines += table(
        ["cell", "ncps eager", "ncps mx.compile", "ncps cell.infer"]
        + [IMPL_NAMES[impl] for impl, _ in peers]
        + [f"{name} ÷ infer" for _, name in peers],
        body,
    )
    if notes.items:
        lines += ["", *notes.lines()]
    return lines


PEER_COLUMNS = (("official", "torch"), ("torch.compile", "torch.compile"), ("keras-jax", "Keras 3 + JAX"))


def fmt_rate(v: float | None, unit: str) -> str:
    return "—" if v is None else f"{_num(v)} {unit}/s"


def fmt_fraction(v: float | None) -> str:
    if v is None:
        return "—"
    if v > 1.0:  # the probe ran in a busier moment than the row: the limit is understated
        return f"{100 * v:.0f} % (limit understated: busy machine)"
    return f"{100 * v:.2g} %"


def fraction_of_limit(r: dict | None, limits: dict) -> tuple[float | None, float | None]:
    """(achieved rate in the work's unit per second, fraction of the machine's limit) of a fused
    row, from its fastest call (the least disturbed by other load)."""
    w = (r or {}).get("work")
    if not ok(r) or not w:
        return None, None
    rate = w["amount"] / r["min_s"]
    limit = limits.get("gemm_gflops") if w["limit"] == "gemm" else limits.get("synapse_evals_per_s")
    if limit and w["limit"] == "synapse":
        limit = limit * 1e-9  # Gsyn/s
    return rate, (rate / limit if limit else None)


def _peers(results: dict) -> list[str]:
    """One table: every model and pass, our fused time against the official package on each
    framework, the ratios, and the fraction of the machine's limit reached."""
    sections, limits = results["sections"], results.get("limits") or {}
    rows = [r for name in ("ltc", "cfc") if name in sections for r in sections[name]["results"]]
    if not rows:
        return []
    idx, notes = _index(rows), Notes()
    peers = [(impl, name) for impl, name in PEER_COLUMNS if any(r["impl"] == impl for r in rows)]
    body = []
    for model in dict.fromkeys(r["model"] for r in rows if r["impl"] == "fused"):
        for kind in ("forward", "fwd+bwd"):
            f = idx.get((model, kind, "fused"))
            cells = [model, kind, _min_cell(f, notes, "fused")]
            cells += [_min_cell(idx.get((model, kind, impl)), notes, impl) for impl, _ in peers]
            cells += [fmt_ratio(ratio(_min(idx.get((model, kind, impl))), _min(f))) for impl, _ in peers]
            rate, frac = fraction_of_limit(f, limits)
            unit = (f or {}).get("work", {}).get("unit", "")
            cells += [fmt_rate(rate, unit), fmt_fraction(frac)]
            body.append(cells)
    header = ["model", "pass", "ncps fused"] + [f"official, {name}" for _, name in peers]
    header += [f"{name} ÷ fused" for _, name in peers] + ["fused achieves", "of the machine's limit"]
    lim = []
    if limits.get("gemm_gflops"):
        lim.append(f"GEMM {_num(limits['gemm_gflops'])} GFLOP/s ({limits.get('gemm_source')})")
    if limits.get("synapse_evals_per_s"):
        lim.append(
            f"LTC synapses {_num(limits['synapse_evals_per_s'] * 1e-9)} Gsyn/s ({limits.get('simd_lanes')} SIMD lanes)"
        )
    versions = [
        f"{IMPL_NAMES[impl]}: {info.get('version')}"
        for impl, info in (results.get("peers") or {}).items()
        if info.get("version")
    ]
    lines = [
        "### Against the official package on every framework",
        "",
        "Times are the **minimum** over timed calls (the least disturbed by other load; the sections below give "
        "medians); ratios > 1× mean the peer is slower. The machine's limit: "
        + ("; ".join(lim) if lim else "not measured (section `limits`)")
        + ". Work is counted as matmul FLOPs (CfC) or synapse evaluations (LTC); forward+backward as 3× the "
        "forward (see `benchmarks/limits.py`).",
        "",
    ]
    if versions:
        lines[-1:-1] = [" · ".join(versions), ""]
    lines += table(header, body)
    if notes.items:
        lines += ["", *notes.lines()]
    return lines


def _min(r: dict | None) -> float | None:
    return r["min_s"] if ok(r) and "min_s" in r else None


def _min_cell(r: dict | None, notes: Notes, impl: str) -> str:
    notes.add(impl, r)
    if not r:
        return "—"
    return fmt_time(r["min_s"]) if ok(r) else str(r.get("status"))


def _limits(section: dict) -> list[str]:
    gemm = section.get("gemm", {})
    rows = [
        [
            f"GEMM {section.get('gemm_n')}² float32, {name}",
            f"{_num(r['gflops'])} GFLOP/s" if ok(r) else f"{r.get('status')}: {r.get('reason')}",
        ]
        for name, r in gemm.items()
    ]
    if section.get("synapse_evals_per_s"):
        rows.append(
            [
                f"LTC synapse loop, {section.get('simd_lanes')} lanes, {section.get('threads')} threads",
                f"{_num(section['synapse_evals_per_s'] * 1e-9)} Gsyn/s",
            ]
        )
    return ["### The machine's limits", "", *table(["probe", "best rate"], rows)]


def markdown(results: dict) -> str:
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
    sections = results["sections"]
    peers = _peers(results)
    if peers:
        lines += ["", *peers]
    if "limits" in sections:
        lines += ["", *_limits(sections["limits"])]
    if "ltc" in sections:
        lines += ["", *_comparison("LTC", sections["ltc"])]
    if "cfc" in sections:
        lines += ["", *_comparison("CfC", sections["cfc"])]
    if "scaling" in sections:
        lines += ["", *_scaling(sections["scaling"])]
    if "memory" in sections:
        lines += ["", *_memory(sections["memory"])]
    if "streaming" in sections:
        lines += ["", *_streaming(sections["streaming"])]
    if "gpu" in sections:
        lines += ["", *sections["gpu"]["markdown"]]
    if "accuracy" in sections:
        from benchmarks import accuracy  # its tables and panels live with it

        lines += ["", *accuracy.markdown(sections["accuracy"])]
    if "training" in sections:
        from benchmarks import training

        lines += ["", *training.markdown(sections["training"])]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Chart
# ---------------------------------------------------------------------------------------------
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
}


def _no_data(ax, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _log_y(ax) -> None:
    """Plain numbers on a log y axis (1, 2, 5, 10, ... rather than 10^0); call after plotting."""
    from matplotlib.ticker import FuncFormatter

    lo, hi = ax.get_ylim()
    minor = "123456789" if hi / max(lo, 1e-30) < 10 else "25"  # label every tick within one decade
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in minor else ""))
    ax.yaxis.set_tick_params(which="both", labelsize=7)


def _bars(ax, title: str, groups: list[str], series: dict[str, list[float | None]], ylabel: str, log: bool) -> None:
    """Grouped bars; ``series`` maps an implementation to one value (or None) per group. Each
    group shows only the implementations that have a value there, centred on the group."""
    if not any(v is not None for values in series.values() for v in values):
        return _no_data(ax, title)
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
        _log_y(ax)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    ax.grid(axis="y", alpha=0.3)


def _short(model: str) -> str:
    """A label that fits under a bar: one line per part."""
    return model.replace(" · ", "\n").replace("mlx.nn.", "")


def _comparison_panel(ax, title: str, section: dict, kind: str) -> None:
    rows = [r for r in section["results"] if r.get("pass") == kind]
    idx = _index(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    impls = [
        i
        for i in ("fused", "reference", "official", "torch.compile", "keras-jax", "mlx.nn")
        if any(r["impl"] == i for r in rows)
    ]
    series = {i: [_ms(median(idx.get((m, kind, i)))) for m in models] for i in impls}
    _bars(
        ax,
        f"{title} {'forward' if kind == 'forward' else 'forward+backward'}",
        [_short(m) for m in models],
        series,
        "ms (median, log)",
        log=True,
    )


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1e3


def _scan_panel(ax, section: dict, sweep: str) -> None:
    pts = [p for p in section.get("scan", []) if p["sweep"] == sweep]
    model = pts[0]["model"].split(" · ")[-1] if pts else ""
    title = {
        "time": f"forward vs T ({model})",
        "batch": f"forward vs batch ({model})",
        "units": "forward vs units (FullyConnected)",
        "sparse units": "forward vs units (AutoNCP, sparse)",
        "sparsity": "forward vs sparsity (AutoNCP)",
    }[sweep]
    drawn = False
    for impl, style in (("fused", "o-"), ("reference", "s--")):
        xy = [(p["value"], median(p.get(impl))) for p in pts if median(p.get(impl)) is not None]
        if xy:
            ax.plot([x for x, _ in xy], [y * 1e3 for _, y in xy], style, label=IMPL_NAMES[impl], color=COLORS[impl])
            drawn = True
    if not drawn:
        return _no_data(ax, title)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(
        {
            "time": "T (steps)",
            "batch": "batch",
            "units": "units",
            "sparse units": "units",
            "sparsity": "sparsity_level",
        }[sweep],
        fontsize=8,
    )
    ax.set_ylabel("ms (median, log)", fontsize=8)
    ax.set_yscale("log")
    _log_y(ax)
    values = [p["value"] for p in pts]
    if sweep in ("batch", "units", "time", "sparse units"):
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:g}" for v in values], fontsize=7)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def chart(results: dict, path: Path) -> None:
    """A PNG with one panel per measured quantity (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = results["sections"]
    panels = []
    for name, title in (("ltc", "LTC"), ("cfc", "CfC")):
        if name in sections:
            for kind in ("forward", "fwd+bwd"):
                panels.append(lambda ax, n=name, t=title, k=kind: _comparison_panel(ax, t, sections[n], k))
    fused_rows = [r for n in ("ltc", "cfc") if n in sections for r in sections[n]["results"] if r["impl"] == "fused"]
    if fused_rows and results.get("limits"):
        models = list(dict.fromkeys(r["model"] for r in fused_rows))
        fidx = _index(fused_rows)

        def limit_panel(ax):
            series = {}
            for kind, name in (("forward", "fused forward"), ("fwd+bwd", "fused fwd+bwd")):
                fr = [fraction_of_limit(fidx.get((m, kind, "fused")), results["limits"])[1] for m in models]
                series[name] = [None if v is None else 100 * v for v in fr]
            _bars(
                ax,
                "fraction of the machine's limit (GEMM / synapse rate)",
                [_short(m) for m in models],
                series,
                "% of limit (min time)",
                log=False,
            )

        panels.append(limit_panel)
    if "scaling" in sections:
        sc = sections["scaling"]

        def svd(ax):
            rows = sc.get("sparse_vs_dense", [])
            _bars(
                ax,
                "sparse vs dense (fused forward)",
                [_short(r["model"]) for r in rows],
                {"fused": [_ms(median(r)) for r in rows]},
                "ms (median)",
                log=False,
            )

        panels.append(svd)
        for sweep in ("time", "batch", "units", "sparse units", "sparsity"):
            if any(p["sweep"] == sweep for p in sc.get("scan", [])):
                panels.append(lambda ax, sweep=sweep: _scan_panel(ax, sc, sweep))
    if "memory" in sections:
        rows = sections["memory"]["results"]
        idx = _index(rows)
        models = list(dict.fromkeys(r["model"] for r in rows))

        def mem(ax):
            series = {
                i: [
                    (idx[(m, "fwd+bwd", i)].get("peak_bytes") or 0) / 2**20 if ok(idx.get((m, "fwd+bwd", i))) else None
                    for m in models
                ]
                for i in ("fused", "reference")
            }
            _bars(ax, "peak memory, forward+backward", [_short(m) for m in models], series, "MiB (log)", log=True)

        panels.append(mem)
    if "streaming" in sections:
        rows = sections["streaming"]["results"]
        idx2 = {(r["model"], r["impl"]): r for r in rows}
        models2 = list(dict.fromkeys(r["model"] for r in rows))

        def stream(ax):
            series = {
                i: [(lambda v: None if v is None else v * 1e6)(median(idx2.get((m, i)))) for m in models2]
                for i in ("eager", "mx.compile", "infer", "official", "torch.compile", "keras-jax")
            }
            _bars(
                ax, "streaming: one step, batch 1", [_short(m) for m in models2], series, "µs (median, log)", log=True
            )

        panels.append(stream)
    if "accuracy" in sections:
        from benchmarks import accuracy

        panels += accuracy.panels(sections["accuracy"])
    if "training" in sections:
        from benchmarks import training

        panels.append(training.panel(sections["training"]))

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
