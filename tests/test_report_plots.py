"""The report's plots: each is a PNG that Pillow opens, of a sensible size, with something drawn on it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from trainval.reports.plots import (VALIDATION_COLOUR, confusion_matrix_plot, learning_curves, mistakes_grid,
                                    per_class_accuracy_plot)
from trainval.metrics import Scores, score_predictions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def open_plot(png: bytes, min_size: tuple[int, int] = (300, 150), max_size: tuple[int, int] = (2500, 2500),
              min_std: float = 20.0) -> Image.Image:
    """Open ``png``, checking it is a PNG of a plausible size whose pixels are far from uniform."""
    assert png.startswith(PNG_SIGNATURE), "not PNG bytes"
    assert len(png) < 1_000_000, f"{len(png)} bytes is too big for one plot"
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    width, height = image.size
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], f"odd size {image.size}"
    spread = np.asarray(image.convert("L"), dtype=np.float64).std()
    assert spread > min_std, f"the plot looks blank: pixel standard deviation {spread:.1f}"
    return image


def pixels_near(image: Image.Image, hex_colour: str, tolerance: int = 12) -> int:
    """How many pixels are within ``tolerance`` of ``hex_colour`` in every channel."""
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    return int((np.abs(pixels - target) <= tolerance).all(axis=-1).sum())


def epoch_rows(count: int, validation: bool) -> list[dict[str, float | None]]:
    rows = []
    for epoch in range(count):
        row = {"epoch": epoch, "loss": 2.0 / (epoch + 1), "acc": 0.9 - 0.6 / (epoch + 1), "lr": 0.1, "seconds": 3.5}
        if validation:
            row.update(val_loss=2.2 / (epoch + 1), val_acc=0.85 - 0.6 / (epoch + 1))
        rows.append(row)
    return rows


def scores(classes: int, samples: int = 2000, seed: int = 0) -> Scores:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, samples)
    logits = rng.normal(size=(samples, classes))
    logits[np.arange(samples), labels] += 2.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return score_predictions(probabilities, labels, [f"class {index}" for index in range(classes)])


def test_a_blank_image_fails_the_plot_check():
    buffer = io.BytesIO()
    Image.new("RGB", (600, 400), "white").save(buffer, format="PNG")
    with pytest.raises(AssertionError, match="blank"):
        open_plot(buffer.getvalue())


def test_learning_curves_draw_validation_lines_when_there_was_validation():
    image = open_plot(learning_curves(epoch_rows(12, validation=True)))
    assert image.width > image.height, "loss and accuracy should sit side by side"
    assert pixels_near(image, VALIDATION_COLOUR) > 500


@pytest.mark.parametrize("keys_present", [False, True])
def test_learning_curves_without_validation_draw_only_training(keys_present):
    rows = epoch_rows(12, validation=False)
    if keys_present:
        for row in rows:
            row.update(val_loss=None, val_acc=None)
    image = open_plot(learning_curves(rows))
    assert pixels_near(image, VALIDATION_COLOUR) == 0


@pytest.mark.parametrize("validation", [False, True])
def test_learning_curves_of_a_single_epoch_show_its_points(validation):
    image = open_plot(learning_curves(epoch_rows(1, validation=validation)))
    assert (pixels_near(image, VALIDATION_COLOUR) > 20) == validation


def test_learning_curves_need_at_least_one_epoch():
    with pytest.raises(ValueError, match="no epochs"):
        learning_curves([])


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_confusion_matrix_plot_scales_with_the_classes(classes):
    result = scores(classes)
    image = open_plot(confusion_matrix_plot(result.confusion, [score.name for score in result.classes]))
    assert image.width >= 400 and image.height >= 400
    if classes == 100:
        assert image.width >= 1200, "100 classes need room for their labels"


def test_confusion_matrix_plot_rejects_names_that_do_not_match():
    with pytest.raises(ValueError, match="does not match"):
        confusion_matrix_plot(np.eye(3, dtype=np.int64), ["a", "b"])


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_per_class_accuracy_plot_has_one_bar_per_class(classes):
    image = open_plot(per_class_accuracy_plot(scores(classes).classes), max_size=(2500, 3000))
    assert image.height >= 150 + 15 * classes


def test_per_class_accuracy_plot_skips_classes_without_images():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    result = score_predictions(probabilities, np.array([0, 1, 1]), ["cat", "dog", "never seen"])
    assert result.classes[2].recall is None
    open_plot(per_class_accuracy_plot(result.classes))
    with pytest.raises(ValueError, match="no class has images"):
        per_class_accuracy_plot(result.classes[2:])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("count", [1, 12])
def test_mistakes_grid_shows_the_images_in_rows_of_five(count, channels):
    rng = np.random.default_rng(count)
    images = rng.integers(0, 256, size=(count, 32, 32, channels), dtype=np.uint8)
    png = mistakes_grid(images, ["cat"] * count, ["dog"] * count, rng.uniform(0.5, 1.0, count))
    image = open_plot(png, min_size=(150, 150))
    if count == 12:
        assert 1.1 < image.width / image.height < 1.6 and image.height > 500, f"5 x 3 grid expected: {image.size}"
    else:
        assert image.width < 400 and image.height < 400


@pytest.mark.parametrize("channels", [1, 3])
def test_mistakes_grid_without_mistakes_says_so(channels):
    png = mistakes_grid(np.zeros((0, 32, 32, channels), dtype=np.uint8), [], [], [])
    image = open_plot(png, min_size=(150, 20), max_size=(800, 200))
    assert image.width > 2 * image.height, "a one-line message"


def test_class_names_are_drawn_as_written_not_as_tex():
    names = [r"$\frac{$", "50$ bill"]
    confusion = np.array([[3, 1], [0, 2]], dtype=np.int64)
    open_plot(confusion_matrix_plot(confusion, names))
    open_plot(per_class_accuracy_plot(score_predictions(np.eye(2), np.array([0, 1]), names).classes))
    open_plot(mistakes_grid(np.zeros((1, 8, 8, 3), dtype=np.uint8), names[:1], names[1:], [0.9]), min_size=(100, 100))


def test_mistakes_grid_rejects_mismatched_titles():
    with pytest.raises(ValueError, match="need as many"):
        mistakes_grid(np.zeros((2, 8, 8, 3), dtype=np.uint8), ["cat"], ["dog", "dog"], [0.9, 0.8])
