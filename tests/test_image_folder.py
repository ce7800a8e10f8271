"""A folder of one's own images as a data set: classes, the held-out split, decoding, caching and errors.

The folders are written by ``dataset_files``: every image is one solid colour per class, in assorted
sizes and Pillow modes, so a loaded image must be that colour at every pixel and its label the
index of its folder. ``XDG_CACHE_HOME`` points into ``tmp_path``, so the decoded cache stays there.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_files import (
    CLASS_COLOURS,
    GRAY_MODES,
    MIXED_MODES,
    WrittenImage,
    write_class_folder,
    write_image_folder,
    touch_later,
    write_solid_image,
    write_train_test_folder,
)
from trainval import datasets
from trainval.datasets.image_folder import DEFAULT_IMAGE_SIZE, DEFAULT_TEST_FRACTION, ImageFolder
from trainval.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache"


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Wrap ImageFolder._decode; the list gets the folder's root each time the images are decoded."""
    calls: list[Path] = []
    original = ImageFolder._decode

    def counting(self):
        calls.append(self.root)
        return original(self)

    monkeypatch.setattr(ImageFolder, "_decode", counting)
    return calls


def assert_loaded_as_written(folder: ImageFolder, written: list[WrittenImage], size: int, channels: int) -> None:
    """Every loaded image is its file's colour, labelled with its class folder's index, in scan order."""
    by_path = {image.path: image for image in written}
    (x_train, y_train), (x_test, y_test) = folder.load_data()
    for images, labels, files in ((x_train, y_train, folder.train_files), (x_test, y_test, folder.test_files)):
        assert images.dtype == np.uint8 and images.shape == (len(files), size, size, channels)
        assert labels.dtype == np.uint8 and labels.shape == (len(files), 1)
        for image, label, (path, index) in zip(images, labels[:, 0], files):
            expected = by_path[path]
            assert index == label == folder.class_names.index(expected.class_name), path
            want = expected.rgb if channels == 3 else (expected.gray,)
            difference = np.abs(image.astype(int) - np.array(want)).max()
            assert difference <= 1, f"{path.name} loaded {difference} off its colour {want}"


def relative_split(folder: ImageFolder) -> tuple[set[str], set[str]]:
    def relative(files):
        return {path.relative_to(folder.root).as_posix() for path, _ in files}
    return relative(folder.train_files), relative(folder.test_files)


# ---------------------------------------------------------------------------------------------
# Loading


def test_mixed_sizes_and_modes_load_as_rgb_images_of_the_default_size(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "photos")
    assert {Image.open(image.path).mode for image in written} == set(MIXED_MODES)
    assert len({Image.open(image.path).size for image in written}) > 3
    folder = ImageFolder.scan(tmp_path / "photos")
    assert folder.image_size == DEFAULT_IMAGE_SIZE == 32
    assert_loaded_as_written(folder, written, size=32, channels=3)


def test_one_colour_image_among_grayscale_ones_makes_the_data_set_rgb(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3}, modes=GRAY_MODES)
    written.append(WrittenImage(tmp_path / "photos" / "b" / "colour.png", "b",
                                *write_solid_image(tmp_path / "photos" / "b" / "colour.png", CLASS_COLOURS[1], "P")))
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos"), written, size=32, channels=3)


def test_an_all_grayscale_folder_loads_with_one_channel(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "scans", {"a": 4, "b": 3, "c": 3}, modes=GRAY_MODES)
    assert {Image.open(image.path).mode for image in written} == set(GRAY_MODES)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "scans"), written, size=32, channels=1)


@pytest.mark.parametrize("size", [1, 12, 45])
def test_image_size_sets_the_side_of_every_loaded_image(tmp_path: Path, size: int) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos", image_size=size), written, size, channels=3)


def test_class_names_are_the_sorted_sub_folder_names_and_label_their_images(tmp_path: Path) -> None:
    for name in ("zebra", "Ant", "moth", "bee"):
        write_class_folder(tmp_path / "photos", name, 0, 2)
    (tmp_path / "photos" / ".git").mkdir()  # hidden folders are no class
    folder = ImageFolder.scan(tmp_path / "photos")
    assert folder.class_names == ("Ant", "bee", "moth", "zebra")
    for path, label in folder.train_files + folder.test_files:
        assert folder.class_names[label] == path.parent.name


