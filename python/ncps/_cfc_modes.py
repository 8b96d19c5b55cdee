"""The CfC modes by name, in code order: the one table of them (``ncps.cells.cfc.MODES`` is this
tuple). A mode's code is its index: the GPU kernel bodies' ``MODE`` (``kernels/cfc_*.inc``) and
the order of ``ncps._ext.cfc_modes()`` (``csrc/cfc/problem.h``). It sits below both the cells and
the GPU hooks, which import it (the cells import the hooks, so the hooks cannot import the cells)."""

from __future__ import annotations

MODES: tuple[str, ...] = ("default", "no_gate", "pure")
