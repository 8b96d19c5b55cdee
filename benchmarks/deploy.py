"""The ``deploy`` section: one control step of the exported forms (:mod:`ncps.export`) beside
``cell.infer`` and the official cell's step.

Two deployable policies — the NCP paper's lane-keeping network (LTC on NCP(12, 6, 1), 19 neurons,
32 inputs) and a wired CfC on AutoNCP(64, 8) with 32 inputs — take one step at batch 1 (Δt = 1,
the state fed back) as:

- ``C``: the generated ``policy_step`` in a loop compiled with ``gcc -O2`` (no Python per step;
  the loop's mean per step, over batches of steps);
- ``onnxruntime``: the one-step ONNX graph through ``InferenceSession.run`` (one thread);
- ``.mlxfn``: the one-step function from ``mx.import_function``, evaluated every step;
- ``cell.infer``: ncps's prepared streaming step (fused CPU kernel);
- the official cell's step under ``torch.no_grad()`` (in its own process, :mod:`benchmarks.oracle`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

import ncps
from benchmarks.common.chart import Panel, step_bars
from benchmarks.common.context import Context, Section, describe
from benchmarks.common.fmt import Notes, cell, fmt_ratio, median, ratio, table
from benchmarks.common.models import build, spec, wiring
from benchmarks.timing import Policy, guarded, measure, summarize
from ncps.export import to_c, to_mlxfn, to_onnx

FORMS = ("C", "onnxruntime", ".mlxfn", "infer")
NAMES = {"C": "C (gcc -O2)", "onnxruntime": "onnxruntime", ".mlxfn": ".mlxfn", "infer": "cell.infer"}

# Times the generated step in batches of steps; prints one mean per batch, in nanoseconds.
C_TIMER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "policy.h"
int main(int argc, char **argv) {
    float x[POLICY_INPUTS], state[POLICY_STATE_SIZE], y[POLICY_OUTPUTS];
    long batches = strtol(argv[1], 0, 10), per = strtol(argv[2], 0, 10), i, k;
    struct timespec a, b;
    for (i = 0; i < POLICY_INPUTS; ++i) x[i] = 0.01f * (float)i;
    policy_reset(state);
    for (i = 0; i < per; ++i) policy_step(x, 1.0f, state, y); /* warm-up */
    for (k = 0; k < batches; ++k) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (i = 0; i < per; ++i) policy_step(x, 1.0f, state, y);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.9g\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / per);
    }
    return y[0] != y[0]; /* keeps y alive */
}
"""


def policies(cfg) -> list[dict]:
    """The two policies as specs of their cells (the official side builds the same cells)."""
    ltc = spec("LTCCell", 32, wiring("NCP", 12, 6, 1, 6, 4, 6, 6), ode_unfolds=cfg.ode_unfolds)
    return [ltc, spec("WiredCfCCell", 32, wiring("AutoNCP", cfg.units, cfg.motor))]


def layer_of(s: dict) -> ncps.RNN:
    """The sequence layer around the spec's cell (what the exporters take)."""
    return ncps.RNN(build(s))


