"""ncps.kernels.plan: the one decision between a fused backend and the reference path."""

import mlx.core as mx
import pytest

import ncps
from ncps import kernels
from ncps.backends.cpu import cfc as cpu_cfc
from ncps.backends.cpu import ltc as cpu_ltc
from ncps.wirings import AutoNCP


def test_plan_per_mode_and_cell(monkeypatch):
    cfc, ltc, ctrnn = ncps.CfCCell(3, 4), ncps.LTCCell(AutoNCP(8, 2), 3), ncps.CTRNNCell(3, 4)
    with kernels.use("reference"):
        assert kernels.plan(cfc) == kernels.Plan("reference")
    with kernels.use("auto"):
        p = kernels.plan(ctrnn)
        assert not p.fused and p.reason == "no fused kernel is implemented for CTRNNCell"
        monkeypatch.setattr(kernels, "_gpu_backend", lambda: (None, "no GPU here"))
        p = kernels.plan(cfc, stream=mx.gpu)  # no GPU backend: the CPU primitive on the CPU stream
        if kernels.extension_available():
            assert (p.backend, p.stream) == ("cpu", mx.cpu) and "no GPU here" in p.reason
        else:
            assert not p.fused and "no GPU here" in p.reason
        if kernels.extension_available():
            assert kernels.plan(cfc) == kernels.Plan("cpu", cpu_cfc)
            assert kernels.plan(ltc, mixed_memory=True, stream=mx.cpu) == kernels.Plan("cpu", cpu_ltc)
    with kernels.use("fused"), pytest.raises(NotImplementedError, match="No fused kernel 'CTRNNCell'"):
        kernels.plan(ctrnn)


def test_fused_mode_error_names_the_mixed_memory_primitive(monkeypatch):
    monkeypatch.setattr(kernels, "_ext", None)
    cell = ncps.LTCCell(AutoNCP(8, 2), 3)
    with kernels.use("fused"), pytest.raises(NotImplementedError, match="'ltc_mixed_sequence'.*not loaded"):
        kernels.plan(cell, mixed_memory=True)
    with kernels.use("fused"), pytest.raises(NotImplementedError, match="'ltc_sequence'.*not loaded"):
        kernels.plan(cell)


def test_cell_fused_why_not_passes_mixed_memory(monkeypatch):
    seen = []
    monkeypatch.setattr(cpu_cfc, "why_not", lambda cell, mixed_memory: seen.append(mixed_memory))
    ncps.CfCCell(3, 4).fused_why_not(True)
    assert seen == [True]
