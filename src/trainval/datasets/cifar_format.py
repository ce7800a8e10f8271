"""Readers for the official CIFAR "python version" files (pickled dicts of uint8 rows)."""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainval.datasets.download import download_and_verify
from trainval.datasets.locations import locate_files
from trainval.datasets.safe_pickle import safe_loads
from trainval.errors import DataError

_ROW_BYTES = 32 * 32 * 3

# Reads named members of a data set; each comes back with a description of where it was.
ReadMembers = Callable[[Sequence[str]], dict[str, tuple[str, bytes]]]
# The files a load depends on (for the decoded-array cache's key) and how to read their members.
FoundFiles = tuple[list[Path], ReadMembers]
_CHUNK_BYTES = 1 << 20


def _unpickle(blob: bytes, where: str) -> dict[bytes, Any]:
    try:
        content = safe_loads(blob)
    except Exception as error:  # noqa: BLE001 - on untrusted bytes, any failure means a bad file
        raise DataError(
            f"{where} is not a readable CIFAR file ({str(error) or type(error).__name__}); it is truncated, "
            "corrupt or not what it claims to be. Delete it and download the data set again."
        ) from error
    if not isinstance(content, dict):
        raise DataError(f"{where} holds a {type(content).__name__}, not the dict of a CIFAR file; "
                        "delete it and download the data set again.")
    return content


def read_batch(blob: bytes, where: str, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch into NHWC uint8 images and uint8 labels of shape (N,).

    ``where`` names the file in error messages; ``label_key`` is ``b"labels"`` (CIFAR-10) or
    ``b"fine_labels"`` / ``b"coarse_labels"`` (CIFAR-100).
    """
    content = _unpickle(blob, where)
    rows, labels = content.get(b"data"), content.get(label_key)
    # dtype.flags catches a uint8 dtype whose pickled state was tampered with.
    if (not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.dtype.flags != 0 or rows.ndim != 2
            or rows.shape[1] != _ROW_BYTES):
        raise DataError(f"{where} has no uint8 'data' array of rows of {_ROW_BYTES} bytes; "
                        "it is not an official CIFAR file. Download the data set again.")
    if not isinstance(labels, list) or not all(type(label) is int for label in labels):
        raise DataError(f"{where} has no list of integer '{label_key.decode()}'; download the data set again.")
    if len(labels) != len(rows):
        raise DataError(f"{where} has {len(rows)} images but '{label_key.decode()}' holds "
                        f"{len(labels)} entries; download the data set again.")
    if labels and (min(labels) < 0 or max(labels) >= num_classes):
        raise DataError(f"{where} has labels outside 0..{num_classes - 1}; download the data set again.")
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images, dtype=np.uint8), np.array(labels, dtype=np.uint8)


def locate_cifar_files(dataset: str, title: str, data_dir: str | os.PathLike[str] | None, url: str, md5: str,
                       folder_name: str, archive_name: str, members: Sequence[str]) -> FoundFiles:
    """Find a CIFAR data set's files as :func:`~trainval.datasets.locations.locate_files` does (downloading
    the official archive from ``url`` and checking ``md5`` when no folder is given), and say how to read them."""
    return locate_files(
        dataset, title, data_dir,
        find_in=lambda path: _find_cifar_files(path, folder_name, archive_name, members),
        download_into=lambda folder: download_and_verify(url, md5, folder / archive_name),
        expected=f"{folder_name}/ or {archive_name}")


def _find_cifar_files(path: Path, folder_name: str, archive_name: str, members: Sequence[str]) -> FoundFiles | None:
    """Find a CIFAR data set at ``path``: the official archive itself, the extracted ``folder_name``
    folder or a folder holding it, or a folder holding the archive; None if there is none there.

    The last of ``members`` marks an extracted folder; the others may be missing, which the reader
    reports by name when it gets to them.
    """
    if path.is_file() and path.name.endswith(".tar.gz"):
        return [path], tarball_reader(path, folder_name)
    for extracted in (path / folder_name, path):
        if (extracted / members[-1]).is_file():
            files = [extracted / name for name in members]
            return [file for file in files if file.exists()], folder_reader(extracted)
    archive = path / archive_name
    if archive.is_file():
        return [archive], tarball_reader(archive, folder_name)
    return None


def folder_reader(folder: Path) -> ReadMembers:
    """Read members of an extracted ``cifar-*-py`` folder by file name, keyed by name with their paths."""
    def read(names: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        blobs = {}
        for name in names:
            path = folder / name
            try:
                blobs[name] = (str(path), path.read_bytes())
            except FileNotFoundError:
                raise DataError(f"{path} is missing; the data set folder is incomplete. Download the "
                                "data set again or point --data-dir at a complete copy.") from None
            except OSError as error:
                raise DataError(f"cannot read {path}: {error}") from error
        return blobs
    return read


def tarball_reader(archive: Path, inner_folder: str) -> ReadMembers:
    """Read members straight out of the official ``.tar.gz`` in one pass, without extracting it.

    The gzip stream is read to its end so that its CRC is checked: a damaged archive must fail,
    not load with a few wrong pixels.
    """
    def read(names: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        wanted = {f"{inner_folder}/{name}": name for name in names}
        blobs = {}
        try:
            with gzip.open(archive, "rb") as stream:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        name = wanted.get(member.name)
                        handle = tar.extractfile(member) if name and member.isfile() else None
                        if handle is not None:
                            blobs[name] = (f"{archive}:{member.name}", handle.read())
                while stream.read(_CHUNK_BYTES):
                    pass
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as error:
            raise DataError(f"{archive} is truncated or corrupt ({error}); delete it and download it again.") from error
        missing = sorted(set(names) - set(blobs))
        if missing:
            raise DataError(f"{archive} has no {inner_folder}/{missing[0]}; it is not the official archive. "
                            "Delete it and download it again.")
        return blobs
    return read
