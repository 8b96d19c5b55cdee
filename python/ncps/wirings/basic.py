# Copyright © 2025 ncps-mlx contributors. Apache-2.0.

"""The unstructured wirings: :class:`FullyConnected` (every synapse) and :class:`Random` (a
random sparse subset), drawn like the official package's."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import _checks
from .core import Wiring, _seed_value

# Polarity choices, drawn with ``rng.choice`` exactly as upstream does (an array rather than a
# list only to skip a conversion per draw): a third of the synapses are inhibitory.
_POLARITY_2_TO_1 = np.array([-1, 1, 1])


class FullyConnected(Wiring):
    """Every neuron and every input connects to every neuron.

    Polarities are drawn with ``P(excitatory) = 2/3`` from one
    ``np.random.default_rng(erev_init_seed)`` stream: internal synapses at
    construction (row-major), then sensory synapses in :meth:`build`.

    Args:
        units (int): The number of neurons.
        output_dim (int, optional): The number of motor neurons. Default:
          ``units``.
        erev_init_seed (int): Seed of the polarity draws. Default: ``1111``.
        self_connections (bool): Whether neurons connect to themselves.
          Default: ``True``.
    """

    def __init__(
        self, units: int, output_dim: int | None = None, erev_init_seed: int = 1111, self_connections: bool = True
    ):
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        self.self_connections = _checks.boolean(self_connections, "self_connections")
        self.erev_init_seed = _seed_value(erev_init_seed, "erev_init_seed")
        self._rng = np.random.default_rng(self.erev_init_seed)
        for src in range(self.units):
            for dest in range(self.units):
                if src == dest and not self.self_connections:
                    continue
                self.add_synapse(src, dest, self._rng.choice(_POLARITY_2_TO_1))

    def _build_synapses(self) -> None:
        for src in range(self.input_dim):
            for dest in range(self.units):
                self.add_sensory_synapse(src, dest, self._rng.choice(_POLARITY_2_TO_1))

    def _init_config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("units", "output_dim", "erev_init_seed", "self_connections")}


class Random(Wiring):
    """A random sparse wiring.

    ``round(units**2 * (1 - sparsity_level))`` distinct internal synapses and
    ``round(input_dim * units * (1 - sparsity_level))`` distinct sensory
    synapses are sampled, each with ``P(excitatory) = 2/3``, from one
    ``np.random.default_rng(random_seed)`` stream.

    Args:
        units (int): The number of neurons.
        output_dim (int, optional): The number of motor neurons. Default:
          ``units``.
        sparsity_level (float): The fraction of absent synapses, in
          ``[0, 1)``. Default: ``0.0``.
        random_seed (int): Seed of the sampling. Default: ``1111``.
    """

    def __init__(self, units: int, output_dim: int | None = None, sparsity_level: float = 0.0, random_seed: int = 1111):
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        if (
            isinstance(sparsity_level, bool)
            or not isinstance(sparsity_level, numbers.Real)
            or not 0.0 <= sparsity_level < 1.0
        ):
            raise ValueError(f"sparsity_level must be a number in [0, 1), got {sparsity_level!r}")
        self.sparsity_level = float(sparsity_level)
        self.random_seed = _seed_value(random_seed, "random_seed")
        self._rng = np.random.default_rng(self.random_seed)

        n = self.units
        count = int(np.round(n * n * (1 - self.sparsity_level)))
        # Choosing flat indices of the row-major (src, dest) pairs makes the
        # same draws as choosing rows of the (n * n, 2) array of pairs.
        for flat in self._rng.choice(n * n, size=count, replace=False):
            src, dest = divmod(int(flat), n)
            self.add_synapse(src, dest, self._rng.choice(_POLARITY_2_TO_1))

    def _build_synapses(self) -> None:
        n = self.units
        count = int(np.round(self.input_dim * n * (1 - self.sparsity_level)))
        for flat in self._rng.choice(self.input_dim * n, size=count, replace=False):
            src, dest = divmod(int(flat), n)
            # The official package draws the polarity of each sensory synapse
            # twice and keeps the second draw. The extra draw is harmless (the
            # polarity is still 2:1 excitatory) and keeping it keeps the
            # matrices identical to the official ones.
            self._rng.choice(_POLARITY_2_TO_1)
            self.add_sensory_synapse(src, dest, self._rng.choice(_POLARITY_2_TO_1))

    def _init_config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("units", "output_dim", "sparsity_level", "random_seed")}
