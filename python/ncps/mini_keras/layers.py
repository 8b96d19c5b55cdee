"""Keras-style layers: the input size of each layer is inferred when the model is built.

Every layer is an ``mlx.nn.Module``. Shapes exclude the batch axis (``None`` for a free axis,
such as a variable sequence length). Recurrent layers (:class:`CfC`, :class:`LTC`) follow the
Keras ``ncps`` conventions: ``return_sequences=False`` by default, and irregularly sampled input
arrives as a tuple ``(x, timespans)`` (or ``(x, timespans, mask)``) given to the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .. import _checks
from .. import layers as _layers
from ..persistence import decode_config, encode_config
from ..wirings import Wiring
from . import activations as _act

Shape = tuple  # entries are int or None, batch axis excluded

__all__ = [
    "Layer",
    "InputLayer",
    "Input",
    "Dense",
    "Dropout",
    "Activation",
    "Flatten",
    "Reshape",
    "Lambda",
    "CfC",
    "LTC",
]


def _shape_str(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in (None, *shape)) + ("," if not shape else "") + ")"


class Layer(nn.Module):
    """Base class of the mini-Keras layers.

    Subclasses implement :meth:`build` (create the weights for an input shape),
    :meth:`compute_output_shape`, :meth:`call` and :meth:`get_config` (the constructor arguments,
    JSON-serializable). ``input_shape=`` on the first layer of a model declares the model's input
    shape, as in Keras.
    """

    #: Whether the layer takes ``timespans`` and ``mask`` (recurrent layers).
    recurrent = False

    def __init__(self, name: str | None = None, input_shape: Sequence[int | None] | None = None):
        super().__init__()
        self.layer_name = name
        self.input_shape_hint = None if input_shape is None else tuple(input_shape)
        self.built = False
        self.built_input_shape: Shape | None = None

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Create the weights for inputs of shape ``input_shape`` (batch axis excluded)."""
        self.built = True
        self.built_input_shape = tuple(input_shape)

    def ensure_built(self, input_shape: Shape) -> None:
        if not self.built:
            self.build(tuple(input_shape))
        elif self.built_input_shape is not None and not _compatible(self.built_input_shape, input_shape):
            raise ValueError(
                f"layer {self.layer_name or type(self).__name__} was built for input shape "
                f"{_shape_str(self.built_input_shape)}, got {_shape_str(tuple(input_shape))}"
            )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """The output shape for ``input_shape`` (batch axis excluded)."""
        return tuple(input_shape)

    # -- calling ----------------------------------------------------------------------------
    def call(self, x: mx.array) -> mx.array:
        return x

    def __call__(self, x: mx.array, **kwargs) -> mx.array:
        self.ensure_built(tuple(x.shape[1:]))
        return self.call(x, **kwargs)

    # -- config -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments (JSON-serializable)."""
        return {}

    def count_params(self) -> tuple[int, int]:
        """``(total, trainable)`` parameter counts (the layer must be built)."""
        from mlx.utils import tree_flatten

        total = sum(v.size for _, v in tree_flatten(self.parameters()))
        trainable = sum(v.size for _, v in tree_flatten(self.trainable_parameters()))
        return total, trainable


