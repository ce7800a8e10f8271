"""Reader for the IDX files of MNIST-style data sets (``*-idx3-ubyte`` images, ``*-idx1-ubyte`` labels).

An IDX file is a 4-byte magic number (two zero bytes, a type code, 0x08 for unsigned bytes, and
the number of dimensions), one big-endian uint32 size per dimension, then the values in C order.
The official files are gzipped; extracted copies are read as well.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from trainval.errors import DataError

_UNSIGNED_BYTE = 0x08
# Far above any MNIST-style file (the largest is 47 MB), low enough that a crafted gzip cannot exhaust memory.
_MAX_BYTES = 1 << 30


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array in the IDX file ``path`` (gzipped if its name ends in ``.gz``), which must have ``ndim`` axes.

    Raises:
        DataError: the file cannot be read, is truncated or corrupt, or is not an unsigned-byte
            IDX file of ``ndim`` dimensions.
    """
    blob = _read_bytes(path)
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0:
        raise DataError(f"{path} does not start with an IDX magic number; it is not an MNIST-style file. "
                        "Delete it and download the data set again.")
    if blob[2] != _UNSIGNED_BYTE or blob[3] != ndim:
        raise DataError(f"{path} holds {blob[3]}-dimensional values of type code {blob[2]:#04x}, not the "
                        f"{ndim}-dimensional unsigned bytes (0x08) expected; is it the right file?")
    header_bytes = 4 + 4 * ndim
    if len(blob) < header_bytes:
        raise DataError(f"{path} is truncated inside its header; delete it and download the data set again.")
    shape = tuple(int(size) for size in np.frombuffer(blob, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(blob) - header_bytes != expected:
        raise DataError(f"{path} should hold {expected:,} bytes of values for shape {shape} but holds "
                        f"{len(blob) - header_bytes:,}; it is truncated or corrupt. Delete it and download the "
                        "data set again.")
    return np.frombuffer(blob, np.uint8, offset=header_bytes).reshape(shape).copy()


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                blob = stream.read(_MAX_BYTES + 1)  # to its end: the gzip CRC is checked there
        else:
            with open(path, "rb") as stream:
                blob = stream.read(_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path} ({error}); it is truncated or corrupt. Delete it and download the "
                        "data set again.") from error
    if len(blob) > _MAX_BYTES:
        raise DataError(f"{path} holds more than {_MAX_BYTES:,} bytes, far more than any MNIST-style file")
    return blob
