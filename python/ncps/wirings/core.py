# Copyright © 2025 ncps-mlx contributors. Apache-2.0.

"""The wiring core: :class:`Wiring`, a set of neurons and signed synapses built in two phases,
with its configuration round trip, and the argument checks the wirings share. The concepts are
described in :mod:`ncps.wirings`."""

from __future__ import annotations

import copy as _copy
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _checks
from . import drawing

_NOT_BUILT = "Wiring must be built before use: call wiring.build(input_dim) first"


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` or raise an error naming it (:func:`ncps._checks.integer`)."""
    return _checks.integer(value, name, minimum)


def _seed_value(seed: Any, name: str = "seed") -> int:
    """A seed checked (an integer in ``[0, 2**32)``, numpy's legacy ``RandomState`` range, which
    NCP uses as upstream does) and stored in configs as an ``int``."""
    return _checks.seed(seed, name, _checks.MAX_SEED)


class Wiring:
    """Base class of all wirings: a set of neurons and signed synapses.

    A bare ``Wiring`` has no synapses; add them with :meth:`add_synapse` and,
    once built, :meth:`add_sensory_synapse`. Subclasses draw their synapses
    at construction (internal ones) and in :meth:`build` (sensory ones).

    Args:
        units (int): The number of neurons (the state size of the cell).
    """

    def __init__(self, units: int):
        self.units = _check_int("units", units, 1)
        self.adjacency_matrix = np.zeros((self.units, self.units), dtype=np.int32)
        self.sensory_adjacency_matrix: np.ndarray | None = None
        self.input_dim: int | None = None
        self.output_dim: int | None = None

    # ----------------------------------------------------------------- layers
    @property
    def num_layers(self) -> int:
        """The number of neuron layers (1 unless the wiring is layered)."""
        return 1

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        """Return the ids of the neurons in layer ``layer_id``."""
        if layer_id != 0:
            raise ValueError(f"layer_id must be in [0, {self.num_layers}), got {layer_id}")
        return list(range(self.units))

    @property
    def layer_sizes(self) -> list[int]:
        """The number of neurons of each layer, first layer first."""
        return [len(self.get_neurons_of_layer(i)) for i in range(self.num_layers)]

    def get_type_of_neuron(self, neuron_id: int) -> str:
        """Return ``"motor"`` for the first ``output_dim`` neurons, else ``"inter"``."""
        self._check_neuron("neuron_id", neuron_id)
        if self.output_dim is not None and neuron_id < self.output_dim:
            return "motor"
        return "inter"

    # --------------------------------------------------------------- building
    def is_built(self) -> bool:
        """Whether :meth:`build` has been called (the input size is known)."""
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Set the number of inputs and create the sensory synapses.

        Building twice with the same ``input_dim`` does nothing; building with
        a different one raises a ``ValueError`` (use :meth:`copy` before
        building to reuse a wiring for another input size).

        Args:
            input_dim (int): The number of input features (sensory neurons).
        """
        input_dim = _check_int("input_dim", input_dim, 1)
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise ValueError(
                    "Conflicting input dimensions: the wiring was built with "
                    f"input_dim={self.input_dim} but build() was called with "
                    f"input_dim={input_dim}. Build a copy() instead."
                )
            return
        self.input_dim = input_dim
        self.sensory_adjacency_matrix = np.zeros((input_dim, self.units), dtype=np.int32)
        self._build_synapses()

    def _build_synapses(self) -> None:
        """Draw the synapses that depend on the input size; called once by
        :meth:`build` after the sensory matrix is allocated."""

    def set_output_dim(self, output_dim: int) -> None:
        """Set the number of motor (output) neurons, the first ``output_dim`` ids."""
        self.output_dim = _check_int("output_dim", output_dim, 1)
        if self.output_dim > self.units:
            raise ValueError(f"output_dim must be <= units ({self.units}), got {output_dim}")

    def copy(self) -> Wiring:
        """Return an independent deep copy, random number generator included.

        A copy of an unbuilt wiring builds exactly like the original would.
        """
        return _copy.deepcopy(self)

    # --------------------------------------------------------------- synapses
    def _check_neuron(self, name: str, neuron_id: int) -> None:
        if not 0 <= neuron_id < self.units:
            raise ValueError(f"{name} must be in [0, {self.units}) (the number of units), got {neuron_id}")

    @staticmethod
    def _check_polarity(polarity: int) -> int:
        if polarity not in (-1, 1):
            raise ValueError(f"polarity must be -1 or +1, got {polarity!r}")
        return int(polarity)

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Add (or overwrite) the synapse from neuron ``src`` to neuron ``dest``.

        Args:
            src (int): The presynaptic neuron id.
            dest (int): The postsynaptic neuron id.
            polarity (int): ``+1`` for excitatory, ``-1`` for inhibitory.
        """
        self._check_neuron("src", src)
        self._check_neuron("dest", dest)
        self.adjacency_matrix[src, dest] = self._check_polarity(polarity)

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Add (or overwrite) the synapse from input ``src`` to neuron ``dest``.

        Args:
            src (int): The input feature (sensory neuron) id.
            dest (int): The postsynaptic neuron id.
            polarity (int): ``+1`` for excitatory, ``-1`` for inhibitory.
        """
        if not self.is_built():
            raise ValueError(_NOT_BUILT)
        if not 0 <= src < self.input_dim:
            raise ValueError(f"src must be in [0, {self.input_dim}) (the input dimension), got {src}")
        self._check_neuron("dest", dest)
        self.sensory_adjacency_matrix[src, dest] = self._check_polarity(polarity)

    @property
    def synapse_count(self) -> int:
        """The number of synapses between the neurons."""
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        """The number of synapses from the inputs to the neurons."""
        if not self.is_built():
            raise ValueError(_NOT_BUILT)
        return int(np.abs(self.sensory_adjacency_matrix).sum())

    def erev_initializer(self, shape=None, dtype=None) -> np.ndarray:
        """Initial reversal potentials of the synapses: a copy of the adjacency."""
        return np.copy(self.adjacency_matrix)

    def sensory_erev_initializer(self, shape=None, dtype=None) -> np.ndarray:
        """Initial reversal potentials of the sensory synapses."""
        if not self.is_built():
            raise ValueError(_NOT_BUILT)
        return np.copy(self.sensory_adjacency_matrix)

    # ----------------------------------------------------------------- config
    def _init_config(self) -> dict[str, Any]:
        """The constructor arguments that recreate this wiring."""
        return {"units": self.units}

    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serializable description of the wiring.

        It holds the class name, the constructor arguments, the input and
        output sizes and both matrices, so that :meth:`from_config` restores an
        equal wiring, including synapses added by hand.
        """
        config = {"class": type(self).__name__}
        config.update(self._init_config())
        config.update(
            {
                "units": self.units,
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "adjacency_matrix": self.adjacency_matrix.tolist(),
                "sensory_adjacency_matrix": (
                    None if self.sensory_adjacency_matrix is None else self.sensory_adjacency_matrix.tolist()
                ),
            }
        )
        return config

    @classmethod
    def _subclass_named(cls, name: str) -> type:
        pending = [Wiring]
        while pending:
            klass = pending.pop()
            if klass.__name__ == name:
                return klass
            pending.extend(klass.__subclasses__())
        raise ValueError(f"Unknown wiring class {name!r} in config['class']")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Wiring:
        """Create a wiring from the output of :meth:`get_config`.

        The ``"class"`` entry selects the subclass, so ``Wiring.from_config``
        returns an ``NCP`` for an ``NCP`` config. Configs without it (such as
        the official package's) are read as configs of ``cls``.
        """
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict from get_config(), got {type(config).__name__}")
        config = dict(config)
        name = config.pop("class", None)
        klass = cls if name is None else cls._subclass_named(name)
        if not issubclass(klass, cls):
            raise ValueError(f"config['class'] is {name!r}, which is not a subclass of {cls.__name__}")

        params = inspect.signature(klass.__init__).parameters
        init_args = {k: config.pop(k) for k in list(config) if k in params}
        units = config.pop("units", None)
        input_dim = config.pop("input_dim", None)
        output_dim = config.pop("output_dim", None)
        adjacency = config.pop("adjacency_matrix", None)
        sensory = config.pop("sensory_adjacency_matrix", None)
        if config:
            raise ValueError(f"Unexpected keys in {klass.__name__} config: {sorted(config)}")

        wiring = klass(**init_args)
        if units is not None and units != wiring.units:
            raise ValueError(f"config['units'] is {units} but the {klass.__name__} arguments give {wiring.units} units")
        if input_dim is not None:
            wiring.build(input_dim)
        if output_dim is not None:
            wiring.set_output_dim(output_dim)
        if adjacency is not None:
            wiring.adjacency_matrix = _as_adjacency("adjacency_matrix", adjacency, (wiring.units, wiring.units))
        if sensory is not None:
            if input_dim is None:
                raise ValueError("config has a sensory_adjacency_matrix but no input_dim")
            wiring.sensory_adjacency_matrix = _as_adjacency(
                "sensory_adjacency_matrix", sensory, (input_dim, wiring.units)
            )
        return wiring

    # ------------------------------------------------------------------ graph
    def get_graph(self, include_sensory_neurons: bool = True):
        """Return the wiring as a ``networkx.DiGraph``.

        Nodes are named ``"neuron_{i}"`` and ``"sensory_{j}"`` and carry a
        ``neuron_type`` attribute; edges carry ``polarity`` (``"excitatory"``
        or ``"inhibitory"``).

        Args:
            include_sensory_neurons (bool): Include the inputs and their
              synapses. Requires a built wiring. Default: ``True``.
        """
        if include_sensory_neurons and not self.is_built():
            raise ValueError(_NOT_BUILT)
        return drawing.graph_of(self, include_sensory_neurons)

    def draw_graph(
        self,
        layout: str = "shell",
        neuron_colors: dict[str, str] | None = None,
        synapse_colors: Any | None = None,
        draw_labels: bool = False,
    ) -> list:
        """Draw the wiring on the current matplotlib axes.

        Sensory, inter, command and motor neurons get distinct colours;
        excitatory synapses are green and inhibitory ones red by default.
        Labels are short enough to fit inside the nodes: ``s{j}`` for sensory
        input ``j`` and ``{i}`` for neuron ``i`` (its state index).

        Example:

            >>> import matplotlib.pyplot as plt
            >>> handles = wiring.draw_graph(layout="layered", draw_labels=True)
            >>> plt.legend(handles=handles, loc="upper left", bbox_to_anchor=(1, 1))
            >>> plt.show()

        Args:
            layout (str): ``"shell"`` (concentric rings, one per neuron type:
              motor innermost, sensory outermost), ``"layered"`` (one column
              per type, sensory → inter → command → motor), or a networkx
              layout: ``"kamada"``, ``"circular"``, ``"random"``, ``"spring"``,
              ``"spectral"``, ``"spiral"``.
            neuron_colors (dict, optional): Colour per neuron type, merged
              over the defaults.
            synapse_colors (str or dict, optional): One colour for all synapses
              or a dict with ``"excitatory"`` and ``"inhibitory"`` entries.
            draw_labels (bool): Draw the (short) node names. Default: ``False``.

        Returns:
            Legend handles for ``plt.legend(handles=...)``: one
            ``matplotlib.patches.Patch`` per neuron type drawn, then one
            ``matplotlib.lines.Line2D`` per synapse polarity drawn.
        """
        return drawing.draw_graph(self, layout, neuron_colors, synapse_colors, draw_labels)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_config().items())
        built = f"input_dim={self.input_dim}" if self.is_built() else "unbuilt"
        return f"{type(self).__name__}({args}) [{built}]"


def _as_adjacency(name: str, value: Any, shape: Sequence[int]) -> np.ndarray:
    """Validate a matrix from a config: the right shape and entries in {-1, 0, 1}."""
    matrix = np.asarray(value)
    if matrix.shape != tuple(shape):
        raise ValueError(f"config['{name}'] must have shape {tuple(shape)}, got {matrix.shape}")
    if not np.isin(matrix, (-1, 0, 1)).all():
        raise ValueError(f"config['{name}'] entries must be -1, 0 or 1")
    return matrix.astype(np.int32)
