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


def _doc_snippets():
    text = (Path(__file__).resolve().parent.parent / "docs" / "fronts.md").read_text()
    blocks, inside, current = [], False, []
    for line in text.splitlines():
        if line.strip() == "```python":
            inside, current = True, []
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def test_fronts_doc_snippets_run(tmp_path, monkeypatch):
    """Every Python snippet of docs/fronts.md runs as written (offline: the official data sets
    are absent, so their loaders must raise DatasetNotFoundError, which the snippet catches)."""
    from ncps.datasets import utils

    def offline(url, *args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(utils, "urlopen", offline)
    monkeypatch.chdir(tmp_path)
    blocks = _doc_snippets()
    assert len(blocks) >= 5
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/fronts.md[snippet {i}]", "exec"), {"__name__": f"snippet{i}"})
        except Exception as exc:  # pragma: no cover - the message names the snippet
            raise AssertionError(f"snippet {i} of docs/fronts.md failed: {exc!r}\n{code}") from exc
