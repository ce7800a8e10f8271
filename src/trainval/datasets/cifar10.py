"""CIFAR-10: 50,000 training and 10,000 test colour images of 32x32 pixels in 10 classes.

``load_data()`` returns arrays shaped exactly like ``keras.datasets.cifar10.load_data()``.
"""

from __future__ import annotations

import os

import numpy as np

from trainval.datasets import array_cache, cifar_format

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NUM_CLASSES = 10
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_data(data_dir: str | os.PathLike[str] | None = None) -> tuple[array_cache.Split, array_cache.Split]:
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 arrays of shape (50000, 32, 32, 3) and (10000, 32, 32, 3); labels are uint8
    arrays of shape (N, 1), in the official order. The data is looked for in ``data_dir``, else in
    the folder named by ``TRAINVAL_DATA``, else in ``~/.cache/trainval/cifar10`` (downloaded there,
    with its published MD5 checked, on first use). Either the extracted ``cifar-10-batches-py/``
    folder or the ``cifar-10-python.tar.gz`` archive will do, in that folder or its ``cifar10/``
    sub-folder.

    >>> (x_train, y_train), (x_test, y_test) = load_data("../shared/data/cifar10")  # doctest: +SKIP
    >>> x_train.shape, y_train.shape
    ((50000, 32, 32, 3), (50000, 1))

    Raises:
        DataError: the files are missing, truncated, corrupt, or could not be downloaded.
    """
    sources, read_members = cifar_format.locate_cifar_files("cifar10", "CIFAR-10", data_dir, URL, MD5, FOLDER_NAME,
                                                            ARCHIVE_NAME, TRAIN_FILES + (TEST_FILE,))
    return array_cache.cached_train_test("cifar10", sources, lambda: _decode(read_members))


def _decode(read_members: cifar_format.ReadMembers) -> dict[str, np.ndarray]:
    blobs = read_members(TRAIN_FILES + (TEST_FILE,))
    decoded = {name: cifar_format.read_batch(blob, where, b"labels", NUM_CLASSES)
               for name, (where, blob) in blobs.items()}
    train = [decoded[name] for name in TRAIN_FILES]
    x_test, y_test = decoded[TEST_FILE]
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]).reshape(-1, 1),
        "x_test": x_test,
        "y_test": y_test.reshape(-1, 1),
    }

