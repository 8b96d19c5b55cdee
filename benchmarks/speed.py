"""The ``ltc`` and ``cfc`` sections: each model's forward and forward+backward under our fused
kernels and our reference path, against the official package on every framework (``--peers``)
and ``mlx.nn.LSTM`` / ``mlx.nn.GRU`` as familiar baselines; and the table that puts the
official package on every framework side by side with the fraction of the machine's limit each
fused row reaches (:func:`peer_table`)."""

from __future__ import annotations

from functools import partial

from benchmarks.common.chart import Panel, bars, scaled, short
from benchmarks.common.context import Context, Section, describe
from benchmarks.common.fmt import (
    IMPL_NAMES,
    PEER_COLUMNS,
    Notes,
    cell,
    fmt_fraction,
    fmt_rate,
    fmt_ratio,
    fmt_spread,
    index,
    median,
    num,
    ratio,
    round_ratios,
    spread,
    table,
)
from benchmarks.common.models import PASSES, build, cfc_specs, label, ltc_specs, sequence_call, sequence_input, spec
from benchmarks.limits import fraction_of_limit, work


# ---------------------------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------------------------
def baselines(ctx: Context) -> list[dict]:
    cfg, rows = ctx.cfg, []
    for layer in ("mlx.nn.LSTM", "mlx.nn.GRU"):
        s = spec(layer, cfg.inputs, cfg.units)
        for kind in PASSES:
            r = ctx.time_sequence(s, cfg.batch, cfg.time, kind, "mlx.nn", cfg.fast)
            rows.append({"model": label(s), "spec": s, "pass": kind, "impl": "mlx.nn", **r})
    return rows


def model_comparison(ctx: Context, specs: list[dict]) -> list[dict]:
    """fused / reference / every peer, forward and forward+backward, for each spec. The fused
    calls and the peers' jobs are measured in interleaved rounds (:meth:`Context.interleaved`:
    each ratio to a peer has its spread over the rounds); the reference, seconds per call and
    compared with ours only, once."""
    cfg, rows, jobs, ours = ctx.cfg, [], [], {}
    x = sequence_input(cfg, cfg.batch, cfg.time)
    for s in specs:
        model = build(s)
        for kind in PASSES:
            job_id = f"{label(s)}|{kind}"
            ours[job_id] = sequence_call(model, x, kind, "fused")
            jobs.append({"id": job_id, **s, "batch": cfg.batch, "time": cfg.time, "pass": kind})
    fused, peers = ctx.interleaved(ours, jobs, cfg.fast, cfg.official)
    for s in specs:
        for kind in PASSES:
            job_id = f"{label(s)}|{kind}"
            ctx.log(f"{label(s)} B={cfg.batch} T={cfg.time} {kind} fused: {describe(fused[job_id])}")
            rows.append({"model": label(s), "spec": s, "pass": kind, "impl": "fused", **fused[job_id]})
            ctx.remember(s, cfg.batch, cfg.time, kind, "fused", fused[job_id])
            r = ctx.time_sequence(s, cfg.batch, cfg.time, kind, "reference", cfg.slow)
            rows.append({"model": label(s), "spec": s, "pass": kind, "impl": "reference", **r})
    for impl, results in peers.items():
        for job_id, r in results.items():
            model, kind = job_id.split("|")
            s = next(s for s in specs if label(s) == model)
            # this peer's median ÷ ours in each round, and their median and range
            ratios = round_ratios(r, fused[job_id])
            row = {"model": model, "spec": s, "pass": kind, "impl": impl, **r}
            rows.append({**row, "ratio_rounds": ratios, "ratio": spread(ratios)})
    for row in rows:  # the work of each timed call, for the fraction of the machine's limit
        if row["impl"] != "mlx.nn":
            row["work"] = work(row["spec"], cfg.batch, cfg.time, row["pass"])
    return rows


def compute_ltc(ctx: Context) -> dict:
    return {"shape": ctx.cfg.shape(), "results": model_comparison(ctx, ltc_specs(ctx.cfg)) + baselines(ctx)}


def compute_cfc(ctx: Context) -> dict:
    return {"shape": ctx.cfg.shape(), "results": model_comparison(ctx, cfc_specs(ctx.cfg)) + baselines(ctx)}


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _baseline_table(rows: list[dict], models: list[str], idx: dict, notes: Notes) -> list[str]:
    """The mlx.nn baselines against the fastest fused model of each pass."""
    base = [r for r in rows if r["impl"] == "mlx.nn"]
    if not base:
        return []
    fastest = {}  # the fastest fused model's median per pass, or None
    for kind in PASSES:
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
    header = ["baseline", "forward", "fwd+bwd", "fastest fused ÷ baseline (fwd)", "fastest fused ÷ baseline (fwd+bwd)"]
    return ["", "Familiar baselines, same shapes (MLX eager):", "", *table(header, brows)]


