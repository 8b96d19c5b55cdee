"""One code style, kept by the formatters the project configures: ruff (lint, import order and format,
pyproject.toml's [tool.ruff]) over every Python file and clang-format (.clang-format) over the C++ of
csrc/ and benchmarks/. The tools are test dependencies (scripts/bootstrap.sh, the ``test`` extra)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """The tool installed beside this interpreter (the venv's bin/), else the one on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap.sh or pip install '.[test]'")
    return found


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def cpp_files() -> list[str]:
    listed = run("git", "ls-files", "csrc/*.cpp", "csrc/*.h", "benchmarks/*.cpp").stdout.split()
    if listed:
        return listed
    return sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("csrc/**/*.[ch]*"), *ROOT.glob("benchmarks/*.cpp")])


def test_ruff_lint():
    out = run(tool("ruff"), "check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format():
    out = run(tool("ruff"), "format", "--check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_clang_format():
    files = cpp_files()
    assert any(f.startswith("csrc/") for f in files)
    out = run(tool("clang-format"), "--dry-run", "-Werror", *files)
    assert out.returncode == 0, out.stderr[-4000:]
