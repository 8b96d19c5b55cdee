# Copyright © 2025 ncps-mlx contributors. Apache-2.0.

"""The Neural Circuit Policy wirings: :class:`NCP` (sensory -> inter -> command -> motor, from
explicit sizes and fan-outs) and :class:`AutoNCP` (those numbers derived from a neuron count)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .core import Wiring, _check_int, _seed_value

# Polarity choice of NCP synapses, drawn with ``rng.choice`` exactly as upstream does: one half
# of them inhibitory.
_POLARITY_1_TO_1 = np.array([-1, 1])


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
        self._rng = np.random.RandomState(self._seed)

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
        named_privately = {k: getattr(self, f"_{k}") for k in ("output_size", "sparsity_level", "seed")}
        return {"units": self.units, **named_privately}
