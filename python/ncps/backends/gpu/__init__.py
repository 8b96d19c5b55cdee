"""GPU kernels for ncps: one kernel body per operation in a small dialect (``kernels/``), launched
through ``mx.fast.metal_kernel`` / ``mx.fast.cuda_kernel`` inside ``mx.custom_function`` (the vjp
launches the backward kernel), or run by the C++ emulation (``backend="emulate"``) for tests on
machines without a GPU. See ``kernels/README.md`` for what is verified where.
"""

from .cfc import cfc_sequence_gpu, cfc_why_not, wired_cfc_sequence_gpu
from .launch import default_backend
from .ltc import LTCSynapsePlan, ltc_sequence_gpu, ltc_synapse_plan, ltc_threads

__all__ = [
    "cfc_sequence_gpu",
    "cfc_why_not",
    "wired_cfc_sequence_gpu",
    "default_backend",
    "LTCSynapsePlan",
    "ltc_sequence_gpu",
    "ltc_synapse_plan",
    "ltc_threads",
]
