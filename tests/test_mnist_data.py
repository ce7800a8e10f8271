"""MNIST and Fashion-MNIST loading: finding, decoding, downloading and refusing bad IDX files.

Every test runs for both data sets on tiny generated files (``dataset_files``) in the official
format, with ``XDG_CACHE_HOME`` pointing into ``tmp_path`` so nothing touches the real user cache.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from dataset_files import (
    MNIST_FILES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    assert_loaded_as,
    gzipped,
    idx_bytes,
    idx_header,
    mnist_arrays,
    touch_later,
    write_mnist_folder,
)
from trainval.datasets import fashion_mnist, mnist, mnist_style
from trainval.errors import DataError

DATASETS = {"mnist": mnist, "fashion-mnist": fashion_mnist}


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every cache write inside tmp_path and ignore the caller's TRAINVAL_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TRAINVAL_DATA", raising=False)
    return tmp_path / "xdg-cache"


@pytest.fixture(params=sorted(DATASETS))
def dataset(request):
    """The module of each MNIST-style data set: ``mnist`` and ``fashion_mnist``."""
    return DATASETS[request.param]


def md5s(folder: Path) -> dict[str, str]:
    return {name: hashlib.md5((folder / f"{name}.gz").read_bytes()).hexdigest() for name in MNIST_FILES}


def serve_from(monkeypatch: pytest.MonkeyPatch, dataset, server: Path, md5: dict[str, str] | None = None) -> None:
    """Point the data set's download at the generated files in ``server`` (a file:// URL)."""
    source = dataclasses.replace(dataset.SOURCE, base_url=server.as_uri() + "/", md5=md5 or md5s(server))
    monkeypatch.setattr(dataset, "SOURCE", source)


def names_file(path: Path) -> str:
    return re.escape(str(path))


# ---------------------------------------------------------------------------------------------
# Finding and decoding the files


