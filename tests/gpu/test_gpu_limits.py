"""Limits of the GPU kernels, checked before any launch or through the emulation: threadgroup
memory per back-end (CUDA's dynamic shared memory lets the LTC backward reach N = 1024 at 6
unfolds; Metal keeps 32 KiB), the threads bound, the 32-bit index guard, the mixed-memory budget on
every entry point, and the byte count the CUDA launch requests."""

import mlx.core as mx
import numpy as np
import pytest

import ncps
from ncps.backends.gpu import cfc_sequence_gpu, emulate, launch, ltc_sequence_gpu
from ncps.backends.gpu.cfc import CFC_FORWARD
from ncps.backends.gpu.ltc import LTC_FORWARD, _tg_bytes, _tg_bytes_forward, ltc_synapse_plan
from ncps.backends.ltc_args import lstm_params
from ncps.wirings import FullyConnected
from tests.gpu.gpu_util import GRAD_TOL, OUT_TOL, assert_close, ltc_grads, ltc_problem, reference_seq

pytestmark = pytest.mark.gpu_emulated


def test_ltc_backward_at_n1024_runs_in_dynamic_shared_memory():
    """N = 1024 at 6 unfolds needs ~82 KiB: more than Metal's 32 KiB and CUDA's 48 KiB static
    limit, within an sm_90 block's 227 KiB of dynamic shared memory (which the emulation models).
    Forward and every gradient against the reference."""
    N, K = 1024, 6
    cell, x, h0, dt = ltc_problem(FullyConnected(N), 3, 1, 2)
    p = cell.solver_params()
    need = _tg_bytes(N, 3, K, 256)
    assert 48 * 1024 < need <= launch.CUDA_SHARED_OPTIN[(9, 0)]
    plan = ltc_synapse_plan(p)
    emu = lambda *a: ltc_sequence_gpu(*a, K, 1e-8, plan=plan, backend="emulate")  # noqa: E731
    assert_close(emu(x, h0, dt, p), reference_seq(K)(x, h0, dt, p), OUT_TOL, "states")
    # Gradients sum up to 1024 x 6 terms of both signs (d/ddt, d/dcm, ...): float32 rounding alone
    # moves some by ~0.5 %, in the float32 reference as much as in the kernel. So both are held to
    # the float64 reference: the kernel's error must stay within 1e-4 of the largest magnitude, or
    # within twice the float32 reference's own error.
    g, g32 = ltc_grads(emu, x, h0, dt, p), ltc_grads(reference_seq(K), x, h0, dt, p)
    with mx.stream(mx.cpu):
        f64 = [a.astype(mx.float64) for a in (x, h0, dt)]
        g64 = ltc_grads(reference_seq(K), *f64, {k: v.astype(mx.float64) for k, v in p.items()})
    pairs = [(name, g[k], g32[k], g64[k]) for k, name in enumerate(("x", "h0", "dt"))]
    pairs += [(k, g[3][k], g32[3][k], g64[3][k]) for k in ("w", "sigma", "mu", "erev", "sensory_w", "cm", "gleak")]
    for name, got, ref32, ref64 in pairs:
        want = np.asarray(ref64)
        scale = float(np.abs(want).max())
        err, err32 = (float(np.abs(np.asarray(a, dtype=np.float64) - want).max()) for a in (got, ref32))
        assert err <= max(GRAD_TOL * scale, 2 * err32), f"d/d{name}: {err:.3g} (float32 reference: {err32:.3g})"
    with pytest.raises(ValueError, match=r"more than 32768 \(metal\)"):
        ltc_sequence_gpu(x, h0, dt, p, K, plan=plan, backend="metal")


def test_tg_memory_limit_per_backend(monkeypatch):
    assert launch.tg_memory_limit("metal") == launch.tg_memory_limit(None) == 32 * 1024
    assert launch.tg_memory_limit("emulate") == 232448
    for cc, limit in (((9, 0), 232448), ((8, 0), 166912), ((8, 6), 101376), ((6, 1), 48 * 1024)):
        info = {"compute_capability_major": cc[0], "compute_capability_minor": cc[1]}
        monkeypatch.setattr(mx, "device_info", lambda d=None, info=info: info)
        assert launch.tg_memory_limit("cuda") == limit, cc


@pytest.mark.parametrize("threads", [0, 257, 1024])
def test_threads_out_of_range_raise(threads):
    cell, x, h0, dt = ltc_problem(FullyConnected(4), 2, 1, 2)
    with pytest.raises(ValueError, match=r"threads must be in 1\.\.256"):
        ltc_sequence_gpu(x, h0, dt, cell.solver_params(), backend="emulate", threads=threads)
    cfc = ncps.CfCCell(2, 4)
    with pytest.raises(ValueError, match=r"threads must be in 1\.\.256"):
        cfc_sequence_gpu(cfc, x, mx.zeros((1, 4)), dt, backend="emulate", threads=threads)


