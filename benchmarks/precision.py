"""The ``precision`` section: bfloat16 and float16 models against float32 on the fused path.

For the dense CfC, the wired CfC and the LTC on AutoNCP at the run's batch and T, each model is
cast with ``model.set_dtype`` and fed an input of the same dtype (outputs and states come back in
it, README "Precision"); forward and forward+backward are timed under ``kernels.use("fused")``,
the three dtypes of a model and pass in interleaved rounds (:meth:`Context.interleaved`), so
that a ratio to float32 is the median of the rounds' ratios with its range. Then the peak MLX
memory of one forward+backward per dtype (:meth:`Context.peak_memory`), and the part of it the
call allocated (peak minus what was allocated before: parameters and input).

The fused kernels read and write bfloat16 / float16 themselves (README "Precision") and compute
in float32, so the time is about float32's; the LTC saves its states in the half type, the CfC
family its activations (its workspace). The memory counts the kernels' workspace (the pool is
emptied before each measurement): of a forward under a gradient (what it keeps for the backward,
kind "saved") and of a whole forward+backward. The targets, shown beside the numbers: the bf16
forward no slower than float32, and the memory a training step allocates halved.
"""

from __future__ import annotations

import mlx.core as mx

import ncps
from benchmarks.common.chart import Panel, bars, short
from benchmarks.common.context import Context, Section, describe
from benchmarks.common.fmt import (
    Notes,
    cell,
    fmt_bytes,
    fmt_ratio,
    fmt_spread,
    median,
    ok,
    ratio,
    round_ratios,
    spread,
    table,
)
from benchmarks.common.models import PASSES, build, cfc_specs, label, ltc_specs, sequence_call, sequence_input

DTYPES = ("float32", "bfloat16", "float16")  # mlx.core names; float32 is the baseline of every ratio
SHORT = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
TARGETS = {"forward": 1.0, "memory": 0.5}  # bf16 ÷ fp32: forward time, memory a training step allocates
# The memory peaks: the forward under a gradient (what it keeps for the backward), the whole step.
MEMORY_KINDS = ("saved", "fwd+bwd")


def specs(ctx: Context) -> list[dict]:
    """Dense CfC with its backbone, CfC on AutoNCP, LTC on AutoNCP (the run's sizes)."""
    return [*cfc_specs(ctx.cfg), ltc_specs(ctx.cfg)[0]]


def _key(s: dict, dtype: str, kind: str) -> str:
    return f"{label(s)}|{dtype}|{kind}"


def compute(ctx: Context) -> dict:
    cfg, models, calls = ctx.cfg, specs(ctx), {}
    out_dtypes = {}
    for s in models:
        for dtype in DTYPES:
            model, x = build(s, dtype), sequence_input(cfg, cfg.batch, cfg.time, dtype)
            with ncps.kernels.use("fused"):  # what the layer returns in this dtype (README "Precision")
                y = model(x)[0]
                mx.eval(y)
            out_dtypes[(label(s), dtype)] = str(y.dtype).removeprefix("mlx.core.")
            for kind in PASSES:
                calls[_key(s, dtype, kind)] = sequence_call(model, x, kind, "fused")
    timed, _ = ctx.interleaved(calls, [], cfg.precision, cfg.official)
    calls.clear()  # the models and inputs timed above, so that the memory peaks below hold only their own
    rows = []
    for s in models:
        for kind in PASSES:
            base = timed[_key(s, "float32", kind)]
            for dtype in DTYPES:
                r = timed[_key(s, dtype, kind)]
                ctx.log(f"precision {label(s)} {kind} {dtype}: {describe(r)}")
                ratios = round_ratios(r, base) if dtype != "float32" else []
                row = {"model": label(s), "spec": s, "pass": kind, "impl": "fused", "dtype": dtype, **r}
                rows.append({**row, "output_dtype": out_dtypes[(label(s), dtype)]})
                rows[-1].update(ratio_rounds=ratios, ratio=spread(ratios))
    # The first forward+backward measured in a process leaves ~12 MiB allocated for good (one-off
    # buffers): counted in the first row's allocation it would skew that row's ratios, so an
    # unrecorded measurement goes first.
    ctx.peak_memory(models[0], "fused")
    memory = [
        {"model": label(s), "spec": s, "pass": kind, "impl": "fused", "dtype": dtype}
        | ctx.peak_memory(s, "fused", kind=kind, dtype=dtype)
        for kind in MEMORY_KINDS
        for s in models
        for dtype in DTYPES
    ]
    return {"shape": cfg.shape(), "dtypes": list(DTYPES), "targets": dict(TARGETS), "results": rows, "memory": memory}


