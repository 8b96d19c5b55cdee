"""Neural Circuit Policies for MLX: LTC and CfC networks with sparse NCP wirings."""

import mlx.core as _mx  # noqa: F401  (registers mlx's nanobind types before our extension loads)

from . import kernels

__version__ = "0.1.0"
