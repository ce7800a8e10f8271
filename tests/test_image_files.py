"""Loading PNG/JPEG files into uint8 arrays: modes, sizes, EXIF rotation, centre crops and bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageFile

from trainval.data.image_files import load_image_files, resize_policy

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save(folder, name, image, **options):
    path = folder / name
    image.save(path, **options)
    return path


def _noise(size, mode="RGB", seed=0):
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


def _palette_image(size, transparent):
    image = Image.new("P", size, 1)
    image.putpalette([0, 0, 0, 10, 10, 200] + [0] * 762)
    return image, ({"transparency": 1} if transparent else {})


def test_files_of_many_sizes_and_modes_load_in_order_with_their_stored_sizes(tmp_path):
    plain_palette, no_options = _palette_image((40, 20), transparent=False)
    clear_palette, transparency = _palette_image((20, 40), transparent=True)
    cases = [  # (file name, image, save options, expected colour of every pixel, tolerance)
        ("rgb.png", Image.new("RGB", (32, 32), (200, 10, 10)), {}, (200, 10, 10), 0),
        ("rgba.png", Image.new("RGBA", (64, 48), (10, 200, 10, 255)), {}, (10, 200, 10), 1),
        ("clear.png", Image.new("RGBA", (17, 40), (0, 0, 0, 0)), {}, (255, 255, 255), 1),
        ("gray.png", Image.new("L", (17, 40), 90), {}, (90, 90, 90), 1),
        ("gray_alpha.png", Image.new("LA", (500, 300), (150, 255)), {}, (150, 150, 150), 1),
        ("palette.png", plain_palette, no_options, (10, 10, 200), 1),
        ("palette_clear.png", clear_palette, transparency, (255, 255, 255), 1),
        ("deep.png", Image.new("I;16", (64, 48), 257 * 60), {}, (60, 60, 60), 1),
        ("cmyk.jpg", Image.new("CMYK", (500, 300), (0, 255, 255, 0)), {}, RED, 8),
        ("photo.jpg", Image.new("RGB", (64, 48), (30, 120, 200)), {}, (30, 120, 200), 8),
    ]
    paths = [_save(tmp_path, name, image, **options) for name, image, options, _, _ in cases]

    loaded = load_image_files([str(path) for path in paths], 32, 32, 3)

    assert loaded.images.dtype == np.uint8
    assert loaded.images.shape == (len(cases), 32, 32, 3)
    assert loaded.paths == paths
    assert loaded.original_sizes == [image.size for _, image, _, _, _ in cases]
    assert loaded.unreadable == []
    for row, (name, _, _, colour, tolerance) in zip(loaded.images, cases):
        difference = np.abs(row.astype(int) - colour).max()
        assert difference <= tolerance, f"{name} is off by {difference}"


def test_image_already_at_the_target_size_loads_bit_exact(tmp_path):
    image = _noise((32, 32))
    loaded = load_image_files([_save(tmp_path, "noise.png", image)], 32, 32, 3)
    np.testing.assert_array_equal(loaded.images[0], np.asarray(image))


def test_transparent_pixels_become_white_and_opaque_ones_keep_their_colour(tmp_path):
    pixels = np.asarray(_noise((32, 32), "RGBA")).copy()
    pixels[..., 3] = 255
    pixels[::2, :, 3] = 0  # every other row fully transparent
    loaded = load_image_files([_save(tmp_path, "holes.png", Image.fromarray(pixels, "RGBA"))], 32, 32, 3)
    assert (loaded.images[0, ::2] == 255).all()
    np.testing.assert_array_equal(loaded.images[0, 1::2], pixels[1::2, :, :3])


def test_grayscale_value_v_becomes_v_v_v(tmp_path):
    gray = _noise((32, 32), "L")
    loaded = load_image_files([_save(tmp_path, "gray.png", gray)], 32, 32, 3)
    np.testing.assert_array_equal(loaded.images[0], np.repeat(np.asarray(gray)[..., None], 3, axis=-1))


def test_16_bit_pixels_are_divided_by_257(tmp_path):
    deep = Image.fromarray(np.array([[0, 257 * 100], [65535, 65535]] * 16, dtype=np.uint16).repeat(16, axis=1))
    assert deep.mode == "I;16"
    loaded = load_image_files([_save(tmp_path, "deep.png", deep)], 32, 32, 1)
    assert loaded.images[0, 0, :16, 0].tolist() == [0] * 16
    assert loaded.images[0, 0, 16:, 0].tolist() == [100] * 16
    assert loaded.images[0, 1, :, 0].tolist() == [255] * 32


def test_32_bit_and_float_pixels_are_kept_in_range_and_scaled_beyond_it(tmp_path):
    wide = Image.fromarray(np.array([[0, 500, 1000]] * 3, dtype=np.int32))
    small = Image.fromarray(np.array([[0.0, 100.4, 255.0]] * 3, dtype=np.float32))
    assert (wide.mode, small.mode) == ("I", "F")
    paths = [_save(tmp_path, "wide.tif", wide), _save(tmp_path, "small.tif", small)]
    loaded = load_image_files(paths, 3, 3, 1)
    assert loaded.images[0, 0, :, 0].tolist() == [0, 128, 255]
    assert loaded.images[1, 0, :, 0].tolist() == [0, 100, 255]


def test_wider_image_is_cropped_about_its_centre_before_resizing(tmp_path):
    image = Image.new("RGB", (128, 64), RED)
    image.paste(BLUE, (32, 0, 96, 64))  # middle half blue, outer quarters red
    loaded = load_image_files([_save(tmp_path, "banded.png", image)], 32, 32, 3)
    blue_enough = (loaded.images[0, :, :, 2] > 230) & (loaded.images[0, :, :, 0] < 25)
    assert blue_enough.mean() > 0.9  # squashing instead of cropping would leave half of it red


def test_one_channel_gives_pillow_luma_in_shape_n_h_w_1(tmp_path):
    paths = [_save(tmp_path, "red.png", Image.new("RGB", (17, 40), RED)),
             _save(tmp_path, "gray.png", Image.new("L", (32, 32), 77))]
    loaded = load_image_files(paths, 24, 16, 1)
    assert loaded.images.shape == (2, 24, 16, 1)
    assert set(np.unique(loaded.images[0])) == {76}  # 0.299 * 255
    assert set(np.unique(loaded.images[1])) == {77}


def test_exif_orientation_turns_the_photo_upright_before_resizing(tmp_path):
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the stored left side is the top
    loaded = load_image_files([_save(tmp_path, "turned.jpg", image, exif=exif, quality=95)], 40, 20, 3)
    assert loaded.original_sizes == [(40, 20)]
    top, bottom = loaded.images[0, 2:18].mean(axis=(0, 1)), loaded.images[0, 22:38].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_bad_files_are_reported_and_the_good_ones_around_them_still_load(tmp_path):
    good = [_save(tmp_path, f"good{index}.png", Image.new("L", (32, 32), 40 * index)) for index in range(4)]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    whole = _save(tmp_path, "whole.png", _noise((64, 64))).read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole[:len(whole) // 2])
    missing, folder = tmp_path / "missing.png", tmp_path / "folder.png"
    folder.mkdir()

    loaded = load_image_files([good[0], corrupt, good[1], truncated, missing, good[2], folder, good[3]], 32, 32, 1)

    assert loaded.paths == good
    assert loaded.images[:, 0, 0, 0].tolist() == [0, 40, 80, 120]
    assert [entry.path for entry in loaded.unreadable] == [corrupt, truncated, missing, folder]
    reasons = [entry.reason for entry in loaded.unreadable]
    assert reasons[0].startswith("not an image file Pillow can read")
    assert reasons[1].startswith("truncated or corrupt image data (")
    assert reasons[2:] == ["no such file", "is a folder"]
    assert all("\n" not in reason for reason in reasons)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_decompression_bomb_is_reported_not_decoded(tmp_path, monkeypatch):
    path = _save(tmp_path, "bomb.png", Image.new("RGB", (32, 32)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 is over twice the limit: an error, not a warning
    loaded = load_image_files([path], 32, 32, 3)
    assert loaded.images.shape == (0, 32, 32, 3)
    assert loaded.unreadable[0].reason.startswith("too many pixels to decode safely (")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a user that file permissions apply to")
def test_file_without_read_permission_is_reported(tmp_path):
    path = _save(tmp_path, "secret.png", Image.new("RGB", (32, 32)))
    path.chmod(0)
    assert load_image_files([path], 32, 32, 3).unreadable[0].reason == "no permission to read it"


def test_no_paths_give_an_empty_array_of_the_target_shape():
    loaded = load_image_files([], 24, 16, 1)
    assert loaded.images.shape == (0, 24, 16, 1) and loaded.images.dtype == np.uint8
    assert (loaded.paths, loaded.original_sizes, loaded.unreadable) == ([], [], [])


def test_two_channels_are_refused(tmp_path):
    with pytest.raises(ValueError, match="channels must be 1"):
        load_image_files([_save(tmp_path, "rgb.png", Image.new("RGB", (8, 8)))], 8, 8, 2)
    with pytest.raises(ValueError, match="channels must be 1"):
        resize_policy(8, 8, 2)


def test_resize_policy_names_the_target_size_and_aspect_ratio():
    square, wide = resize_policy(32, 32, 3), resize_policy(48, 64, 1)
    assert "converted to RGB (grayscale replicated" in square
    assert "not already 32 wide by 32 high is cropped about its centre to a square and resized with Lanczos" in square
    assert "converted to 8-bit grayscale" in wide
    assert "not already 64 wide by 48 high is cropped about its centre to the 4:3 aspect ratio" in wide
