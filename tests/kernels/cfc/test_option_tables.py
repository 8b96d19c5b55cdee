"""One table per CfC enum: the modes and the backbone activations have the same names in the same
order (a name's index is its code) in the Python table, in the extension (csrc/cfc/problem.h,
exported as ``_ext.cfc_modes()`` / ``_ext.cfc_activations()``), in the codes the GPU side passes
its kernels, and in the codes the GPU kernel bodies document."""

from __future__ import annotations

import re
from pathlib import Path

import mlx.core as mx
import pytest

from ncps import kernels
from ncps.activations import ACTIVATIONS
from ncps.backends.gpu import cfc as gpu_cfc
from ncps.cells.cfc import MODES

ROOT = Path(__file__).resolve().parents[3]


def in_code_order(codes: dict[str, int]) -> list[str]:
    """The names of a name -> code mapping, by code; the codes must be 0, 1, ... (no gap, no repeat)."""
    assert sorted(codes.values()) == list(range(len(codes)))
    return sorted(codes, key=codes.get)


def kernel_body_codes(name: str) -> dict[str, int]:
    """The codes of template constant ``name`` (MODE or ACT) that kernels/cfc_forward.inc documents,
    as in "MODE (0 default, 1 no_gate, 2 pure)"."""
    text = " ".join(line.lstrip("/ ") for line in (ROOT / "kernels" / "cfc_forward.inc").read_text().splitlines())
    listed = re.search(rf"\b{name} \((?:[\w ]+: )?([^)]*)\)", text)
    assert listed, f"kernels/cfc_forward.inc documents no codes for {name}"
    return {m[2]: int(m[1]) for m in re.finditer(r"(\d+) (\w+)", listed[1])}


def test_the_python_table_is_in_the_gpu_kernels_code_order():
    assert list(MODES) == ["default", "no_gate", "pure"]
    assert in_code_order(gpu_cfc._MODES) == list(MODES)
    assert in_code_order(kernel_body_codes("MODE")) == list(MODES)
    # The GPU kernels cover the first activations of the table, with the table's codes.
    acts = in_code_order(gpu_cfc._ACTS)
    assert acts == list(ACTIVATIONS)[: len(acts)] == ["lecun_tanh", "tanh", "relu", "silu"]
    assert in_code_order(kernel_body_codes("ACT")) == acts


@pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")
def test_the_extension_exports_the_python_tables():
    from ncps import _ext

    assert _ext.cfc_modes() == list(MODES)
    assert _ext.cfc_activations() == list(ACTIVATIONS)


@pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")
def test_the_extension_names_every_choice_when_one_is_unknown():
    from ncps import _ext

    x, h0, dt = mx.zeros((1, 2, 3)), mx.zeros((1, 4)), mx.ones((1, 2))
    with pytest.raises(ValueError, match=r"mode must be 'default', 'no_gate' or 'pure', got 'fast'$"):
        _ext.cfc_sequence(x, h0, dt, [], [4], [[]], [False], "fast", "tanh")
    listed = ", ".join(ACTIVATIONS)
    with pytest.raises(ValueError, match=rf"activation must be one of {listed}; got 'swish'$"):
        _ext.cfc_sequence(x, h0, dt, [], [4], [[]], [False], "default", "swish")
