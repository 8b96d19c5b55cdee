"""Generated sequence tasks: no download, deterministic for a given seed.

- :func:`bitstream_xor`: the event-based bit-stream XOR (parity) task of the CfC paper
  (Hasani et al., Nature Machine Intelligence 2022; ``XORData`` in raminmh/CfC), bit for bit.
- :func:`sine_cosine`: the regression of the official ``pt_example.py``: (sin x, cos x) → sin 2x.
- :func:`irregular_sine_classification`: classify the frequency of a sinusoid observed at irregular
  times, with the elapsed time between observations given per sample and step.

Every function returns numpy arrays (``mx.array(a)`` converts one without copying semantics to
worry about); time spans come as ``(n, T)``, the shape every ncps layer accepts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _checks

XOR_TRAIN_SEED = 1234984
"""The seed of the CfC paper's 100,000 training sequences."""
XOR_TEST_SEED = 48736
"""The seed of the CfC paper's 10,000 test sequences."""

__all__ = [
    "XORData",
    "IrregularData",
    "bitstream_xor",
    "sine_cosine",
    "irregular_sine_classification",
    "XOR_TRAIN_SEED",
    "XOR_TEST_SEED",
]


class XORData(NamedTuple):
    """One split of the bit-stream XOR task.

    Attributes:
        x: float32 ``(n, pad_size, 1)``: the bit of each event.
        timespans: float32 ``(n, pad_size)``: steps elapsed since the previous event, divided by
            ``pad_size`` (0 at padding).
        mask: bool ``(n, pad_size)``: True at real events; padding comes after the last event.
        y: int32 ``(n,)``: the parity (XOR) of all bits of the stream.
    """

    x: np.ndarray
    timespans: np.ndarray
    mask: np.ndarray
    y: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """The number of events of each sequence, ``(n,)``."""
        return self.mask.sum(axis=1)


class IrregularData(NamedTuple):
    """An irregularly sampled classification set.

    Attributes:
        x: float32 ``(n, T, 1)``: the noisy observations.
        timespans: float32 ``(n, T)``: time elapsed since the previous observation of the same sample.
        y: int32 ``(n,)``: the class.
    """

    x: np.ndarray
    timespans: np.ndarray
    y: np.ndarray


def _xor_events(bits: np.ndarray, pad_size: int, event_based: bool):
    """Encode one bit string as the reference does (see :func:`bitstream_xor`)."""
    events = np.zeros((pad_size, 1), np.float32)
    elapsed = np.zeros(pad_size, np.float32)
    mask = np.zeros(pad_size, bool)
    n = len(bits)
    if not event_based:
        events[:n, 0] = bits
        elapsed[:n] = 1.0
        mask[:n] = True
        return events, elapsed, mask
    changes = np.flatnonzero(np.concatenate([[True], bits[1:] != bits[:-1]]))
    changes = changes[: pad_size - 1]  # the reference stops writing at pad_size - 1 events
    k = len(changes)
    events[:k, 0] = bits[changes]
    elapsed[:k] = np.diff(changes, prepend=-1)
    mask[:k] = True
    tail = n - 1 - changes[-1]  # steps since the last change: a closing event with the last bit
    if tail > 0:
        events[k, 0] = bits[-1]
        elapsed[k] = tail
        mask[k] = True
    return events, elapsed, mask


def bitstream_xor(n: int = 10_000, pad_size: int = 32, event_based: bool = True, seed: int = XOR_TRAIN_SEED) -> XORData:
    """Random bit strings, labelled with their parity, as sequences of change events.

    Each sample draws a length ``U{2, …, pad_size - 1}`` and that many fair bits (the reference's
    ``numpy.random.RandomState(seed)`` stream, so ``seed=XOR_TRAIN_SEED, n=100_000`` and
    ``seed=XOR_TEST_SEED, n=10_000`` reproduce the paper's train and test sets). In the
    event-based encoding a step is emitted only where the bit changes (and at the first bit),
    with the number of bits since the previous event as its elapsed time; a closing event with
    the last bit carries the length of the final run. The parity is then a function of the run
    lengths of the ones, i.e. of the elapsed times, which is what makes the task a test of
    continuous-time models. ``event_based=False`` emits every bit with elapsed time 1 (the
    paper's "dense" encoding). Elapsed times are divided by ``pad_size``, as in the reference.

    Padding follows the last event: classify with the output at the last masked-in step (e.g.
    ``ncps.mini_keras`` with ``x=(x, timespans, mask)``, or gather ``lengths - 1`` yourself).
    """
    n = _checks.integer(n, "n")
    if _checks.integer(pad_size, "pad_size", None) < 3:
        raise ValueError(f"pad_size must be at least 3, got {pad_size}")
    rng = np.random.RandomState(seed)
    xs = np.zeros((n, pad_size, 1), np.float32)
    ts = np.zeros((n, pad_size), np.float32)
    masks = np.zeros((n, pad_size), bool)
    ys = np.zeros(n, np.int32)
    for i in range(n):
        length = rng.randint(low=2, high=pad_size)
        bits = rng.randint(0, 2, size=length)
        xs[i], ts[i], masks[i] = _xor_events(bits, pad_size, event_based)
        ys[i] = int(bits.sum()) % 2
    return XORData(xs, ts / pad_size, masks, ys)


