"""Argument checks shared by the public constructors and calls: the one validation layer.

Each check raises a ``ValueError`` for a wrong value, or an :class:`ArgumentTypeError` (a
``TypeError`` that is also a ``ValueError``, so code written against the older ``ValueError``
keeps working) for a value of the wrong kind; the message names the argument, the value and the
expected form. Each check returns the value in its canonical type. They cost nothing next to the
work they guard: Python scalars, shapes and dtypes only, never array contents (the policy in
docs/reliability.md).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import numpy as np

# Beyond this an ODE solver's sub-steps only cost time: a typo (10**9) would hang uninterruptibly.
MAX_ODE_UNFOLDS = 10_000


# The largest seed numpy's legacy ``RandomState`` (used by NCP/AutoNCP, as upstream does) takes.
MAX_SEED = 2**32 - 1


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind (a float or string for an integer, a string for a bool).

    A ``TypeError``, as Python's own calls raise for the wrong kind of object, and a
    ``ValueError`` too, which the size checks raised before: ``except ValueError`` keeps working.
    """


def _kind(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def boolean(value: Any, name: str) -> bool:
    """``value`` as a ``bool``: ``True``/``False`` or a numpy bool, nothing merely truthy
    (``"False"``, ``0``, ``None`` are refused: ``"False"`` would silently mean True)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False (a bool), got {_kind(value)}")


def integer(value: Any, name: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` (a Python or numpy integer, not a bool, float or string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def optional_integer(value: Any, name: str, minimum: int | None = 1, maximum: int | None = None) -> int | None:
    """None, or ``value`` checked by :func:`integer`."""
    return None if value is None else integer(value, name, minimum, maximum)


def seed(value: Any, name: str = "seed", maximum: int | None = None) -> int:
    """A random seed: an integer in ``[0, maximum]`` (numpy's generators refuse negative seeds;
    a float or string would otherwise surface numpy's own message, naming no argument)."""
    return integer(value, name, 0, maximum)


def real(
    value: Any, name: str, minimum: float | None = None, maximum: float | None = None, below: float | None = None
) -> float:
    """``value`` as a finite ``float`` in ``[minimum, maximum]`` (and ``< below`` when given)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {_kind(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    if below is not None and not value < below:
        raise ValueError(f"{name} must be < {below}, got {value}")
    return value


def path(value: Any, name: str = "path") -> str:
    """A file path: a non-empty ``str`` or ``os.PathLike``, as a ``str``."""
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError(f"{name} must be a file path (str or os.PathLike), got {_kind(value)}")
    value = os.fspath(value)
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a file path (str), got bytes {value!r}")
    if not value or os.path.basename(value) == "":
        raise ValueError(f"{name} must name a file, got {value!r}")
    return value


def choice(value: Any, name: str, options: Sequence[Any]) -> Any:
    """``value`` when it is one of ``options``."""
    if not any(value is o or (type(value) is type(o) and value == o) for o in options):
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def timespan(value: float, name: str = "timespans") -> float:
    """A scalar elapsed time: finite and >= 0 (0 leaves the state unchanged)."""
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def invalid_timespans_to_nan(ts: mx.array) -> mx.array:
    """Elapsed times with every invalid entry (negative, NaN, inf) replaced by NaN, so that it
    turns the state of its sample into NaN on every path instead of a plausible number."""
    valid = (ts >= 0) & (ts < math.inf)
    return mx.where(valid, ts, math.nan)


def infinite_to_nan(x: mx.array) -> mx.array:
    """``x`` with every infinite entry replaced by NaN (docs/reliability.md: a non-finite input
    never becomes a plausible number).

    Without it, ``±inf`` saturates the cells' sigmoids and tanhs (``σ(inf) = 1``) and gives
    finite, plausible outputs, while NaN propagates through the same math. Applied to the
    inputs once per call, before the dispatch, it makes inf follow NaN's path on every path
    (fused CPU, GPU, reference) without touching the kernels' loops. One lazy elementwise op;
    integer inputs cannot hold inf and pass unchanged. Compiled into one fused elementwise pass:
    uncompiled, ``isinf`` and ``where`` took four passes over ``x`` (~90 µs at 32 x 100 x 16, about
    6 % of a wired CfC forward); compiled, ~3 µs."""
    if not mx.issubdtype(x.dtype, mx.inexact):
        return x
    return _infinite_to_nan(x)


_infinite_to_nan = mx.compile(lambda x: mx.where(mx.isinf(x), math.nan, x), shapeless=True)


def real_array(x: mx.array, name: str) -> None:
    """Complex arrays are refused: every kernel would drop the imaginary part."""
    if mx.issubdtype(x.dtype, mx.complexfloating):
        raise ValueError(f"{name} must be a real array, got dtype {x.dtype}")


def as_array(x: Any, name: str) -> mx.array:
    """``x`` as an MLX array; a string, ragged list or object a clear ``ValueError``."""
    if isinstance(x, mx.array):
        return x
    if isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be an array, got {type(x).__name__}")
    try:
        return mx.array(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__} ({exc})") from None
