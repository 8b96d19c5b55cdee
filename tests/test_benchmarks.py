"""The benchmark job runs end to end and writes its results (tiny sizes; no timing assertions).

``benchmarks/run.py --quick --tiny`` shrinks every size so that a section takes a second or two.
The test checks the structure of the JSON, the markdown table and that a PNG was written; once
with the official package (when it is installed) and once with it declared absent, where the
table must say how to install it instead of failing.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "run.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_bench(
    tmp_path: Path, sections: str, env_extra: dict | None = None, extra: tuple = ()
) -> tuple[dict, str, Path]:
    env = dict(os.environ)
    env.update(env_extra or {})
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--quick",
            "--tiny",
            "--section",
            sections,
            "--out",
            str(out),
            "--name",
            "t",
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "t.json").read_text())
    return results, proc.stdout, out


def _check_timing(r: dict) -> None:
    assert r["status"] in ("ok", "n/a", "skipped", "error"), r
    if r["status"] == "ok":
        assert r["reps"] >= 1 and len(r["times_s"]) == r["reps"]
        assert 0 < r["min_s"] <= r["median_s"]
    else:
        assert r["reason"]


def _check_interleaved(rows: list[dict], rounds: int) -> None:
    """Ours and every peer that ran have one entry per interleaved round, pooled into the result;
    each peer row has its per-round ratios to ours and their median and range."""
    assert rounds >= 3
    for r in rows:
        if r["status"] != "ok" or r["impl"] in ("reference", "mlx.nn"):
            continue
        assert len(r["rounds"]) == rounds, r
        assert sum(x["reps"] for x in r["rounds"]) == r["reps"]
        assert r["min_s"] == min(x["min_s"] for x in r["rounds"])
        if r["impl"] in ("official", "keras-jax", "torch.compile"):
            same = [o for o in rows if o["model"] == r["model"] and o.get("pass") == r.get("pass")]
            ours = next(o for o in same if o["impl"] in ("fused", "infer"))
            if ours["status"] == "ok":
                assert len(r["ratio_rounds"]) == rounds
                for got, a, b in zip(r["ratio_rounds"], r["rounds"], ours["rounds"]):
                    assert got == pytest.approx(a["median_s"] / b["median_s"])
                assert r["ratio"]["min"] <= r["ratio"]["median"] <= r["ratio"]["max"] and r["ratio"]["rounds"] == rounds


def test_round_merging_and_spread():
    """The pooling of interleaved rounds and the ratio cell with its range (pure functions)."""
    sys.path.insert(0, str(REPO))
    from benchmarks.common.fmt import fmt_spread, round_ratios, spread
    from benchmarks.timing import Policy, merge_rounds, per_round, summarize

    a = merge_rounds([dict(summarize([1.0, 3.0]), status="ok"), dict(summarize([2.0, 2.0]), status="ok")])
    assert a["reps"] == 4 and a["median_s"] == 2.0 and a["min_s"] == 1.0
    assert a["rounds"] == [{"median_s": 2.0, "min_s": 1.0, "reps": 2}, {"median_s": 2.0, "min_s": 2.0, "reps": 2}]
    b = merge_rounds([dict(summarize([4.0]), status="ok"), dict(summarize([8.0]), status="ok")])
    assert round_ratios(b, a) == [2.0, 4.0]
    assert spread([2.0, 4.0, 3.0]) == {"median": 3.0, "min": 2.0, "max": 4.0, "rounds": 3}
    assert fmt_spread(b, a) == "3.00× (2.00–4.00×)"
    failed = merge_rounds([dict(summarize([1.0]), status="ok"), {"status": "error", "reason": "boom"}])
    assert failed == {"status": "error", "reason": "boom"} and fmt_spread(failed, a) == "—"
    assert per_round(Policy(warmup=2, reps=10, min_reps=3, budget_s=6.0), 5) == Policy(2, 2, 1, 1.2)


def test_benchmark_writes_json_table_and_chart(tmp_path):
    results, stdout, out = run_bench(tmp_path, "ltc,scaling,memory")

    for key in ("name", "created", "mode", "config", "machine", "official", "sections", "duration_s", "files"):
        assert key in results, key
    machine = results["machine"]
    for key in ("cpu", "cores", "mlx", "ncps", "kernels", "torch", "load_average_start"):
        assert key in machine, key
    assert "extension_loaded" in machine["kernels"]
    assert results["mode"] == {"quick": True, "tiny": True, "sections": ["ltc", "scaling", "memory"]}
    assert set(results["sections"]) == {"ltc", "scaling", "memory"}

    ltc = results["sections"]["ltc"]
    assert ltc["shape"]["ode_unfolds"] == 6
    impls = {(r["model"], r["pass"], r["impl"]) for r in ltc["results"]}
    models = {r["model"] for r in ltc["results"] if r["impl"] == "fused"}
    assert len(models) == 2 and any("AutoNCP" in m for m in models) and any("FullyConnected" in m for m in models)
    for m in models:
        for kind in ("forward", "fwd+bwd"):
            for impl in ("fused", "reference", "official"):
                assert (m, kind, impl) in impls
    units = results["config"]["units"]
    baselines = {r["model"] for r in ltc["results"] if r["impl"] == "mlx.nn"}
    assert baselines == {f"mlx.nn.LSTM(16, {units})", f"mlx.nn.GRU(16, {units})"}
    for r in ltc["results"]:
        _check_timing(r)
    _check_interleaved(ltc["results"], results["config"]["rounds"])
    # the reference path exists for every configuration
    assert all(r["status"] == "ok" for r in ltc["results"] if r["impl"] == "reference")

    scaling = results["sections"]["scaling"]
    assert len(scaling["sparse_vs_dense"]) == 2
    assert {p["sweep"] for p in scaling["scan"]} == {"time", "batch", "units", "sparse units", "sparsity"}
    assert set(scaling["growth"]) == {"time", "batch", "units", "sparse units"}
    assert all(p["memory"]["peak_bytes"] > 0 for p in scaling["scan"])
    for p in scaling["scan"]:
        _check_timing(p["fused"])
        _check_timing(p["reference"])
    assert any(p["reference"]["status"] == "skipped" for p in scaling["scan"])
    # cost per row-step: every family and pass at every (B at the run's T) and (T at a fixed B) point
    batches, times, batch = results["config"]["scan_row_steps"]
    rows = scaling["row_steps"]
    families = ["dense CfC", "wired CfC", "mixed CfC", "LTC"]
    assert list(dict.fromkeys(r["family"] for r in rows)) == families
    points = [("batch", B, results["config"]["time"]) for B in batches] + [("time", batch, T) for T in times]
    for family in families:
        for kind in ("forward", "fwd+bwd"):
            got = [(r["sweep"], r["batch"], r["time"]) for r in rows if r["family"] == family and r["pass"] == kind]
            assert got == points, (family, kind)
    assert {r["model"] for r in rows if r["family"] == "LTC"} == {"LTC · AutoNCP(12, 2)"}
    assert all(r["spec"]["kwargs"].get("mixed_memory") for r in rows if r["family"] == "mixed CfC")
    for r in rows:
        _check_timing(r["fused"])
        assert r["row_steps"] == r["batch"] * r["time"]
        # the figure is the minimum per row-step, in ns
        assert r["ns_per_row_step"] == pytest.approx(r["fused"]["min_s"] / r["row_steps"] * 1e9)
        assert r["ns_per_row_step_median"] == pytest.approx(r["fused"]["median_s"] / r["row_steps"] * 1e9)
    flat = scaling["row_step_flatness"]
    assert [(f["family"], f["pass"]) for f in flat] == [(f, k) for f in families for k in ("forward", "fwd+bwd")]
    for f in flat:
        assert 0 < f["best_ns"] <= f["worst_ns"] and f["worst_over_best"] == pytest.approx(f["worst_ns"] / f["best_ns"])

    memory = results["sections"]["memory"]["results"]
    for r in memory:
        if r["impl"] == "reference":
            assert r["status"] == "ok" and r["peak_bytes"] > 0

    assert "| model | pass | ncps fused | ncps reference | official ncps.torch |" in stdout
    assert "### Scaling" in stdout and "### Peak memory" in stdout
    assert "#### Cost per row-step" in stdout and "| family | pass | B 1 | B 2 |" in stdout
    assert (out / "t.md").read_text().strip() == stdout.strip()
    assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC


def test_cliff_criterion():
    """Issue 28's check: the dearer large shape per row-step over the best moderate one, per family
    and pass; nothing where a run lacks the points."""
    sys.path.insert(0, str(REPO))
    from benchmarks.scaling import CLIFF_LARGE, CLIFF_MODERATE, cliff

    def rows(ns):
        return [
            {"family": "dense CfC", "pass": "forward", "batch": B, "time": T, "ns_per_row_step": ns(B, T)}
            for B, T in CLIFF_LARGE + CLIFF_MODERATE
        ]

    # the large shapes twice as dear as 128x100 (the best moderate one)
    (r,) = cliff(rows(lambda B, T: 100.0 if (B, T) == (128, 100) else 150.0 if B * T < 25600 else 200.0))
    assert (r["large_ns"], r["best_ns"], r["ratio"]) == (200.0, 100.0, 2.0)
    assert cliff(rows(lambda B, T: None if (B, T) == (512, 100) else 1.0)) == []


def test_benchmark_without_official_package(tmp_path):
    results, stdout, out = run_bench(tmp_path, "streaming", {"NCPS_ORACLE_DIR": str(tmp_path / "no-oracle")})
    assert results["official"]["available"] is False
    rows = results["sections"]["streaming"]["results"]
    assert {r["impl"] for r in rows} == {"eager", "mx.compile", "infer", "official", "keras-jax"}
    for r in rows:
        _check_timing(r)
        if r["impl"] in ("official", "keras-jax"):  # the Keras peer runs the official package too
            assert r["status"] == "n/a" and r["ratio_rounds"] == [] and r["ratio"] is None
        else:  # ours still run in rounds
            assert r["status"] == "ok" and len(r["rounds"]) == results["config"]["rounds"]
    assert "not installed — run scripts/bootstrap.sh" in stdout
    assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC


def test_peers_and_machine_limits(tmp_path):
    """The Keras 3 + JAX peer (when installed), the machine's limits and the peer table."""
    results, stdout, out = run_bench(tmp_path, "limits,cfc", {})
    limits = results["sections"]["limits"]
    assert limits["gemm"]["numpy"]["status"] == "ok" and limits["gemm"]["numpy"]["gflops"] > 0
    assert results["limits"]["gemm_gflops"] == max(r["gflops"] for r in limits["gemm"].values() if r["status"] == "ok")
    if limits["native"]["status"] == "ok":  # a C++ compiler was found
        assert limits["synapse_evals_per_s"] > 0 and limits["gemm"]["ncps gemm.h"]["gflops"] > 0
    rows = results["sections"]["cfc"]["results"]
    impls = {r["impl"] for r in rows}
    assert {"fused", "reference", "official", "keras-jax"} <= impls
    assert "torch.compile" not in impls  # full runs only unless --peers asks for it
    keras = [r for r in rows if r["impl"] == "keras-jax"]
    if results["peers"]["keras-jax"]["available"]:
        assert all(r["status"] == "ok" and r["compile_s"] > 0 for r in keras), keras
    else:
        assert all(r["status"] == "n/a" and "bootstrap" in r["reason"] for r in keras)
    _check_interleaved(rows, results["config"]["rounds"])
    fused = [r for r in rows if r["impl"] == "fused"]
    assert all(r["work"]["unit"] == "GFLOP" and r["work"]["amount"] > 0 for r in fused)
    by_pass = {(r["model"], r["pass"]): r["work"]["amount"] for r in fused}
    for (model, kind), amount in by_pass.items():
        if kind == "fwd+bwd":
            assert amount == pytest.approx(3 * by_pass[(model, "forward")])
    assert "### Against the official package on every framework" in stdout
    assert "| Keras 3 + JAX ÷ fused |" in stdout and "of the machine's limit |" in stdout
    assert "alternating rounds" in stdout
    if results["peers"]["keras-jax"]["available"]:  # a ratio cell with its range over the rounds
        assert re.search(r"\| \d[\d.]*× \(\d[\d.]*–\d[\d.]*×\) \|", stdout), stdout
    assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC


