"""The staged first hardware run, checked here without a GPU: ``scripts/gpu_check.sh --dry-run``
validates the staged layout of ``scripts/gpu_stage.sh`` (checksums, sizes, the kernel-source hash,
the wheel reassembled from its two parts, a pip dry-run install for cp312) and every step's command
(prepared cases, sanitizer command lines, the gpu tests' collection, the timing plan); without a
staged layout it says so and validates the commands only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu.test_gpu_mlx_prelude import REPO, gpu_prelude

pytestmark = pytest.mark.gpu_emulated


def _sh(script: str, *args: str, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    res = subprocess.run(["bash", str(REPO / "scripts" / script), *args], capture_output=True, text=True, env=env)
    results = out / "results.json"
    return res, (json.loads(results.read_text()) if results.is_file() else {})


def _status(doc: dict) -> dict:
    return {s["step"]: (s["status"], s["reason"]) for s in doc["steps"]}


def test_dry_run_without_a_stage_validates_the_commands(tmp_path):
    res, doc = _sh("gpu_check.sh", "--dry-run", "--call", "2", "--stage", str(tmp_path / "none"), out=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    st = _status(doc)
    assert st["verify"][0] == "skipped" and "scripts/gpu_stage.sh" in st["verify"][1]
    assert st["wheel"][0] == "skipped"
    assert {k: v[0] for k, v in st.items() if k not in ("verify", "wheel")} == dict.fromkeys(
        ("machine", "import", "pytest", "timing"), "validated"
    )
    assert "gpu tests collected" in res.stdout and "cells in this order" in res.stdout
    # the timing plan measures the performance design: 4 rows per group next to one, same cell
    plan = [line.split() for line in res.stdout.splitlines() if line.startswith("  gpu")]
    assert plan[:2] == [["gpu", *plan[0][1:]], ["gpu-R4", *plan[0][1:]]], plan[:2]
    assert (tmp_path / "results.md").read_text().startswith("# gpu_check call 2 (dry run): ok")


def test_unknown_step_is_refused(tmp_path):
    res, _ = _sh("gpu_check.sh", "--dry-run", "--call", "1", "--steps", "kernels,wheel", out=tmp_path)
    assert res.returncode == 2 and "call 1 has no step 'wheel'" in res.stderr


def test_stage_then_dry_run_both_calls(tmp_path):
    """Stages into a temporary folder (the ~86 MiB wheels cached in build/gpu_wheels), then the dry
    run of both calls validates every step; a changed byte in a staged case fails the verification."""
    try:
        gpu_prelude.download(REPO / "build" / "gpu_wheels")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"the wheels could not be downloaded ({err}): nothing to stage")
    stage = tmp_path / "stage"
    res, _ = _sh("gpu_stage.sh", "--out", str(stage), out=tmp_path / "o0")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for call in (1, 2):
        assert (stage / f"call{call}" / "SHA256SUMS").is_file()
        size = sum(f.stat().st_size for f in (stage / f"call{call}").rglob("*") if f.is_file())
        assert size <= 60 * 1024 * 1024
    assert any(p.name.endswith(".part-aa") for p in (stage / "call1" / "wheel").iterdir())
    assert any(p.name.endswith(".part-ab") for p in (stage / "call2" / "wheel").iterdir())
    for call in ("1", "2"):
        res, doc = _sh("gpu_check.sh", "--dry-run", "--call", call, "--stage", str(stage), out=tmp_path / f"o{call}")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
        assert {v[0] for v in _status(doc).values()} == {"validated"}, doc
    case = next((stage / "call1" / "cases").glob("*.cu"))
    case.write_text(case.read_text() + "\n")
    res, doc = _sh(
        "gpu_check.sh", "--dry-run", "--call", "1", "--steps", "verify", "--stage", str(stage), out=tmp_path / "o3"
    )
    assert res.returncode == 1 and _status(doc)["verify"] == ("failed", f"checksums of {stage}/call1 differ")
