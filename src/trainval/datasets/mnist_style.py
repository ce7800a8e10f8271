"""Data sets published as MNIST is: four gzipped IDX files of 28x28 grayscale images and their labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainval.datasets import array_cache
from trainval.datasets.download import download_and_verify
from trainval.datasets.idx_format import read_idx
from trainval.datasets.locations import locate_files
from trainval.errors import DataError

# The official file names, each gzipped as published (an extracted copy without ".gz" is read too).
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclass(frozen=True)
class MnistStyleSource:
    """Where one MNIST-style data set is published: a base URL and each file's published MD5."""

    name: str  # the cache folder and sub-folder name, e.g. "mnist"
    title: str  # for messages, e.g. "MNIST"
    base_url: str  # ends with "/"; the files are base_url + name + ".gz"
    md5: dict[str, str]  # official file name (without .gz) -> MD5 of the .gz file
    class_names: Sequence[str]

    def load_data(self, data_dir: str | os.PathLike[str] | None = None) -> tuple[array_cache.Split, array_cache.Split]:
        """Load the data set as ``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 28, 28, 1) and
        uint8 labels (N, 1), in the official order.

        The four official ``*-ubyte.gz`` files (or extracted copies) are looked for in ``data_dir``,
        else ``TRAINVAL_DATA``, in that folder or its sub-folder named ``self.name``; with neither
        given they are downloaded to ``~/.cache/trainval/<name>`` and checked against their
        published MD5s.

        Raises:
            DataError: the files are missing, truncated, corrupt, or could not be downloaded.
        """
        paths = locate_files(self.name, self.title, data_dir, find_in=_find_files, download_into=self._download,
                             expected=", ".join(f"{name}.gz" for name in FILES))
        return array_cache.cached_train_test(self.name, paths.values(), lambda: self._decode(paths))

    def _download(self, folder: Path) -> None:
        # A file already in the cache passed its MD5 check when it was downloaded: only the missing ones are fetched.
        for name in FILES:
            if not (folder / f"{name}.gz").is_file():
                download_and_verify(f"{self.base_url}{name}.gz", self.md5[name], folder / f"{name}.gz")

    def _decode(self, paths: dict[str, Path]) -> dict[str, np.ndarray]:
        arrays = {}
        for split, images_name, labels_name in (("train", TRAIN_IMAGES, TRAIN_LABELS),
                                                ("test", TEST_IMAGES, TEST_LABELS)):
            images, labels = read_idx(paths[images_name], ndim=3), read_idx(paths[labels_name], ndim=1)
            if images.shape[1:] != (28, 28):
                raise DataError(f"{paths[images_name]} holds images of {images.shape[1]}x{images.shape[2]} pixels, "
                                f"not the 28x28 of {self.title}; is it the right file?")
            if len(images) != len(labels):
                raise DataError(f"{paths[images_name]} holds {len(images)} images but {paths[labels_name]} holds "
                                f"{len(labels)} labels; download the data set again.")
            if len(labels) and labels.max() >= len(self.class_names):
                raise DataError(f"{paths[labels_name]} has labels outside 0..{len(self.class_names) - 1}; "
                                "download the data set again.")
            arrays[f"x_{split}"], arrays[f"y_{split}"] = images[..., None], labels.reshape(-1, 1)
        return arrays


def _find_files(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder``, gzipped or extracted; None unless all four are there."""
    found = {}
    for name in FILES:
        existing = [path for path in (folder / f"{name}.gz", folder / name) if path.is_file()]
        if not existing:
            return None
        found[name] = existing[0]
    return found
