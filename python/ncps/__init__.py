"""Neural Circuit Policies for MLX: LTC and CfC networks with sparse NCP wirings.

The hot loops run as fused C++ MLX primitives when the extension ``ncps._ext`` is available
(``ncps.kernels.info()`` says whether it is, and why not); everything also runs on the pure-MLX
reference implementation.
"""

import mlx.core as _mx  # noqa: F401  (registers mlx's nanobind types before our extension loads)

from . import interop, kernels, wirings
from .cfc import CfCCell
from .ctgru import CTGRUCell
from .ctrnn import CTRNNCell
from .lstm import LSTMCell
from .ltc import LTCCell
from .persistence import load, save
from .sequence import CTGRU, CTRNN, RNN, CfC, LTC
from .wired_cfc import WiredCfCCell
from . import optimizers, training
from . import datasets, mini_keras
from .lnn import LiquidNeuralNetwork

__version__ = "0.1.0"

__all__ = [
    "CfC", "LTC", "CTRNN", "CTGRU", "RNN",
    "CfCCell", "LTCCell", "WiredCfCCell", "CTRNNCell", "CTGRUCell", "LSTMCell",
    "LiquidNeuralNetwork",
    "datasets", "interop", "kernels", "mini_keras", "optimizers", "training", "wirings", "save", "load",
]  # fmt: skip
