"""Build tiny MNIST-style, CIFAR-100 and image-folder data sets in their official layouts, for tests.

Each writer starts from the arrays a correct loader should return and encodes the files from them
with nothing but ``struct``, ``gzip``, ``pickle`` and Pillow, so the expected arrays never depend on
the code under test.

MNIST and Fashion-MNIST publish four gzipped IDX files. An IDX file is two zero bytes, a type code
(0x08: unsigned bytes), the number of dimensions, one big-endian uint32 size per dimension, then
the values in C order::

    >>> want = mnist_arrays()                                # (N, 28, 28, 1) images, (N, 1) labels
    >>> folder = write_mnist_folder(tmp_path / "mnist")      # the four *-ubyte.gz files

CIFAR-100's ``cifar-100-python.tar.gz`` holds ``cifar-100-python/{train,test,meta}``: Python 2
protocol-2 pickles of dicts with byte-string keys, ``b"data"`` holding (N, 3072) uint8 rows (the
1024 red values, then green, then blue) and ``b"fine_labels"`` / ``b"coarse_labels"`` lists::

    >>> want = cifar100_arrays()
    >>> folder = write_cifar100_folder(tmp_path / "data")    # tmp_path/data/cifar-100-python

An image folder is one sub-folder of images per class (``root/cat/*.png``), or that under
``root/train/`` and ``root/test/``. Every image is one solid colour, so whatever its size and mode
the loader must return that colour at every pixel; :class:`WrittenImage` says which.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_files import images_to_rows, pickle_batch
from trainval.datasets import cifar100

def touch_later(path: Path, seconds: int = 5) -> None:
    """Move ``path``'s modification time ``seconds`` on, as a later edit would (a quick rewrite in a test
    can keep the old time: the kernel stamps files with a clock that ticks every few milliseconds)."""
    stat = Path(path).stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


# ---------------------------------------------------------------------------------------------
# MNIST-style IDX files

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
UNSIGNED_BYTE = 0x08


@dataclass(frozen=True)
class KerasArrays:
    """What ``load_data()`` should return: uint8 images (N, H, W, C) and uint8 labels (N, 1)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def assert_loaded_as(loaded, want: KerasArrays) -> None:
    """``loaded`` is ``(x_train, y_train), (x_test, y_test)`` equal to ``want``, dtypes and shapes included."""
    (x_train, y_train), (x_test, y_test) = loaded
    for got, expected in ((x_train, want.x_train), (y_train, want.y_train), (x_test, want.x_test),
                          (y_test, want.y_test)):
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def mnist_arrays(train_size: int = 12, test_size: int = 7, seed: int = 0) -> KerasArrays:
    """The arrays a correct loader returns for ``write_mnist_folder`` with the same arguments.

    Labels run 9, 0, 1, ... so the largest digit is always there; pixel (0, 0) of the first
    training image is 0 and pixel (27, 27) is 255, which a transposed or offset decode would miss.
    """
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(train_size, 28, 28, 1), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(test_size, 28, 28, 1), dtype=np.uint8)
    if train_size:
        x_train[0, 0, 0], x_train[0, 27, 27] = 0, 255
    y_train = ((np.arange(train_size) + 9) % 10).astype(np.uint8).reshape(-1, 1)
    y_test = ((np.arange(test_size) + 4) % 10).astype(np.uint8).reshape(-1, 1)
    return KerasArrays(x_train, y_train, x_test, y_test)


def idx_header(shape: Sequence[int], type_code: int = UNSIGNED_BYTE, ndim: int | None = None) -> bytes:
    """The magic number and sizes of an IDX file; ``type_code``/``ndim`` can be set to lie about the values."""
    return bytes([0, 0, type_code, len(shape) if ndim is None else ndim]) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(values: np.ndarray) -> bytes:
    """An unsigned-byte IDX file holding ``values`` (uncompressed)."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    return idx_header(values.shape) + values.tobytes(order="C")


def mnist_file_contents(want: KerasArrays) -> dict[str, bytes]:
    """The uncompressed bytes of the four official files, by official name (without ``.gz``)."""
    return {TRAIN_IMAGES: idx_bytes(want.x_train[..., 0]), TRAIN_LABELS: idx_bytes(want.y_train[:, 0]),
            TEST_IMAGES: idx_bytes(want.x_test[..., 0]), TEST_LABELS: idx_bytes(want.y_test[:, 0])}


def gzipped(blob: bytes) -> bytes:
    """``blob`` gzipped reproducibly (no timestamp), as a published file would be."""
    return gzip.compress(blob, mtime=0)


def write_mnist_folder(folder: Path, train_size: int = 12, test_size: int = 7, seed: int = 0,
                       compressed: bool = True, contents: dict[str, bytes] | None = None) -> Path:
    """Write the four official files into ``folder`` (``*-ubyte.gz``, or ``*-ubyte`` if not ``compressed``).

    ``contents`` replaces the uncompressed bytes of some files (to write broken ones). The arrays a
    loader should return are ``mnist_arrays(train_size, test_size, seed)``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = mnist_file_contents(mnist_arrays(train_size, test_size, seed))
    files.update(contents or {})
    for name, blob in files.items():
        if compressed:
            (folder / f"{name}.gz").write_bytes(gzipped(blob))
        else:
            (folder / name).write_bytes(blob)
    return folder


