"""A folder of your own images as a data set: one sub-folder per class, decoded once into uint8 arrays.

Two layouts are understood::

    photos/cat/*.jpg, photos/dog/*.png, ...          a test set is held out of each class
    photos/train/cat/..., photos/test/cat/..., ...   the folder's own split is used

Class names are the sub-folders' names, sorted. Images (PNG, JPEG, BMP, GIF, WebP, in nested
folders too) are converted and resized as ``trainval predict`` does (see
:func:`trainval.data.image_files.resize_policy`), to 1 channel when every image is grayscale and 3
otherwise, by a pool of threads with a progress bar for long loads. The decoded arrays are cached,
keyed by every file's path, size and modification time. Before anything is decoded, the arrays'
size is checked against the memory available (:mod:`trainval.datasets.memory_budget`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from trainval.data.image_files import MAX_IMAGE_SIDE, load_image_files
from trainval.datasets import array_cache
from trainval.datasets.memory_budget import check_images_fit
from trainval.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DEFAULT_IMAGE_SIZE = 32  # pixels a side: the fast recipes' size; raise it for photos with fine detail
DEFAULT_TEST_FRACTION = 0.2
SPLIT_FOLDERS = ("train", "test")
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_UNREADABLE_SHOWN = 5


@dataclass(frozen=True)
class ImageFolder:
    """The image files of a folder data set, assigned to classes and to the training or test split."""

    root: Path
    class_names: tuple[str, ...]
    train_files: tuple[tuple[Path, int], ...]  # (path, class index)
    test_files: tuple[tuple[Path, int], ...]
    image_size: int
    test_fraction: float | None  # None: the folder's own train/ and test/

    @classmethod
    def scan(cls, path: str | os.PathLike[str], image_size: int | None = None,
             test_fraction: float | None = None) -> ImageFolder:
        """List the classes and image files under ``path`` and split them (nothing is decoded yet).

        Raises:
            ConfigError: ``image_size`` or ``test_fraction`` is out of range, or ``test_fraction``
                was given for a folder with its own ``train/`` and ``test/``.
            DataError: the folder is missing, or its classes cannot make a data set.
        """
        image_size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
        if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= MAX_IMAGE_SIDE:
            raise ConfigError(f"image-size must be a whole number of pixels from 1 to {MAX_IMAGE_SIDE}; "
                              f"got {image_size!r}")
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DataError(f"the image folder {root} {'is not a folder' if root.exists() else 'does not exist'}; "
                            "point folder:PATH at a folder holding one sub-folder of images per class")
        if all((root / name).is_dir() for name in SPLIT_FOLDERS):
            if test_fraction is not None:
                raise ConfigError(f"{root} has its own train/ and test/ folders, so test-fraction does not apply; "
                                  "drop it")
            names, train = _class_files(root / "train")
            test_names, test = _class_files(root / "test", min_classes=1)  # a test set may cover fewer classes
            unknown = sorted(set(test_names) - set(names))
            if unknown:
                raise DataError(f"{root / 'test'} has the class folder {unknown[0]!r}, which {root / 'train'} lacks; "
                                "every test class needs training images")
            return cls(root, names, _labelled(root, train, names), _labelled(root, test, names), image_size,
                       None).checked_memory()
        test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise ConfigError(f"test-fraction must be a fraction between 0 and 1, such as 0.2; got {test_fraction!r}")
        names, files = _class_files(root)
        train, test = _hold_out(root, files, test_fraction)
        return cls(root, names, _labelled(root, train, names), _labelled(root, test, names), image_size,
                   test_fraction).checked_memory()

    def checked_memory(self) -> ImageFolder:
        """This folder, once it is clear that its images fit in memory at ``image_size`` (a DataError if not)."""
        check_images_fit(len(self.train_files) + len(self.test_files), self.image_size, 3, str(self.root))
        return self

    def load_data(self, data_dir: str | os.PathLike[str] | None = None) -> tuple[array_cache.Split, array_cache.Split]:
        """``(x_train, y_train), (x_test, y_test)`` as uint8 arrays (N, size, size, C) and (N, 1).

        ``data_dir`` is ignored: the folder is the data. Decoded once, then read from the cache.

        Raises:
            DataError: some images cannot be decoded (they are listed, with their reasons).
        """
        paths = [path for path, _ in self.train_files + self.test_files]
        settings = f"image folder v1; size {self.image_size}; test fraction {self.test_fraction}"
        name = "folder-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in self.root.resolve().name)
        return array_cache.cached_train_test(name, paths, self._decode, settings)

    def channels(self) -> int:
        """1 if every image is grayscale, else 3 (read from the files' headers)."""
        return 1 if all(_is_grayscale(path) for path, _ in self.train_files + self.test_files) else 3

    def _decode(self) -> dict[str, np.ndarray]:
        files = self.train_files + self.test_files
        loaded = load_image_files([path for path, _ in files], self.image_size, self.image_size, self.channels(),
                                  progress=f"Decoding {self.root.name}")
        if loaded.unreadable:
            listed = "; ".join(f"{bad.path}: {bad.reason}" for bad in loaded.unreadable[:_UNREADABLE_SHOWN])
            more = len(loaded.unreadable) - _UNREADABLE_SHOWN
            raise DataError(f"{len(loaded.unreadable)} image(s) in {self.root} cannot be read ({listed}"
                            f"{f'; and {more} more' if more > 0 else ''}); fix or remove them and run again")
        label_type = np.uint8 if len(self.class_names) <= 256 else np.uint16
        labels = np.array([label for _, label in files], dtype=label_type).reshape(-1, 1)
        count = len(self.train_files)
        return {"x_train": loaded.images[:count], "y_train": labels[:count],
                "x_test": loaded.images[count:], "y_test": labels[count:]}


def _class_files(folder: Path, min_classes: int = 2) -> tuple[tuple[str, ...], dict[str, list[Path]]]:
    """Class names (sorted sub-folder names) and each class's image files, sorted, nested folders included."""
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        holds_images = any(_is_image_file(entry) for entry in folder.iterdir())
        raise DataError(f"{folder} has no class sub-folders{' (it holds images directly)' if holds_images else ''}; "
                        "put each class's images in a sub-folder named after the class")
    if len(classes) < min_classes:
        raise DataError(f"{folder} has one class folder ({classes[0]}); a classifier needs at least two")
    files = {name: sorted(path for path in (folder / name).rglob("*")
                          if _is_image_file(path) and not _is_hidden(path.relative_to(folder / name)))
             for name in classes}
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DataError(f"the class folder {folder / empty[0]} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                        "add some or remove the folder")
    return tuple(classes), files


def _hold_out(root: Path, files: dict[str, list[Path]],
              test_fraction: float) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Split each class's files into training and test: ``test_fraction`` of them, at least one each way.

    Files are ordered by a hash of their path inside ``root``, so the split needs no random seed,
    is the same on every machine, and adding an image moves at most one other across the split: to keep
    the test share, a new image placed in the test set may push one out, or a new test place pull one in.
    (Keeping every image in place needs a per-image coin flip, which gives up the exact share and the
    one-each-way minimum.)
    """
    train, test = {}, {}
    for name, paths in files.items():
        if len(paths) < 2:
            raise DataError(f"the class folder {root / name} has one image; holding out a test set needs at least "
                            "two per class (or give the folder its own train/ and test/ sub-folders)")
        ordered = sorted(paths, key=partial(_shuffle_key, root))
        held = min(max(round(len(paths) * test_fraction), 1), len(paths) - 1)
        test[name], train[name] = sorted(ordered[:held]), sorted(ordered[held:])
    return train, test


def _labelled(root: Path, files: dict[str, list[Path]], class_names: tuple[str, ...]) -> tuple[tuple[Path, int], ...]:
    """(path, class index) pairs with the classes mixed, as a shuffle would (a sample of the first
    images, such as the whitening stem's, then sees every class)."""
    pairs = [(path, class_names.index(name)) for name, paths in files.items() for path in paths]
    return tuple(sorted(pairs, key=lambda pair: _shuffle_key(root, pair[0])))


def _shuffle_key(root: Path, path: Path) -> bytes:
    """A fixed pseudo-random rank for a file, from its path inside ``root``."""
    return hashlib.sha256(path.relative_to(root).as_posix().encode()).digest()


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _is_hidden(relative: Path) -> bool:
    """True for dot-files and anything in a dot-folder (``.thumbnails/``, macOS's ``._*`` copies)."""
    return any(part.startswith(".") for part in relative.parts)


def _is_grayscale(path: Path) -> bool:
    """True if the file's header says grayscale; unreadable files count as grayscale here and fail in decoding."""
    try:
        with Image.open(path) as image:
            return image.mode in _GRAYSCALE_MODES
    except Exception:  # noqa: BLE001 - load_image_files reports the file with its reason
        return True