def test_load_data_ignores_data_dir_because_the_folder_is_the_data(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"a": 3, "b": 3}, modes=("RGB",))
    folder = ImageFolder.scan(tmp_path / "photos")
    (x_train, _), (x_test, _) = folder.load_data(tmp_path / "does-not-exist")
    assert len(x_train) + len(x_test) == 6


def test_files_that_are_not_images_are_ignored(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    (tmp_path / "photos" / "a" / "notes.txt").write_text("taken in 2023")
    (tmp_path / "photos" / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "photos" / "b" / "._img_000.png").write_bytes(b"\x00\x05\x16\x07")  # a macOS resource fork
    (tmp_path / "photos" / "b" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "photos" / "README.md").write_text("my photos")
    folder = ImageFolder.scan(tmp_path / "photos")
    assert sorted(path for path, _ in folder.train_files + folder.test_files) == sorted(w.path for w in written)
    assert_loaded_as_written(folder, written, size=32, channels=3)


def test_images_in_nested_folders_belong_to_their_class(tmp_path: Path) -> None:
    written = write_class_folder(tmp_path / "photos", "cat", 0, 2)
    nested = write_class_folder(tmp_path / "photos" / "cat", "2023/summer", 0, 2, start=10)
    written += [dataclasses.replace(image, class_name="cat") for image in nested]
    written += write_class_folder(tmp_path / "photos", "dog", 1, 3)
    folder = ImageFolder.scan(tmp_path / "photos")
    assert folder.class_names == ("cat", "dog")
    assert len(folder.train_files) + len(folder.test_files) == 7
    labels = {path.relative_to(tmp_path / "photos").as_posix(): label
              for path, label in folder.train_files + folder.test_files}
    assert labels["cat/2023/summer/img_010.png"] == labels["cat/2023/summer/img_011.png"] == 0
    assert_loaded_as_written(folder, written, size=32, channels=3)


def test_jpeg_and_other_suffixes_are_read_in_any_letter_case(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for name in ("a.JPG", "b.jpeg", "c.bmp", "d.gif", "e.webp", "f.PNG"):
        write_solid_image(root / "one" / name, CLASS_COLOURS[0])
        write_solid_image(root / "two" / name, CLASS_COLOURS[1])
    folder = ImageFolder.scan(root)
    assert len(folder.train_files) + len(folder.test_files) == 12
    (x_train, y_train), _ = folder.load_data()
    for image, label in zip(x_train, y_train[:, 0]):
        assert np.abs(image.astype(int) - CLASS_COLOURS[label]).max() <= 8  # JPEG and WebP are lossy


def test_get_folder_returns_a_data_set_named_after_the_folder_that_loads(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"cat": 4, "dog": 4})
    dataset = datasets.get(f"{datasets.FOLDER_PREFIX}{tmp_path / 'photos'}", image_size=16, test_fraction=0.5)
    assert dataset.class_names == ("cat", "dog") and dataset.num_classes == 2
    assert dataset.image_shape is None and dataset.sizes is None
    (x_train, _), (x_test, y_test) = dataset.load_data()
    assert x_train.shape == (4, 16, 16, 3) and x_test.shape == (4, 16, 16, 3)
    assert sorted(y_test[:, 0].tolist()) == [0, 0, 1, 1]


# ---------------------------------------------------------------------------------------------
# The held-out test set


@pytest.mark.parametrize("test_fraction", [0.1, DEFAULT_TEST_FRACTION, 0.5, 0.9])
def test_held_out_split_takes_about_test_fraction_of_each_class_and_at_least_one_each_way(
        tmp_path: Path, test_fraction: float) -> None:
    counts = {"c02": 2, "c03": 3, "c05": 5, "c10": 10, "c37": 37}
    for index, (name, count) in enumerate(counts.items()):
        write_class_folder(tmp_path / "photos", name, index, count, sizes=((2, 2),))
    folder = ImageFolder.scan(tmp_path / "photos", test_fraction=test_fraction)
    assert folder.test_fraction == test_fraction
    for label, (name, count) in enumerate(counts.items()):
        held = sum(1 for _, index in folder.test_files if index == label)
        kept = sum(1 for _, index in folder.train_files if index == label)
        assert held + kept == count
        assert 1 <= held <= count - 1, name
        assert abs(held - test_fraction * count) <= 1, f"{name}: {held} of {count} held out"


def test_held_out_split_is_disjoint_and_covers_every_file(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 9, "b": 4, "c": 12}, sizes=((2, 2),))
    folder = ImageFolder.scan(tmp_path / "photos")
    train = [path for path, _ in folder.train_files]
    test = [path for path, _ in folder.test_files]
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(image.path for image in written)
    assert len(train) == len(set(train)) and len(test) == len(set(test))


