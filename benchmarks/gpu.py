"""The ``gpu`` section of the benchmark (``python benchmarks/run.py --section gpu``).

Runs only where MLX has a GPU device (Metal or CUDA); elsewhere it returns at once with a note
saying why (``ncps.kernels.kernel_backends()``). On a GPU it times, per model, batch, sequence
length and pass (forward; forward+backward):

- ``gpu``: ``kernels.use("fused")`` with the GPU as default device (the GPU kernels of
  :mod:`ncps.backends.gpu`; the plan's backend is recorded, so a call that fell back to the CPU primitive
  shows as such);
- ``reference-gpu``: the pure-MLX reference path on the GPU;
- ``cpu``: the fused C++ primitives on the CPU;
- ``official-cuda``: the official ``ncps.torch`` package on CUDA (in its subprocess; "error" with
  the reason where torch has no CUDA).

It reports the crossover batch (the smallest batch at which ``gpu`` beats ``cpu``) per model,
length and pass, the speed-up over ``official-cuda`` at ``B <= 256``, and the number of kernel
launches of one LTC AutoNCP(64, 8) forward at B = 32, T = 100 — against the targets in
:data:`TARGETS`, which stay targets until a run on hardware measures them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import mlx.core as mx

from benchmarks.common.chart import Panel
from benchmarks.common.config import RunConfig
from benchmarks.common.context import Context, Section, describe
from benchmarks.common.models import PASSES, build, label, sequence_call, sequence_input, spec, units_count, wiring
from benchmarks.timing import guarded, measure
from ncps import kernels

IMPLS = ("gpu", "reference-gpu", "cpu")
TARGETS = {
    "speedup_over_official_cuda": 5.0,  # for B <= 256, N <= 256
    "gpu_beats_cpu_from_batch": 64,
    "ltc_autoncp64_forward_launches": 1,  # B = 32, T = 100
}
# (batches, lengths, units) of a full and a --quick run; --tiny never reaches a GPU.
GRID = {
    "full": ((1, 8, 32, 64, 128, 256, 1024), (100, 300, 1000), (64, 256, 512)),
    "quick": ((1, 32, 256, 1024), (100, 1000), (64, 256)),
}
REFERENCE_MAX_WORK = 256 * 100 * 256**2  # B·T·N² above which the reference path is skipped
NO_GPU = "no GPU device"


def why_no_gpu() -> str | None:
    """None when MLX has a Metal or CUDA device here, else why not."""
    backends = kernels.kernel_backends()
    if backends["metal"] is None or backends["cuda"] is None:
        return None
    return f"metal: {backends['metal']}; cuda: {backends['cuda']}"


@contextlib.contextmanager
def on_device(device: mx.DeviceType) -> Iterator[None]:
    """``device`` as the default device; on the GPU with the GPU kernels enabled (they are opt-in,
    ``NCPS_GPU_KERNELS=1``, until validated on hardware: this section is where they are timed)."""
    previous, opt_in = mx.default_device(), os.environ.get("NCPS_GPU_KERNELS")
    mx.set_default_device(mx.Device(device))
    if device == mx.gpu:
        os.environ["NCPS_GPU_KERNELS"] = "1"
    try:
        yield
    finally:
        mx.set_default_device(previous)
        if opt_in is None:
            os.environ.pop("NCPS_GPU_KERNELS", None)
        else:
            os.environ["NCPS_GPU_KERNELS"] = opt_in


def crossover(rows: list[dict]) -> list[dict]:
    """Per (model, pass, time): the smallest batch at which ``gpu`` is faster than ``cpu``
    (medians), or None when it never is."""
    by_key: dict[tuple, dict[int, dict[str, float]]] = {}
    for r in rows:
        if r.get("status") == "ok" and r["impl"] in ("gpu", "cpu"):
            by_key.setdefault((r["model"], r["pass"], r["time"]), {}).setdefault(r["batch"], {})[r["impl"]] = r[
                "median_s"
            ]
    out = []
    for (model, kind, T), per_batch in sorted(by_key.items()):
        both = sorted(B for B, v in per_batch.items() if len(v) == 2)
        first = next((B for B in both if per_batch[B]["gpu"] < per_batch[B]["cpu"]), None)
        out.append({"model": model, "pass": kind, "time": T, "batches": both, "crossover_batch": first})
    return out


def _launches_of_one_forward(s: dict) -> dict:
    """Kernel launches of one GPU forward of ``s`` at B = 32, T = 100."""
    import ncps.backends.gpu.launch as gl

    count = [0]
    original = gl.mlx_kernel

    def counting(*a, **k):
        kernel = original(*a, **k)

        def call(*ka, **kk):
            count[0] += 1
            return kernel(*ka, **kk)

        return call

    gl.mlx_kernel = counting
    try:
        with on_device(mx.gpu), kernels.use("fused"):
            model = build(s)
            mx.eval(model(mx.zeros((32, 100, s["input_size"]))))
    finally:
        gl.mlx_kernel = original
    return {"launches": count[0], "target": TARGETS["ltc_autoncp64_forward_launches"]}


def _skipped(reason: str) -> dict:
    out = {"skipped": True, "reason": f"{NO_GPU}: {reason}", "results": []}
    return {**out, "markdown": markdown(out, {})}


def _specs(cfg: RunConfig, units: tuple) -> list[dict]:
    """LTC AutoNCP(64, 8), LTC FullyConnected(N) and CfC(N) with a backbone of N, for every N."""
    kw_ltc = {"ode_unfolds": cfg.ode_unfolds}
    specs = [spec("LTC", cfg.inputs, wiring("AutoNCP", 64, 8), **kw_ltc)]
    specs += [spec("LTC", cfg.inputs, wiring("FullyConnected", n), **kw_ltc) for n in units if n != 64]
    specs += [spec("CfC", cfg.inputs, n, backbone_units=n, backbone_layers=1) for n in units]
    return specs


def _row(ctx: Context, s: dict, B: int, T: int, kind: str, impl: str) -> dict:
    row = {"model": label(s), "spec": s, "batch": B, "time": T, "pass": kind, "impl": impl}
    N = units_count(s["units"])
    if impl == "reference-gpu" and B * T * N * N > REFERENCE_MAX_WORK:
        row.update(status="skipped", reason=f"reference skipped where B·T·N² > {REFERENCE_MAX_WORK:.3g}")
    else:
        row.update(_time(s, B, T, kind, impl, ctx.cfg))
    ctx.log(f"gpu {row['model']} B={B} T={T} {kind} {impl}: {describe(row)}")
    return row


def compute(ctx: Context) -> dict:
    """The GPU section: every implementation at every point of the grid, the official package on
    CUDA, the crossover batches and the launches of one forward (or the reason it was skipped)."""
    reason = why_no_gpu()
    if reason is not None:
        ctx.log(f"gpu: skipped ({NO_GPU}: {reason})")
        return _skipped(reason)
    cfg = ctx.cfg
    batches, lengths, units = GRID["quick" if cfg.fast.reps < 10 else "full"]  # --quick lowers the reps
    specs = _specs(cfg, units)
    points = [(s, B, lengths[0]) for s in specs for B in batches]
    points += [(s, 64, T) for s in specs[:1] + specs[-1:] for T in lengths[1:]]
    rows, jobs = [], []
    for s, B, T in points:
        for kind in PASSES:
            rows += [_row(ctx, s, B, T, kind, impl) for impl in IMPLS]
            job = {"id": f"{label(s)}|{B}|{T}|{kind}", **s, "batch": B, "time": T, "pass": kind, "device": "cuda"}
            jobs.append({**job, "policy": cfg.official.to_dict()})
    for job_id, r in ctx.official(jobs).items():
        model, B, T, kind = job_id.split("|")
        s = next(s for s in specs if label(s) == model)
        rows.append(
            {"model": model, "spec": s, "batch": int(B), "time": int(T), "pass": kind, "impl": "official-cuda", **r}
        )
    out = {
        "skipped": False,
        "targets": TARGETS,
        "results": rows,
        "crossover": crossover(rows),
        "launches": guarded(lambda: _launches_of_one_forward(specs[0])),
    }
    out["markdown"] = markdown(out, {})
    return out


def _time(s: dict, B: int, T: int, kind: str, impl: str, cfg: RunConfig) -> dict:
    device = mx.cpu if impl == "cpu" else mx.gpu
    mode = "reference" if impl == "reference-gpu" else "fused"

    def run() -> dict:
        with on_device(device), kernels.use(mode):
            model = build(s)
            plan = kernels.plan(model.rnn_cell)
            wanted = {"gpu": ("metal", "cuda"), "cpu": ("cpu",)}.get(impl)
            if wanted and plan.backend not in wanted:  # e.g. a fallback: timing it would mislabel the column
                return {"status": "n/a", "reason": f"runs on {plan.backend}: {plan.reason}", "backend": plan.backend}
            call = sequence_call(model, sequence_input(cfg, B, T), kind, mode)
            return {**measure(call, cfg.fast), "backend": plan.backend}

    return guarded(run)


def markdown(section: dict, results: dict) -> list[str]:
    """The section's tables: medians per impl, crossover batches, speed-ups, launches (or why it
    was skipped)."""
    lines = ["### GPU", ""]
    if section.get("skipped"):
        return lines + [f"Skipped: {NO_GPU} ({section['reason'].removeprefix(NO_GPU + ': ')})."]
    index = {(r["model"], r["batch"], r["time"], r["pass"], r["impl"]): r for r in section["results"]}
    keys = sorted({k[:4] for k in index})
    impls = (*IMPLS, "official-cuda")
    lines += [
        "| model | B | T | pass | " + " | ".join(impls) + " | official / gpu |",
        "|---|---|---|---|" + "---|" * (len(impls) + 1),
    ]
    for key in keys:
        cells = []
        for impl in impls:
            r = index.get((*key, impl), {})
            cells.append(f"{r['median_s'] * 1e3:.3g} ms" if r.get("status") == "ok" else r.get("status", "-"))
        g, o = index.get((*key, "gpu"), {}), index.get((*key, "official-cuda"), {})
        ratio = f"{o['median_s'] / g['median_s']:.2f}×" if g.get("status") == o.get("status") == "ok" else "-"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cells) + f" | {ratio} |")
    lines += ["", "| model | T | pass | GPU beats CPU from batch |", "|---|---|---|---|"]
    for c in section["crossover"]:
        lines.append(f"| {c['model']} | {c['time']} | {c['pass']} | {c['crossover_batch'] or 'never (measured)'} |")
    launches = section.get("launches", {})
    lines += [
        "",
        f"Launches of one LTC AutoNCP(64, 8) forward (B 32, T 100): {launches.get('launches', launches)} "
        f"(target {TARGETS['ltc_autoncp64_forward_launches']}). Targets: "
        f"≥ {TARGETS['speedup_over_official_cuda']:g}× official ncps.torch on CUDA for B ≤ 256, N ≤ 256; "
        f"GPU faster than the fused CPU from batch {TARGETS['gpu_beats_cpu_from_batch']}.",
    ]
    return lines


def panels(section: dict, results: dict) -> list[Panel]:
    return []  # the tables say it all (a chart of the grid would need a panel per model and pass)


SECTION = Section("gpu", compute, markdown, panels)
