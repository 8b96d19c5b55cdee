"""``ncps.mlx``: the same classes as the top-level ``ncps`` (for code written against the
official package's ``ncps.torch`` / ``ncps.tf`` layout)."""

from . import wirings  # noqa: F401
from .cfc import CfCCell  # noqa: F401
from .ctgru import CTGRUCell  # noqa: F401
from .ctrnn import CTRNNCell  # noqa: F401
from .lstm import LSTMCell  # noqa: F401
from .ltc import LTCCell  # noqa: F401
from .sequence import CTGRU, CTRNN, CfC, LTC  # noqa: F401
from .wired_cfc import WiredCfCCell  # noqa: F401
