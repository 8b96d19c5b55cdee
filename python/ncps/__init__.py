"""Neural Circuit Policies for MLX: LTC and CfC networks with sparse NCP wirings.

The hot loops run as fused C++ MLX primitives when the extension ``ncps._ext`` is available
(``ncps.kernels.info()`` says whether it is, and why not); everything also runs on the pure-MLX
reference implementation.

The fronts (``ncps.training``, ``ncps.sklearn``, ``ncps.mini_keras``, ``ncps.datasets``,
``ncps.distributed`` and ``LiquidNeuralNetwork``) load on first use, so ``import ncps`` does not
import scikit-learn or the training loop.
"""

import importlib as _importlib

import mlx.core as _mx  # noqa: F401  (registers mlx's nanobind types before our extension loads)

from . import interop, kernels, wirings
from .cells import CfCCell, CTGRUCell, CTRNNCell, LSTMCell, LTCCell, WiredCfCCell
from .layers import CTGRU, CTRNN, LTC, RNN, CfC
from .persistence import load, save

__version__ = "0.1.0"

_LAZY_MODULES = ("training", "sklearn", "mini_keras", "datasets", "distributed", "lnn", "optimizers")
_LAZY_NAMES = {"LiquidNeuralNetwork": "lnn"}


def __getattr__(name: str):
    """Import a front on first access (``ncps.training``, ``ncps.LiquidNeuralNetwork``, ...)."""
    if name in _LAZY_MODULES:
        return _importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(_importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


__all__ = [
    "CfC",
    "LTC",
    "CTRNN",
    "CTGRU",
    "RNN",
    "CfCCell",
    "LTCCell",
    "WiredCfCCell",
    "CTRNNCell",
    "CTGRUCell",
    "LSTMCell",
    "LiquidNeuralNetwork",
    "datasets",
    "interop",
    "kernels",
    "mini_keras",
    "optimizers",
    "training",
    "wirings",
    "save",
    "load",
]
