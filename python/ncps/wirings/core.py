# Copyright © 2025 ncps-mlx contributors. Apache-2.0.

"""Wirings: the connectivity of a Neural Circuit Policy.

A wiring describes *which* neurons of a recurrent cell talk to each other and
*with what sign*. It holds two integer matrices whose entries are ``-1``
(inhibitory synapse), ``0`` (no synapse) or ``+1`` (excitatory synapse):

* ``adjacency_matrix`` of shape ``(units, units)``: ``A[src, dest]`` is the
  synapse from neuron ``src`` to neuron ``dest``.
* ``sensory_adjacency_matrix`` of shape ``(input_dim, units)``: ``S[src, dest]``
  is the synapse from input feature ("sensory neuron") ``src`` to neuron
  ``dest``.

The sensory matrix depends on the input size, which is often only known when
the first batch arrives, so a wiring has two phases: it is *constructed* with
the number of neurons, then *built* with :meth:`Wiring.build` once the input
size is known. Layers never build the object they were given; they build a
:meth:`Wiring.copy`, so one wiring can be handed to several layers.

Neurons are typed. The first ``output_dim`` neurons are the *motor* neurons
whose state is the cell's output; the others are *inter* neurons. The
:class:`NCP` wiring arranges its neurons in the layers of the C. elegans
inspired circuit, sensory -> inter -> command (recurrent) -> motor, with ids
``[0, motor) + [motor, motor + command) + [motor + command, units)``.

The random wirings (:class:`FullyConnected`, :class:`Random`, :class:`NCP` and
:class:`AutoNCP`) make exactly the same numpy random draws, in the same order,
as the official ``ncps`` package (version 1.0.1), so that for equal arguments
and input size both produce identical matrices. The known upstream bugs are
fixed where this does not break that guarantee (see the notes on each class).

A wiring's :meth:`Wiring.get_config` is a JSON-serializable dictionary that
:meth:`Wiring.from_config` turns back into an equal wiring of the same class.
"""

from __future__ import annotations

import copy as _copy
import inspect
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Wiring", "FullyConnected", "Random", "NCP", "AutoNCP"]

_NOT_BUILT = "Wiring must be built before use: call wiring.build(input_dim) first"

# Polarity choices, drawn with ``rng.choice`` exactly as upstream does (arrays
# rather than lists only to skip a conversion per draw). A third of the synapses
# of FullyConnected and Random are inhibitory; NCP synapses, one half.
_POLARITY_2_TO_1 = np.array([-1, 1, 1])
_POLARITY_1_TO_1 = np.array([-1, 1])