def test_precision_section_tiny(tmp_path):
    """bf16 and fp16 against float32 on the fused path: every model, pass and dtype timed (the
    dtypes in interleaved rounds, each half row with its per-round ratios to float32), each
    model returns its dtype, one peak memory per model and dtype; the tables and the chart."""
    results, stdout, out = run_bench(tmp_path, "precision")
    assert results["mode"]["sections"] == ["precision"]
    sec = results["sections"]["precision"]
    dtypes = ["float32", "bfloat16", "float16"]
    assert sec["dtypes"] == dtypes
    models = list(dict.fromkeys(r["model"] for r in sec["results"]))
    units, motor = results["config"]["units"], results["config"]["motor"]
    assert models == [
        f"CfC(16, {units}) · backbone {results['config']['backbone_units']}×1",
        f"CfC · AutoNCP({units}, {motor})",
        f"LTC · AutoNCP({units}, {motor})",
    ]
    rounds = results["config"]["rounds"]
    got = {(r["model"], r["pass"], r["dtype"]): r for r in sec["results"]}
    assert len(got) == len(sec["results"]) == 3 * 2 * 3
    for m in models:
        for kind in ("forward", "fwd+bwd"):
            for d in dtypes:
                r = got[(m, kind, d)]
                _check_timing(r)
                assert r["status"] == "ok" and r["impl"] == "fused" and len(r["rounds"]) == rounds, r
                assert r["output_dtype"] == d  # a half model returns its dtype on the fused path
                if d == "float32":
                    assert r["ratio_rounds"] == [] and r["ratio"] is None
                else:
                    base = got[(m, kind, "float32")]
                    for x, a, b in zip(r["ratio_rounds"], r["rounds"], base["rounds"], strict=True):
                        assert x == pytest.approx(a["median_s"] / b["median_s"])
    memory = {(r["model"], r["pass"], r["dtype"]): r for r in sec["memory"]}
    assert set(memory) == {(m, k, d) for m in models for k in ("saved", "fwd+bwd") for d in dtypes}
    for r in memory.values():
        assert r["status"] == "ok" and r["peak_bytes"] >= r["baseline_bytes"] > 0, r
        assert r["transient_bytes"] == r["peak_bytes"] - r["baseline_bytes"]
    for m in models:  # what a forward keeps for its backward is part of what the whole step allocates
        for d in dtypes:
            assert memory[(m, "saved", d)]["transient_bytes"] <= memory[(m, "fwd+bwd", d)]["transient_bytes"]
    assert "### Half precision: bfloat16 and float16 against float32 (fused)" in stdout
    assert "read and write the half arrays themselves" in stdout
    assert "| model | pass | fp32 | bf16 | fp16 | bf16 ÷ fp32 | fp16 ÷ fp32 | bf16 forward target |" in stdout
    for m in models:
        assert sum(line.startswith(f"| {m} | ") for line in stdout.splitlines()) == 4  # 2 passes + 2 memory
    assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC


