"""The cells: one time step of each model, on the :class:`~ncps.cells.base.Cell` base.

One module per model holds its math (in the docstring) and its reference step, and nothing else;
a model with fused kernels names its hook modules in :mod:`ncps.backends` (``cpu/<model>.py``,
``gpu/<model>.py``; :class:`ncps.backends.hooks.Hooks` is their interface). ``CfCCell`` and
``WiredCfCCell`` share the CfC modules.
"""

from .base import Cell
from .cfc import CfCCell
from .ctgru import CTGRUCell
from .ctrnn import CTRNNCell
from .lstm import LSTMCell
from .ltc import LTCCell
from .wired_cfc import WiredCfCCell

__all__ = ["Cell", "CfCCell", "CTGRUCell", "CTRNNCell", "LSTMCell", "LTCCell", "WiredCfCCell"]
