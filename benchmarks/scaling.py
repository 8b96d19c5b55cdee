"""The ``scaling`` section: the fused forward of a sparse AutoNCP against a dense wiring of the
same size (target: sparse ≤ ½ dense), then the fused (and, where affordable, reference) forward
over T, batch, units and sparsity, with the growth exponents of time and peak memory; and the
cost per row-step (one batch row, one time step) of every model family (dense, wired and
mixed-memory CfC, LTC), forward and forward+backward, over B at the run's T and over T at a
fixed B, drawn against B·T so that a cliff (issue 28: the dense CfC's doubled once B·T passed
~14 000) shows as a step."""

from __future__ import annotations

import math

from benchmarks.common.chart import COLORS, Panel, bars, log2_x, log_y, no_data, scaled, short
from benchmarks.common.context import Context, Section
from benchmarks.common.fmt import IMPL_NAMES, Notes, cell, fmt_bytes, fmt_ratio, median, ratio, table
from benchmarks.common.models import PASSES, cfc_specs, label, ltc_specs, spec, units_count, wiring

SWEEPS = ("time", "batch", "units", "sparse units", "sparsity")
TITLES = {
    "time": "forward vs T ({model})",
    "batch": "forward vs batch ({model})",
    "units": "forward vs units (FullyConnected)",
    "sparse units": "forward vs units (AutoNCP, sparse)",
    "sparsity": "forward vs sparsity (AutoNCP)",
}
X_LABELS = {
    "time": "T (steps)",
    "batch": "batch",
    "units": "units",
    "sparse units": "units",
    "sparsity": "sparsity_level",
}