_DEFAULT_NEURON_COLORS = {"sensory": "tab:olive", "inter": "tab:blue", "command": "tab:purple", "motor": "tab:orange"}
_DEFAULT_SYNAPSE_COLORS = {"excitatory": "tab:green", "inhibitory": "tab:red"}
_NEURON_TYPE_ORDER = ("sensory", "inter", "command", "motor")


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` or raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _seed_value(seed: Any) -> Any:
    """A seed as stored in configs: numpy integers become ``int``."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    return seed


def _import_plotting(*, matplotlib: bool):
    """Import networkx (and optionally matplotlib) with an actionable error."""
    try:
        import networkx as nx

        if not matplotlib:
            return nx, None, None
        import matplotlib.patches as mpatches
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Drawing wirings needs networkx and matplotlib: pip install ncps[plot]") from e
    return nx, mpatches, plt


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
        nx, _, _ = _import_plotting(matplotlib=False)

        graph = nx.DiGraph()
        for i in range(self.units):
            graph.add_node(f"neuron_{i}", neuron_type=self.get_type_of_neuron(i))

        def polarity(value):
            return "excitatory" if value > 0 else "inhibitory"

        if include_sensory_neurons:
            for j in range(self.input_dim):
                graph.add_node(f"sensory_{j}", neuron_type="sensory")
            for src, dest in zip(*np.nonzero(self.sensory_adjacency_matrix)):
                graph.add_edge(
                    f"sensory_{src}", f"neuron_{dest}", polarity=polarity(self.sensory_adjacency_matrix[src, dest])
                )
        for src, dest in zip(*np.nonzero(self.adjacency_matrix)):
            graph.add_edge(f"neuron_{src}", f"neuron_{dest}", polarity=polarity(self.adjacency_matrix[src, dest]))
        return graph

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
        nx, mpatches, plt = _import_plotting(matplotlib=True)
        from matplotlib.lines import Line2D

        graph = self.get_graph(include_sensory_neurons=self.is_built())
        nodes_by_type: dict[str, list[str]] = {}
        for node, neuron_type in graph.nodes(data="neuron_type"):
            nodes_by_type.setdefault(neuron_type, []).append(node)
        types = [t for t in _NEURON_TYPE_ORDER if t in nodes_by_type]
        types += sorted(t for t in nodes_by_type if t not in _NEURON_TYPE_ORDER)
        pos = _graph_layout(nx, graph, layout, [nodes_by_type[t] for t in types])

        colors = dict(_DEFAULT_NEURON_COLORS)
        colors.update(neuron_colors or {})
        if synapse_colors is None:
            synapse_colors = dict(_DEFAULT_SYNAPSE_COLORS)
        elif isinstance(synapse_colors, str):
            synapse_colors = {"excitatory": synapse_colors, "inhibitory": synapse_colors}
        else:
            synapse_colors = {**_DEFAULT_SYNAPSE_COLORS, **synapse_colors}

        node_size = 360 if draw_labels else 200
        handles = []
        for neuron_type in types:
            color = colors.get(neuron_type, "tab:gray")
            nx.draw_networkx_nodes(
                graph,
                pos,
                nodelist=nodes_by_type[neuron_type],
                node_color=color,
                node_size=node_size,
                edgecolors="white",
                linewidths=0.8,
            )
            handles.append(mpatches.Patch(color=color, label=f"{neuron_type.capitalize()} neurons"))
        for kind in ("excitatory", "inhibitory"):
            edges = [(u, v) for u, v, p in graph.edges(data="polarity") if p == kind]
            if edges:
                # Curved edges keep the two directions of a reciprocal pair apart.
                nx.draw_networkx_edges(
                    graph,
                    pos,
                    edgelist=edges,
                    edge_color=synapse_colors[kind],
                    width=0.8,
                    alpha=0.7,
                    arrowsize=8,
                    node_size=node_size,
                    connectionstyle="arc3,rad=0.1",
                )
                handles.append(Line2D([], [], color=synapse_colors[kind], lw=1.5, label=f"{kind.capitalize()} synapse"))
        if draw_labels:
            labels = {node: _short_label(node) for node in graph.nodes}
            nx.draw_networkx_labels(graph, pos, labels=labels, font_size=7, font_color="white", font_weight="bold")
        if layout != "layered":  # rings stay round; columns use the whole width
            plt.gca().set_aspect("equal", adjustable="datalim")
        plt.gca().axis("off")
        return handles

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_config().items())
        built = f"input_dim={self.input_dim}" if self.is_built() else "unbuilt"
        return f"{type(self).__name__}({args}) [{built}]"


def _short_label(node: str) -> str:
    """``sensory_3`` -> ``s3``, ``neuron_12`` -> ``12``: small enough to sit inside a node."""
    kind, _, index = node.rpartition("_")
    return f"s{index}" if kind == "sensory" else index


def _graph_layout(nx: Any, graph: Any, layout: str, groups: list[list[str]]) -> dict:
    """Node positions for :meth:`Wiring.draw_graph`; ``groups`` lists the nodes per neuron type in
    the order sensory, inter, command, motor."""
    if layout == "shell":
        # Innermost ring first: a single motor neuron sits in the centre.
        return nx.shell_layout(graph, nlist=groups[::-1])
    if layout == "layered":
        layers = {node: i for i, group in enumerate(groups) for node in group}
        nx.set_node_attributes(graph, layers, "layer")
        return nx.multipartite_layout(graph, subset_key="layer")
    layouts = {
        "kamada": nx.kamada_kawai_layout,
        "circular": nx.circular_layout,
        "random": nx.random_layout,
        "spring": nx.spring_layout,
        "spectral": nx.spectral_layout,
        "spiral": nx.spiral_layout,
    }
    if layout not in layouts:
        raise ValueError(f"layout must be one of {sorted([*layouts, 'shell', 'layered'])}, got {layout!r}")
    return layouts[layout](graph)


def _as_adjacency(name: str, value: Any, shape: Sequence[int]) -> np.ndarray:
    """Validate a matrix from a config: the right shape and entries in {-1, 0, 1}."""
    matrix = np.asarray(value)
    if matrix.shape != tuple(shape):
        raise ValueError(f"config['{name}'] must have shape {tuple(shape)}, got {matrix.shape}")
    if not np.isin(matrix, (-1, 0, 1)).all():
        raise ValueError(f"config['{name}'] entries must be -1, 0 or 1")
    return matrix.astype(np.int32)


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
        self.self_connections = bool(self_connections)
        self.erev_init_seed = _seed_value(erev_init_seed)
        self._rng = np.random.default_rng(erev_init_seed)
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
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "erev_init_seed": self.erev_init_seed,
            "self_connections": self.self_connections,
        }


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
        self.random_seed = _seed_value(random_seed)
        self._rng = np.random.default_rng(random_seed)

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
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "sparsity_level": self.sparsity_level,
            "random_seed": self.random_seed,
        }


class NCP(Wiring):
    """A Neural Circuit Policy wiring: sensory -> inter -> command -> motor.

    The number of neurons is ``inter_neurons + command_neurons +
    motor_neurons`` and the motor neurons are the outputs. Neuron ids are
    motor ``[0, M)``, command ``[M, M + C)`` and inter ``[M + C, units)``.
    Layers (for :meth:`get_neurons_of_layer`): 0 inter, 1 command, 2 motor.

    :meth:`build` draws all synapses, from one ``np.random.RandomState(seed)``,
    in four stages, each polarity being excitatory with probability one half:

    1. each input connects to ``sensory_fanout`` distinct inter neurons; each
       inter neuron left without input then gets inputs from
       ``clip(input_dim * sensory_fanout // inter, 1, input_dim)`` inputs;
    2. each inter neuron connects to ``inter_fanout`` distinct command
       neurons; each command neuron left without input gets it from
       ``max(inter * inter_fanout // command, 1)`` inter neurons;
    3. ``recurrent_command_synapses`` command -> command synapses are drawn
       with replacement (self-loops allowed, a repeat overwrites);
    4. each motor neuron gets ``motor_fanin`` distinct command neurons as
       inputs; each command neuron left without output then connects to
       ``clip(motor * motor_fanin // command, 1, motor)`` motor neurons.

    Stage 2 fixes an upstream bug: the official package clips the fan-in of
    a forgotten command neuron to the number of *command* neurons instead of
    the number of *inter* neurons. This only changes the wiring when
    ``inter * inter_fanout // command > command`` and some command neuron
    is missed by every inter neuron.

    Use :class:`AutoNCP` to derive all these numbers from a neuron count.

    Args:
        inter_neurons (int): The number of inter neurons (layer 0).
        command_neurons (int): The number of command neurons (layer 1).
        motor_neurons (int): The number of motor neurons (layer 2), which is
          the output size.
        sensory_fanout (int): The number of inter neurons each input
          connects to; at most ``inter_neurons``.
        inter_fanout (int): The number of command neurons each inter neuron
          connects to; at most ``command_neurons``.
        recurrent_command_synapses (int): The number of recurrent command
          synapses drawn.
        motor_fanin (int): The number of command neurons each motor neuron
          receives from; at most ``command_neurons``.
        seed (int): Seed of the wiring. Default: ``22222``.
    """

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ):
        n_inter = _check_int("inter_neurons", inter_neurons, 1)
        n_command = _check_int("command_neurons", command_neurons, 1)
        n_motor = _check_int("motor_neurons", motor_neurons, 1)
        super().__init__(n_inter + n_command + n_motor)
        self.set_output_dim(n_motor)

        self._num_inter_neurons = n_inter
        self._num_command_neurons = n_command
        self._num_motor_neurons = n_motor
        self._sensory_fanout = _check_int("sensory_fanout", sensory_fanout)
        self._inter_fanout = _check_int("inter_fanout", inter_fanout)
        self._recurrent_command_synapses = _check_int("recurrent_command_synapses", recurrent_command_synapses)
        self._motor_fanin = _check_int("motor_fanin", motor_fanin)
        if self._sensory_fanout > n_inter:
            raise ValueError(f"sensory_fanout ({sensory_fanout}) must be <= inter_neurons ({n_inter})")
        if self._inter_fanout > n_command:
            raise ValueError(f"inter_fanout ({inter_fanout}) must be <= command_neurons ({n_command})")
        if self._motor_fanin > n_command:
            raise ValueError(f"motor_fanin ({motor_fanin}) must be <= command_neurons ({n_command})")
        self._seed = _seed_value(seed)
        self._rng = np.random.RandomState(seed)

        self._motor_neurons = list(range(0, n_motor))
        self._command_neurons = list(range(n_motor, n_motor + n_command))
        self._inter_neurons = list(range(n_motor + n_command, self.units))

    @property
    def num_layers(self) -> int:
        return 3

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        """Return the ids of layer 0 (inter), 1 (command) or 2 (motor)."""
        layers = (self._inter_neurons, self._command_neurons, self._motor_neurons)
        if layer_id not in (0, 1, 2):
            raise ValueError(f"layer_id must be 0, 1 or 2, got {layer_id}")
        return list(layers[layer_id])

    def get_type_of_neuron(self, neuron_id: int) -> str:
        """Return ``"motor"``, ``"command"`` or ``"inter"``."""
        self._check_neuron("neuron_id", neuron_id)
        if neuron_id < self._num_motor_neurons:
            return "motor"
        if neuron_id < self._num_motor_neurons + self._num_command_neurons:
            return "command"
        return "inter"

    def _polarity(self) -> int:
        return self._rng.choice(_POLARITY_1_TO_1)

    def _connect_layers(
        self, add: Any, sources: list[int], targets: list[int], fanout: int, fallback_fanin: int
    ) -> None:
        """Connect each source to ``fanout`` distinct targets, then give each
        target that got no synapse ``fallback_fanin`` distinct sources."""
        unreached = list(targets)
        for src in sources:
            for dest in self._rng.choice(targets, size=fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                add(src, dest, self._polarity())
        for dest in unreached:
            for src in self._rng.choice(sources, size=fallback_fanin, replace=False):
                add(src, dest, self._polarity())

    def _build_synapses(self) -> None:
        n_sensory = self.input_dim
        n_inter = self._num_inter_neurons
        n_command = self._num_command_neurons
        n_motor = self._num_motor_neurons
        sensory = list(range(n_sensory))

        # 1. sensory -> inter.
        fanin = int(n_sensory * self._sensory_fanout / n_inter)
        self._connect_layers(
            self.add_sensory_synapse,
            sensory,
            self._inter_neurons,
            self._sensory_fanout,
            int(np.clip(fanin, 1, n_sensory)),
        )

        # 2. inter -> command (upper clip bound fixed, see the class docstring).
        fanin = int(n_inter * self._inter_fanout / n_command)
        self._connect_layers(
            self.add_synapse,
            self._inter_neurons,
            self._command_neurons,
            self._inter_fanout,
            int(np.clip(fanin, 1, n_inter)),
        )

        # 3. recurrent command synapses.
        for _ in range(self._recurrent_command_synapses):
            src = self._rng.choice(self._command_neurons)
            dest = self._rng.choice(self._command_neurons)
            self.add_synapse(src, dest, self._polarity())

        # 4. command -> motor: seen from the motor side, each motor neuron
        # draws its inputs, then each command neuron left without an output
        # draws its motor targets.
        unreached = list(self._command_neurons)
        for dest in self._motor_neurons:
            for src in self._rng.choice(self._command_neurons, size=self._motor_fanin, replace=False):
                if src in unreached:
                    unreached.remove(src)
                self.add_synapse(src, dest, self._polarity())
        fanout = int(np.clip(int(n_motor * self._motor_fanin / n_command), 1, n_motor))
        for src in unreached:
            for dest in self._rng.choice(self._motor_neurons, size=fanout, replace=False):
                self.add_synapse(src, dest, self._polarity())

    def _init_config(self) -> dict[str, Any]:
        return {
            "inter_neurons": self._num_inter_neurons,
            "command_neurons": self._num_command_neurons,
            "motor_neurons": self._num_motor_neurons,
            "sensory_fanout": self._sensory_fanout,
            "inter_fanout": self._inter_fanout,
            "recurrent_command_synapses": self._recurrent_command_synapses,
            "motor_fanin": self._motor_fanin,
            "seed": self._seed,
        }


class AutoNCP(NCP):
    """An :class:`NCP` wiring sized from a neuron count and a sparsity level.

    With ``d = 1 - sparsity_level`` and ``n = units - output_size``:
    ``command = max(int(0.4 * n), 1)``, ``inter = n - command``,
    ``sensory_fanout = max(int(inter * d), 1)``,
    ``inter_fanout = motor_fanin = max(int(command * d), 1)`` and
    ``recurrent_command_synapses = max(int(2 * command * d), 1)``.

    Args:
        units (int): The total number of neurons.
        output_size (int): The number of motor neurons (outputs); must be less
          than ``units - 2``. About ``0.3 * units`` is a typical choice.
        sparsity_level (float): From ``0.1`` (dense) to ``1.0`` (sparsest).
          Default: ``0.5``.
        seed (int): Seed of the wiring. Default: ``22222``.
    """

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222):
        units = _check_int("units", units, 1)
        output_size = _check_int("output_size", output_size, 1)
        if output_size >= units - 2:
            raise ValueError(
                f"output_size must be less than units - 2, got units={units} and output_size={output_size}"
            )
        if (
            isinstance(sparsity_level, bool)
            or not isinstance(sparsity_level, numbers.Real)
            or not 0.1 <= sparsity_level <= 1.0
        ):
            raise ValueError(f"sparsity_level must be between 0.1 and 1.0, got {sparsity_level}")
        self._output_size = output_size
        self._sparsity_level = float(sparsity_level)

        density = 1.0 - sparsity_level
        inter_and_command = units - output_size
        command = max(int(0.4 * inter_and_command), 1)
        inter = inter_and_command - command
        super().__init__(
            inter_neurons=inter,
            command_neurons=command,
            motor_neurons=output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )

    def _init_config(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "output_size": self._output_size,
            "sparsity_level": self._sparsity_level,
            "seed": self._seed,
        }