def test_held_out_split_is_the_same_on_every_scan_and_wherever_the_folder_lives(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"a": 20, "b": 15}, sizes=((2, 2),))
    first = relative_split(ImageFolder.scan(tmp_path / "photos"))
    assert relative_split(ImageFolder.scan(tmp_path / "photos")) == first
    shutil.copytree(tmp_path / "photos", tmp_path / "elsewhere" / "copy")
    assert relative_split(ImageFolder.scan(tmp_path / "elsewhere" / "copy")) == first
    assert relative_split(ImageFolder.scan(str(tmp_path / "photos") + "/")) == first


def test_held_out_images_are_spread_over_the_class_not_the_first_or_last_by_name(tmp_path: Path) -> None:
    """Names often follow the time of shooting; a test set of the oldest or newest photos would be biased."""
    write_class_folder(tmp_path / "photos", "a", 0, 40, sizes=((2, 2),))
    write_class_folder(tmp_path / "photos", "b", 1, 2, sizes=((2, 2),))
    folder = ImageFolder.scan(tmp_path / "photos", test_fraction=0.25)
    held = sorted(int(path.stem[-3:]) for path, label in folder.test_files if label == 0)
    assert len(held) == 10
    assert min(held) < 20 <= max(held), f"held out {held}"


def test_adding_an_image_moves_at_most_one_existing_image_across_the_split(tmp_path: Path) -> None:
    """The test share stays ``round(count * test_fraction)``: when an addition leaves that number alone and
    the new image lands in the test set, one older test image must make room. No other image ever moves."""
    write_class_folder(tmp_path / "photos", "a", 0, 10, sizes=((2, 2),))
    write_class_folder(tmp_path / "photos", "b", 1, 10, sizes=((2, 2),))
    before = relative_split(ImageFolder.scan(tmp_path / "photos"))
    moved_in_total = 0
    for number in range(10, 40):
        write_class_folder(tmp_path / "photos", "a", 0, 1, sizes=((2, 2),), start=number)
        after = relative_split(ImageFolder.scan(tmp_path / "photos"))
        moved = (before[0] & after[1]) | (before[1] & after[0])
        assert len(moved) <= 1, f"adding img_{number:03d}.png moved {sorted(moved)}"
        assert all(path.startswith("a/") for path in moved), "class b was not touched"
        moved_in_total += len(moved)
        before = after
    assert moved_in_total <= 15, "most additions move nothing"


def test_a_class_with_one_image_cannot_be_held_out_from(tmp_path: Path) -> None:
    write_class_folder(tmp_path / "photos", "a", 0, 3)
    write_class_folder(tmp_path / "photos", "b", 1, 1)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "photos" / "b"))) as caught:
        ImageFolder.scan(tmp_path / "photos")
    assert "two per class" in str(caught.value) and "train/ and test/" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# A folder with its own train/ and test/


def test_train_and_test_folders_are_used_as_given(tmp_path: Path) -> None:
    written = write_train_test_folder(tmp_path / "split")
    folder = ImageFolder.scan(tmp_path / "split")
    assert folder.class_names == ("ant", "bee", "fly") and folder.test_fraction is None
    assert sorted(path for path, _ in folder.train_files) == sorted(image.path for image in written["train"])
    assert sorted(path for path, _ in folder.test_files) == sorted(image.path for image in written["test"])
    assert_loaded_as_written(folder, written["train"] + written["test"], size=32, channels=3)


