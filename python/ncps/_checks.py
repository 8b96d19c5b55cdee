"""Argument checks shared by the public constructors and calls.

Each check raises a ``ValueError`` (``TypeError`` for a value of the wrong kind) whose message
names the argument, and returns the value in its canonical type. They cost nothing next to the
work they guard: Python scalars, shapes and dtypes only, never array contents (the policy in
docs/reliability.md).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import mlx.core as mx

# Beyond this an ODE solver's sub-steps only cost time: a typo (10**9) would hang uninterruptibly.
MAX_ODE_UNFOLDS = 10_000


def integer(value: Any, name: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` (a Python or numpy integer, not a bool, float or string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def real(
    value: Any, name: str, minimum: float | None = None, maximum: float | None = None, below: float | None = None
) -> float:
    """``value`` as a finite ``float`` in ``[minimum, maximum]`` (and ``< below`` when given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
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
