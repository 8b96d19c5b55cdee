"""Every example runs in its shortened form (``--quick``) and writes its plots and metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("networkx")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PLOTS = {
    "sine_ltc": ["loss", "prediction", "wiring", "activity"],
    "irregular_cfc": ["data", "training", "confusion", "activity"],
    "xor_cfc": ["encoding", "accuracy", "activity"],
    "atari_cloning": ["training", "frames", "actions", "activity"],
    "sequence_classifier": ["data", "training", "confusion", "activity"],
    "variable_length": ["data", "training", "by_length"],
    "control_loop": ["trajectory", "latency"],
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_example_quick_run(name, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for plot in PLOTS[name]:
        png = tmp_path / f"{name}_{plot}.png"
        assert png.is_file() and png.stat().st_size > 5000, f"{png.name} missing or empty"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((tmp_path / f"{name}_metrics.json").read_text())
    assert metrics["example"] == name and metrics["total_seconds"] > 0
    if name == "control_loop":  # the latency distribution of the fixed-rate loop
        assert 0 < metrics["latency_p50_us"] <= metrics["latency_p99_us"] <= metrics["latency_max_us"]
        assert metrics["steps"] == 200 and metrics["deadline_misses"] >= 0
        assert 0 < metrics["unpaced_latency_p50_us"] <= metrics["unpaced_latency_p99_us"]


def test_atari_example_labels_synthetic_data(tmp_path):
    """Without official data the Atari example must say that it trains on synthetic data."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "atari_cloning.py"),
            "--quick",
            "--out",
            str(tmp_path),
            "--root-dir",
            str(tmp_path / "nothing-here"),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SYNTHETIC" in proc.stdout
    assert json.loads((tmp_path / "atari_cloning_metrics.json").read_text())["data"] == "synthetic"
    assert (tmp_path / "atari_synthetic" / "data_atari_seq" / "synthetic_breakout" / "val_0000.npz").is_file()


# The flags every example takes (examples/_common.py's parser).
COMMON_FLAGS = ("--out", "--quick", "--seed")
ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_every_example_takes_the_common_flags(name):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    missing = [flag for flag in COMMON_FLAGS if flag not in proc.stdout]
    assert not missing, f"{name}.py --help lacks {missing}"


def test_example_without_matplotlib_writes_metrics_and_says_what_to_install(tmp_path):
    """Without the plot extra an example still succeeds: its metrics are written before the
    plots, which are skipped with one line naming the extra."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(blocker), PYTHONUNBUFFERED="1")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "sine_ltc.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((out / "sine_ltc_metrics.json").read_text())["example"] == "sine_ltc"
    notes = [line for line in proc.stdout.splitlines() if "plots skipped" in line]
    assert len(notes) == 1 and "pip install 'ncps[plot]'" in notes[0], proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list(out.glob("*.png"))
