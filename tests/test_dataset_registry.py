"""The data set registry: ``trainval.datasets.names()`` and ``get(name)``, including ``folder:PATH``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset_files import write_image_folder, write_train_test_folder
from trainval import datasets
from trainval.datasets import Dataset, cifar10, cifar100, fashion_mnist, mnist
from trainval.errors import ConfigError, DataError

REGISTERED = {  # name -> (class names, image shape, (training, test) images, mirroring keeps the class)
    "cifar10": (cifar10.CLASS_NAMES, (32, 32, 3), (50_000, 10_000), True),
    "cifar100": (cifar100.FINE_CLASS_NAMES, (32, 32, 3), (50_000, 10_000), True),
    "cifar100-coarse": (cifar100.COARSE_CLASS_NAMES, (32, 32, 3), (50_000, 10_000), True),
    "mnist": (mnist.CLASS_NAMES, (28, 28, 1), (60_000, 10_000), False),
    "fashion-mnist": (fashion_mnist.CLASS_NAMES, (28, 28, 1), (60_000, 10_000), True),
    "synthetic-cifar10": (cifar10.CLASS_NAMES, (32, 32, 3), (50_000, 10_000), True),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "cifar100-coarse": 20, "mnist": 10, "fashion-mnist": 10,
               "synthetic-cifar10": 10}


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    return tmp_path / "xdg-cache"


def test_names_lists_every_registered_data_set() -> None:
    assert set(datasets.names()) >= set(REGISTERED)
    assert len(datasets.names()) == len(set(datasets.names()))


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_each_registered_data_set_describes_its_classes_images_and_sizes(name: str) -> None:
    class_names, image_shape, sizes, mirror_safe = REGISTERED[name]
    dataset = datasets.get(name)
    assert isinstance(dataset, Dataset) and dataset.name == name
    assert dataset.class_names == class_names and isinstance(dataset.class_names, tuple)
    assert dataset.num_classes == len(dataset.class_names) == NUM_CLASSES[name]
    assert len(set(dataset.class_names)) == dataset.num_classes
    assert dataset.image_shape == image_shape and dataset.sizes == sizes
    assert dataset.mirror_safe is mirror_safe
    assert dataset.description


def test_get_returns_the_same_description_every_time() -> None:
    assert datasets.get("cifar100") is datasets.get("cifar100")
    assert datasets.get("cifar100") != datasets.get("cifar100-coarse")


@pytest.mark.parametrize("name", ["nope", "CIFAR10", "cifar-10", "", "folder"])
def test_an_unknown_name_is_a_config_error_listing_the_known_ones(name: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown dataset {name!r}") as caught:
        datasets.get(name)
    for known in REGISTERED:
        assert known in str(caught.value)


@pytest.mark.parametrize("option", [{"image_size": 64}, {"test_fraction": 0.3}, {"image_size": 32}])
@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_folder_options_on_a_registered_data_set_are_a_config_error(name: str, option: dict) -> None:
    with pytest.raises(ConfigError, match=f"{next(iter(option)).replace('_', '-')} applies to folder data sets"):
        datasets.get(name, **option)


def test_get_folder_returns_a_data_set_of_the_folders_classes_that_loads(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"owl": 4, "cat": 5, "dog": 3})
    name = f"{datasets.FOLDER_PREFIX}{tmp_path / 'photos'}"
    dataset = datasets.get(name)
    assert dataset.name == name and str(tmp_path / "photos") in dataset.description
    assert dataset.class_names == ("cat", "dog", "owl") and dataset.num_classes == 3
    assert dataset.image_shape is None and dataset.sizes is None
    (x_train, y_train), (x_test, y_test) = dataset.load_data()
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (32, 32, 3)
    assert len(x_train) + len(x_test) == 12 and len(y_train) == len(x_train) and len(y_test) == len(x_test)
    assert set(y_test[:, 0].tolist()) == {0, 1, 2}


def test_get_folder_passes_image_size_and_test_fraction_on(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"a": 4, "b": 4})
    dataset = datasets.get(f"folder:{tmp_path / 'photos'}", image_size=10, test_fraction=0.5)
    (x_train, _), (x_test, _) = dataset.load_data()
    assert x_train.shape == (4, 10, 10, 3) and x_test.shape == (4, 10, 10, 3)


def test_get_folder_with_its_own_train_and_test_split(tmp_path: Path) -> None:
    write_train_test_folder(tmp_path / "split", train={"x": 3, "y": 2}, test={"x": 1, "y": 2})
    (x_train, _), (x_test, y_test) = datasets.get(f"folder:{tmp_path / 'split'}").load_data()
    assert len(x_train) == 5 and len(x_test) == 3 and sorted(y_test[:, 0].tolist()) == [0, 1, 1]


def test_get_folder_of_a_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        datasets.get(f"folder:{tmp_path / 'nowhere'}")


def test_a_folder_data_set_ignores_data_dir(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"a": 2, "b": 2})
    (x_train, _), (x_test, _) = datasets.get(f"folder:{tmp_path / 'photos'}").load_data(tmp_path / "elsewhere")
    assert len(x_train) + len(x_test) == 4


def test_load_data_of_a_registered_data_set_reads_data_dir(tmp_path: Path) -> None:
    from cifar_files import expected_arrays, write_cifar10_folder

    folder = write_cifar10_folder(tmp_path / "data")
    (x_train, y_train), _ = datasets.get("cifar10").load_data(folder)
    np.testing.assert_array_equal(x_train, expected_arrays().x_train)
    np.testing.assert_array_equal(y_train, expected_arrays().y_train)


def test_synthetic_cifar10_has_cifar10s_exact_arrays_of_balanced_random_images_the_same_on_every_load() -> None:
    dataset = datasets.get("synthetic-cifar10")
    (x_train, y_train), (x_test, y_test) = dataset.load_data("/no/such/folder")  # reads nothing
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == \
        ((50_000, 32, 32, 3), (50_000, 1), (10_000, 32, 32, 3), (10_000, 1))
    assert {x_train.dtype, y_train.dtype, x_test.dtype, y_test.dtype} == {np.dtype(np.uint8)}
    assert np.bincount(y_train[:, 0]).tolist() == [5_000] * 10 and np.bincount(y_test[:, 0]).tolist() == [1_000] * 10
    assert x_train.min() == 0 and x_train.max() == 255 and 120 < x_train[:100].mean() < 135
    assert not np.array_equal(y_train[:100], np.sort(y_train[:100], axis=0))  # shuffled, not sorted by class
    (again, _), _ = dataset.load_data()
    np.testing.assert_array_equal(again, x_train)