def markdown(section: dict, results: dict, title: str) -> list[str]:
    """fused / reference / official ncps.torch per model and pass (medians), and the baselines."""
    shape, rows = section["shape"], section["results"]
    idx, notes = index(rows), Notes()
    models = list(dict.fromkeys(r["model"] for r in rows if r["impl"] != "mlx.nn"))
    body = []
    for model in models:
        for kind in PASSES:
            f, ref, off = (idx.get((model, kind, i)) for i in ("fused", "reference", "official"))
            body.append(
                [
                    model,
                    kind,
                    cell(f, notes, "fused"),
                    cell(ref, notes, "reference"),
                    cell(off, notes, "official"),
                    fmt_ratio(ratio(median(ref), median(f))),
                    fmt_spread(off, f),
                    fmt_ratio(ratio(median(off), median(ref))),
                ]
            )
    unfolds = f", {shape['ode_unfolds']} ODE unfolds" if title.startswith("LTC") else ""
    lines = [f"### {title}", "", f"Batch {shape['batch']}, T = {shape['time']}, {shape['inputs']} inputs{unfolds}.", ""]
    header = ["model", "pass", "ncps fused", "ncps reference", "official ncps.torch"]
    header += ["reference ÷ fused", "official ÷ fused", "official ÷ reference"]
    lines += table(header, body)
    lines += _baseline_table(rows, models, idx, notes)
    return notes.under(lines)


def _limits_caption(results: dict) -> list[str]:
    """The method, the machine's limits and the peers' versions, above the peer table."""
    limits, lim = results.get("limits") or {}, []
    rounds = results.get("config", {}).get("rounds", "several")
    if limits.get("gemm_gflops"):
        lim.append(f"GEMM {num(limits['gemm_gflops'])} GFLOP/s ({limits.get('gemm_source')})")
    if limits.get("synapse_evals_per_s"):
        lim.append(
            f"LTC synapses {num(limits['synapse_evals_per_s'] * 1e-9)} Gsyn/s ({limits.get('simd_lanes')} SIMD lanes)"
        )
    versions = [
        f"{IMPL_NAMES[impl]}: {info.get('version')}"
        for impl, info in (results.get("peers") or {}).items()
        if info.get("version")
    ]
    lines = [
        "### Against the official package on every framework",
        "",
        "Ours and each peer were measured in alternating rounds (ours, peer, ours, peer …, "
        f"{rounds} rounds; the peers run in their own processes, kept between rounds). Times are "
        "**median / min** over the timed calls of every round; a ratio is the median over the rounds of "
        "each round's ratio of medians, with its range over the rounds in brackets (> 1× means the peer "
        "is slower). The rate and the fraction of the machine's limit use the fastest fused call. "
        "The machine's limit: "
        + ("; ".join(lim) if lim else "not measured (section `limits`)")
        + ". Work is counted as matmul FLOPs (CfC) or synapse evaluations (LTC); forward+backward as 3× the "
        "forward (see `benchmarks/limits.py`).",
        "",
    ]
    if versions:
        lines[-1:-1] = [" · ".join(versions), ""]
    return lines


def peer_table(results: dict) -> list[str]:
    """One table: every model and pass of the ltc and cfc sections, our fused time against the
    official package on each framework, the ratios, and the fraction of the machine's limit."""
    sections, limits = results["sections"], results.get("limits") or {}
    rows = [r for name in ("ltc", "cfc") if name in sections for r in sections[name]["results"]]
    if not rows:
        return []
    idx, notes = index(rows), Notes()
    peers = [(impl, name) for impl, name in PEER_COLUMNS if any(r["impl"] == impl for r in rows)]
    body = []
    for model in dict.fromkeys(r["model"] for r in rows if r["impl"] == "fused"):
        for kind in PASSES:
            f = idx.get((model, kind, "fused"))
            cells = [model, kind, cell(f, notes, "fused")]
            cells += [cell(idx.get((model, kind, impl)), notes, impl) for impl, _ in peers]
            cells += [fmt_spread(idx.get((model, kind, impl)), f) for impl, _ in peers]
            rate, frac = fraction_of_limit(f, limits)
            unit = (f or {}).get("work", {}).get("unit", "")
            cells += [fmt_rate(rate, unit), fmt_fraction(frac)]
            body.append(cells)
    header = ["model", "pass", "ncps fused"] + [f"official, {name}" for _, name in peers]
    header += [f"{name} ÷ fused" for _, name in peers] + ["fused achieves", "of the machine's limit"]
    return notes.under(_limits_caption(results) + table(header, body))


# ---------------------------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------------------------
def _panel(ax, title: str, section: dict, kind: str) -> None:
    rows = [r for r in section["results"] if r.get("pass") == kind]
    idx = index(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    impls = [
        i
        for i in ("fused", "reference", "official", "torch.compile", "keras-jax", "mlx.nn")
        if any(r["impl"] == i for r in rows)
    ]
    series = {i: [scaled(median(idx.get((m, kind, i))), 1e3) for m in models] for i in impls}
    name = f"{title} {'forward' if kind == 'forward' else 'forward+backward'}"
    bars(ax, name, [short(m) for m in models], series, "ms (median, log)", log=True)


def panels(section: dict, results: dict, title: str) -> list[Panel]:
    """A bar chart per pass: every implementation's median per model."""
    return [partial(_panel, title=title, section=section, kind=kind) for kind in PASSES]


LTC = Section("ltc", compute_ltc, partial(markdown, title="LTC"), partial(panels, title="LTC"))
CFC = Section("cfc", compute_cfc, partial(markdown, title="CfC"), partial(panels, title="CfC"))
