"""Build tiny CIFAR-10 data sets in the official "python version" format, for tests.

The official ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with ``data_batch_1`` ..
``data_batch_5``, ``test_batch`` and ``batches.meta``: protocol-2 pickles (written by Python 2) of
dicts with byte-string keys. A batch holds ``b"batch_label"``, ``b"labels"`` (list of int),
``b"data"`` (uint8 array of shape (n, 3072): each row is the 1024 red values of a 32x32 image in
row-major order, then the 1024 green ones, then the 1024 blue ones) and ``b"filenames"`` (list
of bytes).

The images are generated as NHWC arrays first and encoded into rows from that layout, so the
expected arrays (:func:`expected_arrays`) do not depend on the decoder under test.

    >>> folder = write_cifar10_folder(tmp_path)             # tmp_path/cifar-10-batches-py
    >>> want = expected_arrays()                             # same defaults, same arrays
    >>> want.x_train.shape, want.y_train.shape
    ((30, 32, 32, 3), (30, 1))
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ROW_BYTES = 32 * 32 * 3
NUM_CLASSES = 10
# The class names exactly as the official batches.meta stores them.
LABEL_NAMES = (b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck")

# One pixel of the first training image and of the first test image is set to these (R, G, B)
# values, all different, so a test can check that the channel planes are decoded into the last axis.
PROBE_PIXEL = (3, 7)  # (row, column)
PROBE_TRAIN_RGB = (200, 100, 50)
PROBE_TEST_RGB = (11, 222, 133)

Style = Literal["python2", "python3"]


@dataclass(frozen=True)
class CifarArrays:
    """What ``load_data()`` should return for a generated data set (Keras shapes and dtypes)."""

    x_train: np.ndarray  # (N, 32, 32, 3) uint8
    y_train: np.ndarray  # (N, 1) uint8
    x_test: np.ndarray  # (M, 32, 32, 3) uint8
    y_test: np.ndarray  # (M, 1) uint8


def expected_arrays(train_per_batch: int = 6, test_size: int = 10, seed: int = 0) -> CifarArrays:
    """The arrays a correct loader returns for the data set written with the same arguments."""
    rng = np.random.default_rng(seed)
    n_train = 5 * train_per_batch
    x_train = rng.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(test_size, 32, 32, 3), dtype=np.uint8)
    row, col = PROBE_PIXEL
    if n_train:
        x_train[0, row, col] = PROBE_TRAIN_RGB
    if test_size:
        x_test[0, row, col] = PROBE_TEST_RGB
    # Labels cycle through all ten classes, in file order.
    y_train = (np.arange(n_train) % NUM_CLASSES).astype(np.uint8).reshape(-1, 1)
    y_test = ((np.arange(test_size) + 3) % NUM_CLASSES).astype(np.uint8).reshape(-1, 1)
    return CifarArrays(x_train, y_train, x_test, y_test)


def images_to_rows(images: np.ndarray) -> np.ndarray:
    """Encode NHWC uint8 images as official CIFAR rows: all R values, then all G, then all B."""
    n = len(images)
    planes = [images[:, :, :, channel].reshape(n, 32 * 32) for channel in range(3)]
    return np.ascontiguousarray(np.concatenate(planes, axis=1), dtype=np.uint8)


def make_batch(images: np.ndarray, labels: np.ndarray, batch_label: bytes, first_index: int = 0) -> dict[bytes, Any]:
    """The dict one official batch file pickles."""
    return {
        b"batch_label": batch_label,
        b"labels": [int(label) for label in np.asarray(labels).reshape(-1)],
        b"data": images_to_rows(images),
        b"filenames": [f"generated_image_{first_index + i:05d}.png".encode() for i in range(len(images))],
    }


def make_meta(num_cases_per_batch: int) -> dict[bytes, Any]:
    """The dict the official batches.meta pickles."""
    return {b"label_names": list(LABEL_NAMES), b"num_cases_per_batch": num_cases_per_batch, b"num_vis": ROW_BYTES}


class _Python2StylePickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Write bytes and str as Python 2 wrote ``str`` (SHORT_BINSTRING/BINSTRING), like the official files.

    Python 3's protocol-2 pickler writes bytes as ``_codecs.encode(text, "latin1")`` calls and str
    (NumPy's dtype state holds some) as BINUNICODE instead.
    """

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("ascii"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def pickle_batch(content: dict[bytes, Any], style: Style = "python2") -> bytes:
    """Pickle ``content`` with protocol 2, as Python 2 (the official files) or Python 3 would."""
    if style == "python3":
        return pickle.dumps(content, protocol=2)
    if style != "python2":
        raise ValueError(f"unknown style {style!r}")
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(content)
    # NumPy 1 (which wrote the official files' era of pickles) named its reconstructor here.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def batch_files(train_per_batch: int = 6, test_size: int = 10, seed: int = 0,
                style: Style = "python2") -> dict[str, bytes]:
    """The bytes of every file of ``cifar-10-batches-py/``, by file name."""
    want = expected_arrays(train_per_batch, test_size, seed)
    files = {}
    for i, name in enumerate(TRAIN_FILES):
        part = slice(i * train_per_batch, (i + 1) * train_per_batch)
        batch = make_batch(want.x_train[part], want.y_train[part], f"training batch {i + 1} of 5".encode(),
                           first_index=i * train_per_batch)
        files[name] = pickle_batch(batch, style)
    files[TEST_FILE] = pickle_batch(make_batch(want.x_test, want.y_test, b"testing batch 1 of 1"), style)
    files[META_FILE] = pickle_batch(make_meta(train_per_batch), style)
    return files


def write_cifar10_folder(root: Path, train_per_batch: int = 6, test_size: int = 10, seed: int = 0,
                         style: Style = "python2") -> Path:
    """Write ``root/cifar-10-batches-py/`` and return its path.

    The arrays a loader should return are ``expected_arrays(train_per_batch, test_size, seed)``.
    """
    folder = Path(root) / FOLDER_NAME
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in batch_files(train_per_batch, test_size, seed, style).items():
        (folder / name).write_bytes(blob)
    return folder


def write_cifar10_tarball(root: Path, train_per_batch: int = 6, test_size: int = 10, seed: int = 0,
                          style: Style = "python2", omit: tuple[str, ...] = ()) -> Path:
    """Write ``root/cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/...`` and return its path.

    ``omit`` names batch files to leave out of the archive.
    """
    archive = Path(root) / ARCHIVE_NAME
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        folder = tarfile.TarInfo(FOLDER_NAME)
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        tar.addfile(folder)
        members = {"readme.html": b"<html><body>generated for tests</body></html>\n"}
        members.update(batch_files(train_per_batch, test_size, seed, style))
        for name, blob in members.items():
            if name in omit:
                continue
            info = tarfile.TarInfo(f"{FOLDER_NAME}/{name}")
            info.size = len(blob)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(blob))
    return archive