def time_c(layer: ncps.RNN, tmp: Path, policy: Policy) -> dict:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return {"status": "n/a", "reason": "no C compiler (gcc or cc) on PATH"}
    to_c(layer, tmp, "policy")
    (tmp / "timer.c").write_text(C_TIMER)
    exe = tmp / "timer"
    cmd = [gcc, "-std=c99", "-O2", "-I", str(tmp), str(tmp / "timer.c"), str(tmp / "policy.c"), "-o", str(exe), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    per = max(100, int(policy.budget_s * 1e5 / max(policy.reps, 1)))  # ~10 µs steps: budget / reps each
    out = subprocess.run([str(exe), str(policy.reps), str(per)], check=True, capture_output=True, text=True)
    return {"status": "ok", **summarize([float(v) * 1e-9 for v in out.stdout.split()])}


def step_calls(layer: ncps.RNN, tmp: Path) -> dict:
    """The per-step call of each in-process form (C is timed in its own process)."""
    n_in, n_state = layer.rnn_cell.input_size, layer.rnn_cell.state_size
    x, dt, h = mx.zeros((1, n_in)), mx.ones((1, 1)), [mx.zeros((1, n_state))]
    f = mx.import_function(to_mlxfn(layer, str(tmp / "step.mlxfn"), one_step=True))

    def mlxfn():
        _, h[0] = f(x, h[0], dt)
        mx.eval(h[0])

    def infer():
        _, h[0] = layer.rnn_cell.infer(x, h[0], 1.0)

    calls = {".mlxfn": mlxfn, "infer": infer}
    try:
        import onnxruntime as ort
    except ImportError:

        def missing():  # guarded() turns it into an "n/a" entry with this reason
            raise NotImplementedError("onnxruntime not installed (pip install 'ncps[export]')")

        return dict(calls, onnxruntime=missing)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sess = ort.InferenceSession(to_onnx(layer, tmp / "step.onnx", one_step=True), options)
    feed = {"x": np.zeros((1, n_in), np.float32), "dt": np.ones((1, 1), np.float32)}
    feed["h0"] = np.zeros((1, n_state), np.float32)

    def onnx():
        feed["h0"] = sess.run(None, feed)[1]

    calls["onnxruntime"] = onnx
    return calls


def compute(ctx: Context) -> dict:
    cfg, rows, jobs = ctx.cfg, [], []
    specs = policies(cfg)
    with tempfile.TemporaryDirectory() as d:
        for i, s in enumerate(specs):
            tmp = Path(d) / str(i)
            tmp.mkdir()
            name, layer = deploy_label(s), layer_of(s)
            results = {"C": guarded(lambda: time_c(layer, tmp, cfg.stream))}
            calls = guarded(lambda: {"status": "ok", "calls": step_calls(layer, tmp)})
            for form in FORMS[1:]:  # every form gets the exporters' failure, if they failed
                fn = calls["calls"][form] if calls["status"] == "ok" else None
                results[form] = guarded(lambda fn=fn: measure(fn, cfg.stream)) if fn else calls
            for form, r in results.items():
                ctx.log(f"deploy {name} {form}: {describe(r)}")
                rows.append({"model": name, "spec": s, "impl": form, **r})
            jobs.append({"id": name, **s, "batch": 1, "pass": "step", "policy": cfg.stream.to_dict()})
    for job_id, r in ctx.official(jobs).items():
        rows.append(
            {"model": job_id, "spec": next(s for s in specs if deploy_label(s) == job_id), "impl": "official", **r}
        )
    return {"batch": 1, "results": rows}


def deploy_label(s: dict) -> str:
    what = "lane-keeping LTC" if s["layer"] == "LTCCell" else "wired CfC"
    units = s["units"]
    return f"{what} {units['wiring']}({', '.join(map(str, units['args']))}), {s['input_size']} in"


def markdown(section: dict, results: dict) -> list[str]:
    rows, notes = section["results"], Notes()
    idx = {(r["model"], r["impl"]): r for r in rows}
    body = []
    for model in dict.fromkeys(r["model"] for r in rows):
        official = median(idx.get((model, "official")))
        body.append(
            [model, *(cell(idx.get((model, f)), notes, f) for f in (*FORMS, "official"))]
            + [fmt_ratio(ratio(official, median(idx.get((model, f))))) for f in ("C", "infer")]
        )
    lines = [
        "### Deployment: one control step of the exported forms, batch 1",
        "",
        "`ncps.export` forms (docs/deploy.md) beside `cell.infer` and the official cell's step under "
        "`torch.no_grad()`; Δt = 1, the state fed back. C: the generated step in a loop compiled with "
        "`gcc -O2` (scalar code, no Python per step).",
        "",
    ]
    header = ["policy", *(NAMES[f] for f in FORMS), "official torch", "official ÷ C", "official ÷ infer"]
    lines += table(header, body)
    return notes.under(lines)


def panels(section: dict, results: dict) -> list[Panel]:
    return [step_bars(section["results"], "deployed step, batch 1", (*FORMS, "official"))]


SECTION = Section("deploy", compute, markdown, panels)
