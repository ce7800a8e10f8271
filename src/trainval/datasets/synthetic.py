"""Random images with a real data set's shapes, for timing a recipe where the real files are not.

``synthetic-cifar10`` holds seeded random uint8 images with CIFAR-10's exact shapes and class
count: 50,000 training and 10,000 test images of 32x32x3, labels 0..9 in equal numbers. A step
costs the same whatever its pixels hold, so it times the ``94`` recipe on a machine the CIFAR-10
files cannot reach; its accuracy is chance (about 10%) and means nothing.
"""

from __future__ import annotations

import os

import numpy as np

from trainval.datasets import cifar10
from trainval.datasets.array_cache import Split

SEED = 10  # the same images on every load


def _random_split(rng: np.random.Generator, count: int, shape: tuple[int, ...], classes: int) -> Split:
    images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    labels = rng.permutation(np.arange(count) % classes).astype(np.uint8).reshape(-1, 1)
    return images, labels


def load_cifar10_shaped(data_dir: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)`` of random images shaped as :func:`trainval.datasets.cifar10.load_data`
    returns them; ``data_dir`` is ignored (nothing is read)."""
    rng = np.random.default_rng(SEED)
    train = _random_split(rng, 50_000, (32, 32, 3), cifar10.NUM_CLASSES)
    return train, _random_split(rng, 10_000, (32, 32, 3), cifar10.NUM_CLASSES)