# ---------------------------------------------------------------------------------------------
# Markdown and panels
# ---------------------------------------------------------------------------------------------
def _index(rows: list[dict]) -> dict:
    return {(r["model"], r["pass"], r["dtype"]): r for r in rows}


def _verdict(value: float | None, target: float) -> str:
    return "n/a" if value is None else ("met" if value <= target else "NOT met")


def _time_rows(section: dict, notes: Notes) -> list[list[str]]:
    idx, body = _index(section["results"]), []
    for model in dict.fromkeys(r["model"] for r in section["results"]):
        for kind in PASSES:
            got = {d: idx.get((model, kind, d)) for d in DTYPES}
            row = [model, kind, *(cell(got[d], notes, f"fused {d}") for d in DTYPES)]
            row += [fmt_spread(got[d], got["float32"]) for d in DTYPES[1:]]
            bf16 = ratio(median(got["bfloat16"]), median(got["float32"]))
            row.append(f"≤ {TARGETS['forward']:g}: {_verdict(bf16, TARGETS['forward'])}" if kind == "forward" else "")
            body.append(row)
    return body


def _transient(r: dict | None) -> float | None:
    return r["transient_bytes"] if ok(r) else None


def _memory_rows(section: dict, notes: Notes, kind: str) -> list[list[str]]:
    idx, body = _index(section["memory"]), []
    for model in dict.fromkeys(r["model"] for r in section["memory"]):
        got = {d: idx.get((model, kind, d)) for d in DTYPES}
        cells = []
        for d in DTYPES:
            notes.add(f"memory {d}", got[d])
            r = got[d]
            cells.append(f"{fmt_bytes(r['peak_bytes'])} ({fmt_bytes(r['transient_bytes'])})" if ok(r) else "—")
        shares = [ratio(_transient(got[d]), _transient(got["float32"])) for d in DTYPES[1:]]
        target = f"≤ {TARGETS['memory']:g}: {_verdict(shares[0], TARGETS['memory'])}" if kind == "fwd+bwd" else ""
        body.append([model, *cells, *(fmt_ratio(v) for v in shares), target])
    return body


def markdown(section: dict, results: dict) -> list[str]:
    shape, notes = section.get("shape", {}), Notes()
    lines = [
        "### Half precision: bfloat16 and float16 against float32 (fused)",
        "",
        f"Batch {shape.get('batch')}, T = {shape.get('time')}; each model after `set_dtype` with an input of "
        'its dtype, under `kernels.use("fused")`; the three dtypes of a row in interleaved rounds, ratios '
        "the median of the rounds' ratios to float32 (range over the rounds). The fused kernels read and "
        "write the half arrays themselves and compute in float32, and save what their backward reads in "
        "the half type (the LTC its states, the CfC family its activations); a bfloat16 CfC's backward keeps "
        "its per-step gradients in bfloat16 too, a float16 one in float32.",
        "",
    ]
    header = ["model", "pass", *(SHORT[d] for d in DTYPES), "bf16 ÷ fp32", "fp16 ÷ fp32", "bf16 forward target"]
    lines += table(header, _time_rows(section, notes))
    header = ["model", *(SHORT[d] for d in DTYPES), "bf16 ÷ fp32", "fp16 ÷ fp32", "bf16 target"]
    for kind, what in (
        ("saved", "a forward under a gradient (`mx.vjp`, its outputs evaluated: what it keeps for the backward)"),
        ("fwd+bwd", "one forward+backward"),
    ):
        lines += [
            "",
            f"Peak memory of {what} per dtype, and in parentheses what the call allocated (peak minus what was "
            "allocated before: parameters, input and the process's one-off buffers); the ratios are of that "
            "allocated part.",
            "",
        ]
        lines += table(header, _memory_rows(section, notes, kind))
    return notes.under(lines)


def panels(section: dict, results: dict) -> list[Panel]:
    rows, mem = _index(section["results"]), _index(section["memory"])
    models = list(dict.fromkeys(r["model"] for r in section["results"]))
    groups = [f"{short(m)}\n{kind}" for m in models for kind in PASSES]

    def times(ax):
        series = {
            d: [ratio(median(rows.get((m, k, d))), median(rows.get((m, k, "float32")))) for m in models for k in PASSES]
            for d in DTYPES[1:]
        }
        bars(ax, "half ÷ float32 time, fused (median)", groups, series, "× float32", log=False)
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")

    def memory(ax):
        series = {d: [(_transient(mem.get((m, "fwd+bwd", d))) or 0) / 2**20 or None for m in models] for d in DTYPES}
        bars(ax, "memory a forward+backward allocates", [short(m) for m in models], series, "MiB", log=False)

    return [times, memory]


SECTION = Section("precision", compute, markdown, panels)
