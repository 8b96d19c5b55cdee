"""scripts/sanitize.sh (ASan + UBSan build, the fused-kernel and property tests under it, then
LeakSanitizer on repeated fused calls) must report nothing; and repeated fused calls keep the
resident memory flat in a normal build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _clang() -> str:
    cxx = shutil.which("clang++") or shutil.which("clang++-14")
    runtime = None
    if cxx:
        runtime = subprocess.run(
            [cxx, "-print-file-name=libclang_rt.asan-x86_64.so"], capture_output=True, text=True
        ).stdout.strip()
    if not cxx or not os.path.isfile(runtime or ""):
        if os.environ.get("CI"):
            pytest.fail("clang++ with its ASan runtime is required in CI (apt-get install clang libclang-rt-14-dev)")
        pytest.skip("clang++ with its ASan runtime is not installed (apt-get install clang libclang-rt-14-dev)")
    return cxx


def test_sanitizers_report_nothing():
    _clang()
    env = dict(os.environ, SANITIZE_TESTS="tests/kernels tests/reliability/test_properties.py")
    p = subprocess.run(["bash", "scripts/sanitize.sh"], cwd=ROOT, capture_output=True, timeout=240, env=env)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, out[-6000:]
    assert "no sanitizer reports" in out, out[-3000:]


def test_repeated_fused_calls_do_not_grow_memory():
    p = subprocess.run(
        [sys.executable, "tests/reliability/leak_child.py", "80"], cwd=ROOT, capture_output=True, timeout=300
    )
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    rss = json.loads(p.stdout.decode().strip().splitlines()[-1])["rss_mb"]
    warm = rss[len(rss) // 4 :]
    assert max(warm) - warm[0] < 16, rss