# ---------------------------------------------------------------------------------------------
# CIFAR-100

CIFAR100_FOLDER = "cifar-100-python"
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"
CIFAR100_MEMBERS = ("train", "test", "meta")


@dataclass(frozen=True)
class Cifar100Arrays:
    """What ``cifar100.load_data()`` should return, for each label mode."""

    x_train: np.ndarray  # (N, 32, 32, 3) uint8
    fine_train: np.ndarray  # (N, 1) uint8, 0..99
    coarse_train: np.ndarray  # (N, 1) uint8, 0..19
    x_test: np.ndarray
    fine_test: np.ndarray
    coarse_test: np.ndarray

    def keras(self, label_mode: str) -> KerasArrays:
        labels = {"fine": (self.fine_train, self.fine_test), "coarse": (self.coarse_train, self.coarse_test)}
        y_train, y_test = labels[label_mode]
        return KerasArrays(self.x_train, y_train, self.x_test, y_test)


def cifar100_arrays(train_size: int = 20, test_size: int = 8, seed: int = 0) -> Cifar100Arrays:
    """The arrays a correct loader returns for ``write_cifar100_folder`` with the same arguments.

    The first image of each split has fine label 99 and coarse label 19, the largest of each. The
    coarse labels are made up (``fine // 5``), not the official superclass of each fine class.
    """
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, size=(train_size, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(test_size, 32, 32, 3), dtype=np.uint8)
    fine_train = ((99 + 37 * np.arange(train_size)) % 100).astype(np.uint8).reshape(-1, 1)
    fine_test = ((99 + 53 * np.arange(test_size)) % 100).astype(np.uint8).reshape(-1, 1)
    return Cifar100Arrays(x_train, fine_train, fine_train // 5, x_test, fine_test, fine_test // 5)


def cifar100_batch(images: np.ndarray, fine: np.ndarray, coarse: np.ndarray, batch_label: bytes) -> dict:
    """The dict the official ``train`` or ``test`` file pickles."""
    return {
        b"filenames": [f"generated_image_{i:05d}.png".encode() for i in range(len(images))],
        b"batch_label": batch_label,
        b"fine_labels": [int(label) for label in np.asarray(fine).reshape(-1)],
        b"coarse_labels": [int(label) for label in np.asarray(coarse).reshape(-1)],
        b"data": images_to_rows(images),
    }


def cifar100_meta() -> dict:
    """The dict the official ``meta`` pickles: the class names in label order, as bytes."""
    return {b"fine_label_names": [name.encode() for name in cifar100.FINE_CLASS_NAMES],
            b"coarse_label_names": [name.encode() for name in cifar100.COARSE_CLASS_NAMES]}


def cifar100_file_contents(train_size: int = 20, test_size: int = 8, seed: int = 0) -> dict[str, bytes]:
    """The bytes of every file of ``cifar-100-python/``, by file name."""
    want = cifar100_arrays(train_size, test_size, seed)
    return {
        "train": pickle_batch(cifar100_batch(want.x_train, want.fine_train, want.coarse_train,
                                             b"training batch 1 of 1")),
        "test": pickle_batch(cifar100_batch(want.x_test, want.fine_test, want.coarse_test, b"testing batch 1 of 1")),
        "meta": pickle_batch(cifar100_meta()),
    }


def write_cifar100_folder(root: Path, train_size: int = 20, test_size: int = 8, seed: int = 0,
                          contents: dict[str, bytes] | None = None) -> Path:
    """Write ``root/cifar-100-python/{train,test,meta}`` and return the folder's path.

    ``contents`` replaces some files' bytes. The arrays are ``cifar100_arrays(train_size, test_size, seed)``.
    """
    folder = Path(root) / CIFAR100_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files = cifar100_file_contents(train_size, test_size, seed)
    files.update(contents or {})
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


def write_cifar100_tarball(root: Path, train_size: int = 20, test_size: int = 8, seed: int = 0) -> Path:
    """Write ``root/cifar-100-python.tar.gz`` holding ``cifar-100-python/{train,test,meta}`` and return its path."""
    archive = Path(root) / CIFAR100_ARCHIVE
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        folder = tarfile.TarInfo(CIFAR100_FOLDER)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, blob in cifar100_file_contents(train_size, test_size, seed).items():
            info = tarfile.TarInfo(f"{CIFAR100_FOLDER}/{name}")
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))
    return archive