def sine_cosine(
    seq_len: int = 48,
    n: int = 1,
    periods: float = 1.5,
    random_phase: bool = False,
    noise: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(sin u, cos u)`` and target ``sin 2u`` for ``u`` on ``[0, 2π·periods]``.

    With the defaults this is exactly the data of the official ``pt_example.py`` (48 steps of
    ``linspace(0, 3π)``, one sequence).

    Args:
        seq_len: steps per sequence.
        n: number of sequences.
        periods: periods of the input covered by one sequence.
        random_phase: shift each sequence by a random phase (else every sequence is the same).
        noise: standard deviation of Gaussian noise added to the inputs.
        seed: seed of the phases and the noise.

    Returns:
        ``x`` float32 ``(n, seq_len, 2)`` and ``y`` float32 ``(n, seq_len, 1)``.
    """
    seq_len, n = _checks.integer(seq_len, "seq_len"), _checks.integer(n, "n")
    _checks.real(periods, "periods")
    _checks.real(noise, "noise", 0.0)
    rng = np.random.default_rng(seed)
    u = np.linspace(0.0, 2 * np.pi * periods, seq_len)[None, :]
    if random_phase:
        u = u + rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    else:
        u = np.repeat(u, n, axis=0)
    x = np.stack([np.sin(u), np.cos(u)], axis=-1)
    if noise > 0:
        x = x + rng.normal(0.0, noise, size=x.shape)
    y = np.sin(2 * u)[..., None]
    return x.astype(np.float32), y.astype(np.float32)


def irregular_sine_classification(
    n: int = 2000,
    seq_len: int = 32,
    n_classes: int = 3,
    mean_dt: tuple[float, float] = (0.1, 0.4),
    jitter: float = 0.5,
    noise: float = 0.05,
    seed: int | None = 0,
) -> IrregularData:
    """Which of ``n_classes`` frequencies does an irregularly sampled sinusoid have?

    Class ``k`` has frequency ``(k + 1) / 4`` cycles per time unit (0.25, 0.5, 0.75, …). Each sample
    has a random phase and amplitude in [0.5, 1.5], and its own sampling rate: a mean gap drawn from
    ``U[mean_dt]``, with every gap that mean times ``U[1 - jitter, 1 + jitter]``; it is observed
    ``seq_len`` times, with Gaussian noise. A fast signal sampled densely then looks like a slow one
    sampled sparsely, so the values alone leave the class ambiguous: the gaps (the ``timespans``)
    resolve it. With the defaults every class stays below half a cycle per observation (no aliasing).

    Returns:
        :class:`IrregularData` with ``x (n, seq_len, 1)``, ``timespans (n, seq_len)`` (the first
        entry is the gap before the first observation) and ``y (n,)``.
    """
    n, seq_len = _checks.integer(n, "n"), _checks.integer(seq_len, "seq_len")
    if _checks.integer(n_classes, "n_classes", None) < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    lo, hi = mean_dt
    if not 0 < lo <= hi or not 0 <= jitter < 1:
        raise ValueError(f"need 0 < mean_dt[0] <= mean_dt[1] and 0 <= jitter < 1, got {mean_dt}, {jitter}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    freq = (y + 1) / 4.0
    rate = rng.uniform(lo, hi, size=(n, 1))
    dt = rate * rng.uniform(1.0 - jitter, 1.0 + jitter, size=(n, seq_len))
    t = np.cumsum(dt, axis=1)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    amplitude = rng.uniform(0.5, 1.5, size=(n, 1))
    x = amplitude * np.sin(2 * np.pi * freq[:, None] * t + phase) + rng.normal(0.0, noise, size=(n, seq_len))
    return IrregularData(x[..., None].astype(np.float32), dt.astype(np.float32), y.astype(np.int32))
