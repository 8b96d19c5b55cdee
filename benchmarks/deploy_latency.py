"""One-step latency of the exported forms (ncps.export) beside ``cell.infer`` and the official step.

For two deployable policies — the NCP paper's lane-keeping network (LTC on NCP(12, 6, 1), 19
neurons, 32 inputs) and a wired CfC on AutoNCP(64, 8) with 32 inputs — one control step at batch 1
(elapsed time 1.0, the state fed back) is timed as:

- ``C (gcc -O2)``: the generated ``<name>_step`` in a compiled loop on the host (no Python per step);
- ``onnxruntime``: the one-step ONNX graph through ``InferenceSession.run`` (one thread);
- ``.mlxfn``: the one-step ``mx.import_function`` function, evaluated each step;
- ``cell.infer``: ncps's streaming step (fused CPU kernel, prepared);
- ``official ncps.torch``: the official cell's step under ``torch.no_grad()`` (subprocess, via
  :mod:`benchmarks.oracle`).

Standalone: ``python benchmarks/deploy_latency.py [--quick]`` prints the markdown table.
``compute(quick) -> dict`` and ``render(result) -> str`` are the interface for ``run.py``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the benchmarks package when run alone

import ncps  # noqa: E402
from ncps import LTC, CfC, wirings  # noqa: E402
from ncps.export import to_c, to_mlxfn, to_onnx  # noqa: E402

C_TIMER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#include "policy.h"
int main(int argc, char **argv)
{
    float x[POLICY_INPUTS], state[POLICY_STATE_SIZE], y[POLICY_OUTPUTS];
    long n = argc > 1 ? atol_(argv[1]) : 10000, i;
    struct timespec a, b;
    for (i = 0; i < POLICY_INPUTS; ++i) x[i] = 0.01f * (float)i;
    policy_reset(state);
    for (i = 0; i < n / 10 + 1; ++i) policy_step(x, 1.0f, state, y); /* warm-up */
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; ++i) policy_step(x, 1.0f, state, y);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.9g %g\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, y[0]);
    return 0;
}
""".replace("atol_(argv[1])", "strtol(argv[1], 0, 10)").replace(
    "#include <time.h>", "#include <stdlib.h>\n#include <time.h>"
)


def _policies() -> dict:
    mx.random.seed(0)
    return {
        "lane-keeping LTC NCP(12,6,1), 32 in": (
            LTC(32, wirings.NCP(12, 6, 1, 6, 4, 6, 6)),
            {"layer": "LTCCell", "units": {"wiring": "NCP", "args": [12, 6, 1, 6, 4, 6, 6]}, "kwargs": {}},
        ),
        "wired CfC AutoNCP(64,8), 32 in": (
            CfC(32, wirings.AutoNCP(64, 8)),
            {"layer": "WiredCfCCell", "units": {"wiring": "AutoNCP", "args": [64, 8]}, "kwargs": {}},
        ),
    }


def _median_us(call, reps: int) -> float:
    for _ in range(max(3, reps // 10)):
        call()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1e3


def _c_us(model, tmp: Path, steps: int) -> float | str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return "no C compiler"
    to_c(model, tmp, "policy")
    (tmp / "timer.c").write_text(C_TIMER)
    exe = tmp / "timer"
    cmd = [gcc, "-std=c99", "-O2", "-I", str(tmp), str(tmp / "timer.c"), str(tmp / "policy.c"), "-o", str(exe), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    out = subprocess.run([str(exe), str(steps)], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]) / 1e3


def _onnx_us(model, tmp: Path, reps: int) -> float | str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime not installed (pip install 'ncps[export]')"
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sess = ort.InferenceSession(
        to_onnx(model, tmp / "step.onnx", one_step=True), options, providers=["CPUExecutionProvider"]
    )
    feed = {
        "x": np.zeros((1, model.input_size), np.float32),
        "dt": np.ones((1, 1), np.float32),
        "h0": np.zeros((1, model.state_size), np.float32),
    }

    def call():
        feed["h0"] = sess.run(None, feed)[1]

    return _median_us(call, reps)


def _mlxfn_us(model, tmp: Path, reps: int) -> float:
    f = mx.import_function(to_mlxfn(model, str(tmp / "step.mlxfn"), one_step=True))
    x, dt, h = mx.zeros((1, model.input_size)), mx.ones((1, 1)), [mx.zeros((1, model.state_size))]

    def call():
        _, h[0] = f(x, h[0], dt)
        mx.eval(h[0])

    return _median_us(call, reps)


def _infer_us(model, reps: int) -> float:
    cell = model.rnn_cell
    x, h = mx.zeros((1, model.input_size)), [mx.zeros((1, model.state_size))]

    def call():
        _, h[0] = cell.infer(x, h[0], 1.0)

    return _median_us(call, reps)


def _official(jobs: list[dict]) -> dict:
    try:
        from benchmarks import oracle
    except ImportError as exc:  # pragma: no cover - run from elsewhere
        return {"available": False, "reason": str(exc), "results": {}}
    return oracle.run_jobs(jobs, threads=1)


def compute(quick: bool) -> dict:
    """Median one-step latency (µs, batch 1) of every form for each policy."""
    reps, c_steps = (300, 20_000) if quick else (3000, 200_000)
    rows, jobs = {}, []
    with tempfile.TemporaryDirectory() as d:
        for i, (name, (model, official)) in enumerate(_policies().items()):
            tmp = Path(d) / str(i)
            tmp.mkdir()
            rows[name] = {
                "C (gcc -O2)": _c_us(model, tmp, c_steps),
                "onnxruntime": _onnx_us(model, tmp, reps),
                ".mlxfn": _mlxfn_us(model, tmp, reps),
                "cell.infer": _infer_us(model, reps),
            }
            policy = {"warmup": 50, "reps": reps, "min_reps": 10, "budget_s": 5.0 if quick else 20.0}
            jobs.append(dict(official, id=name, input_size=32, batch=1, time=1, policy=policy, **{"pass": "step"}))
    off = _official(jobs)
    for name in rows:
        res = off.get("results", {}).get(name, {})
        rows[name]["official ncps.torch"] = (
            res["median_s"] * 1e6 if "median_s" in res else (res.get("reason") or off.get("reason") or "failed")
        )
    return {"quick": quick, "unit": "us", "rows": rows, "mlx": mx.__version__, "ncps": ncps.__version__}


def render(result: dict) -> str:
    """The result as a markdown table (µs per step, batch 1; text where a form was unavailable)."""
    rows = result["rows"]
    forms = list(next(iter(rows.values())))
    lines = ["| policy | " + " | ".join(forms) + " |", "|---|" + "---:|" * len(forms)]
    for name, row in rows.items():
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("One-step latency in µs (median, batch 1, Δt = 1, state fed back; lower is better).")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    print(render(compute(p.parse_args().quick)))


if __name__ == "__main__":
    main()