def read_meta(folder: Path) -> dict:
    """The official ``meta`` file of an extracted folder, unpickled as Python 3 reads Python 2's files."""
    return pickle.loads((Path(folder) / "meta").read_bytes(), encoding="bytes")


# ---------------------------------------------------------------------------------------------
# Image folders

# One colour per class index; the gray modes store each colour's green value.
CLASS_COLOURS = ((220, 40, 40), (40, 200, 60), (30, 60, 210), (200, 180, 30), (150, 30, 160), (20, 170, 170))
MIXED_SIZES = ((32, 32), (40, 20), (17, 45), (64, 48), (9, 9))  # (width, height)
MIXED_MODES = ("RGB", "L", "RGBA", "P", "I;16")
GRAY_MODES = ("L", "I;16")


@dataclass(frozen=True)
class WrittenImage:
    """An image file written for a test, and the colour a loader must return at its every pixel."""

    path: Path
    class_name: str
    rgb: tuple[int, int, int]  # when the data set is loaded with 3 channels
    gray: int  # when it is loaded with 1 channel (only meaningful for gray modes)


def write_solid_image(path: Path, colour: tuple[int, int, int], mode: str = "RGB",
                      size: tuple[int, int] = (32, 32)) -> tuple[tuple[int, int, int], int]:
    """Save an image of one colour in ``mode`` (RGB, L, RGBA, P, I;16) and return how it must load: (RGB, gray).

    The gray modes store ``colour``'s green value (I;16 as 257 times it, the full 16-bit range).
    The format follows the suffix (.png, .jpg, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    level = colour[1]
    if mode == "RGB":
        image, loads_as = Image.new("RGB", size, colour), colour
    elif mode == "RGBA":
        image, loads_as = Image.new("RGBA", size, (*colour, 255)), colour
    elif mode == "P":
        image = Image.new("P", size, 0)
        image.putpalette(list(colour) + [0, 0, 0] * 255)
        loads_as = colour
    elif mode == "L":
        image, loads_as = Image.new("L", size, level), (level, level, level)
    elif mode == "I;16":
        image, loads_as = Image.new("I;16", size, 257 * level), (level, level, level)
    else:
        raise ValueError(f"no solid-image recipe for mode {mode!r}")
    image.save(path)
    return loads_as, level


def write_class_folder(folder: Path, class_name: str, class_index: int, count: int,
                       modes: Sequence[str] = ("RGB",), sizes: Sequence[tuple[int, int]] = ((32, 32),),
                       start: int = 0) -> list[WrittenImage]:
    """Write ``count`` solid images of the class's colour into ``folder/class_name``, cycling modes and sizes.

    Files are named ``img_000.png`` (from ``start``); JPEG is not used, so colours are exact.
    """
    written = []
    colour = CLASS_COLOURS[class_index % len(CLASS_COLOURS)]
    for i in range(start, start + count):
        path = Path(folder) / class_name / f"img_{i:03d}.png"
        rgb, gray = write_solid_image(path, colour, modes[i % len(modes)], sizes[i % len(sizes)])
        written.append(WrittenImage(path, class_name, rgb, gray))
    return written


def write_image_folder(root: Path, per_class: dict[str, int] | None = None, modes: Sequence[str] = MIXED_MODES,
                       sizes: Sequence[tuple[int, int]] = MIXED_SIZES) -> list[WrittenImage]:
    """Write ``root/<class>/img_NNN.png`` for each class (sorted names give the class indices)."""
    per_class = {"cat": 6, "dog": 5, "owl": 7} if per_class is None else per_class
    written = []
    for index, name in enumerate(sorted(per_class)):
        written += write_class_folder(root, name, index, per_class[name], modes, sizes)
    return written


def write_train_test_folder(root: Path, train: dict[str, int] | None = None, test: dict[str, int] | None = None,
                            modes: Sequence[str] = MIXED_MODES) -> dict[str, list[WrittenImage]]:
    """Write ``root/train/<class>/`` and ``root/test/<class>/``; class indices follow the sorted train classes."""
    train = {"ant": 4, "bee": 3, "fly": 5} if train is None else train
    test = {"ant": 2, "bee": 2, "fly": 1} if test is None else test
    index = {name: i for i, name in enumerate(sorted(train))}
    written: dict[str, list[WrittenImage]] = {"train": [], "test": []}
    for split, counts in (("train", train), ("test", test)):
        for name in sorted(counts):
            written[split] += write_class_folder(Path(root) / split, name, index.get(name, len(index)),
                                                 counts[name], modes, MIXED_SIZES)
    return written


def write_photos(root: Path, classes=("cat", "dog", "owl"), per_class: int = 8, grayscale: bool = False) -> Path:
    """Class folders of PNG and JPEG files of assorted sizes; each class has its own brightness."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            height, width = rng.integers(20, 50, size=2)
            pixels = np.clip(index * 90 + rng.integers(0, 40, size=(height, width, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            if grayscale or i % 4 == 0:
                image = image.convert("L")
            image.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root