def test_thread_scaling_section(tmp_path):
    """Ours at 1 and 2 threads (each in its own pinned process) for every model, batch and pass,
    the speed-ups and the table (a one-CPU machine reports 1 thread only)."""
    results, stdout, out = run_bench(tmp_path, "threads")
    sec, cfg = results["sections"]["threads"], results["config"]
    assert sec["threads"] == [n for n in (1, 2) if n <= results["machine"]["cores_available"]]
    rows = sec["results"]
    fused = [r for r in rows if r["impl"] == "fused"]
    models = {r["model"] for r in fused}
    assert len(models) == 3 and {r["batch"] for r in fused} == set(cfg["thread_batches"])
    assert len(fused) == 3 * len(cfg["thread_batches"]) * 2 * len(sec["threads"])
    for r in rows:
        _check_timing(r)
    assert all(r["status"] == "ok" for r in fused)
    assert "### Thread scaling" in stdout and "| model | batch | pass | ncps fused, 1 thread |" in stdout
    if len(sec["threads"]) == 2:
        assert "ncps fused: 1 ÷ 2 threads |" in stdout
    assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC


def test_bad_peer_is_an_error():
    proc = subprocess.run(
        [sys.executable, str(RUN), "--peers", "tensorflow"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "--peers" in proc.stderr


def test_bad_section_is_an_error():
    proc = subprocess.run(
        [sys.executable, str(RUN), "--section", "nope"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "--section" in proc.stderr


def _aeon_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("aeon") is not None


def test_accuracy_section_tiny(tmp_path):
    """One bundled data set, one seed, two epochs: the structure of the section, and (with the
    oracle) both packages' runs, which start from the same weights and see the same batches, so
    their training losses agree. One torch thread: on a loaded 2-core machine two threads can
    make these 20 small steps take half a minute, and nothing here is timed."""
    results, stdout, out = run_bench(tmp_path, "accuracy", extra=("--torch-threads", "1"))
    assert results["mode"]["sections"] == ["accuracy"]
    sec = results["sections"]["accuracy"]
    for key in ("config", "recipe", "official", "datasets", "runs", "summary"):
        assert key in sec, key
    assert sec["recipe"]["bias_correction"] is True and sec["recipe"]["eps"] == 1e-8
    assert "### Accuracy" in stdout and (out / "t.png").read_bytes()[:8] == PNG_MAGIC
    if not _aeon_installed():
        assert sec["datasets"][0]["status"] == "skipped" and "pip install aeon" in stdout
        return
    (task,) = sec["datasets"]
    assert task["status"] == "ok" and task["name"] == "BasicMotions" and task["n_train"] == 40
    ours = [r for r in sec["runs"] if r["package"] == "ncps"]
    assert len(ours) == 1 and ours[0]["status"] == "ok" and len(ours[0]["epochs"]) == 2
    for e in ours[0]["epochs"]:
        assert 0.0 <= e["metric"] <= 1.0 and e["train_s"] > 0 and math.isfinite(e["loss"])
    (row,) = sec["summary"]
    assert row["metric"] == "accuracy" and row["ncps"]["status"] == "ok"
    assert "| BasicMotions | CfC(6, 32) | 2 / 8 / 0.001 | accuracy |" in stdout
    # the mixed-precision run (bf16, ncps only; the JapaneseVowels CfC's in --quick and full runs):
    # same seed, batches and initial weights as the float32 run, beside it with the verdict
    (half,) = [r for r in sec["runs"] if r["package"] == "ncps bf16"]
    assert half["status"] == "ok" and half["precision"] == "bf16" and len(half["epochs"]) == 2, half
    assert half["init"] == ours[0]["init"] and ours[0]["precision"] == "fp32"
    for e in half["epochs"]:
        assert 0.0 <= e["metric"] <= 1.0 and math.isfinite(e["loss"])
    # bf16 rounds the forward, so the first epoch's loss is close to float32's, not the same
    assert abs(half["epochs"][0]["loss"] - ours[0]["epochs"][0]["loss"]) <= 0.05 * (1 + ours[0]["epochs"][0]["loss"])
    bf16 = row["half"]["bf16"]
    assert bf16["status"] == "ok" and bf16["seeds"] == 1 and bf16["within_fp32_spread"] is None
    assert bf16["gap"] == pytest.approx(abs(bf16["mean"] - row["ncps"]["mean"]))
    assert "| BasicMotions | CfC(6, 32), bf16 mixed precision | 2 / 8 / 0.001 | accuracy |" in stdout
    assert "- BasicMotions CfC, bf16 mixed precision: " in stdout and "not judged: one seed" in stdout
    official = [r for r in sec["runs"] if r["package"] == "official"]
    assert len(official) == 1
    if results["official"]["available"]:
        assert official[0]["status"] == "ok", official[0]
        assert ours[0]["init"] == "official"
        for a, b in zip(ours[0]["epochs"], official[0]["epochs"]):
            assert abs(a["loss"] - b["loss"]) <= 1e-4 * (1 + abs(b["loss"])), (a, b)
        assert row["official"]["status"] == "ok" and "speedup" in row and row["same_loss_epochs"] == 2
    else:
        assert official[0]["status"] == "n/a"


def test_training_section_tiny(tmp_path):
    """Every front, the bare loops and the official loops (when installed) train a few batches:
    the rows, their statistics and the table; structure and sanity only, no timing comparisons."""
    results, stdout, out = run_bench(tmp_path, "training", extra=("--torch-threads", "1"))
    assert results["mode"]["sections"] == ["training"]
    sec = results["sections"]["training"]
    assert "### Training throughput" in stdout and (out / "t.png").read_bytes()[:8] == PNG_MAGIC
    if not _aeon_installed():
        assert sec["skipped"] and "pip install aeon" in sec["reason"]
        return
    from benchmarks import training

    cfg = sec["config"]
    assert sec["recipe"]["bias_correction"] is True and sec["recipe"]["clip"] == 1.0 and sec["recipe"]["batch"] == 32
    assert sec["dataset"]["name"] == "JapaneseVowels" and sec["dataset"]["samples"] == cfg["samples"] == 64
    rows = {r["key"]: r for r in sec["rows"]}
    assert list(rows) == list(training.ROWS)
    for key, r in rows.items():
        if r["impl"] != "ncps" and r["status"] != "ok":  # a peer that is not installed
            assert r["status"] == "n/a" and "bootstrap" in r["reason"], r
            continue
        assert r["status"] == "ok", r
        times = r["epoch_times_s"]
        rounds, epochs = (1, cfg["torch_epochs"]) if key == "torch" else (cfg["rounds"], cfg["epochs"])
        assert len(times) == (rounds if r["impl"] == "ncps" else 1) * (epochs - 1) + 1
        assert all(math.isfinite(t) and t > 0 for t in times)
        assert r["warmup_s"] == times[0] and r["min_s"] <= r["median_s"] and r["min_s"] == min(times[1:])
        assert r["samples_per_s"] == pytest.approx(r["samples"] / r["median_s"])
        if r["impl"] == "ncps":
            assert math.isfinite(r["overhead_pct"])
        if key in ("fit", "sklearn", "mini_keras", "mini_keras+acc"):
            assert r["compiled"] is True and r["call_s"] > 0
    assert rows[training.FLOOR]["overhead_pct"] == 0.0
    for key in ("torch", "keras-jax"):  # sec["official"] says whether each peer ran
        assert (rows[key]["status"] == "ok") == bool(sec["official"][key]["available"])
        if rows[key]["status"] == "ok":
            assert rows["fit"]["speedup_torch" if key == "torch" else "speedup_keras"] > 0
    steps = sec["steps"]
    assert steps["status"] == "ok", steps
    parts = {p["part"]: p for p in steps["parts"]}
    assert {"forward", "forward + backward", "bare step, mx.compile", "fit's step"} <= set(parts)
    assert any("loss_metrics" in p for p in parts) and any("metrics=" in p for p in parts)
    assert any(p.startswith("training.fit, epoch") for p in parts)
    for p in parts.values():
        assert 0 < p["min_s"] <= p["median_s"] and math.isfinite(p["of_compiled_step"])
    assert parts["bare step, mx.compile"]["of_compiled_step"] == 1.0
    assert "| front | per-batch metrics | time per epoch | samples/s |" in stdout
    assert "| part | per step (median / min) | share |" in stdout
    assert "| ncps.mini_keras Sequential.fit | loss, accuracy |" in stdout


def test_accuracy_xor_recipe_learns(tmp_path):
    """The accuracy section's bit-stream XOR (--quick: strings of 2-9 bits, 2048 of them, 8 epochs)
    leaves chance with our package: a panel with both curves at chance would say nothing."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    from benchmarks import accuracy
    from benchmarks.common.recipe import train_ours

    cfg = accuracy.AccuracyConfig.make(quick=True, tiny=False)
    data = accuracy.xor_task(cfg)
    (job,) = accuracy.task_jobs(cfg, "xor", data, tmp_path)[:1]
    run = train_ours(job, data, np.load(job["order"]))
    base = accuracy.baseline("classification", data)
    assert abs(base - 0.5) < 0.05 and run["epochs"][-1]["metric"] >= 0.8, run["epochs"]


def test_accuracy_table_shows_the_paper_and_no_chance_panels():
    sys.path.insert(0, str(REPO))
    from benchmarks import accuracy

    def stats(mean):
        return {
            "status": "ok",
            "seeds": 1,
            "finals": [mean],
            "mean": mean,
            "sd": 0.0,
            "train_s": 1.0,
            "curve": [(1.0, mean)],
        }

    def task(name):
        return {
            "name": name,
            "status": "ok",
            "source": "s",
            "kind": "classification",
            "metric": "accuracy",
            "n_train": 8,
            "n_test": 8,
            "length": 9,
            "features": 2,
            "outputs": 2,
            "baseline": 0.5,
        }

    sec = {
        "config": accuracy.AccuracyConfig.make(True, False).public(),
        "recipe": accuracy.AccuracyConfig().recipe(),
        "datasets": [task("xor"), task("BasicMotions")],
        "summary": [
            {
                "dataset": "xor",
                "layer": "CfC",
                "metric": "accuracy",
                "ncps": stats(0.97),
                "official": stats(0.96),
                "same_loss_epochs": 2,
            },
            {
                "dataset": "BasicMotions",
                "layer": "CfC",
                "metric": "accuracy",
                "ncps": stats(0.5),
                "official": stats(0.51),
                "same_loss_epochs": 2,
            },
        ],
    }
    lines = accuracy.markdown(sec, {})
    (xor_row,) = [line for line in lines if line.startswith("| xor |")]
    assert xor_row.endswith(f"| {accuracy.PAPER['xor']} |") and "99.42 ± 0.42 %" in xor_row
    assert any(line.startswith("| BasicMotions |") and line.endswith("| — |") for line in lines)
    assert any("BasicMotions CfC: neither package learns" in line for line in lines)
    assert len(accuracy.panels(sec, {})) == 1  # the chance-level pair gets no panel


def test_accuracy_without_aeon_skips_with_a_note(monkeypatch):
    sys.path.insert(0, str(REPO))
    from benchmarks import accuracy

    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon → ImportError
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    cfg = accuracy.AccuracyConfig(datasets=("BasicMotions",), seeds=(0,), epochs=1)
    sec = accuracy.section(cfg, lambda msg: None)
    assert sec["runs"] == [] and sec["summary"] == []
    (task,) = sec["datasets"]
    assert task["status"] == "skipped" and "pip install aeon" in task["reason"]
    assert any("BasicMotions: skipped" in line for line in accuracy.markdown(sec, {}))


def test_gpu_section_skips_with_the_reason_without_a_gpu(tmp_path):
    from benchmarks import gpu

    if gpu.why_no_gpu() is None:
        return  # a GPU machine runs the section for real (scripts/gpu_check.sh)
    results, stdout, _ = run_bench(tmp_path, "gpu")
    section = results["sections"]["gpu"]
    assert section["skipped"] and section["results"] == []
    assert "no GPU device" in section["reason"] and "Metal" in section["reason"]
    assert "### GPU" in stdout and "Skipped: no GPU device" in stdout


def test_gpu_crossover_and_table():
    from benchmarks import gpu

    def row(B, impl, ms, status="ok"):
        return {
            "model": "LTC · AutoNCP(64, 8)",
            "batch": B,
            "time": 100,
            "pass": "forward",
            "impl": impl,
            "status": status,
            "median_s": ms / 1e3,
        }

    rows = [
        row(1, "gpu", 5),
        row(1, "cpu", 1),
        row(64, "gpu", 4),
        row(64, "cpu", 6),
        row(256, "gpu", 5),
        row(256, "cpu", 20),
        row(64, "official-cuda", 40),
        row(1024, "gpu", 9),
    ]
    (c,) = gpu.crossover(rows)
    assert c["batches"] == [1, 64, 256] and c["crossover_batch"] == 64
    assert gpu.crossover([row(1, "gpu", 5), row(1, "cpu", 1)])[0]["crossover_batch"] is None
    lines = gpu.markdown({"results": rows, "crossover": [c], "launches": {"launches": 1}}, {})
    assert any("| 64 | 100 | forward | 4 ms | - | 6 ms | 40 ms | 10.00× |" in line for line in lines), lines
    assert any("GPU beats CPU" in line for line in lines) and any("| 64 |" in line for line in lines[-3:])


def test_deploy_section_times_every_exported_form(tmp_path):
    results, stdout, out = run_bench(tmp_path, "deploy")
    rows = results["sections"]["deploy"]["results"]
    models = {r["model"] for r in rows}
    assert len(models) == 2 and any(m.startswith("lane-keeping LTC NCP(12, 6, 1") for m in models)
    for m in models:
        got = {r["impl"]: r for r in rows if r["model"] == m}
        assert set(got) == {"C", "onnxruntime", ".mlxfn", "infer", "official"}
        for impl, r in got.items():
            _check_timing(r)
            if impl != "official":  # ours run here whenever gcc and onnxruntime are installed (the test extra)
                assert r["status"] == "ok", r
    assert "### Deployment: one control step of the exported forms, batch 1" in stdout
    assert "| policy | C (gcc -O2) | onnxruntime | .mlxfn | cell.infer | official torch |" in stdout
    assert (out / "t.png").read_bytes()[:8] == PNG_MAGIC