def test_index_guard_boundary():
    launch.check_index_range("op", dict(a=2**31 - 1, b=5))
    with pytest.raises(ValueError, match=r"op: .* but a would have 2147483648 elements"):
        launch.check_index_range("op", dict(a=2**31, b=5))


def test_index_guard_raises_before_launch_on_huge_shapes():
    """Shapes past 2**31 elements: the arrays are lazy MLX zeros (never allocated); the guard
    raises before anything is evaluated. B T 4N is the first to overflow with mixed memory."""
    N, I = 64, 8
    cell = ncps.LTCCell(FullyConnected(N), I)
    p = cell.solver_params()
    B, T = 2**14, 2**10  # B T N = 2**30 fits; B T 4N = 2**32 does not
    x, h0, dt = mx.zeros((B, T, I)), mx.zeros((B, N)), mx.zeros((B, T))
    lp = lstm_params(ncps.LSTMCell(I, N))
    with pytest.raises(ValueError, match="g_gates would have 4294967296 elements"):
        ltc_sequence_gpu(x, h0, dt, p, lstm_input=x, lstm=lp, backend="emulate")
    big = mx.zeros((B, 2**11, I))  # B T N = 2**31
    with pytest.raises(ValueError, match="states would have 2147483648 elements"):
        ltc_sequence_gpu(big, h0, mx.zeros((B, 2**11)), p, backend="emulate")
    cfc = ncps.CfCCell(I, N)
    with pytest.raises(ValueError, match="g_f would have 4294967296 elements"):
        cfc_sequence_gpu(cfc, x, h0, dt, backend="emulate")


def test_mixed_memory_budget_on_direct_cfc_call():
    """H = 500, I = 8, no backbone: ~16 KiB alone fits Metal's 32 KiB, with the LSTM's arrays
    (12 H + I floats more, ~40 KiB in all) it does not; the direct call checks it, as the layer's
    plan does (this call raised nothing before: it checked the CfC's part only)."""
    cell = ncps.CfCCell(8, 500, backbone_layers=0)
    x, h0, dt = mx.zeros((1, 2, 8)), mx.zeros((1, 500)), mx.ones((1, 2))
    assert ncps.backends.gpu.cfc_why_not(cell, backend="metal") is None
    with pytest.raises(ValueError, match="mixed memory at I=8, H=500"):
        cfc_sequence_gpu(cell, x, h0, dt, lstm=ncps.LSTMCell(8, 500), backend="metal")


def test_emulation_checks_the_threadgroup_byte_count():
    cell, x, h0, dt = ltc_problem(FullyConnected(4), 2, 1, 2)
    run = emulate.run
    seen = []

    def wrong(spec, inputs, shapes, template, groups, flags=None, tg_bytes=None):
        seen.append(tg_bytes)
        return run(spec, inputs, shapes, template, groups, flags, tg_bytes + 4)

    emulate.run = wrong
    try:
        with pytest.raises(RuntimeError, match="declares .* bytes of threadgroup memory, the launch computed"):
            mx.eval(ltc_sequence_gpu(x, h0, dt, cell.solver_params(), backend="emulate"))
    finally:
        emulate.run = run
    assert seen == [_tg_bytes_forward(4, 2)]


def test_cuda_launch_requests_the_dynamic_shared_memory(monkeypatch):
    """The CUDA kernel objects are built with shared_memory= the body's byte count (recorded here
    in place of mx.fast.cuda_kernel, which needs a CUDA device to run)."""
    made = {}

    def fake_kernel(name, input_names, output_names, source, header, shared_memory):
        made[name] = shared_memory
        return lambda **kw: [mx.zeros(s) for s in kw["output_shapes"]]

    monkeypatch.setattr(mx.fast, "cuda_kernel", fake_kernel)
    launch.mlx_kernel.cache_clear()
    try:
        cell, x, h0, dt = ltc_problem(FullyConnected(6), 3, 2, 2)
        mx.eval(ltc_sequence_gpu(x, h0, dt, cell.solver_params(), backend="cuda", threads=32))
        cfc = ncps.CfCCell(3, 5, backbone_units=7, backbone_layers=1)
        mx.eval(cfc_sequence_gpu(cfc, x, mx.zeros((2, 5)), dt, backend="cuda"))
    finally:
        launch.mlx_kernel.cache_clear()
    from ncps.backends.gpu.cfc import _tg_bytes_forward as cfc_fwd_bytes

    assert made == {LTC_FORWARD.name: _tg_bytes_forward(6, 3), CFC_FORWARD.name: cfc_fwd_bytes(3, 5, [7])}
