"""The extension on x86-64 CPUs older than this one, emulated by qemu-user (``qemu-x86_64 -cpu
MODEL`` runs the venv's Python with that CPU's cpuid): it must import, choose the best target the
emulated CPU has, refuse a forced target it lacks, and give fused = reference results. Built on an
AVX-512 machine with -march=native, the extension died here with SIGILL.

Skipped locally when qemu-user is missing; a failure in CI (``CI`` set), where scripts/bootstrap.sh
installs it (apt-get install qemu-user-static).
"""

from __future__ import annotations

import os
import platform
import shutil

import pytest

from ncps import kernels
from tests.kernels.test_isa import run_parity

INFO = kernels.info()

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64")
    or not INFO["extension_loaded"]
    or INFO["simd_compiled"] == ["native"],
    reason="an x86-64 multi-target build of the extension",
)


def qemu() -> str:
    for name in ("qemu-x86_64-static", "qemu-x86_64"):
        path = shutil.which(name)
        if path:
            return path
    why = "qemu-user is needed to emulate older x86-64 CPUs (apt-get install qemu-user-static)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


# (qemu CPU model, what it lacks, the target the dispatcher must choose)
CPUS = {"Haswell": ("AVX-512", "avx2"), "Nehalem": ("AVX and AVX2", "baseline")}
MODELS = ["ltc_ncp", "ltc_mixed", "cfc", "cfc_ncp"]  # tests/platform/fused_parity.py

# A qemu fault, not ours: under qemu 7.2 (Debian 12) -cpu Haswell, the avx2 target's mixed-memory
# LTC backward gives gradients ~0.1 (normalised) off the reference, or the emulated process dies
# with SIGSEGV, depending on what ran before it in the process. The same binary is exact natively
# with NCPS_ISA=avx2 (tests/kernels/test_isa.py), and exact with no invalid access under valgrind
# memcheck, whose CPU has AVX2 and no AVX-512 so the dispatcher picks avx2 by itself (2.5e-7,
# checked by hand); the baseline target is exact under the same emulated CPU and 4-lane tiles are
# exact. So each model runs in its own emulated process (a fault cannot hide the others' results)
# and this one case is reported, not asserted.
QEMU_FAULTS = {("Haswell", "ltc_mixed")}

_reports: dict[tuple, tuple[int, dict, str]] = {}


def emulated(model: str, ncps_isa: str = "", models: tuple[str, ...] = ()) -> tuple[int, dict, str]:
    """fused_parity on ``models`` under ``qemu-x86_64 -cpu model`` (once per session). OPENBLAS_CORETYPE:
    numpy's OpenBLAS misdetects qemu's CPU models and picks kernels the emulated CPU lacks (SIGILL in
    numpy's import-time self-test on Nehalem); naming the core avoids its detection."""
    key = (model, ncps_isa, models)
    if key not in _reports:
        env = {"OPENBLAS_CORETYPE": model, "OMP_NUM_THREADS": "2"}
        if ncps_isa:
            env["NCPS_ISA"] = ncps_isa
        _reports[key] = run_parity(env, prefix=(qemu(), "-cpu", model), timeout=600, models=models)
    return _reports[key]


@pytest.mark.parametrize("model", list(CPUS))
def test_older_cpu_imports_and_chooses_its_best_target(model):
    lacks, expected = CPUS[model]
    rc, report, err = emulated(model, models=("ltc_ncp",))
    assert report, f"no report from the emulated {model} (lacks {lacks}); rc={rc}\n{err}"
    assert report["simd"] == expected, report


@pytest.mark.parametrize(
    ("cpu", "name"),
    [
        pytest.param(c, m, marks=pytest.mark.xfail(strict=False, reason="a qemu 7.2 fault: see QEMU_FAULTS"))
        if (c, m) in QEMU_FAULTS
        else (c, m)
        for c in CPUS
        for m in MODELS
    ],
)
def test_older_cpu_fused_matches_reference(cpu, name):
    rc, report, err = emulated(cpu, models=(name,))
    assert report.get("models"), f"no report from the emulated {cpu} for {name}; rc={rc}\n{err}"
    errors = report["models"][name]
    assert errors["output"] <= 1e-5 and errors["grad"] <= 1e-4, (cpu, name, errors)


def test_a_forced_target_the_emulated_cpu_lacks_is_refused_at_import():
    rc, report, err = emulated("Nehalem", ncps_isa="avx2")
    assert rc == 1 and report["simd"] is None, report
    assert "NCPS_ISA=avx2: this CPU (or OS) does not support it" in report["reason"], report