def test_a_test_folder_may_lack_some_classes_but_keeps_the_training_labels(tmp_path: Path) -> None:
    written = write_train_test_folder(tmp_path / "split", test={"fly": 2})
    folder = ImageFolder.scan(tmp_path / "split")
    assert {label for _, label in folder.test_files} == {folder.class_names.index("fly")} == {2}
    assert_loaded_as_written(folder, written["train"] + written["test"], size=32, channels=3)


def test_a_class_with_one_image_is_fine_when_the_folder_has_its_own_test_set(tmp_path: Path) -> None:
    write_train_test_folder(tmp_path / "split", train={"a": 1, "b": 1}, test={"a": 1, "b": 1})
    folder = ImageFolder.scan(tmp_path / "split")
    assert len(folder.train_files) == len(folder.test_files) == 2


@pytest.mark.parametrize("test_fraction", [0.2, DEFAULT_TEST_FRACTION])
def test_test_fraction_with_a_train_and_test_layout_is_a_config_error(tmp_path: Path, test_fraction: float) -> None:
    write_train_test_folder(tmp_path / "split")
    with pytest.raises(ConfigError, match="does not apply"):
        ImageFolder.scan(tmp_path / "split", test_fraction=test_fraction)
    with pytest.raises(ConfigError, match="does not apply"):
        datasets.get(f"folder:{tmp_path / 'split'}", test_fraction=test_fraction)


def test_a_test_class_unknown_to_train_is_a_data_error_naming_it(tmp_path: Path) -> None:
    write_train_test_folder(tmp_path / "split", test={"ant": 1, "wasp": 2})
    with pytest.raises(DataError, match="'wasp'") as caught:
        ImageFolder.scan(tmp_path / "split")
    assert "needs training images" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Folders that cannot make a data set


def test_a_missing_folder_is_a_data_error_saying_what_to_point_at(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as caught:
        ImageFolder.scan(tmp_path / "nowhere")
    assert "nowhere" in str(caught.value) and "one sub-folder of images per class" in str(caught.value)


def test_a_file_in_place_of_the_folder_is_a_data_error(tmp_path: Path) -> None:
    write_solid_image(tmp_path / "cat.png", CLASS_COLOURS[0])
    with pytest.raises(DataError, match="is not a folder"):
        ImageFolder.scan(tmp_path / "cat.png")


def test_images_directly_in_the_folder_are_a_data_error_asking_for_class_folders(tmp_path: Path) -> None:
    for i in range(3):
        write_solid_image(tmp_path / "photos" / f"{i}.png", CLASS_COLOURS[0])
    with pytest.raises(DataError, match="holds images directly") as caught:
        ImageFolder.scan(tmp_path / "photos")
    assert "sub-folder named after the class" in str(caught.value)


def test_an_empty_folder_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolder.scan(tmp_path / "photos")


def test_one_class_only_is_a_data_error(tmp_path: Path) -> None:
    write_class_folder(tmp_path / "photos", "cat", 0, 4)
    with pytest.raises(DataError, match=r"one class folder \(cat\).*at least two"):
        ImageFolder.scan(tmp_path / "photos")


def test_a_class_folder_without_images_is_a_data_error_naming_it(tmp_path: Path) -> None:
    write_class_folder(tmp_path / "photos", "cat", 0, 4)
    (tmp_path / "photos" / "dog").mkdir()
    (tmp_path / "photos" / "dog" / "notes.txt").write_text("dogs to come")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "photos" / "dog")) + ".*has no images"):
        ImageFolder.scan(tmp_path / "photos")


def test_an_empty_class_folder_in_test_is_a_data_error(tmp_path: Path) -> None:
    write_train_test_folder(tmp_path / "split")
    (tmp_path / "split" / "test" / "wasp").mkdir()
    with pytest.raises(DataError, match="wasp"):
        ImageFolder.scan(tmp_path / "split")


