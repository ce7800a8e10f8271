"""CIFAR-100: 50,000 training and 10,000 test colour images of 32x32 pixels in 100 classes (20 superclasses).

``load_data(label_mode="fine")`` returns arrays shaped like ``keras.datasets.cifar100.load_data()``;
``label_mode="coarse"`` labels each image with its superclass instead.
"""

from __future__ import annotations

import os

import numpy as np

from trainval.datasets import array_cache, cifar_format
from trainval.errors import ConfigError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
FOLDER_NAME = "cifar-100-python"
TRAIN_FILE = "train"
TEST_FILE = "test"

# The names in the official meta file, in label order (alphabetical).
FINE_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
COARSE_CLASS_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)
CLASS_NAMES = {"fine": FINE_CLASS_NAMES, "coarse": COARSE_CLASS_NAMES}


def load_data(data_dir: str | os.PathLike[str] | None = None,
              label_mode: str = "fine") -> tuple[array_cache.Split, array_cache.Split]:
    """Load CIFAR-100 as ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 arrays of shape (50000, 32, 32, 3) and (10000, 32, 32, 3); labels are uint8
    arrays of shape (N, 1) holding the 100 fine classes (``label_mode="fine"``) or the 20
    superclasses (``"coarse"``), named by ``CLASS_NAMES[label_mode]``. The files are found as
    CIFAR-10's are: ``data_dir``, else ``TRAINVAL_DATA``, else ``~/.cache/trainval/cifar100``
    (downloaded there and checked against the published MD5), as the extracted
    ``cifar-100-python/`` folder or the ``cifar-100-python.tar.gz`` archive, in that folder or its
    ``cifar100/`` sub-folder.

    Raises:
        ConfigError: ``label_mode`` is neither ``"fine"`` nor ``"coarse"``.
        DataError: the files are missing, truncated, corrupt, or could not be downloaded.
    """
    if label_mode not in CLASS_NAMES:
        raise ConfigError(f"label_mode must be 'fine' or 'coarse'; got {label_mode!r}")
    sources, read_members = cifar_format.locate_cifar_files("cifar100", "CIFAR-100", data_dir, URL, MD5, FOLDER_NAME,
                                                            ARCHIVE_NAME, (TRAIN_FILE, TEST_FILE))
    return array_cache.cached_train_test(f"cifar100-{label_mode}", sources,
                                         lambda: _decode(read_members, label_mode))


def _decode(read_members: cifar_format.ReadMembers, label_mode: str) -> dict[str, np.ndarray]:
    label_key = f"{label_mode}_labels".encode()
    num_classes = len(CLASS_NAMES[label_mode])
    blobs = read_members((TRAIN_FILE, TEST_FILE))
    arrays = {}
    for split, name in (("train", TRAIN_FILE), ("test", TEST_FILE)):
        where, blob = blobs[name]
        images, labels = cifar_format.read_batch(blob, where, label_key, num_classes)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels.reshape(-1, 1)
    return arrays
