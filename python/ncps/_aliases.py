"""Official ``ncps.torch`` keyword names accepted as aliases of ours, so that code written for the
official package runs after changing only the import.

``@official_names(hidden_size="units")`` on a method lets a caller pass ``hidden_size=`` for
``units``; passing both (by keyword, or ``units`` by position) raises a ``TypeError`` naming the
two. The wrapped method keeps its signature and docstring.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def official_names(**aliases: str) -> Callable[[F], F]:
    """Decorator: ``official_name="our_name"`` pairs for the keyword arguments of a method."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        for ours in aliases.values():
            if ours not in signature.parameters:
                raise AssertionError(f"{fn.__qualname__} has no parameter {ours!r}")  # a bug in this package

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if kwargs and not aliases.keys().isdisjoint(kwargs):
                kwargs = _rename(fn, signature, aliases, args, kwargs)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _rename(fn: Callable, signature: inspect.Signature, aliases: dict, args: tuple, kwargs: dict) -> dict:
    kwargs = dict(kwargs)
    given = {official: kwargs.pop(official) for official in aliases if official in kwargs}
    bound = signature.bind_partial(*args, **kwargs).arguments
    for official, value in given.items():
        ours = aliases[official]
        if ours in bound or ours in kwargs:
            raise TypeError(
                f"{fn.__qualname__}() got both {official!r} (the official ncps.torch name) and {ours!r}, "
                "the same argument; pass only one"
            )
        kwargs[ours] = value
    return kwargs


# What a user of the official package imports first, and what to import here instead.
_FRONTS = {
    "torch": "from ncps import CfC, LTC, CfCCell, LTCCell (or ncps.mlx, the same classes)",
    "tf": "from ncps import CfC, LTC for MLX layers, or from ncps import mini_keras as keras for Keras-style models",
    "keras": "from ncps import mini_keras as keras (keras.layers.CfC, keras.models.Sequential)",
}


def foreign_front(name: str) -> ModuleNotFoundError:
    """The error raised by importing ``ncps.<name>`` (``torch``, ``tf``, ``keras``): the official
    package's front-end modules, which this MLX package does not have; it says what to import."""
    return ModuleNotFoundError(
        f"ncps.{name} is the official ncps package's {name} front end; this is ncps for MLX: {_FRONTS[name]}. "
        "The official keyword names (hx=, hidden_size=, ...) are accepted, and "
        "ncps.interop.from_torch / load_torch_state_dict load official PyTorch weights.",
        name=f"ncps.{name}",
    )
