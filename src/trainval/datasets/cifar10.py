"""CIFAR-10: 50,000 training and 10,000 test colour images of 32x32 pixels in 10 classes.

``load_data()`` returns arrays shaped exactly like ``keras.datasets.cifar10.load_data()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainval.datasets import array_cache, cifar_format
from trainval.datasets.download import download_and_verify
from trainval.datasets.locations import DATA_ENV_VAR, cache_root, user_data_dir
from trainval.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NUM_CLASSES = 10
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")

Split = tuple[np.ndarray, np.ndarray]


def load_data(data_dir: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
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
    source, read_members = _locate(user_data_dir(data_dir))
    fingerprint = array_cache.source_fingerprint(source)
    arrays = array_cache.cached_arrays("cifar10", fingerprint, _ARRAY_NAMES, lambda: _decode(read_members))
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


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


def _locate(root: Path | None) -> tuple[list[Path], cifar_format.ReadMembers]:
    """Find the files under ``root`` (or the cache, downloading there) and say how to read them."""
    if root is None:
        cache = cache_root() / "cifar10"
        found = _find_in(cache)
        if found is not None:
            return found
        download_and_verify(URL, MD5, cache / ARCHIVE_NAME)
        return _find_in(cache)  # type: ignore[return-value]
    if root.is_file() and root.name.endswith(".tar.gz"):
        return [root], cifar_format.tarball_reader(root, FOLDER_NAME)
    for folder in (root, root / "cifar10"):
        found = _find_in(folder)
        if found is not None:
            return found
    where = f"--data-dir/{DATA_ENV_VAR} folder {root}" if root.exists() else f"folder {root}, which does not exist"
    raise DataError(
        f"no CIFAR-10 files in the {where}: expected {FOLDER_NAME}/ or {ARCHIVE_NAME} there (or in its "
        f"cifar10/ sub-folder). Point --data-dir or {DATA_ENV_VAR} at the folder that holds them, or "
        "leave both unset to download the data set."
    )


def _find_in(folder: Path) -> tuple[list[Path], cifar_format.ReadMembers] | None:
    for extracted in (folder / FOLDER_NAME, folder):
        if (extracted / TEST_FILE).is_file():
            files = [extracted / name for name in TRAIN_FILES + (TEST_FILE,)]
            return [f for f in files if f.exists()], cifar_format.folder_reader(extracted)
    archive = folder / ARCHIVE_NAME
    if archive.is_file():
        return [archive], cifar_format.tarball_reader(archive, FOLDER_NAME)
    return None
