"""What the machine is: CPU, cores, memory, versions, load; for the results' ``machine``."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import mlx.core as mx

import ncps
from benchmarks import oracle
from benchmarks.common.paths import REPO


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        with contextlib.suppress(Exception):
            return subprocess.check_output(["sysctl", "-n", "machdep.cpu.brand_string"], text=True).strip()
    return platform.processor() or platform.machine()


def memory_total_gib() -> float | None:
    with contextlib.suppress(Exception):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def git_revision() -> str | None:
    with contextlib.suppress(Exception):
        rev = subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True, stderr=subprocess.DEVNULL
        ).strip()
        dirty = subprocess.call(["git", "diff", "--quiet", "HEAD"], cwd=REPO, stderr=subprocess.DEVNULL) != 0
        return rev + ("+dirty" if dirty else "")
    return None


def load_average() -> list | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict:
    available = available_cores()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": available,
        "memory_gib": memory_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "mlx_device": str(mx.default_device()),
        "ncps": getattr(ncps, "__version__", None),
        "ncps_git": git_revision(),
        "kernels": ncps.kernels.info(),
        "torch": oracle.torch_version(),
        "official_ncps": oracle.official_version(),
        "oracle_dir": str(oracle.oracle_dir()),
    }
