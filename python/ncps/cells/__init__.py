"""The cells: one time step of each model, on the :class:`~ncps.cells.base.Cell` base.

One module per model holds its math (in the docstring) and its reference step; a model with a
fused C++ kernel has a second module, ``<model>_fused``, with the interface every fused module
shares (see :mod:`ncps.cells.base`). ``CfCCell`` and ``WiredCfCCell`` share ``cfc_fused``.
"""

from .base import Cell
from .cfc import CfCCell
from .ctgru import CTGRUCell
from .ctrnn import CTRNNCell
from .lstm import LSTMCell
from .ltc import LTCCell
from .wired_cfc import WiredCfCCell

__all__ = ["Cell", "CfCCell", "CTGRUCell", "CTRNNCell", "LSTMCell", "LTCCell", "WiredCfCCell"]
