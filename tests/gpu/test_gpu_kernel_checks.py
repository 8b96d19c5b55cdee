"""Checks of the GPU kernels that need no GPU: ThreadSanitizer on the C++ emulation (and proof that
it sees a removed barrier), nvcc + ptxas for sm_80/sm_90 (no spills), and a clang front-end check
of the exact Metal source MLX generates."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest

from ncps.backends.gpu import cfc_sequence_gpu, emulate, ltc_sequence_gpu
from ncps.backends.gpu._source import cuda_wrapper_source
from ncps.backends.gpu.cfc import CFC_BACKWARD, CFC_FORWARD, _weight_floats
from ncps.backends.gpu.ltc import LTC_BACKWARD, LTC_FORWARD
from ncps.backends.ltc_args import lstm_params
from ncps.cells.cfc import CfCCell
from ncps.cells.lstm import LSTMCell
from ncps.wirings import AutoNCP
from tests.gpu import gpu_util
from tests.gpu.gpu_util import ltc_grads, ltc_problem

pytestmark = pytest.mark.gpu_emulated

HERE = Path(__file__).parent
SPECS = [LTC_FORWARD, LTC_BACKWARD, CFC_FORWARD, CFC_BACKWARD]
# Storage types of the per-sample arrays (the IOT template argument), each compiled / checked.
IOTS = ("float32", "float16", "bfloat16")
VARIANTS = [(s, iot) for s in SPECS for iot in IOTS]
VARIANT_IDS = [f"{s.name}-{iot}" for s, iot in VARIANTS]
# Template constants of the compile checks, per kernel.
CHECK_SIZES = {
    LTC_FORWARD.name: dict(N=64, I=16, K=6, F=16, MIX=1, NT=64, R=4, WT=1),
    LTC_BACKWARD.name: dict(N=64, I=16, K=6, F=16, MIX=1, NT=64, R=4),
    CFC_FORWARD.name: dict(
        I=16,
        H=64,
        L=2,
        U=128,
        MODE=0,
        ACT=0,
        MIX=1,
        NT=128,
        R=4,
        WT=1,
        WTG=1,
        NW=_weight_floats(16, 64, [128, 128], True),
    ),
    CFC_BACKWARD.name: dict(I=16, H=64, L=2, U=128, MODE=0, ACT=0, MIX=1, NT=128, R=4),
}


# -- ThreadSanitizer -----------------------------------------------------------------------------
def _tsan_reports(extra_flags=(), ltc: bool = True, cfc: bool = False) -> str:
    """Run forward + backward of a small LTC (3 neurons per thread, idle lanes; without and with
    mixed memory) and, with ``cfc``, of a CfC (two backbone layers wider than the threads; without
    and with mixed memory) under TSan; and each mixed-memory forward and backward with 3 rows per
    group (transposed weights; the CfC's staged in threadgroup memory)."""
    cell, x, h0, dt = ltc_problem(AutoNCP(10, 2), 3, 2, 3, dt_zero=[(1, 1)])
    p = cell.solver_params()
    reports = []
    with emulate.configured(emulate.TSAN_FLAGS + tuple(extra_flags), reports):
        if ltc:
            ltc_grads(lambda *a: ltc_sequence_gpu(*a, 2, 1e-8, backend="emulate", threads=4), x, h0, dt, p)
            lp = lstm_params(LSTMCell(3, 10))  # mixed memory: the LSTM inside the time loop

            def mixed(x):
                return ltc_sequence_gpu(
                    x,
                    h0,
                    dt,
                    p,
                    2,
                    1e-8,
                    lstm_input=x,
                    lstm=lp,
                    backend="emulate",  # noqa: E731
                    threads=4,
                )[0].sum()

            mx.grad(mixed)(x)
            # 3 rows per group (one row past B = 2; a row with dt = 0), the LSTM's matrices transposed
            kw = dict(lstm_input=x, lstm=lp, backend="emulate", threads=4, rows_per_group=3, transposed_weights=True)
            mx.grad(lambda x: ltc_sequence_gpu(x, h0, dt, p, 2, 1e-8, **kw)[0].sum())(x)
        if cfc:
            mx.random.seed(0)
            c, lstm = CfCCell(3, 6, backbone_units=[7, 5]), LSTMCell(3, 6)
            mx.grad(lambda h: cfc_sequence_gpu(c, x, h, dt, backend="emulate", threads=4).sum())(mx.zeros((2, 6)))
            mixed = lambda h: cfc_sequence_gpu(c, x, h, dt, lstm=lstm, backend="emulate", threads=4)[0].sum()  # noqa: E731
            mx.grad(mixed)(mx.zeros((2, 6)))
            kw = dict(backend="emulate", threads=4, rows_per_group=3, transposed_weights=True, stage_weights=True)
            multi = lambda h: cfc_sequence_gpu(c, x, h, dt, lstm=lstm, **kw)[0].sum()  # noqa: E731
            mx.grad(multi)(mx.zeros((2, 6)))  # 3 rows per group (forward: weights staged), forward + backward
    assert len(reports) == 6 * ltc + 6 * cfc  # every kernel ran
    return "\n".join(reports)


def test_tsan_finds_no_race_in_the_kernels():
    reports = _tsan_reports(cfc=True)
    assert "ThreadSanitizer" not in reports, reports[:4000]


@pytest.mark.parametrize("tag, ltc", [(2, True), (12, True), (31, True), (23, False)])
def test_tsan_reports_a_race_when_a_barrier_is_removed(tag, ltc):
    """BARRIER(2) orders the LTC forward's sub-steps, BARRIER(12) the LTC backward's two adjoint
    phases, BARRIER(31) the mixed LTC backward's gate adjoints before the input sums read them,
    BARRIER(23) the CfC backward's head adjoints before the head-input sums read them."""
    reports = _tsan_reports([f"-DNCPS_DROP_BARRIER={tag}"], ltc=ltc, cfc=not ltc)
    assert "WARNING: ThreadSanitizer: data race" in reports


# -- CUDA: nvcc / ptxas ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ptxas_log() -> str:
    """ptxas -v output for all kernels and storage types (one translation unit per kernel as MLX
    builds it, one front-end run to compute_80 PTX, then ptxas for sm_80 and sm_90); cached by
    source hash."""
    nvcc = gpu_util.nvcc("the CUDA compile check")
    srcs = [cuda_wrapper_source(s, {**CHECK_SIZES[s.name], "IOT": iot}) for s, iot in VARIANTS]
    key = hashlib.sha256("\0".join(srcs).encode()).hexdigest()[:16]
    out = emulate.cache_root() / f"cuda-check-{key}"
    log = out / "ptxas.log"
    if not log.is_file():
        out.mkdir(parents=True, exist_ok=True)
        # One file per kernel, as NVRTC compiles each MLX wrapper on its own.
        files = []
        for (spec, iot), src in zip(VARIANTS, srcs):
            files.append(out / f"{spec.name}-{iot}.cu")
            files[-1].write_text(src)
        text = ""
        for f in files:
            ptx = f.with_suffix(".ptx")
            res = subprocess.run(
                [nvcc, "-ptx", "-arch=compute_80", "-o", str(ptx), str(f)], capture_output=True, text=True
            )
            assert res.returncode == 0, res.stderr
            ptxas = str(Path(nvcc).with_name("ptxas"))
            for arch in ("sm_80", "sm_90"):
                res = subprocess.run(
                    [ptxas, f"-arch={arch}", "-v", "-o", os.devnull, str(ptx)], capture_output=True, text=True
                )
                assert res.returncode == 0, res.stderr
                text += res.stdout + res.stderr
        log.write_text(text)
    return log.read_text()


@pytest.mark.parametrize("spec, iot", VARIANTS, ids=VARIANT_IDS)
def test_cuda_kernels_compile_for_sm80_and_sm90_without_spills(spec, iot, ptxas_log):
    blocks = re.findall(
        r"Compiling entry function '(\w+)' for '(sm_\d+)'.*?(\d+) bytes spill stores, (\d+) bytes "
        r"spill loads",
        ptxas_log,
        re.S,
    )
    name = re.compile(rf"custom_kernel_{spec.name}_[\d_]*_{iot}")
    mine = {arch: (st, ld) for fn, arch, st, ld in blocks if name.search(fn)}
    assert set(mine) == {"sm_80", "sm_90"}, ptxas_log
    assert all(v == ("0", "0") for v in mine.values()), ptxas_log


# -- Metal: front-end check of the source MLX generates --------------------------------------------
def _clang() -> str:
    for exe in ("clang++", "clang++-14", "clang++-15", "clang++-16"):
        if shutil.which(exe):
            return exe
    pytest.skip("clang++ is not installed (Debian: apt-get install clang-14): the Metal front-end check needs it")


METAL_TYPES = {"float": "float32", "float16_t": "float16", "bfloat16_t": "bfloat16"}  # MLX's Metal type names


@pytest.fixture(scope="module")
def metal_sources() -> dict:
    """``(kernel name, storage type) -> source``: the storage type read from the instantiation's
    last template argument."""
    res = subprocess.run([sys.executable, str(HERE / "capture_metal.py")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    found = re.findall(r"Generated source code for `(\w+)`:\n```\n(.*?)\n```", res.stdout, re.S)
    out = {}
    for name, src in found:
        iot = METAL_TYPES[re.search(r", (\w+)>;\s*$", src).group(1)]
        out[name, iot] = src
    return out


def _check_metal(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # Metal's [[host_name]] instantiation is not C++; a plain explicit instantiation keeps the
    # template body checked.
    source = re.sub(r'template \[\[host_name\("[^"]*"\)\]\] \[\[kernel\]\] ', "template ", source)
    path = tmp_path / "kernel.metal.cpp"
    path.write_text('#include "metal_shim.h"\n' + source)
    cmd = [_clang(), "-std=c++17", "-fsyntax-only", "-Wno-unknown-attributes", "-I", str(HERE), "-x", "c++", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("spec, iot", VARIANTS, ids=VARIANT_IDS)
def test_metal_source_generated_by_mlx_passes_the_front_end_check(spec, iot, metal_sources, tmp_path):
    src = metal_sources[spec.name, iot]
    metal_type = {v: k for k, v in METAL_TYPES.items()}[iot]
    assert f"const device {metal_type}* x [[" in src  # the per-sample input in the storage type
    assert "thread_position_in_threadgroup [[thread_position_in_threadgroup]]" in src
    assert "threadgroup_position_in_grid [[threadgroup_position_in_grid]]" in src
    res = _check_metal(src, tmp_path)
    assert res.returncode == 0, res.stderr


def test_metal_front_end_check_catches_errors(metal_sources, tmp_path):
    """The check is not vacuous: an undeclared function and a device pointer bound to a thread
    pointer both fail."""
    src = metal_sources[LTC_FORWARD.name, "float32"]
    bad = src.replace("ncps_sigmoid(float z)", "ncps_sigmoid(float z) { return expf(z); } inline float unused(float z)")
    assert _check_metal(bad, tmp_path).returncode != 0
    bad = src.replace("const int T = dims[1];", "const int T = dims[1]; const int32_t* q = dims;")
    assert _check_metal(bad, tmp_path).returncode != 0
