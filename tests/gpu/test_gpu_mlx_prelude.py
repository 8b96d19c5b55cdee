"""The CUDA kernels compiled behind MLX 0.32.4's real device prelude (``utils.cuh`` and what it
includes, embedded in the mlx-cuda-13 wheel's libmlx.so) with nvcc's equivalent of the options
MLX's NVRTC call uses (``sm_90a`` for an H100 / H200, ``sm_80`` for an A100), so a clash of the
bodies' names (N, I, K, F, L, U, T, C, Z, S, ...) with MLX's headers shows here, not on hardware.

The wheel (~86 MiB) is downloaded once into ``build/gpu_wheels/`` (``scripts/gpu_prelude.py
download``) and the prelude extracted into ``build/mlx_cuda_prelude/``; the test skips, saying why,
only when that download is impossible or nvcc is absent."""

import hashlib
import importlib.util
import subprocess
from pathlib import Path

import pytest

from ncps.backends.gpu import emulate
from ncps.backends.gpu._source import cuda_wrapper_source
from tests.gpu.gpu_util import nvcc
from tests.gpu.test_gpu_kernel_checks import CHECK_SIZES, IOTS, SPECS

pytestmark = pytest.mark.gpu_emulated

REPO = Path(__file__).resolve().parents[2]
ARCHS = (80, 90)  # A100; H100 / H200 (MLX compiles for sm_90a there)


def _load_prelude_module():
    spec = importlib.util.spec_from_file_location("gpu_prelude", REPO / "scripts" / "gpu_prelude.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gpu_prelude = _load_prelude_module()


@pytest.fixture(scope="module")
def prelude() -> Path:
    try:
        wheels = gpu_prelude.download(REPO / "build" / "gpu_wheels")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"the mlx-cuda-13 wheel could not be downloaded ({err}); nothing to extract the prelude from")
    wheel = wheels[f"mlx-cuda-13=={gpu_prelude.MLX_VERSION}"]
    return gpu_prelude.extract(wheel, REPO / "build" / "mlx_cuda_prelude" / gpu_prelude.MLX_VERSION)


def _compile(source: str, prelude: Path, cc: int, out: Path) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    cu = out / "kernel.cu"
    cu.write_text(source)
    compiler = nvcc("the compile check with MLX's prelude")
    cmd = [compiler, "-cubin", gpu_prelude.arch_flag(cc), *gpu_prelude.nvcc_flags(prelude), "-o", str(out / "k.cubin")]
    return subprocess.run([*cmd, str(cu)], capture_output=True, text=True)


def test_prelude_is_mlx_utils_cuh(prelude):
    utils = (prelude / "include" / gpu_prelude.DEVICE / "utils.cuh").read_text()
    assert "namespace mlx::core::cu" in utils and "using Shape = cuda::std::array<int32_t, MAX_NDIM>;" in utils
    assert "#define MAX_NDIM" in (prelude / "include" / gpu_prelude.DEVICE / "config.h").read_text()


@pytest.mark.parametrize("iot", IOTS)
@pytest.mark.parametrize("cc", ARCHS)
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_cuda_kernels_compile_behind_mlx_prelude(spec, cc, iot, prelude):
    """Each kernel for each storage type of its per-sample arrays (float32, __half, __nv_bfloat16:
    cuda_fp16.h / cuda_bf16.h as utils.cuh includes them)."""
    source = cuda_wrapper_source(spec, {**CHECK_SIZES[spec.name], "IOT": iot}, mlx_prelude=True)
    assert source.startswith('\n#include "mlx/backend/cuda/device/utils.cuh"\n\n#include <cooperative_groups.h>')
    key = hashlib.sha256(f"{source}\0{cc}\0{gpu_prelude.MLX_VERSION}".encode()).hexdigest()[:16]
    out = emulate.cache_root() / f"mlx-prelude-{key}"
    if (out / "k.cubin").is_file():  # compiled before: same source, same prelude
        return
    res = _compile(source, prelude, cc, out)
    assert res.returncode == 0, res.stderr[-4000:]


def test_prelude_check_sees_a_clash(prelude, tmp_path):
    """Not vacuous: a body naming one of utils.cuh's macros (WARP_SIZE, from config.h) fails behind
    the prelude and compiles without it."""
    spec = SPECS[0]
    body = "const int WARP_SIZE = 32;\n(void)WARP_SIZE;\n"
    clash = cuda_wrapper_source(spec, CHECK_SIZES[spec.name], mlx_prelude=True).replace(
        "\nTG_SETUP;", body + "TG_SETUP;"
    )
    assert _compile(clash, prelude, 90, tmp_path / "a").returncode != 0
    plain = cuda_wrapper_source(spec, CHECK_SIZES[spec.name]).replace("\nTG_SETUP;", body + "TG_SETUP;")
    res = _compile(plain, prelude, 90, tmp_path / "b")
    assert res.returncode == 0, res.stderr[-2000:]
