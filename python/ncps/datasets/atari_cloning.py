"""Atari behaviour-cloning data of the official ``ncps`` package, served as MLX batches.

On disk (the official layout)::

    {root_dir}/data_atari_seq/{env_name}/train_*.npz
    {root_dir}/data_atari_seq/{env_name}/val_*.npz

Each ``.npz`` is one chunk: 32 consecutive steps of one episode, with

- ``obs``: uint8 ``(32, 84, 84, 4)``, DeepMind-wrapped grayscale frames, a stack of 4 per step;
- ``actions``: int64 ``(32,)``, the expert's action at each step.

The archives live at ``https://people.csail.mit.edu/mlechner/datasets/{env_name}.zip`` (for
example ``breakout``); each unzips to ``data_atari_seq/{env_name}/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import numpy as np

from . import utils

URL = "https://people.csail.mit.edu/mlechner/datasets/{env_name}.zip"
CHUNK_LEN = 32
FRAME_SHAPE = (84, 84, 4)
SPLITS = ("train", "val")

__all__ = ["AtariCloningDataset", "URL", "CHUNK_LEN", "FRAME_SHAPE", "write_chunk"]


class AtariCloningDataset:
    """Sequences of Atari frames and the expert's actions, in batches of MLX arrays.

    One item (``dataset[i]``) is one chunk file: ``x`` float32 ``(32, 84, 84, 4)`` with values in
    [0, 1] (channels last, as ``mlx.nn.Conv2d`` expects; the official torch loader transposes to
    channels first) and ``y`` int32 ``(32,)``. Iterating yields batches ``x (B, 32, 84, 84, 4)``
    and ``y (B, 32)``: ``B`` sequences of 32 time steps, ready for a conv encoder applied per
    frame followed by a batch-first ``CfC``. The last batch of an epoch may be smaller.

    Args:
        env_name: the game folder, e.g. ``"breakout"``.
        split: ``"train"`` or ``"val"``.
        root_dir: the folder holding ``data_atari_seq/`` (honoured for reading *and* downloading;
            the official loader extracts into the working directory whatever ``root_dir`` says).
        download: fetch and unzip the official archive into ``root_dir`` when the folder is missing.
        batch_size: chunks per batch.
        shuffle: shuffle the chunk order at every pass; default True for ``"train"``, False otherwise.
        seed: seed of the shuffling (None: a fresh order each run).

    Raises:
        utils.DatasetNotFoundError: the files are missing and cannot be downloaded; the message
            names the folder and the archive to unzip there.
    """

    def __init__(
        self,
        env_name: str,
        split: str = "train",
        root_dir: str | os.PathLike = ".",
        download: bool = True,
        batch_size: int = 32,
        shuffle: bool | None = None,
        seed: int | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.env_name = env_name
        self.split = split
        self.root_dir = Path(root_dir)
        self.path = self.root_dir / "data_atari_seq" / env_name
        self.url = URL.format(env_name=env_name)
        self.batch_size = int(batch_size)
        self.shuffle = (split == "train") if shuffle is None else bool(shuffle)
        self._rng = np.random.default_rng(seed)

        files = self._find_files()
        if not files and download:
            print(f"Downloading {self.url} into {self.root_dir} ...", flush=True)
            try:
                utils.download_and_unzip(self.url, self.root_dir)
            except Exception as exc:  # no network, HTTP error, bad archive
                raise utils.DatasetNotFoundError(self._missing_message(f"the download failed ({exc})")) from exc
            files = self._find_files()
        if not files:
            reason = "download=False" if not download else "the downloaded archive did not contain them"
            raise utils.DatasetNotFoundError(self._missing_message(reason))
        self.files = files

    def _find_files(self) -> list[Path]:
        return sorted(self.path.glob(f"{self.split}_*.npz")) if self.path.is_dir() else []

    def _missing_message(self, reason: str) -> str:
        return (
            f"No Atari cloning data for {self.env_name!r} (split {self.split!r}): expected files "
            f"{self.path / (self.split + '_*.npz')} ({reason}). Download {self.url} and unzip it into "
            f"{self.root_dir.resolve()} so that data_atari_seq/{self.env_name}/ holds the train_*.npz and "
            f"val_*.npz chunks (each with 'obs' uint8 {(CHUNK_LEN, *FRAME_SHAPE)} and 'actions' int64 "
            f"({CHUNK_LEN},)), or pass download=True on a machine with network access."
        )

    # -- items --------------------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of chunks (sequences) in the split."""
        return len(self.files)

    @property
    def num_batches(self) -> int:
        """Batches per pass over the split."""
        return -(-len(self.files) // self.batch_size)

    def load_chunk(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ``idx`` as stored: ``obs`` uint8 ``(32, 84, 84, 4)`` and ``actions`` int64 ``(32,)``."""
        arr = utils.load_npz(self.files[idx])
        if "obs" not in arr or "actions" not in arr:
            raise ValueError(f"{self.files[idx]}: expected arrays 'obs' and 'actions', found {sorted(arr)}")
        obs, actions = arr["obs"], arr["actions"]
        if obs.ndim != 4 or obs.shape[1:] != FRAME_SHAPE or actions.shape != obs.shape[:1]:
            raise ValueError(
                f"{self.files[idx]}: expected obs (T, 84, 84, 4) and actions (T,), got {obs.shape} and {actions.shape}"
            )
        return obs, actions

    def __getitem__(self, idx: int) -> tuple[mx.array, mx.array]:
        """``x`` float32 ``(32, 84, 84, 4)`` in [0, 1] and ``y`` int32 ``(32,)``."""
        obs, actions = self.load_chunk(idx)
        return mx.array(obs.astype(np.float32) / 255.0), mx.array(actions.astype(np.int32))

    def __iter__(self) -> Iterator[tuple[mx.array, mx.array]]:
        """Batches ``x (B, 32, 84, 84, 4)`` float32 and ``y (B, 32)`` int32 over the split."""
        order = self._rng.permutation(len(self.files)) if self.shuffle else np.arange(len(self.files))
        for start in range(0, len(order), self.batch_size):
            chunks = [self.load_chunk(int(i)) for i in order[start : start + self.batch_size]]
            obs = np.stack([c[0] for c in chunks]).astype(np.float32) / 255.0
            actions = np.stack([c[1] for c in chunks]).astype(np.int32)
            yield mx.array(obs), mx.array(actions)

    def num_actions(self) -> int:
        """One more than the largest action index in the split (reads every chunk)."""
        return int(max(self.load_chunk(i)[1].max() for i in range(len(self))) + 1)

    def __repr__(self) -> str:
        return (
            f"AtariCloningDataset({self.env_name!r}, split={self.split!r}, chunks={len(self)}, "
            f"batch_size={self.batch_size}, root_dir={str(self.root_dir)!r})"
        )


def write_chunk(path: str | os.PathLike, obs: np.ndarray, actions: np.ndarray, compress: bool = True) -> None:
    """Write one chunk in the official layout (``obs`` uint8 ``(T, 84, 84, 4)``, ``actions`` int64 ``(T,)``).

    Useful for tests and for recording your own demonstrations. ``compress`` writes a compressed
    ``.npz`` (read the same way; official chunks are about 0.9 MB each uncompressed).
    """
    obs = np.asarray(obs)
    actions = np.asarray(actions)
    if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[1:] != FRAME_SHAPE:
        raise ValueError(f"obs must be uint8 (T, 84, 84, 4), got {obs.dtype} {obs.shape}")
    if actions.shape != obs.shape[:1]:
        raise ValueError(f"actions must have shape ({obs.shape[0]},), got {actions.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compress else np.savez)(path, obs=obs, actions=actions.astype(np.int64))
