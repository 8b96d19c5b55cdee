# Copyright © 2025 ncps-mlx contributors. Apache-2.0.

"""Wirings: the connectivity of a Neural Circuit Policy (see :mod:`ncps.wirings.core`)."""

from . import core
from .core import NCP, AutoNCP, FullyConnected, Random, Wiring

__all__ = ["Wiring", "FullyConnected", "Random", "NCP", "AutoNCP"]

# The private names of the former single module ncps/wirings.py, still reachable from here.
_NOT_BUILT, _check_int, _seed_value = core._NOT_BUILT, core._check_int, core._seed_value
_POLARITY_1_TO_1, _POLARITY_2_TO_1 = core._POLARITY_1_TO_1, core._POLARITY_2_TO_1
_DEFAULT_NEURON_COLORS, _DEFAULT_SYNAPSE_COLORS = core._DEFAULT_NEURON_COLORS, core._DEFAULT_SYNAPSE_COLORS
_NEURON_TYPE_ORDER, _import_plotting = core._NEURON_TYPE_ORDER, core._import_plotting
_graph_layout, _short_label, _as_adjacency = core._graph_layout, core._short_label, core._as_adjacency
