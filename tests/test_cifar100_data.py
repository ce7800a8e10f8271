"""CIFAR-100 loading: fine and coarse labels from the extracted folder or the tarball, downloads, bad files.

Every test works on a tiny generated data set (``dataset_files``) in the official format, with
``XDG_CACHE_HOME`` pointing into ``tmp_path`` so nothing touches the real user cache.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path

import pytest

from cifar_files import pickle_batch
from dataset_files import (
    CIFAR100_ARCHIVE,
    CIFAR100_FOLDER,
    assert_loaded_as,
    cifar100_arrays,
    cifar100_batch,
    read_meta,
    write_cifar100_folder,
    write_cifar100_tarball,
)
from trainval import datasets
from trainval.datasets import cifar100
from trainval.errors import ConfigError, DataError

LABEL_MODES = ("fine", "coarse")


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every cache write inside tmp_path and ignore the caller's TRAINVAL_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    return tmp_path / "xdg-cache"


def names_file(path: Path) -> str:
    return re.escape(str(path))


# ---------------------------------------------------------------------------------------------
# Finding and decoding the files


@pytest.mark.parametrize("label_mode", LABEL_MODES)
def test_load_data_from_the_extracted_folder_returns_the_labels_of_the_mode(tmp_path: Path, label_mode: str) -> None:
    folder = write_cifar100_folder(tmp_path / "data", seed=1)
    assert sorted(os.listdir(folder)) == ["meta", "test", "train"]
    want = cifar100_arrays(seed=1).keras(label_mode)
    assert_loaded_as(cifar100.load_data(folder, label_mode=label_mode), want)
    assert_loaded_as(cifar100.load_data(tmp_path / "data", label_mode=label_mode), want)


@pytest.mark.parametrize("label_mode", LABEL_MODES)
def test_load_data_from_a_folder_holding_only_the_tarball(tmp_path: Path, label_mode: str) -> None:
    archive = write_cifar100_tarball(tmp_path / "data", train_size=9, test_size=4, seed=2)
    assert os.listdir(archive.parent) == [CIFAR100_ARCHIVE]
    want = cifar100_arrays(9, 4, seed=2).keras(label_mode)
    assert_loaded_as(cifar100.load_data(archive.parent, label_mode=label_mode), want)
    assert_loaded_as(cifar100.load_data(archive, label_mode=label_mode), want)


def test_load_data_defaults_to_fine_labels(tmp_path: Path) -> None:
    folder = write_cifar100_folder(tmp_path / "data")
    assert_loaded_as(cifar100.load_data(folder), cifar100_arrays().keras("fine"))


def test_labels_reach_the_largest_fine_and_coarse_class(tmp_path: Path) -> None:
    folder = write_cifar100_folder(tmp_path / "data")
    (_, fine), _ = cifar100.load_data(folder, label_mode="fine")
    (_, coarse), _ = cifar100.load_data(folder, label_mode="coarse")
    assert fine[0, 0] == 99 and coarse[0, 0] == 19
    assert fine.max() < 100 and coarse.max() < 20


def test_colour_planes_are_decoded_into_the_last_axis(tmp_path: Path) -> None:
    folder = write_cifar100_folder(tmp_path / "data", train_size=3, test_size=2)
    (x_train, _), _ = cifar100.load_data(folder)
    rows = pickle.loads((folder / "train").read_bytes(), encoding="bytes")[b"data"]
    for h, w in [(0, 0), (7, 30), (31, 31)]:
        for c in range(3):
            assert x_train[2, h, w, c] == rows[2, c * 1024 + h * 32 + w]


def test_load_data_finds_the_cifar100_sub_folder(tmp_path: Path) -> None:
    write_cifar100_folder(tmp_path / "data" / "cifar100", seed=3)
    assert_loaded_as(cifar100.load_data(tmp_path / "data"), cifar100_arrays(seed=3).keras("fine"))


def test_load_data_uses_trainval_data_when_no_folder_is_given(tmp_path: Path, cache_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar100_tarball(tmp_path / "data" / "cifar100", seed=4)
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "data"))
    assert_loaded_as(cifar100.load_data(label_mode="coarse"), cifar100_arrays(seed=4).keras("coarse"))
    assert not (cache_home / "trainval" / "cifar100").exists(), "nothing should have been downloaded"


def test_fine_and_coarse_loads_after_each_other_do_not_share_a_cache(tmp_path: Path) -> None:
    folder = write_cifar100_folder(tmp_path / "data", seed=5)
    want = cifar100_arrays(seed=5)
    for _ in range(2):  # the second round reads both from the decoded cache
        assert_loaded_as(cifar100.load_data(folder, label_mode="fine"), want.keras("fine"))
        assert_loaded_as(cifar100.load_data(folder, label_mode="coarse"), want.keras("coarse"))


@pytest.mark.parametrize("name, label_mode", [("cifar100", "fine"), ("cifar100-coarse", "coarse")])
def test_get_returns_the_registered_data_set_of_each_label_mode(tmp_path: Path, name: str, label_mode: str) -> None:
    folder = write_cifar100_folder(tmp_path / "data", seed=6)
    dataset = datasets.get(name)
    assert dataset.class_names == cifar100.CLASS_NAMES[label_mode]
    assert dataset.image_shape == (32, 32, 3) and dataset.sizes == (50_000, 10_000) and dataset.mirror_safe
    assert_loaded_as(dataset.load_data(folder), cifar100_arrays(seed=6).keras(label_mode))


def test_class_names_are_the_100_fine_and_20_coarse_names_in_meta_order(tmp_path: Path) -> None:
    meta = read_meta(write_cifar100_folder(tmp_path / "data"))
    fine = tuple(name.decode() for name in meta[b"fine_label_names"])
    coarse = tuple(name.decode() for name in meta[b"coarse_label_names"])
    assert datasets.get("cifar100").class_names == fine and len(fine) == 100 == len(set(fine))
    assert datasets.get("cifar100-coarse").class_names == coarse and len(coarse) == 20 == len(set(coarse))
    assert list(fine) == sorted(fine) and list(coarse) == sorted(coarse), "the official meta lists them alphabetically"
    assert {"apple", "worm", "maple_tree", "sweet_pepper"} <= set(fine)
    assert {"aquatic_mammals", "vehicles_2", "large_man-made_outdoor_things"} <= set(coarse)


@pytest.mark.parametrize("label_mode", ["bogus", "Fine", "", None])
def test_unknown_label_mode_is_a_config_error_before_any_file_is_read(tmp_path: Path, label_mode) -> None:
    with pytest.raises(ConfigError, match="label_mode"):
        cifar100.load_data(tmp_path / "nowhere", label_mode=label_mode)


# ---------------------------------------------------------------------------------------------
# Missing and corrupt files


def test_missing_folder_is_a_data_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as caught:
        cifar100.load_data(tmp_path / "nowhere")
    message = str(caught.value)
    assert CIFAR100_FOLDER in message and CIFAR100_ARCHIVE in message
    assert "--data-dir" in message and "TRAINVAL_DATA" in message


def test_missing_train_file_is_a_data_error_naming_it(tmp_path: Path) -> None:
    folder = write_cifar100_folder(tmp_path / "data")
    (folder / "train").unlink()
    with pytest.raises(DataError, match=names_file(folder / "train")):
        cifar100.load_data(folder)


@pytest.mark.parametrize("cut", [0, 100, -1000, -1])
def test_truncated_train_file_is_a_data_error_naming_it(tmp_path: Path, cut: int) -> None:
    folder = write_cifar100_folder(tmp_path / "data")
    blob = (folder / "train").read_bytes()
    (folder / "train").write_bytes(blob[:cut])
    with pytest.raises(DataError, match=names_file(folder / "train")):
        cifar100.load_data(folder)


def test_a_train_file_that_is_not_a_pickle_is_a_data_error_naming_it(tmp_path: Path) -> None:
    folder = write_cifar100_folder(tmp_path / "data", contents={"train": b"<html>404 Not Found</html>"})
    with pytest.raises(DataError, match=names_file(folder / "train")):
        cifar100.load_data(folder)


@pytest.mark.parametrize("label_mode, key, bad", [("fine", b"fine_labels", 100), ("fine", b"fine_labels", -1),
                                                  ("coarse", b"coarse_labels", 20)])
def test_a_label_outside_the_classes_is_a_data_error_naming_the_file(tmp_path: Path, label_mode: str, key: bytes,
                                                                    bad: int) -> None:
    want = cifar100_arrays(train_size=3, test_size=2)
    batch = cifar100_batch(want.x_test, want.fine_test, want.coarse_test, b"testing batch 1 of 1")
    batch[key][1] = bad
    folder = write_cifar100_folder(tmp_path / "data", train_size=3, test_size=2, contents={"test": pickle_batch(batch)})
    with pytest.raises(DataError, match=names_file(folder / "test")) as caught:
        cifar100.load_data(folder, label_mode=label_mode)
    assert "labels outside" in str(caught.value)


def test_a_batch_without_the_modes_labels_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    want = cifar100_arrays(train_size=3, test_size=2)
    batch = cifar100_batch(want.x_train, want.fine_train, want.coarse_train, b"training batch 1 of 1")
    del batch[b"coarse_labels"]
    folder = write_cifar100_folder(tmp_path / "data", train_size=3, test_size=2,
                                   contents={"train": pickle_batch(batch)})
    with pytest.raises(DataError, match="coarse_labels"):
        cifar100.load_data(folder, label_mode="coarse")


def test_a_cifar10_batch_in_place_of_train_is_a_data_error_naming_it(tmp_path: Path) -> None:
    want = cifar100_arrays(train_size=3, test_size=2)
    cifar10_style = {b"data": cifar100_batch(want.x_train, want.fine_train, want.coarse_train, b"")[b"data"],
                     b"labels": [1, 2, 3], b"batch_label": b"training batch 1 of 5"}
    folder = write_cifar100_folder(tmp_path / "data", contents={"train": pickle_batch(cifar10_style)})
    with pytest.raises(DataError, match=names_file(folder / "train")):
        cifar100.load_data(folder)


def test_corrupt_tarball_is_a_data_error_naming_it(tmp_path: Path) -> None:
    archive = write_cifar100_tarball(tmp_path / "data")
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=names_file(archive)):
        cifar100.load_data(archive.parent)


def test_truncated_tarball_is_a_data_error_naming_it(tmp_path: Path) -> None:
    archive = write_cifar100_tarball(tmp_path / "data")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(DataError, match=names_file(archive)):
        cifar100.load_data(archive.parent)


def test_a_cifar10_tarball_renamed_to_cifar100_is_a_data_error(tmp_path: Path) -> None:
    from cifar_files import write_cifar10_tarball

    archive = write_cifar10_tarball(tmp_path / "other")
    renamed = tmp_path / "data" / CIFAR100_ARCHIVE
    renamed.parent.mkdir()
    archive.rename(renamed)
    with pytest.raises(DataError, match=f"{names_file(renamed)} has no {CIFAR100_FOLDER}/"):
        cifar100.load_data(renamed.parent)


# ---------------------------------------------------------------------------------------------
# Downloading


def test_load_data_without_folder_downloads_the_archive_into_the_cache(
        tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_cifar100_tarball(tmp_path / "server", seed=7)
    monkeypatch.setattr(cifar100, "URL", source.as_uri())
    monkeypatch.setattr(cifar100, "MD5", hashlib.md5(source.read_bytes()).hexdigest())
    assert_loaded_as(cifar100.load_data(label_mode="coarse"), cifar100_arrays(seed=7).keras("coarse"))
    downloaded = cache_home / "trainval" / "cifar100" / CIFAR100_ARCHIVE
    assert downloaded.read_bytes() == source.read_bytes()
    assert os.listdir(downloaded.parent) == [CIFAR100_ARCHIVE]
    source.unlink()  # the fine labels come from the same downloaded archive
    assert_loaded_as(datasets.get("cifar100").load_data(), cifar100_arrays(seed=7).keras("fine"))


def test_download_with_a_wrong_md5_is_a_data_error_and_caches_nothing(
        tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_cifar100_tarball(tmp_path / "server")
    monkeypatch.setattr(cifar100, "URL", source.as_uri())
    monkeypatch.setattr(cifar100, "MD5", "0" * 32)
    with pytest.raises(DataError, match="MD5"):
        cifar100.load_data()
    downloads = cache_home / "trainval" / "cifar100"
    assert not downloads.exists() or os.listdir(downloads) == []
    with pytest.raises(DataError, match="MD5"):
        cifar100.load_data()


def test_the_published_archive_is_the_official_python_version() -> None:
    assert cifar100.URL.endswith("/" + CIFAR100_ARCHIVE) and cifar100.URL.startswith("https://")
    assert re.fullmatch("[0-9a-f]{32}", cifar100.MD5)
    assert (cifar100.FOLDER_NAME, cifar100.ARCHIVE_NAME) == (CIFAR100_FOLDER, CIFAR100_ARCHIVE)