@pytest.mark.parametrize("content", [b"", b"not a picture at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
                         ids=["empty", "text", "header only"])
def test_an_unreadable_image_is_a_data_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    bad = tmp_path / "photos" / "b" / "broken.png"
    bad.write_bytes(content)
    folder = ImageFolder.scan(tmp_path / "photos")
    with pytest.raises(DataError, match=re.escape(str(bad))) as caught:
        folder.load_data()
    assert "1 image(s)" in str(caught.value) and "fix or remove them" in str(caught.value)


def test_a_truncated_image_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    bad = tmp_path / "photos" / "a" / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(DataError, match=re.escape(str(bad))):
        ImageFolder.scan(tmp_path / "photos").load_data()


def test_many_unreadable_images_are_summarised(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    for i in range(8):
        (tmp_path / "photos" / "a" / f"bad_{i}.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"8 image\(s\).*and 3 more"):
        ImageFolder.scan(tmp_path / "photos").load_data()


@pytest.mark.parametrize("image_size", [0, -3, True, False, 2.5, "32"])
def test_an_image_size_that_is_not_a_positive_whole_number_is_a_config_error(tmp_path: Path, image_size) -> None:
    write_image_folder(tmp_path / "photos", {"a": 2, "b": 2})
    with pytest.raises(ConfigError, match="image-size"):
        ImageFolder.scan(tmp_path / "photos", image_size=image_size)
    with pytest.raises(ConfigError, match="image-size"):
        datasets.get(f"folder:{tmp_path / 'photos'}", image_size=image_size)


@pytest.mark.parametrize("test_fraction", [0, 1, 1.5, -0.2, True, "0.2", float("nan")])
def test_a_test_fraction_outside_zero_to_one_is_a_config_error(tmp_path: Path, test_fraction) -> None:
    write_image_folder(tmp_path / "photos", {"a": 2, "b": 2})
    with pytest.raises(ConfigError, match="test-fraction"):
        ImageFolder.scan(tmp_path / "photos", test_fraction=test_fraction)


# ---------------------------------------------------------------------------------------------
# The decoded cache


def test_the_second_load_comes_from_the_decoded_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    decodes = count_decodes(monkeypatch)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos"), written, size=32, channels=3)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos"), written, size=32, channels=3)
    assert len(decodes) == 1


def test_another_image_size_is_decoded_and_cached_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    decodes = count_decodes(monkeypatch)
    for size in (8, 16, 8, 16):
        (x_train, _), _ = ImageFolder.scan(tmp_path / "photos", image_size=size).load_data()
        assert x_train.shape[1:3] == (size, size)
    assert len(decodes) == 2


def test_touching_a_file_invalidates_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    ImageFolder.scan(tmp_path / "photos").load_data()
    decodes = count_decodes(monkeypatch)
    touch_later(written[2].path)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos"), written, size=32, channels=3)
    assert len(decodes) == 1


def test_a_replaced_image_is_loaded_anew(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3}, modes=("RGB",))
    ImageFolder.scan(tmp_path / "photos").load_data()
    replaced = written[0]
    rgb, gray = write_solid_image(replaced.path, (1, 2, 3), "RGB", (50, 50))
    touch_later(replaced.path)
    written[0] = WrittenImage(replaced.path, replaced.class_name, rgb, gray)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos"), written, size=32, channels=3)


def test_an_added_image_is_loaded_on_the_next_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_image_folder(tmp_path / "photos", {"a": 3, "b": 3})
    ImageFolder.scan(tmp_path / "photos").load_data()
    written += write_class_folder(tmp_path / "photos", "b", 1, 1, start=50)
    decodes = count_decodes(monkeypatch)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "photos"), written, size=32, channels=3)
    assert len(decodes) == 1


def test_two_folders_with_the_same_name_do_not_share_a_cache(tmp_path: Path) -> None:
    one = write_image_folder(tmp_path / "one" / "photos", {"a": 2, "b": 2}, modes=("RGB",))
    two = write_image_folder(tmp_path / "two" / "photos", {"x": 2, "y": 2}, modes=("L",))
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "one" / "photos"), one, size=32, channels=3)
    assert_loaded_as_written(ImageFolder.scan(tmp_path / "two" / "photos"), two, size=32, channels=1)
