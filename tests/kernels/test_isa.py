"""Runtime ISA dispatch (csrc/common/isa.h): which kernel target runs, NCPS_ISA, and that no code
outside a target's namespace uses instructions beyond the baseline."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncps import kernels

ROOT = Path(__file__).resolve().parents[2]
INFO = kernels.info()
X86 = platform.machine().lower() in ("x86_64", "amd64")

if not INFO["extension_loaded"]:
    pytest.skip("the C++ extension is not built", allow_module_level=True)

NATIVE_BUILD = INFO["simd_compiled"] == ["native"]


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def expected_best() -> str:
    """The x86-64 target the dispatcher must choose here, from /proc/cpuinfo (which lists a feature
    only when the kernel has enabled its register state)."""
    f = cpu_flags()
    v3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "sse4_2", "popcnt", "ssse3", "cx16"}
    v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    if v3 | v4 <= f:
        return "avx512"
    return "avx2" if v3 <= f else "baseline"


def run_parity(
    env: dict[str, str], prefix: tuple[str, ...] = (), timeout: float = 300, models: tuple[str, ...] = ()
) -> tuple[int, dict, str]:
    """tests/platform/fused_parity.py on ``models`` (all by default) in a fresh process (optionally
    under an emulator ``prefix``)."""
    full_env = {k: v for k, v in os.environ.items() if k != "NCPS_ISA"}
    full_env.update(env)
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.platform.fused_parity", *models],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return proc.returncode, report, proc.stderr[-3000:]


def test_info_reports_the_chosen_and_the_compiled_targets():
    assert INFO["simd"] in INFO["simd_compiled"]
    if NATIVE_BUILD:
        return
    if X86:
        assert INFO["simd_compiled"] == ["avx512", "avx2", "baseline"]
        if "NCPS_ISA" not in os.environ:
            assert INFO["simd"] == expected_best()
    elif platform.machine().lower() in ("aarch64", "arm64"):
        assert INFO["simd_compiled"] == ["neon"]


@pytest.mark.skipif(NATIVE_BUILD, reason="an NCPS_NATIVE=ON build has one target")
def test_every_supported_target_forced_with_ncps_isa_matches_the_reference_and_its_math():
    usable = [
        t
        for t in INFO["simd_compiled"]
        if not X86 or INFO["simd_compiled"].index(t) >= INFO["simd_compiled"].index(expected_best())
    ]
    for target in usable:
        rc, report, err = run_parity({"NCPS_ISA": target})
        assert rc == 0, (target, report, err)
        assert report["simd"] == target, report
        env = {**os.environ, "NCPS_ISA": target}
        math = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/kernels/test_simd_math.py"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert math.returncode == 0, (target, math.stdout[-3000:])


def test_an_unknown_ncps_isa_names_the_compiled_targets():
    code = "import ncps, json; i = ncps.kernels.info(); print(json.dumps([i['extension_loaded'], i['reason']]))"
    env = dict(os.environ, NCPS_ISA="sse9")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    loaded, reason = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not loaded
    assert "NCPS_ISA=sse9 is not a compiled kernel target" in reason
    assert all(t in reason for t in INFO["simd_compiled"])


# ---- static check of the built extension ---------------------------------------------------------

# Instructions beyond baseline x86-64 (SSE2): VEX/EVEX-encoded ones (mnemonics starting with v,
# ymm/zmm/mask registers) and the BMI/LZCNT/POPCNT/MOVBE scalar ones of x86-64-v2/v3.
WIDE = re.compile(
    r"\t(v[a-z0-9]+|shlx|shrx|sarx|rorx|andn|bextr|blsi|blsr|blsmsk|bzhi|pdep|pext|mulx|lzcnt|tzcnt|"
    r"popcnt|movbe|kmov[bwdq])\b|%[yz]mm|%k[0-7]\b"
)
FUNC = re.compile(r"^([0-9a-f]+) <(.+)>:$")
BRANCH = re.compile(r"\t(?:call|jmp|j[a-z]+)\s+([0-9a-f]+) <")


def extension_path() -> Path:
    from ncps import _ext

    return Path(_ext.__file__)


def functions(so: Path) -> tuple[dict[int, dict], dict[int, str]]:
    """address -> {name, wide, targets} from the disassembly; address -> symbol binding."""
    dis = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", str(so)], capture_output=True, text=True, check=True
    ).stdout
    fns: dict[int, dict] = {}
    cur = None
    for line in dis.splitlines():
        m = FUNC.match(line)
        if m:
            cur = {"name": m.group(2), "wide": None, "targets": set()}
            fns[int(m.group(1), 16)] = cur
        elif cur is not None:
            if cur["wide"] is None and WIDE.search(line):
                cur["wide"] = line.strip()
            b = BRANCH.search(line)
            if b:
                cur["targets"].add(int(b.group(1), 16))
    syms = subprocess.run(["objdump", "-t", str(so)], capture_output=True, text=True, check=True).stdout
    binding = {}
    for line in syms.splitlines():
        parts = line.split()
        if len(parts) >= 6 and re.fullmatch(r"[0-9a-f]{16}", parts[0]) and "F" in line[17:25]:
            binding[int(parts[0], 16)] = line[17]  # 'l' local, 'g' global, 'w' weak (or ' ' unique)
    return fns, binding


@pytest.mark.skipif(not X86 or NATIVE_BUILD, reason="x86-64 multi-target builds only")
def test_no_wide_instruction_is_reachable_outside_the_kernel_targets():
    """Every function outside the kernel targets' namespaces (whatever file the linker took it
    from: an inline function of a shared header, a standard-library template, a static
    initialiser), followed through its direct calls and jumps up to the entry of a kernel target,
    uses baseline instructions only."""
    if shutil.which("objdump") is None:
        why = "objdump (binutils) is needed to disassemble the extension"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    so = extension_path()
    fns, binding = functions(so)
    if not binding:
        pytest.fail(f"{so} has no symbol table (built stripped?): cannot attribute its code")
    targets = [t for t in INFO["simd_compiled"] if t != "baseline"]
    in_target = re.compile(r"\b(" + "|".join(targets) + r")\b")
    # Roots: every function but the TU-local ones (anonymous namespaces, the compiler's clones),
    # which are reached through their callers. (Hidden symbols are all local in the built module,
    # so the binding cannot tell a function one file owns from an inline one the linker shared.)
    roots = [
        a
        for a, f in fns.items()
        if not in_target.search(f["name"]) and "(anonymous namespace)" not in f["name"] and "[clone " not in f["name"]
    ]
    seen, stack, bad = set(), list(roots), []
    while stack:
        a = stack.pop()
        if a in seen or a not in fns:
            continue
        seen.add(a)
        f = fns[a]
        if in_target.search(f["name"]):
            continue  # a target's code: entered only through common::dispatch
        if f["wide"]:
            bad.append(f"{f['name'][:160]}: {f['wide']}")
        stack.extend(f["targets"])
    assert len(seen) > 100, "too few functions found: is the disassembly readable?"
    assert any(f["wide"] for f in fns.values() if in_target.search(f["name"])), "no wide code found in the targets"
    assert not bad, "baseline-reachable code with wide instructions:\n" + "\n".join(bad[:20])
