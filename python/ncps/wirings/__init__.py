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

from . import basic, core, drawing, ncp
from .basic import FullyConnected, Random
from .core import Wiring
from .ncp import NCP, AutoNCP

__all__ = ["Wiring", "FullyConnected", "Random", "NCP", "AutoNCP"]

# The private names of the former single module ncps/wirings.py, still reachable from here.
_NOT_BUILT, _check_int, _seed_value = core._NOT_BUILT, core._check_int, core._seed_value
_as_adjacency, _POLARITY_1_TO_1, _POLARITY_2_TO_1 = core._as_adjacency, ncp._POLARITY_1_TO_1, basic._POLARITY_2_TO_1
_DEFAULT_NEURON_COLORS, _DEFAULT_SYNAPSE_COLORS = drawing._DEFAULT_NEURON_COLORS, drawing._DEFAULT_SYNAPSE_COLORS
_NEURON_TYPE_ORDER, _import_plotting = drawing._NEURON_TYPE_ORDER, drawing._import_plotting
_graph_layout, _short_label = drawing._graph_layout, drawing._short_label
