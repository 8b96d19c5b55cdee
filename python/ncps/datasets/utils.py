"""Downloading helpers shared by the dataset loaders.

Both helpers write atomically (to a temporary file in the destination folder, renamed when
complete), so an interrupted download never leaves a truncated file that a later call would take
for the real thing. Tests replace :func:`urlopen` (or the helpers themselves) to run offline.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike

__all__ = ["DatasetNotFoundError", "download_file", "download_and_unzip", "md5sum", "urlopen"]


def urlopen(url: str, timeout: float = 60.0) -> Any:
    """``urllib.request.urlopen`` (imported on first use, so that ``import ncps`` stays cheap)."""
    from urllib.request import urlopen as _urlopen

    return _urlopen(url, timeout=timeout)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where to put the files."""


def md5sum(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex md5 digest of the file at ``path``."""
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: PathLike, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Args:
        url: the address to fetch.
        dest: the file to write; its folder is created if needed.
        md5: the expected hex md5 of the content. On a mismatch nothing is written and a
            ``ValueError`` names both digests.
        timeout: seconds to wait for the server.
    """
    import shutil
    import tempfile

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        if md5 is not None:
            got = md5sum(tmp)
            if got != md5:
                raise ValueError(f"downloaded {url} has md5 {got}, expected {md5}; the file was discarded")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def download_and_unzip(url: str, extract_to: PathLike = ".", timeout: float = 60.0) -> Path:
    """Download the zip archive at ``url`` and extract it into ``extract_to``.

    Unlike the official ``ncps.datasets.utils.download_and_unzip`` (which its Atari loader calls
    without a target, so the data always lands in the working directory), the target is honoured.
    Members that would land outside ``extract_to`` are refused.
    """
    import shutil
    import tempfile
    import zipfile

    root = Path(extract_to)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download.", suffix=".zip", dir=root)
    try:
        with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        with zipfile.ZipFile(tmp) as archive:
            resolved = root.resolve()
            for member in archive.namelist():
                target = (root / member).resolve()
                if resolved != target and resolved not in target.parents:
                    raise ValueError(f"refusing to extract {member!r} outside {root}")
            archive.extractall(root)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return root


def load_npz(path: PathLike) -> dict:
    """The arrays of an ``.npz`` file, read without pickle (a file never runs code): a corrupt
    file or one holding Python objects is a ``ValueError`` naming the file."""
    try:
        with np.load(path, allow_pickle=False) as packed:
            return {name: packed[name] for name in packed.files}
    except FileNotFoundError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(
                f"{path}: holds Python objects (pickled data), which ncps never loads; expected plain numeric arrays"
            ) from None
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