# ---------------------------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------------------------
def points(ctx: Context) -> list[tuple]:
    """``(sweep, value, spec, batch, T)`` of every point of the scan."""
    cfg = ctx.cfg
    kw = {"ode_unfolds": cfg.ode_unfolds}
    headline = spec("LTC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor), **kw)
    out = [("time", T, headline, cfg.batch, T) for T in cfg.scan_time]
    out += [("batch", B, headline, B, cfg.time) for B in cfg.scan_batch]
    for N in cfg.scan_units:
        out.append(("units", N, spec("LTC", cfg.inputs, wiring("FullyConnected", N), **kw), cfg.batch, cfg.time))
    for N in cfg.scan_sparse_units:
        s = spec("LTC", cfg.inputs, wiring("AutoNCP", N, cfg.sparse_motor, sparsity_level=cfg.sparse_level), **kw)
        out.append(("sparse units", N, s, cfg.batch, cfg.time))
    for p in cfg.scan_sparsity:
        s = spec("LTC", cfg.inputs, wiring("AutoNCP", cfg.sparsity_units, cfg.sparsity_motor, sparsity_level=p), **kw)
        out.append(("sparsity", p, s, cfg.batch, cfg.time))
    return out


def scan_point(ctx: Context, sweep: str, value: float, s: dict, B: int, T: int) -> dict:
    """The fused forward's time and peak memory at one point; the reference's where affordable."""
    cfg = ctx.cfg
    row = {"sweep": sweep, "value": value, "model": label(s), "spec": s, "batch": B, "time": T, "pass": "forward"}
    row["fused"] = ctx.time_sequence(s, B, T, "forward", "fused", cfg.scan_fast)
    row["memory"] = ctx.peak_memory(s, "fused", B, T, "forward")
    N = units_count(s["units"])
    if B * T * N * N <= cfg.reference_work_limit:
        row["reference"] = ctx.time_sequence(s, B, T, "forward", "reference", cfg.scan_slow)
    else:
        row["reference"] = {
            "status": "skipped",
            "reason": f"reference skipped where B·T·N² > {cfg.reference_work_limit:.3g} (seconds per call)",
        }
    return row


def families(cfg) -> list[tuple[str, dict]]:
    """``(family, spec)`` of the row-step sweep: the run's dense and wired CfC, the dense one with
    mixed memory, and the headline LTC."""
    dense, wired = cfc_specs(cfg)
    mixed = dict(dense, kwargs={**dense["kwargs"], "mixed_memory": True})
    return [("dense CfC", dense), ("wired CfC", wired), ("mixed CfC", mixed), ("LTC", ltc_specs(cfg)[0])]


def row_step_points(cfg) -> list[tuple[str, int, int]]:
    """``(sweep, B, T)``: B over ``scan_row_steps[0]`` at the run's T, then T over
    ``scan_row_steps[1]`` at B = ``scan_row_steps[2]``."""
    batches, times, batch = cfg.scan_row_steps
    return [("batch", B, cfg.time) for B in batches] + [("time", batch, T) for T in times]


def ns_per_row_step(r: dict | None, key: str, rows: int) -> float | None:
    """``r[key]`` (seconds per call) in nanoseconds per row-step, None without a timing."""
    if not r or r.get("status") != "ok" or r.get(key) is None:
        return None
    return r[key] / rows * 1e9


def row_steps(ctx: Context) -> list[dict]:
    """The fused path of every family and pass at every point (the minimum is the figure: the
    least disturbed call; the median rides along)."""
    cfg = ctx.cfg
    out = []
    for family, s in families(cfg):
        for kind in PASSES:
            for sweep, B, T in row_step_points(cfg):
                r = ctx.time_sequence(s, B, T, kind, "fused", cfg.scan_fast)
                out.append(
                    {
                        "family": family,
                        "model": label(s),
                        "spec": s,
                        "sweep": sweep,
                        "batch": B,
                        "time": T,
                        "row_steps": B * T,
                        "pass": kind,
                        "fused": r,
                        "ns_per_row_step": ns_per_row_step(r, "min_s", B * T),
                        "ns_per_row_step_median": ns_per_row_step(r, "median_s", B * T),
                    }
                )
    return out


def flatness(rows: list[dict]) -> list[dict]:
    """Per family and pass, over the points with at least 1/16 of the largest B·T (where the fixed
    cost of a call no longer shows): the best and worst ns per row-step and their ratio, the
    height of any cliff."""
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for kind in PASSES:
            pts = [r for r in rows if r["family"] == family and r["pass"] == kind]
            big = max((r["row_steps"] for r in pts), default=0)
            timed = [r for r in pts if r["row_steps"] * 16 >= big and r["ns_per_row_step"] is not None]
            if not timed:
                continue
            best = min(timed, key=lambda r: r["ns_per_row_step"])
            worst = max(timed, key=lambda r: r["ns_per_row_step"])
            out.append(
                {
                    "family": family,
                    "pass": kind,
                    "best_ns": best["ns_per_row_step"],
                    "best_at": [best["batch"], best["time"]],
                    "worst_ns": worst["ns_per_row_step"],
                    "worst_at": [worst["batch"], worst["time"]],
                    "worst_over_best": worst["ns_per_row_step"] / best["ns_per_row_step"],
                }
            )
    return out


# Issue 28's test of the cliff: the large training shapes against the best of the moderate ones.
CLIFF_LARGE = ((256, 100), (512, 100))
CLIFF_MODERATE = ((64, 100), (128, 100), (160, 100), (256, 50))
CLIFF_TARGET = 1.15


def cliff(rows: list[dict]) -> list[dict]:
    """Per family and pass: the dearer of the large shapes (CLIFF_LARGE) per row-step over the best
    of the moderate ones (CLIFF_MODERATE); empty where a run lacks those points (--quick)."""
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for kind in PASSES:
            at = {
                (r["batch"], r["time"]): r["ns_per_row_step"]
                for r in rows
                if r["family"] == family and r["pass"] == kind and r["ns_per_row_step"] is not None
            }
            if not all(k in at for k in CLIFF_LARGE + CLIFF_MODERATE):
                continue
            large = max(at[k] for k in CLIFF_LARGE)
            best = min(at[k] for k in CLIFF_MODERATE)
            out.append({"family": family, "pass": kind, "large_ns": large, "best_ns": best, "ratio": large / best})
    return out


def compute(ctx: Context) -> dict:
    cfg = ctx.cfg
    kw = {"ode_unfolds": cfg.ode_unfolds}
    sparse_wiring = wiring("AutoNCP", cfg.sparse_units, cfg.sparse_motor, sparsity_level=cfg.sparse_level)
    sparse = spec("LTC", cfg.inputs, sparse_wiring, **kw)
    dense = spec("LTC", cfg.inputs, wiring("FullyConnected", cfg.sparse_units), **kw)
    sparse_vs_dense = []
    for s in (sparse, dense):
        r = ctx.time_sequence(s, cfg.batch, cfg.time, "forward", "fused", cfg.fast)
        sparse_vs_dense.append({"model": label(s), "spec": s, "pass": "forward", "impl": "fused", **r})
    scan = [scan_point(ctx, *p) for p in points(ctx)]
    per_row_step = row_steps(ctx)
    return {
        "shape": cfg.shape(),
        "sparse_vs_dense": sparse_vs_dense,
        "target_sparse_over_dense": 0.5,
        "scan": scan,
        "growth": growth(scan),
        "row_steps": per_row_step,
        "row_step_flatness": flatness(per_row_step),
        "row_step_cliff": cliff(per_row_step),
    }


def growth(scan: list[dict]) -> dict:
    """Per sweep over a size (time, batch, units, sparse units): the exponent k of a least-squares
    fit ``y ∝ value^k`` in log-log, for the fused forward's time (min) and peak memory."""
    out = {}
    for sweep in ("time", "batch", "units", "sparse units"):
        pts = [p for p in scan if p["sweep"] == sweep]
        fits = {}
        for key, get in (
            ("time", lambda p: p["fused"].get("min_s") if p["fused"].get("status") == "ok" else None),
            ("memory", lambda p: (p.get("memory") or {}).get("peak_bytes")),
        ):
            xy = [(math.log(p["value"]), math.log(get(p))) for p in pts if get(p)]
            if len(xy) >= 2:
                mx_, my = sum(x for x, _ in xy) / len(xy), sum(y for _, y in xy) / len(xy)
                sxx = sum((x - mx_) ** 2 for x, _ in xy)
                fits[key] = sum((x - mx_) * (y - my) for x, y in xy) / sxx if sxx > 0 else None
        if fits:
            out[sweep] = fits
    return out


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _exp(k: float | None) -> str:
    return "—" if k is None else f"{k:.2f}"


def _sparse_vs_dense(svd: list[dict], target: float, notes: Notes) -> list[str]:
    lines = table(["model", "ncps fused forward"], [[r["model"], cell(r, notes, "fused")] for r in svd])
    r = ratio(median(svd[0]), median(svd[1])) if len(svd) == 2 else None
    verdict = "n/a" if r is None else ("met" if r <= target else "NOT met")
    return lines + ["", f"Sparse ÷ dense: **{fmt_ratio(r)}** (target ≤ {target}: {verdict}).", ""]


def _scan_row(p: dict, notes: Notes) -> list[str]:
    value = f"{p['value']:g}" if isinstance(p["value"], float) else str(p["value"])
    mem = (p.get("memory") or {}).get("peak_bytes")
    return [
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


def _ns(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def _shapes(shapes: tuple) -> str:
    return ", ".join(f"{B}×{T}" for B, T in shapes)


def _cliff_table(rows: list[dict]) -> list[str]:
    lines = [
        "",
        f"The cliff (issue 28): the dearer of {_shapes(CLIFF_LARGE)} per row-step over the best of "
        f"{_shapes(CLIFF_MODERATE)}:",
        "",
    ]
    return lines + table(
        ["family", "pass", "large ns", "best moderate ns", "large ÷ best", f"target ≤ {CLIFF_TARGET}"],
        [
            [
                r["family"],
                r["pass"],
                _ns(r["large_ns"]),
                _ns(r["best_ns"]),
                fmt_ratio(r["ratio"]),
                "met" if r["ratio"] <= CLIFF_TARGET else "NOT met",
            ]
            for r in rows
        ],
    )


def _row_step_tables(rows: list[dict], flat: list[dict], cliff_rows: list[dict]) -> list[str]:
    lines = [
        "",
        "#### Cost per row-step (fused, ns per batch row per time step, minimum of the repetitions)",
        "",
        "A flat row is the goal: a step up along B·T means a size where every row-step got dearer.",
    ]
    for sweep, what, key in (("batch", "B", "batch"), ("time", "T", "time")):
        pts = [r for r in rows if r["sweep"] == sweep]
        if not pts:
            continue
        values = list(dict.fromkeys(r[key] for r in pts))
        fixed = f"T {pts[0]['time']}" if sweep == "batch" else f"B {pts[0]['batch']}"
        header = ["family", "pass", *[f"{what} {v}" for v in values]]
        body = []
        for family in dict.fromkeys(r["family"] for r in pts):
            for kind in PASSES:
                by = {r[key]: r for r in pts if r["family"] == family and r["pass"] == kind}
                body.append([family, kind, *[_ns(by[v]["ns_per_row_step"]) if v in by else "—" for v in values]])
        lines += ["", f"Over {what} at {fixed}:", ""] + table(header, body)
    if flat:
        lines += ["", "Worst over best per row-step (points with at least 1/16 of the largest B·T):", ""]
        lines += table(
            ["family", "pass", "best ns", "at B×T", "worst ns", "at B×T", "worst ÷ best"],
            [
                [
                    f["family"],
                    f["pass"],
                    _ns(f["best_ns"]),
                    "×".join(map(str, f["best_at"])),
                    _ns(f["worst_ns"]),
                    "×".join(map(str, f["worst_at"])),
                    fmt_ratio(f["worst_over_best"]),
                ]
                for f in flat
            ],
        )
    if cliff_rows:
        lines += _cliff_table(cliff_rows)
    return lines


def markdown(section: dict, results: dict) -> list[str]:
    notes = Notes()
    lines = ["### Scaling (fused forward)", ""]
    if section.get("sparse_vs_dense"):
        lines += _sparse_vs_dense(section["sparse_vs_dense"], section.get("target_sparse_over_dense", 0.5), notes)
    if section.get("scan"):
        header = ["sweep", "value", "model", "batch", "T", "ncps fused", "fused peak memory", "ncps reference"]
        lines += table([*header, "reference ÷ fused"], [_scan_row(p, notes) for p in section["scan"]])
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
    if section.get("row_steps"):
        lines += _row_step_tables(
            section["row_steps"], section.get("row_step_flatness") or [], section.get("row_step_cliff") or []
        )
    return notes.under(lines)


# ---------------------------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------------------------
def _scan_panel(ax, section: dict, sweep: str) -> None:
    pts = [p for p in section.get("scan", []) if p["sweep"] == sweep]
    title = TITLES[sweep].format(model=pts[0]["model"].split(" · ")[-1] if pts else "")
    drawn = False
    for impl, style in (("fused", "o-"), ("reference", "s--")):
        xy = [(p["value"], median(p.get(impl))) for p in pts if median(p.get(impl)) is not None]
        if xy:
            ax.plot([x for x, _ in xy], [y * 1e3 for _, y in xy], style, label=IMPL_NAMES[impl], color=COLORS[impl])
            drawn = True
    if not drawn:
        return no_data(ax, title)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(X_LABELS[sweep], fontsize=8)
    ax.set_ylabel("ms (median, log)", fontsize=8)
    ax.set_yscale("log")
    log_y(ax)
    values = [p["value"] for p in pts]
    if sweep in ("batch", "units", "time", "sparse units"):
        log2_x(ax, values)
    else:
        ax.set_xticks(values)
        ax.set_xticklabels([f"{v:g}" for v in values], fontsize=7)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


FAMILY_COLORS = {"dense CfC": "#1f77b4", "wired CfC": "#2ca02c", "mixed CfC": "#9467bd", "LTC": "#ff7f0e"}


def _row_step_panel(ax, section: dict, sweep: str) -> None:
    """ns per row-step against B·T, both logarithmic: a cliff (the cost per row-step doubling
    past some B·T) is a step of the same height wherever it is, and the per-call overhead of the
    smallest batches does not squash it. One colour per family, solid forward, dashed
    forward+backward."""
    pts = [r for r in section.get("row_steps", []) if r["sweep"] == sweep]
    fixed = f"T {pts[0]['time']}" if pts and sweep == "batch" else f"B {pts[0]['batch']}" if pts else ""
    title = f"ns per row-step over {'B' if sweep == 'batch' else 'T'} ({fixed})"
    drawn = False
    for family in dict.fromkeys(r["family"] for r in pts):
        for kind, style in zip(PASSES, ("o-", "s--")):
            xy = [
                (r["row_steps"], r["ns_per_row_step"])
                for r in pts
                if r["family"] == family and r["pass"] == kind and r["ns_per_row_step"] is not None
            ]
            if xy:
                ax.plot(*zip(*xy), style, color=FAMILY_COLORS.get(family), label=f"{family} {kind}", markersize=3)
                drawn = True
    if not drawn:
        return no_data(ax, title)
    ax.set_title(title, fontsize=10)
    log2_x(ax, sorted({r["row_steps"] for r in pts}), fontsize=6, rotation=45)
    ax.set_xlabel("B·T (row-steps per call)", fontsize=8)
    ax.set_ylabel("ns per row-step (minimum, log)", fontsize=8)
    ax.set_yscale("log")
    log_y(ax)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)


def panels(section: dict, results: dict) -> list[Panel]:
    """Sparse against dense, and one panel per sweep of the scan."""

    def svd(ax):
        rows = section.get("sparse_vs_dense", [])
        series = {"fused": [scaled(median(r), 1e3) for r in rows]}
        bars(ax, "sparse vs dense (fused forward)", [short(r["model"]) for r in rows], series, "ms (median)", log=False)

    out = [svd]
    for sweep in SWEEPS:
        if any(p["sweep"] == sweep for p in section.get("scan", [])):
            out.append(lambda ax, sweep=sweep: _scan_panel(ax, section, sweep))
    for sweep in ("batch", "time"):
        if any(r["sweep"] == sweep for r in section.get("row_steps", [])):
            out.append(lambda ax, sweep=sweep: _row_step_panel(ax, section, sweep))
    return out


SECTION = Section("scaling", compute, markdown, panels)
