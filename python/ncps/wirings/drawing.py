# Copyright © 2025 ncps-mlx contributors. Apache-2.0.

"""Drawing a wiring: the work of :meth:`Wiring.get_graph <ncps.wirings.Wiring.get_graph>` (a
``networkx.DiGraph``) and :meth:`Wiring.draw_graph <ncps.wirings.Wiring.draw_graph>` (matplotlib).

networkx and matplotlib stay optional (``pip install ncps[plot]``): they are imported on first
use, with an actionable error when missing. This module knows a wiring only through its public
interface (units, matrices, neuron types), so that ``core`` can call it without an import cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DEFAULT_NEURON_COLORS = {"sensory": "tab:olive", "inter": "tab:blue", "command": "tab:purple", "motor": "tab:orange"}
_DEFAULT_SYNAPSE_COLORS = {"excitatory": "tab:green", "inhibitory": "tab:red"}
_NEURON_TYPE_ORDER = ("sensory", "inter", "command", "motor")


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


def graph_of(wiring: Any, include_sensory_neurons: bool) -> Any:
    """The graph of :meth:`Wiring.get_graph <ncps.wirings.Wiring.get_graph>` (which checks that a
    wiring drawn with its sensory neurons is built)."""
    nx, _, _ = _import_plotting(matplotlib=False)

    graph = nx.DiGraph()
    for i in range(wiring.units):
        graph.add_node(f"neuron_{i}", neuron_type=wiring.get_type_of_neuron(i))

    def polarity(value):
        return "excitatory" if value > 0 else "inhibitory"

    if include_sensory_neurons:
        for j in range(wiring.input_dim):
            graph.add_node(f"sensory_{j}", neuron_type="sensory")
        for src, dest in zip(*np.nonzero(wiring.sensory_adjacency_matrix)):
            graph.add_edge(
                f"sensory_{src}", f"neuron_{dest}", polarity=polarity(wiring.sensory_adjacency_matrix[src, dest])
            )
    for src, dest in zip(*np.nonzero(wiring.adjacency_matrix)):
        graph.add_edge(f"neuron_{src}", f"neuron_{dest}", polarity=polarity(wiring.adjacency_matrix[src, dest]))
    return graph


def draw_graph(
    wiring: Any, layout: str, neuron_colors: dict[str, str] | None, synapse_colors: Any | None, draw_labels: bool
) -> list:
    """:meth:`Wiring.draw_graph <ncps.wirings.Wiring.draw_graph>` (see there for the arguments)."""
    nx, mpatches, plt = _import_plotting(matplotlib=True)
    from matplotlib.lines import Line2D

    graph = wiring.get_graph(include_sensory_neurons=wiring.is_built())
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