def _compatible(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


class InputLayer(Layer):
    """Declares the model input's shape (batch axis excluded), e.g. ``InputLayer((None, 2))`` for
    sequences of any length with 2 features. It has no weights and is not listed by ``summary``."""

    def __init__(
        self,
        shape: Sequence[int | None] | None = None,
        name: str | None = None,
        *,
        input_shape: Sequence[int | None] | None = None,
    ):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer needs a shape, e.g. InputLayer((None, 2))")
        super().__init__(name=name, input_shape=tuple(shape))
        self.shape = tuple(None if d is None else int(d) for d in shape)

    def get_config(self) -> dict:
        return {"shape": list(self.shape)}


def Input(shape: Sequence[int | None], name: str | None = None) -> InputLayer:
    """``keras.Input(shape)`` for a :class:`Sequential` model: an :class:`InputLayer`."""
    return InputLayer(shape, name=name)


class Dense(Layer):
    """``activation(x @ W + b)`` on the last axis (so it applies to every step of a sequence).

    Args:
        units: output features.
        activation: None (linear), a name (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"softmax"``,
            ``"gelu"``, … see :mod:`ncps.mini_keras.activations`) or a callable.
        use_bias: add a bias.
    """

    def __init__(self, units: int, activation: _act.ActivationLike = None, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.integer(units, "units")
        self.activation = activation
        self.activation_fn = _act.get(activation)
        self.use_bias = _checks.boolean(use_bias, "use_bias")

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"Dense needs a known last axis, got input shape {_shape_str(input_shape)}")
        self.linear = nn.Linear(int(input_shape[-1]), self.units, bias=self.use_bias)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def call(self, x):
        return self.activation_fn(self.linear(x))

    def get_config(self):
        name = _act.name_of(self.activation)
        if name is None and self.activation is not None:
            raise ValueError("a Dense layer with a custom activation callable cannot be saved; use a name")
        return {"units": self.units, "activation": name, "use_bias": self.use_bias}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs while training (``model.train()``), scaling the
    rest by ``1 / (1 - rate)``; the identity in evaluation mode."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.dropout = nn.Dropout(self.rate)

    def call(self, x):
        return self.dropout(x)

    def get_config(self):
        return {"rate": self.rate}


class Activation(Layer):
    """Applies an activation function (by name or callable)."""

    def __init__(self, activation: _act.ActivationLike, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.activation_fn = _act.get(activation)

    def call(self, x):
        return self.activation_fn(x)

    def get_config(self):
        name = _act.name_of(self.activation)
        if name is None and self.activation is not None:
            raise ValueError("an Activation layer with a custom callable cannot be saved; use a name")
        return {"activation": name}


class Flatten(Layer):
    """Flattens all axes but the batch axis."""

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape):
            return (None,)
        size = 1
        for d in input_shape:
            size *= d
        return (size,)

    def call(self, x):
        return x.reshape(x.shape[0], -1)


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def compute_output_shape(self, input_shape):
        if -1 not in self.target_shape:
            return self.target_shape
        known = 1
        for d in self.target_shape:
            known *= d if d != -1 else 1
        total = None if any(d is None for d in input_shape) else math.prod(input_shape)
        return tuple((None if total is None else total // known) if d == -1 else d for d in self.target_shape)

    def call(self, x):
        return x.reshape(x.shape[0], *self.target_shape)

    def get_config(self):
        return {"target_shape": list(self.target_shape)}


class Lambda(Layer):
    """Wraps a function of the layer input, e.g. ``Lambda(lambda x: x[:, -8:])``.

    The output shape is found by calling ``fn`` on zeros (MLX computes shapes without running
    anything), unless ``output_shape`` is given. Models containing a Lambda cannot be saved.
    """

    def __init__(
        self, function: Callable[[mx.array], mx.array], output_shape: Sequence[int | None] | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.function = function
        self.output_shape = None if output_shape is None else tuple(output_shape)

    def compute_output_shape(self, input_shape):
        if self.output_shape is not None:
            return self.output_shape
        probe = mx.zeros((1, *(1 if d is None else d for d in input_shape)))
        return tuple(self.function(probe).shape[1:])

    def call(self, x):
        return self.function(x)

    def get_config(self):
        raise ValueError("a model with a Lambda layer cannot be saved (functions are not serializable)")


# -- recurrent layers -------------------------------------------------------------------------
def _last_valid(outputs: mx.array, mask: mx.array) -> mx.array:
    """``outputs (B, T, F)`` at each row's last step where ``mask`` is True."""
    T = outputs.shape[1]
    mask = mask.astype(mx.bool_)
    idx = (T - 1) - mx.argmax(mask[:, ::-1].astype(mx.int32), axis=1)
    return mx.take_along_axis(outputs, idx.reshape(-1, 1, 1), axis=1)[:, 0]


def _mask_lengths(x: mx.array, mask: mx.array) -> mx.array:
    """The lengths ``(B,)`` a mask ``(B, T)`` gives: each row's last True step + 1 (``T`` for a row
    without one, as :func:`_last_valid` reads it)."""
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"mask must have shape (batch, T) = ({x.shape[0]}, {x.shape[1]}), one entry per step of x "
            f"{_shape_str(tuple(x.shape))}, got {_shape_str(tuple(mask.shape))}"
        )
    T = mask.shape[1]
    return T - mx.argmax(mask.astype(mx.bool_)[:, ::-1].astype(mx.int32), axis=1).astype(mx.int32)


def _carry_forward(outputs: mx.array, mask: mx.array) -> mx.array:
    """Masked steps repeat the output of the latest unmasked step (Keras' masked RNN output)."""
    T = outputs.shape[1]
    steps = mx.arange(T)[None, :]
    idx = mx.maximum(mx.cummax(mx.where(mask.astype(mx.bool_), steps, -1), axis=1), 0)
    return mx.take_along_axis(outputs, idx[..., None], axis=1)


class _Recurrent(Layer):
    """Shared logic of :class:`CfC` and :class:`LTC`: build the ncps layer once the input size is
    known, handle ``timespans`` and ``mask``, and serialise the wiring."""

    recurrent = True
    _ncps_layer: type  # the ncps layer built: ncps.CfC or ncps.LTC
    # The subclass's further constructor arguments: kept as attributes of the same name, passed
    # on to the ncps layer and saved in the config, in this order.
    _options: tuple[str, ...] = ()

    def __init__(self, units: int | Wiring, return_sequences: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, Wiring):
            units = _checks.integer(units, "units")
        self.units = units
        self.return_sequences = _checks.boolean(return_sequences, "return_sequences")

    def _option_values(self) -> dict:
        return {name: getattr(self, name) for name in self._options}

    def _make(self, input_size: int) -> _layers.RNN:
        return self._ncps_layer(input_size, self.units, return_sequences=True, **self._option_values())

    def get_config(self) -> dict:
        return {"units": self._units_config(), "return_sequences": self.return_sequences, **self._option_values()}

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects sequences (time, features) with known features, "
                f"got input shape {_shape_str(input_shape)}"
            )
        self.rnn = self._make(int(input_shape[-1]))
        super().build(input_shape)

    @property
    def output_size(self) -> int:
        """Features of one output step (the motor neurons of a wiring)."""
        if self.built:
            return self.rnn.output_size
        if isinstance(self.units, Wiring):  # a bare Wiring (no output_dim): every neuron, as the cells do
            return self.units.units if self.units.output_dim is None else self.units.output_dim
        return self.units

    @property
    def state_size(self) -> int:
        """Size of the hidden state (all neurons)."""
        return self.rnn.state_size

    def compute_output_shape(self, input_shape):
        out = self.output_size
        return (input_shape[0], out) if self.return_sequences else (out,)

    def call(self, x, timespans=None, mask=None):
        # The mask marks each sequence's data; what follows its last True step is padding, which
        # the layer skips through `lengths` (the state stops there, the padding is never read).
        lengths = None if mask is None else _mask_lengths(x, mask)
        outputs, _ = self.rnn(x, timespans=timespans, lengths=lengths)
        if mask is not None:
            return _carry_forward(outputs, mask) if self.return_sequences else _last_valid(outputs, mask)
        return outputs if self.return_sequences else outputs[:, -1]

    def sequences(self, x, timespans=None) -> tuple[mx.array, mx.array]:
        """All per-step outputs ``(B, T, F)`` and the final state, whatever ``return_sequences``
        says (for plotting neuron activity)."""
        self.ensure_built(tuple(x.shape[1:]))
        return self.rnn(x, timespans=timespans)

    def _units_config(self) -> Any:
        if isinstance(self.units, Wiring):
            # Save the layer's built wiring: it holds the exact matrices the weights belong to.
            wiring = getattr(self.rnn.rnn_cell, "wiring", None) if self.built else None
            return encode_config(wiring if isinstance(wiring, Wiring) else self.units)
        return self.units

    @staticmethod
    def _decode_units(units: Any) -> int | Wiring:
        return decode_config(units)


class CfC(_Recurrent):
    """A closed-form continuous-time layer (:class:`ncps.CfC`), Keras style.

    Args:
        units: number of neurons (a dense CfC with a backbone MLP) or a :class:`~ncps.wirings.Wiring`
            (a sparse wired CfC whose outputs are the motor neurons).
        return_sequences: return every step ``(B, T, F)`` or the last ``(B, F)`` (default, as Keras).
        mixed_memory: add an LSTM memory (CfC-mmRNN).
        mode: ``"default"``, ``"pure"`` (Cf-S) or ``"no_gate"``.
        activation, backbone_units, backbone_layers, backbone_dropout: the backbone MLP
            (dense mode only; see :class:`ncps.CfCCell`).

    Call the model with ``(x, timespans)`` for irregular sampling and ``(x, timespans, mask)``
    for padded sequences: the output is then the one at each sequence's last unmasked step
    (padding must come after the data, as Keras' masked RNN assumes for the final output); the
    layer runs with ``lengths`` = that step + 1, so the padding never reaches the state. The
    model's ``fit`` / ``evaluate`` / ``predict`` also take a list of sequences of different
    lengths, or ``lengths=`` with a padded ``x``.
    """

    _ncps_layer = _layers.CfC
    _options = ("mixed_memory", "mode", "activation", "backbone_units", "backbone_layers", "backbone_dropout")

    def __init__(
        self,
        units: int | Wiring,
        return_sequences: bool = False,
        mixed_memory: bool = False,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | list | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
        **kwargs,
    ):
        super().__init__(units, return_sequences, **kwargs)
        self.mixed_memory = _checks.boolean(mixed_memory, "mixed_memory")
        self.mode = mode
        self.activation = activation
        self.backbone_units = backbone_units
        self.backbone_layers = backbone_layers
        self.backbone_dropout = backbone_dropout


class LTC(_Recurrent):
    """A liquid time-constant layer (:class:`ncps.LTC`), Keras style.

    Args:
        units: number of neurons (fully connected, all outputs) or a :class:`~ncps.wirings.Wiring`.
        return_sequences: return every step ``(B, T, F)`` or the last ``(B, F)`` (default, as Keras).
        mixed_memory: add an LSTM memory.
        input_mapping, output_mapping, ode_unfolds, epsilon: see :class:`ncps.LTCCell`.
        implicit_param_constraints: keep the positive parameters positive by a softplus (True,
            the default here so that training needs no extra step) or by clipping after each
            update (False, Keras' choice: then call ``layer.rnn.rnn_cell.apply_weight_constraints()``
            after every optimizer step).

    Timespans and masks as for :class:`CfC`.
    """

    _ncps_layer = _layers.LTC
    _options = (
        "mixed_memory",
        "input_mapping",
        "output_mapping",
        "ode_unfolds",
        "epsilon",
        "implicit_param_constraints",
    )

    def __init__(
        self,
        units: int | Wiring,
        return_sequences: bool = False,
        mixed_memory: bool = False,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        **kwargs,
    ):
        super().__init__(units, return_sequences, **kwargs)
        self.mixed_memory = _checks.boolean(mixed_memory, "mixed_memory")
        self.input_mapping = input_mapping
        self.output_mapping = output_mapping
        self.ode_unfolds = _checks.integer(ode_unfolds, "ode_unfolds", 1, _checks.MAX_ODE_UNFOLDS)
        self.epsilon = _checks.real(epsilon, "epsilon", 0.0)
        self.implicit_param_constraints = _checks.boolean(implicit_param_constraints, "implicit_param_constraints")


LAYERS: dict[str, type] = {
    cls.__name__: cls for cls in (InputLayer, Dense, Dropout, Activation, Flatten, Reshape, Lambda, CfC, LTC)
}


def deserialize(entry: dict) -> Layer:
    """The layer described by ``{"class_name": ..., "config": ..., "name": ...}``."""
    try:
        cls = LAYERS[entry["class_name"]]
    except KeyError:
        raise ValueError(f"Unknown layer class {entry.get('class_name')!r}; known: {sorted(LAYERS)}") from None
    config = dict(entry.get("config", {}))
    if "units" in config and cls in (CfC, LTC):
        config["units"] = _Recurrent._decode_units(config["units"])
    return cls(**config, name=entry.get("name"))
