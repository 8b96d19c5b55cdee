"""The ``memory`` section: peak MLX memory of one forward+backward, fused against reference
(target for LTC: fused ≤ ¼); the peak includes what was already allocated (parameters, input)."""

from __future__ import annotations

from benchmarks.common.chart import Panel, bars, short
from benchmarks.common.context import Context, Section
from benchmarks.common.fmt import Notes, fmt_bytes, fmt_ratio, index, ok, ratio, table
from benchmarks.common.models import IMPLS, cfc_specs, label, ltc_specs

TARGETS = {"LTC": 0.25}  # fused ÷ reference, by layer


def compute(ctx: Context) -> dict:
    rows = []
    for s in ltc_specs(ctx.cfg) + cfc_specs(ctx.cfg):
        for impl in IMPLS:
            rows.append({"model": label(s), "spec": s, "pass": "fwd+bwd", "impl": impl, **ctx.peak_memory(s, impl)})
    return {"shape": ctx.cfg.shape(), "target_fused_over_reference": dict(TARGETS), "results": rows}


def _row(model: str, f: dict | None, ref: dict | None, targets: dict) -> list[str]:
    fp = f.get("peak_bytes") if ok(f) else None
    rp = ref.get("peak_bytes") if ok(ref) else None
    r = ratio(fp, rp)
    target = next((t for prefix, t in targets.items() if model.startswith(prefix + " ")), None)
    verdict = "" if target is None else ("n/a" if r is None else ("met" if r <= target else "NOT met"))
    return [
        model,
        fmt_bytes(fp) if fp is not None else (f or {}).get("status", "—"),
        fmt_bytes(rp) if rp is not None else (ref or {}).get("status", "—"),
        fmt_ratio(r),
        "" if target is None else f"≤ {target}: {verdict}",
    ]


def markdown(section: dict, results: dict) -> list[str]:
    rows, notes = section["results"], Notes()
    idx = index(rows)
    targets = section.get("target_fused_over_reference", {})
    body = []
    for model in dict.fromkeys(r["model"] for r in rows):
        f, ref = idx.get((model, "fwd+bwd", "fused")), idx.get((model, "fwd+bwd", "reference"))
        notes.add("fused", f)
        notes.add("reference", ref)
        body.append(_row(model, f, ref, targets))
    shape = section.get("shape", {})
    lines = [
        "### Peak memory of forward+backward",
        "",
        f"Batch {shape.get('batch')}, T = {shape.get('time')}; `mx.get_peak_memory()` after "
        "`mx.reset_peak_memory()` (includes parameters and input).",
        "",
    ]
    lines += table(["model", "ncps fused", "ncps reference", "fused ÷ reference", "target"], body)
    return notes.under(lines)


def panels(section: dict, results: dict) -> list[Panel]:
    rows = section["results"]
    idx = index(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))

    def mem(ax):
        series = {
            i: [
                (idx[(m, "fwd+bwd", i)].get("peak_bytes") or 0) / 2**20 if ok(idx.get((m, "fwd+bwd", i))) else None
                for m in models
            ]
            for i in IMPLS
        }
        bars(ax, "peak memory, forward+backward", [short(m) for m in models], series, "MiB (log)", log=True)

    return [mem]


SECTION = Section("memory", compute, markdown, panels)
