"""Fuzzing with atheris (tests/reliability/fuzz_targets.py): ``ncps.load`` on mutated model files
and the fused entry points on fuzzed shapes, dtypes and options, ~20 s each; then every input
kept in fuzz_corpus/ (seeds, and any input that once crashed) is replayed as a regression test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_corpus")
SECONDS = 15


def _atheris():
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("atheris is not installed (pip install atheris; scripts/bootstrap.sh installs it)")


@pytest.mark.parametrize("target", ["load", "ops"])
def test_fuzz_target(target, tmp_path):
    _atheris()
    seeds = tmp_path / "corpus"
    shutil.copytree(os.path.join(CORPUS, target), seeds)
    cmd = [
        sys.executable,
        "-m",
        "tests.reliability.fuzz_targets",
        target,
        f"-max_total_time={SECONDS}",
        f"-artifact_prefix={tmp_path}/",
        "-rss_limit_mb=4096",
        str(seeds),
    ]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=SECONDS + 90)
    crashes = [f for f in os.listdir(tmp_path) if f.startswith(("crash-", "leak-", "timeout-", "oom-"))]
    log = p.stderr.decode(errors="replace")[-3000:]
    assert p.returncode == 0 and not crashes, (
        f"{target}: fuzzing found {crashes}; copy them into {CORPUS}/{target}/ as regression inputs\n{log}"
    )


@pytest.mark.parametrize("target", ["load", "ops"])
def test_fuzz_corpus_replays(target):
    _atheris()
    from tests.reliability.fuzz_targets import run_one

    files = sorted(os.listdir(os.path.join(CORPUS, target)))
    assert files
    for name in files:
        with open(os.path.join(CORPUS, target, name), "rb") as f:
            run_one(target, f.read())
