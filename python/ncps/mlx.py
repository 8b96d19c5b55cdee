"""``ncps.mlx``: the same classes as the top-level ``ncps`` (for code written against the
official package's ``ncps.torch`` / ``ncps.tf`` layout)."""

from . import wirings  # noqa: F401
from .cells import CfCCell, CTGRUCell, CTRNNCell, LSTMCell, LTCCell, WiredCfCCell  # noqa: F401
from .layers import CTGRU, CTRNN, LTC, CfC  # noqa: F401
