"""Data sets on disk: find, download, verify and decode them into Keras-shaped uint8 arrays.

``get(name)`` describes a data set and loads it; ``names()`` lists the registered ones. Besides
those, ``get("folder:PATH")`` reads a folder of your own images (see :mod:`trainval.datasets.image_folder`).

>>> cifar = trainval.datasets.get("cifar10")
>>> cifar.image_shape, cifar.num_classes
((32, 32, 3), 10)
>>> (x_train, y_train), (x_test, y_test) = cifar.load_data()  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from trainval.datasets import cifar10, cifar100, fashion_mnist, image_folder, mnist, synthetic
from trainval.datasets.array_cache import Split
from trainval.errors import ConfigError
from trainval.registry import Registry

FOLDER_PREFIX = "folder:"

Loader = Callable[[str | os.PathLike[str] | None], tuple[Split, Split]]


@dataclass(frozen=True)
class Dataset:
    """A data set trainval can train on: what it holds, and how to load it."""

    name: str
    description: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None  # (H, W, C) of every image; None until a folder's images are read
    sizes: tuple[int, int] | None  # (training, test) images; None for folders
    loader: Loader
    # Does mirroring an image keep its class? Not for digits: presets drop flips where it does not.
    mirror_safe: bool = True

    @property
    def num_classes(self) -> int:
        """The number of classes (labels run from 0 to ``num_classes - 1``)."""
        return len(self.class_names)

    def load_data(self, data_dir: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
        """``(x_train, y_train), (x_test, y_test)``: uint8 images (N, H, W, C) and uint8 labels (N, 1).

        ``data_dir`` is the folder holding the files (default: ``TRAINVAL_DATA``, else the download
        cache); a folder data set ignores it.
        """
        return self.loader(data_dir)


_DATASETS: Registry[Dataset] = Registry("dataset")
for _dataset in (
    Dataset("cifar10", "CIFAR-10: 32x32 colour photos of 10 classes (airplane ... truck)", cifar10.CLASS_NAMES,
            (32, 32, 3), (50_000, 10_000), cifar10.load_data),
    Dataset("cifar100", "CIFAR-100 with its 100 fine classes (apple ... worm)", cifar100.FINE_CLASS_NAMES,
            (32, 32, 3), (50_000, 10_000), partial(cifar100.load_data, label_mode="fine")),
    Dataset("cifar100-coarse", "CIFAR-100 with its 20 superclasses (aquatic_mammals ... vehicles_2)",
            cifar100.COARSE_CLASS_NAMES, (32, 32, 3), (50_000, 10_000), partial(cifar100.load_data, label_mode="coarse")),
    Dataset("mnist", "MNIST: 28x28 grayscale handwritten digits 0-9", mnist.CLASS_NAMES, (28, 28, 1),
            (60_000, 10_000), mnist.load_data, mirror_safe=False),
    Dataset("fashion-mnist", "Fashion-MNIST: 28x28 grayscale clothing in 10 classes (T-shirt/top ... Ankle boot)",
            fashion_mnist.CLASS_NAMES, (28, 28, 1), (60_000, 10_000), fashion_mnist.load_data),
    Dataset("synthetic-cifar10", "random images of CIFAR-10's shapes and classes, for timing where the CIFAR-10 files "
            "are not (accuracy: chance)", cifar10.CLASS_NAMES, (32, 32, 3), (50_000, 10_000),
            synthetic.load_cifar10_shaped),
):
    _DATASETS.add(_dataset.name, _dataset)


def get(name: str, *, image_size: int | None = None, test_fraction: float | None = None) -> Dataset:
    """The data set called ``name``: a registered name, or ``"folder:PATH"`` for a folder of images.

    ``image_size`` (pixels a side, default 32) and ``test_fraction`` (default 0.2: the share of each
    class held out as the test set when the folder has no ``train/`` and ``test/``) apply to
    folders only.

    Raises:
        ConfigError: the name is unknown, or an option was given for a registered data set.
        DataError: a folder data set's folder is missing or holds no classes of images.
    """
    if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
        folder = image_folder.ImageFolder.scan(name[len(FOLDER_PREFIX):], image_size, test_fraction)
        return Dataset(name, f"the images in {folder.root}", folder.class_names, None, None, folder.load_data)
    dataset = _DATASETS.get(name)
    for option, value in (("image_size", image_size), ("test_fraction", test_fraction)):
        if value is not None:
            raise ConfigError(f"{option.replace('_', '-')} applies to folder data sets ({FOLDER_PREFIX}PATH) only; "
                              f"{name} has fixed images and a fixed test set")
    return dataset


def names() -> list[str]:
    """The registered names accepted by :func:`get` (``folder:PATH`` is accepted too)."""
    return _DATASETS.names()


__all__ = ["Dataset", "FOLDER_PREFIX", "cifar10", "cifar100", "fashion_mnist", "get", "mnist", "names", "synthetic"]
