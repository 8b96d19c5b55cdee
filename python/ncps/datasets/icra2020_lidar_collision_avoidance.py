"""ICRA 2020 lidar collision-avoidance imitation data (Lechner et al., "Gershgorin Loss Stabilizes
the Recurrent Neural Network Compartment of an End-to-end Robot Learning Scheme", ICRA 2020).

The packed file holds 29 recordings of a robot driven by a human: ``x_0 … x_28`` are lidar scans
``(T_i, beams)`` and ``y_0 … y_28`` the steering commands ``(T_i,)``. :func:`load_data` follows
the official ``ncps.datasets.icra2020_lidar_collision_avoidance.load_data`` step for step, so the
same file gives the same arrays:

1. shuffle the recordings with ``numpy.random.default_rng(20200822)``; the first 7 are the test
   set, the other 22 the training set;
2. augment every recording with its mirror image (``x[:, ::-1]``, ``-y``);
3. cut windows of ``seq_len`` steps with stride ``seq_len // 2`` (50 % overlap; the official
   comment says 75 %), starting at ``0, s, 2s, … < T - seq_len`` (so, as officially, the last
   window that would end exactly at ``T`` is not taken).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import utils

URL = "https://github.com/mlech26l/icra_lds/raw/master/icra2020_imitation_data_packed.npz"
MD5 = "15ab035e0866fc065acfc0ad781d75c5"
FILENAME = "icra2020_imitation_data_packed.npz"
SPLIT_SEED = 20200822
NUM_TEST = 7

Arrays = tuple[np.ndarray, np.ndarray]

__all__ = ["load_data", "URL", "MD5", "FILENAME"]


def _unpack(path: Path) -> list[Arrays]:
    recordings = []
    packed = utils.load_npz(path)
    i = 0
    while f"x_{i}" in packed:
        if f"y_{i}" not in packed:
            raise ValueError(f"{path}: x_{i} has no matching y_{i}")
        recordings.append((packed[f"x_{i}"], packed[f"y_{i}"]))
        i += 1
    if len(recordings) <= NUM_TEST:
        raise ValueError(
            f"{path}: expected recordings x_0, y_0, x_1, y_1, … (29 in the official file), found {len(recordings)}; "
            f"at least {NUM_TEST + 1} are needed ({NUM_TEST} go to the test set)"
        )
    for i, (x, y) in enumerate(recordings):
        if x.ndim != 2 or y.shape[:1] != x.shape[:1]:
            raise ValueError(f"{path}: x_{i} must be (T, beams) and y_{i} (T,); got {x.shape} and {y.shape}")
    return recordings


def _split(recordings: list[Arrays]) -> tuple[list[Arrays], list[Arrays]]:
    # Shuffle a list, exactly as the official code does (a list and an array take different
    # code paths in Generator.shuffle; both draw the same numbers, but stay on the same path).
    order = list(range(len(recordings)))
    np.random.default_rng(SPLIT_SEED).shuffle(order)
    shuffled = [recordings[i] for i in order]
    return shuffled[NUM_TEST:], shuffled[:NUM_TEST]


def _augment(recordings: list[Arrays]) -> list[Arrays]:
    out = []
    for x, y in recordings:
        out.append((x, y))
        out.append((x[:, ::-1], -y))
    return out


def _windows(recordings: list[Arrays], seq_len: int) -> Arrays:
    xs, ys = [], []
    for x, y in recordings:
        for start in range(0, x.shape[0] - seq_len, seq_len // 2):
            xs.append(x[start : start + seq_len])
            ys.append(y[start : start + seq_len].reshape(seq_len))
    if not xs:
        raise ValueError(f"no recording is longer than seq_len = {seq_len}; choose a shorter seq_len")
    x_arr = np.stack(xs).astype(np.float32)[..., None]
    y_arr = np.stack(ys).astype(np.float32)[..., None]
    return x_arr, y_arr


def _resolve(local_path: str | os.PathLike | None, root_dir: str | os.PathLike, download: bool) -> Path:
    path = Path(local_path) if local_path is not None else Path(root_dir) / "datasets" / FILENAME
    if path.is_file():
        return path
    if not download:
        raise utils.DatasetNotFoundError(
            f"ICRA 2020 lidar data not found at {path} (download=False). Download {URL} (md5 {MD5}) "
            f"and save it as {path}, or pass download=True on a machine with network access."
        )
    print(f"Downloading {URL} to {path} ...", flush=True)
    try:
        utils.download_file(URL, path, md5=MD5)
    except Exception as exc:
        raise utils.DatasetNotFoundError(
            f"ICRA 2020 lidar data not found at {path} and the download failed ({exc}). Download {URL} "
            f"(md5 {MD5}) by hand and save it as {path}."
        ) from exc
    return path


def load_data(
    local_path: str | os.PathLike | None = None,
    seq_len: int = 32,
    root_dir: str | os.PathLike = ".",
    download: bool = True,
) -> tuple[Arrays, Arrays]:
    """Load the lidar data, split, augmented and windowed as the official loader does.

    Args:
        local_path: the packed ``.npz`` to read. Default: ``{root_dir}/datasets/icra2020_imitation_data_packed.npz``.
        seq_len: the window length ``L``; windows overlap by ``seq_len // 2``.
        root_dir: the folder under which the default path lies.
        download: fetch the file when it is missing; the download is checked against the official
            md5 and discarded on a mismatch. An existing file is used as it is (the official
            loader instead re-downloads any file whose md5 differs, overwriting it).

    Returns:
        ``((train_x, train_y), (test_x, test_y))``: numpy float32 arrays, ``x`` of shape
        ``(n, L, beams, 1)`` (a channel axis for a ``Conv1d`` over the beams) and ``y`` of shape
        ``(n, L, 1)``.
    """
    if int(seq_len) < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    seq_len = int(seq_len)
    path = _resolve(local_path, root_dir, download)
    train, test = _split(_unpack(path))
    return _windows(_augment(train), seq_len), _windows(_augment(test), seq_len)