def test_load_data_parses_the_four_gzipped_files_as_written(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data", seed=1)
    assert sorted(os.listdir(folder)) == sorted(f"{name}.gz" for name in MNIST_FILES)
    assert_loaded_as(dataset.load_data(folder), mnist_arrays(seed=1))


def test_load_data_parses_extracted_files_without_gz(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data", train_size=5, test_size=3, seed=2, compressed=False)
    assert sorted(os.listdir(folder)) == sorted(MNIST_FILES)
    assert_loaded_as(dataset.load_data(folder), mnist_arrays(5, 3, seed=2))


def test_images_keep_row_major_pixel_order_and_labels_their_file_order(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data")
    (x_train, y_train), (_, y_test) = dataset.load_data(folder)
    assert x_train[0, 0, 0, 0] == 0 and x_train[0, 27, 27, 0] == 255
    raw = (folder / f"{TRAIN_IMAGES}.gz").read_bytes()
    values = np.frombuffer(gzip.decompress(raw)[16:], np.uint8)
    for image, row, column in [(0, 0, 5), (3, 10, 20), (11, 27, 0)]:
        assert x_train[image, row, column, 0] == values[image * 784 + row * 28 + column]
    assert y_train[:3, 0].tolist() == [9, 0, 1]
    assert y_test[:2, 0].tolist() == [4, 5]


def test_load_data_finds_the_files_in_the_data_sets_sub_folder(tmp_path: Path, dataset) -> None:
    write_mnist_folder(tmp_path / "data" / dataset.SOURCE.name, seed=3)
    assert dataset.SOURCE.name == {mnist: "mnist", fashion_mnist: "fashion-mnist"}[dataset]
    assert_loaded_as(dataset.load_data(str(tmp_path / "data")), mnist_arrays(seed=3))


def test_load_data_uses_trainval_data_when_no_folder_is_given(tmp_path: Path, dataset, cache_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist_folder(tmp_path / "data" / dataset.SOURCE.name, seed=4)
    monkeypatch.setenv("TRAINVAL_DATA", str(tmp_path / "data"))
    assert_loaded_as(dataset.load_data(), mnist_arrays(seed=4))
    assert not (cache_home / "trainval" / dataset.SOURCE.name).exists(), "nothing should have been downloaded"


def test_one_data_folder_holds_mnist_and_fashion_mnist_side_by_side(tmp_path: Path) -> None:
    write_mnist_folder(tmp_path / "data" / "mnist", seed=5)
    write_mnist_folder(tmp_path / "data" / "fashion-mnist", seed=6)
    assert_loaded_as(mnist.load_data(tmp_path / "data"), mnist_arrays(seed=5))
    assert_loaded_as(fashion_mnist.load_data(tmp_path / "data"), mnist_arrays(seed=6))


def test_second_load_reads_the_decoded_cache_and_a_replaced_file_is_decoded_again(
        tmp_path: Path, dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_mnist_folder(tmp_path / "data", seed=7)
    dataset.load_data(folder)
    calls = []
    original = type(dataset.SOURCE)._decode
    monkeypatch.setattr(type(dataset.SOURCE), "_decode", lambda self, paths: calls.append(1) or original(self, paths))
    assert_loaded_as(dataset.load_data(folder), mnist_arrays(seed=7))
    assert calls == []
    write_mnist_folder(folder, seed=8)
    for name in MNIST_FILES:
        touch_later(folder / f"{name}.gz")
    assert_loaded_as(dataset.load_data(folder), mnist_arrays(seed=8))
    assert calls == [1]


def test_class_names_are_the_ten_published_ones(dataset) -> None:
    assert len(dataset.CLASS_NAMES) == 10 == len(set(dataset.CLASS_NAMES))
    assert dataset.SOURCE.class_names == dataset.CLASS_NAMES
    if dataset is mnist:
        assert dataset.CLASS_NAMES == tuple("0123456789")
    else:
        assert dataset.CLASS_NAMES[0] == "T-shirt/top" and dataset.CLASS_NAMES[9] == "Ankle boot"


# ---------------------------------------------------------------------------------------------
# Missing files


def test_missing_folder_is_a_data_error_that_says_what_to_do(tmp_path: Path, dataset) -> None:
    with pytest.raises(DataError, match="does not exist") as caught:
        dataset.load_data(tmp_path / "nowhere")
    message = str(caught.value)
    assert "nowhere" in message and f"{TRAIN_IMAGES}.gz" in message
    assert "--data-dir" in message and "TRAINVAL_DATA" in message


@pytest.mark.parametrize("missing", MNIST_FILES)
def test_one_missing_file_is_a_data_error_listing_the_expected_files(tmp_path: Path, dataset, missing: str) -> None:
    folder = write_mnist_folder(tmp_path / "data")
    (folder / f"{missing}.gz").unlink()
    with pytest.raises(DataError, match=f"{missing}.gz") as caught:
        dataset.load_data(folder)
    assert "--data-dir" in str(caught.value) and "TRAINVAL_DATA" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Corrupt files

_GOOD = mnist_arrays()
CORRUPT_FILES = {  # case -> (file, its uncompressed bytes)
    "bad magic": (TRAIN_IMAGES, b"\x01\x02" + idx_bytes(_GOOD.x_train[..., 0])[2:]),
    "float type code": (TRAIN_IMAGES, idx_header((12, 28, 28), type_code=0x0D)
                        + idx_bytes(_GOOD.x_train[..., 0])[16:]),
    "labels with two dimensions": (TRAIN_LABELS, idx_bytes(_GOOD.y_train)),
    "images with two dimensions": (TEST_IMAGES, idx_bytes(_GOOD.x_test[..., 0].reshape(7, 784))),
    "truncated values": (TRAIN_IMAGES, idx_bytes(_GOOD.x_train[..., 0])[:-100]),
    "values beyond the sizes": (TEST_LABELS, idx_bytes(_GOOD.y_test[:, 0]) + b"\x00"),
    "truncated header": (TRAIN_IMAGES, idx_bytes(_GOOD.x_train[..., 0])[:10]),
    "shorter than the magic number": (TRAIN_LABELS, b"\x00\x00"),
    "empty": (TEST_LABELS, b""),
    "label count differs from image count": (TRAIN_LABELS, idx_bytes(_GOOD.y_train[:-1, 0])),
    "label 10": (TEST_LABELS, idx_bytes(np.array([4, 10, 5, 6, 7, 8, 9], np.uint8))),
    "label 255": (TRAIN_LABELS, idx_bytes(np.full(12, 255, np.uint8))),
    "images 27 pixels high": (TRAIN_IMAGES, idx_bytes(np.zeros((12, 27, 28), np.uint8))),
}


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "extracted"])
@pytest.mark.parametrize("case", CORRUPT_FILES)
def test_corrupt_file_is_a_data_error_naming_the_file(tmp_path: Path, dataset, case: str, compressed: bool) -> None:
    name, blob = CORRUPT_FILES[case]
    folder = write_mnist_folder(tmp_path / "data", compressed=compressed, contents={name: blob})
    with pytest.raises(DataError, match=name):
        dataset.load_data(folder)


def test_corrupt_gzip_stream_is_a_data_error_naming_the_file(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data")
    path = folder / f"{TRAIN_IMAGES}.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside the deflate data: a zlib error or a CRC mismatch
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=names_file(path)) as caught:
        dataset.load_data(folder)
    assert "download" in str(caught.value)


def test_gzip_with_a_wrong_crc_is_a_data_error_naming_the_file(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data")
    path = folder / f"{TEST_LABELS}.gz"
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0x01  # the CRC-32 of the uncompressed data, first of the 8 trailing bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=names_file(path)):
        dataset.load_data(folder)


def test_truncated_gzip_is_a_data_error_naming_the_file(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data")
    path = folder / f"{TEST_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=names_file(path)):
        dataset.load_data(folder)


def test_a_plain_file_named_gz_is_a_data_error_naming_the_file(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data")
    path = folder / f"{TRAIN_LABELS}.gz"
    path.write_bytes(idx_bytes(mnist_arrays().y_train[:, 0]))  # right content, but not gzipped
    with pytest.raises(DataError, match=names_file(path)):
        dataset.load_data(folder)


def test_a_corrupt_file_is_not_cached_and_its_fixed_copy_loads(tmp_path: Path, dataset) -> None:
    folder = write_mnist_folder(tmp_path / "data", contents={TEST_LABELS: b"\x00\x00\x08"})
    with pytest.raises(DataError):
        dataset.load_data(folder)
    write_mnist_folder(folder)
    assert_loaded_as(dataset.load_data(folder), mnist_arrays())


# ---------------------------------------------------------------------------------------------
# Downloading


def test_load_data_without_folder_downloads_the_four_files_into_the_cache(
        tmp_path: Path, dataset, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = write_mnist_folder(tmp_path / "server", seed=9)
    serve_from(monkeypatch, dataset, server)
    assert_loaded_as(dataset.load_data(), mnist_arrays(seed=9))
    downloaded = cache_home / "trainval" / dataset.SOURCE.name
    assert sorted(os.listdir(downloaded)) == sorted(f"{name}.gz" for name in MNIST_FILES)
    for name in MNIST_FILES:
        assert (downloaded / f"{name}.gz").read_bytes() == (server / f"{name}.gz").read_bytes()


def test_downloaded_files_are_reused_without_the_server(tmp_path: Path, dataset, cache_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server = write_mnist_folder(tmp_path / "server", seed=10)
    serve_from(monkeypatch, dataset, server)
    dataset.load_data()
    for name in MNIST_FILES:
        (server / f"{name}.gz").unlink()
    decoded = cache_home / "trainval" / "decoded"
    for folder in decoded.iterdir():  # force a decode from the downloaded files
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    assert_loaded_as(dataset.load_data(), mnist_arrays(seed=10))


@pytest.mark.parametrize("wrong", [TRAIN_IMAGES, TEST_LABELS])
def test_download_with_a_wrong_md5_is_a_data_error_and_keeps_no_bad_file(
        tmp_path: Path, dataset, cache_home: Path, monkeypatch: pytest.MonkeyPatch, wrong: str) -> None:
    server = write_mnist_folder(tmp_path / "server")
    serve_from(monkeypatch, dataset, server, md5={**md5s(server), wrong: "0" * 32})
    with pytest.raises(DataError, match="MD5") as caught:
        dataset.load_data()
    assert f"{wrong}.gz" in str(caught.value)
    downloads = cache_home / "trainval" / dataset.SOURCE.name
    kept = sorted(os.listdir(downloads)) if downloads.exists() else []
    assert f"{wrong}.gz" not in kept
    assert all(name.endswith(".gz") and name[:-3] in MNIST_FILES for name in kept), f"temporary files left: {kept}"
    with pytest.raises(DataError, match="MD5"):  # the next attempt does not trust a partial download either
        dataset.load_data()


def test_a_download_interrupted_by_a_bad_file_fetches_only_the_missing_files_next_time(
        tmp_path: Path, dataset, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = write_mnist_folder(tmp_path / "server")
    serve_from(monkeypatch, dataset, server, md5={**md5s(server), "t10k-labels-idx1-ubyte": "0" * 32})
    with pytest.raises(DataError, match="MD5"):
        dataset.load_data()
    fetched = []
    real_download = mnist_style.download_and_verify
    monkeypatch.setattr(mnist_style, "download_and_verify",
                        lambda url, md5, destination: fetched.append(Path(destination).name) or
                        real_download(url, md5, destination, progress=False))
    serve_from(monkeypatch, dataset, server)
    (x_train, _), _ = dataset.load_data()
    assert fetched == ["t10k-labels-idx1-ubyte.gz"] and len(x_train) > 0


def test_download_from_an_unreachable_server_is_a_data_error_saying_what_to_do(
        tmp_path: Path, dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_from(monkeypatch, dataset, tmp_path / "offline", md5={name: "0" * 32 for name in MNIST_FILES})
    with pytest.raises(DataError, match="could not download") as caught:
        dataset.load_data()
    assert "TRAINVAL_DATA" in str(caught.value)


def test_the_published_files_are_gzipped_idx_under_the_official_names(dataset) -> None:
    """The real URLs are never fetched in tests; this checks their shape and the MD5 table."""
    source = dataset.SOURCE
    assert source.base_url.endswith("/") and source.base_url.startswith(("https://", "http://"))
    assert set(source.md5) == set(MNIST_FILES)
    assert all(re.fullmatch("[0-9a-f]{32}", md5) for md5 in source.md5.values())
    assert len(set(source.md5.values())) == 4


def test_generated_files_are_standard_gzip_streams_of_idx_bytes() -> None:
    """The generated .gz files are standard gzip streams of the IDX bytes."""
    blob = idx_bytes(mnist_arrays().x_test[..., 0])
    assert gzip.decompress(gzipped(blob)) == blob
    assert blob[:4] == b"\x00\x00\x08\x03" and blob[4:16] == (7).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
