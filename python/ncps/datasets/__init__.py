"""Datasets for ncps: the official ones (downloaded on request) and generated tasks.

Official data (same on-disk layouts, splits and preprocessing as the official ``ncps.datasets``):

- :class:`AtariCloningDataset`: Atari behaviour cloning, chunked ``.npz`` files under
  ``{root_dir}/data_atari_seq/{env}/``, served as MLX batches ``(B, 32, 84, 84, 4)``.
- :func:`load_icra2020_lidar` (also ``icra2020_lidar_collision_avoidance.load_data``): the ICRA
  2020 lidar collision-avoidance imitation data.

Generated tasks (no download; see :mod:`ncps.datasets.synthetic`):
:func:`bitstream_xor`, :func:`sine_cosine`, :func:`irregular_sine_classification`.

Loaders never touch the network when their files are present; with ``download=False`` (or
without network) a missing file raises :class:`DatasetNotFoundError`, whose message says where
to put the files.
"""

from . import icra2020_lidar_collision_avoidance, synthetic, utils
from .atari_cloning import AtariCloningDataset
from .icra2020_lidar_collision_avoidance import load_data as load_icra2020_lidar
from .synthetic import (
    XOR_TEST_SEED,
    XOR_TRAIN_SEED,
    IrregularData,
    XORData,
    bitstream_xor,
    irregular_sine_classification,
    sine_cosine,
)
from .utils import DatasetNotFoundError

__all__ = [
    "AtariCloningDataset",
    "load_icra2020_lidar",
    "icra2020_lidar_collision_avoidance",
    "bitstream_xor",
    "sine_cosine",
    "irregular_sine_classification",
    "XORData",
    "IrregularData",
    "XOR_TRAIN_SEED",
    "XOR_TEST_SEED",
    "DatasetNotFoundError",
    "synthetic",
    "utils",
]
