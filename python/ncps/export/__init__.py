"""Deploy a trained model outside Python: ONNX, dependency-free C99 and MLX's ``.mlxfn``.

- :func:`to_c`: ``<name>.h`` / ``<name>.c``, a batch-1 step function for microcontrollers;
- :func:`to_onnx`: an ONNX graph (the recurrence as a ``Scan``) for onnxruntime and friends;
- :func:`to_mlxfn`: an ``mx.export_function`` file that runs where MLX is installed and ncps is not.

Every form computes what the model's reference path computes (docs/deploy.md); a configuration
a form cannot express raises ``NotImplementedError`` naming it, never writes a wrong file.
"""

from __future__ import annotations

from .c99 import to_c
from .mlxfn import to_mlxfn
from .onnx import to_onnx

__all__ = ["to_c", "to_onnx", "to_mlxfn"]
