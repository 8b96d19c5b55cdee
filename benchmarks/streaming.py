"""The ``streaming`` section: the latency of one cell step at batch 1 from a given state, feeding
the new state back (``out, h = cell(x, h); mx.eval(out, h)``, also under ``mx.compile``, and
``cell.infer``), against the official cell's step on every framework."""

from __future__ import annotations

from benchmarks.common.chart import Panel, step_bars
from benchmarks.common.context import Context, Section, describe
from benchmarks.common.fmt import IMPL_NAMES, PEER_COLUMNS, Notes, cell, fmt_spread, round_ratios, spread, table
from benchmarks.common.models import build, label, spec, step_call, wiring

HOW = ("eager", "mx.compile", "infer")  # our three ways of stepping


def compute(ctx: Context) -> dict:
    cfg = ctx.cfg
    ncp = wiring("AutoNCP", cfg.units, cfg.motor)
    specs = [
        spec("CfCCell", cfg.inputs, cfg.units, backbone_units=cfg.backbone_units, backbone_layers=cfg.backbone_layers),
        spec("WiredCfCCell", cfg.inputs, ncp),
        spec("LTCCell", cfg.inputs, ncp, ode_unfolds=cfg.ode_unfolds),
    ]
    # Our three ways and the peers' steps in interleaved rounds (Context.interleaved); the ratios
    # to the peers are to cell.infer, per round.
    rows, jobs, ours = [], [], {}
    for s in specs:
        for impl in HOW:
            ours[f"{label(s)}|{impl}"] = step_call(build(s), 1, impl)
        jobs.append({"id": label(s), **s, "batch": 1, "pass": "step"})
    mine, peers = ctx.interleaved(ours, jobs, cfg.stream, cfg.stream)
    for s in specs:
        for impl in HOW:
            r = mine[f"{label(s)}|{impl}"]
            ctx.log(f"streaming {label(s)} {impl}: {describe(r)}")
            rows.append({"model": label(s), "spec": s, "batch": 1, "impl": impl, **r})
    for impl, results in peers.items():
        for job_id, r in results.items():
            s = next(s for s in specs if label(s) == job_id)
            ratios = round_ratios(r, mine[f"{job_id}|infer"])
            row = {"model": job_id, "spec": s, "batch": 1, "impl": impl, **r}
            rows.append({**row, "ratio_rounds": ratios, "ratio": spread(ratios)})
    return {"batch": 1, "results": rows}


def markdown(section: dict, results: dict) -> list[str]:
    rows, notes = section["results"], Notes()
    idx = {(r["model"], r["impl"]): r for r in rows}
    body = []
    peers = [(impl, name) for impl, name in PEER_COLUMNS if any(r["impl"] == impl for r in rows)]
    for model in dict.fromkeys(r["model"] for r in rows):
        body.append(
            [model, *(cell(idx.get((model, i)), notes, i) for i in HOW)]
            + [cell(idx.get((model, impl)), notes, impl) for impl, _ in peers]
            + [fmt_spread(idx.get((model, impl)), idx.get((model, "infer"))) for impl, _ in peers]
        )
    lines = [
        "### Streaming inference: one cell step, batch 1",
        "",
        "`out, h = cell(x, h); mx.eval(out, h)` (eager, or under `mx.compile`) and `out, h = cell.infer(x, h)` "
        "(computed immediately on the calling thread, no graph) vs the official cell under "
        "`torch.no_grad()`, measured in alternating rounds; a ratio is the median over the rounds of each "
        "round's ratio, with its range in brackets.",
        "",
    ]
    header = ["cell", "ncps eager", "ncps mx.compile", "ncps cell.infer"] + [IMPL_NAMES[impl] for impl, _ in peers]
    lines += table(header + [f"{name} ÷ infer" for _, name in peers], body)
    return notes.under(lines)


def panels(section: dict, results: dict) -> list[Panel]:
    impls = (*HOW, "official", "torch.compile", "keras-jax")
    return [step_bars(section["results"], "streaming: one step, batch 1", impls)]


SECTION = Section("streaming", compute, markdown, panels)
