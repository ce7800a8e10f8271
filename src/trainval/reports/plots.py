"""The report's plots as PNG bytes: learning curves, confusion matrix, per-class accuracy, mistakes.

Figures are drawn on matplotlib's Agg canvas without pyplot, so plotting keeps no global state and
needs no display.
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from trainval.metrics import ClassScore

DPI = 110
TRAIN_COLOUR = "#1f77b4"
VALIDATION_COLOUR = "#ff7f0e"
MAX_ANNOTATED_CLASSES = 20  # beyond this, counts no longer fit in the confusion matrix's cells
# Class names are drawn with parse_math=False: a name with two "$" would otherwise be read as TeX and may not parse.


# Fonts with CJK glyphs that machines commonly have; matplotlib falls back to them glyph by glyph.
_FALLBACK_FONT_HINTS = ("CJK", "Han Sans", "WenQuanYi", "Droid Sans Fallback", "Unifont", "IPAGothic", "Noto Sans JP",
                        "Noto Sans SC", "Noto Sans TC", "Noto Sans KR", "AR PL")
Plot = TypeVar("Plot", bound=Callable[..., bytes])


@functools.cache
def _font_families() -> list[str]:
    """matplotlib's own font first, then installed fonts that cover other scripts (class names may be Chinese)."""
    installed = sorted({font.name for font in font_manager.fontManager.ttflist
                        if any(hint in font.name for hint in _FALLBACK_FONT_HINTS)})
    return ["DejaVu Sans", *installed]


def _any_script(plot: Plot) -> Plot:
    """Draw ``plot`` with fallback fonts for names in any script; where no installed font has a glyph it shows
    as a box, without a warning per glyph (the HTML report lists every name as text)."""
    @functools.wraps(plot)
    def drawn(*args, **kwargs):
        with matplotlib.rc_context({"font.family": _font_families()}), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
            return plot(*args, **kwargs)
    return drawn  # type: ignore[return-value]


def _png(figure: Figure) -> bytes:
    """Encode ``figure`` as PNG, cropped to what was drawn."""
    FigureCanvasAgg(figure)  # attaches itself to the figure, so saving needs no backend chosen through pyplot
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()


@_any_script
def learning_curves(rows: Sequence[Mapping[str, float]]) -> bytes:
    """Loss and accuracy (%) per epoch, train and validation side by side.

    ``rows`` are per-epoch metrics with a 0-based ``epoch``, ``loss`` and ``acc``; ``val_loss`` and
    ``val_acc`` are drawn where present and not None. Epochs are shown counted from 1.
    """
    if not rows:
        raise ValueError("there are no epochs to plot")
    epochs = [int(row["epoch"]) + 1 for row in rows]
    marker = "o" if len(rows) <= 50 else None  # markers show short runs' points but crowd long runs' lines
    figure = Figure(figsize=(10, 3.6))
    panels = figure.subplots(1, 2)
    for axes, key, scale, title, label in ((panels[0], "loss", 1.0, "Loss", "loss"),
                                           (panels[1], "acc", 100.0, "Accuracy", "accuracy (%)")):
        for prefix, name, colour in (("", "train", TRAIN_COLOUR), ("val_", "validation", VALIDATION_COLOUR)):
            points = [(epoch, row[prefix + key] * scale) for epoch, row in zip(epochs, rows)
                      if row.get(prefix + key) is not None]
            if points:
                xs, ys = zip(*points)
                axes.plot(xs, ys, marker=marker, markersize=4, linewidth=1.8, color=colour, label=name)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.grid(alpha=0.3)
        axes.legend()
    return _png(figure)


@_any_script
def confusion_matrix_plot(confusion: np.ndarray, class_names: Sequence[str]) -> bytes:
    """Heat map of a confusion matrix (rows true class, columns predicted), counts written in the cells.

    Cell counts are left out above 20 classes, where they would not fit.
    """
    confusion = np.asarray(confusion)
    count = len(class_names)
    if count < 1 or confusion.shape != (count, count):
        raise ValueError(f"confusion matrix of shape {confusion.shape} does not match {count} class names")
    side = min(3.5 + 0.45 * count, 15.0)  # inches: cells shrink as classes grow, the figure stops at 15
    figure = Figure(figsize=(side + 1.2, side))
    axes = figure.subplots()
    image = axes.imshow(confusion, cmap="Blues", interpolation="nearest", vmin=0)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03, label="images")
    colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    label_size = 9 if count <= MAX_ANNOTATED_CLASSES else max(5, 9 - count / 20)
    ticks = np.arange(count)
    axes.set_xticks(ticks, labels=class_names, rotation=45 if count <= MAX_ANNOTATED_CLASSES else 90,
                    ha="right", rotation_mode="anchor", fontsize=label_size, parse_math=False)
    axes.set_yticks(ticks, labels=class_names, fontsize=label_size, parse_math=False)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("Confusion matrix")
    if count <= MAX_ANNOTATED_CLASSES:
        # White text on the darker half of the colour map, black on the lighter half.
        threshold = confusion.max() / 2
        for true, predicted in np.ndindex(confusion.shape):
            value = int(confusion[true, predicted])
            axes.text(predicted, true, str(value), ha="center", va="center", fontsize=9 if count <= 10 else 7,
                      color="white" if value > threshold else "black")
    return _png(figure)


@_any_script
def per_class_accuracy_plot(classes: Sequence[ClassScore]) -> bytes:
    """Each class's accuracy (its recall) in % with its 95% Wilson interval; classes without images are left out.

    A dashed line marks the mean over classes, which differs from overall accuracy when classes are unbalanced.
    """
    scored = [score for score in classes if score.recall is not None and score.recall_interval is not None]
    if not scored:
        raise ValueError("no class has images, so there is no per-class accuracy to plot")
    accuracy = np.array([score.recall for score in scored]) * 100
    low = np.array([score.recall_interval[0] for score in scored]) * 100
    high = np.array([score.recall_interval[1] for score in scored]) * 100
    figure = Figure(figsize=(8, min(1.4 + 0.24 * len(scored), 24.0)))
    axes = figure.subplots()
    positions = np.arange(len(scored))
    axes.barh(positions, accuracy, xerr=np.stack([accuracy - low, high - accuracy]), color=TRAIN_COLOUR,
              alpha=0.8, height=0.7, error_kw={"ecolor": "#333333", "capsize": 2, "linewidth": 1})
    axes.set_yticks(positions, labels=[score.name for score in scored], fontsize=9 if len(scored) <= 30 else 7,
                    parse_math=False)
    axes.set_ylim(len(scored) - 0.5, -0.5)  # first class on top
    mean = float(accuracy.mean())
    axes.axvline(mean, color=VALIDATION_COLOUR, linestyle="--", linewidth=1.5)
    axes.set_xlim(0, 100)
    axes.set_xlabel("accuracy (%), bars show the 95% interval")
    axes.set_title(f"Accuracy per class (dashed: mean over classes {mean:.1f}%)")
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


@_any_script
def mistakes_grid(images: np.ndarray, true_names: Sequence[str], predicted_names: Sequence[str],
                  confidences: Sequence[float]) -> bytes:
    """Grid of wrongly classified uint8 images (M, H, W, C), C 1 or 3, up to 5 per row.

    Each is titled with its true class, the predicted one and the prediction's confidence (0..1).
    """
    images = np.asarray(images)
    count = len(images)
    if not len(true_names) == len(predicted_names) == len(confidences) == count:
        raise ValueError(f"{count} images need as many true names, predicted names and confidences; got "
                         f"{len(true_names)}, {len(predicted_names)} and {len(confidences)}")
    if count == 0:
        figure = Figure(figsize=(4, 0.8))
        figure.text(0.5, 0.5, "No mistakes: every image was classified correctly.", ha="center", va="center")
        return _png(figure)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (M, H, W, 1 or 3); got {images.shape}")
    columns = min(5, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(2.0 * columns, 2.4 * rows))
    for index, axes in enumerate(figure.subplots(rows, columns, squeeze=False).flat):
        axes.set_axis_off()
        if index < count:
            if images.shape[-1] == 1:
                axes.imshow(images[index, ..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                axes.imshow(images[index], interpolation="nearest")
            axes.set_title(f"true: {true_names[index]}\npred: {predicted_names[index]} {confidences[index]:.0%}",
                           fontsize=9, parse_math=False)
    return _png(figure)


@_any_script
def validation_curves(runs: Sequence[tuple[str, Sequence[Sequence[Mapping[str, float]]]]]) -> bytes:
    """Validation loss and accuracy (%) per epoch of several runs in one figure, a colour per run.

    Each run is a name and its curves: one list of per-epoch rows (a 0-based ``epoch``, ``val_loss``,
    ``val_acc``) for a single run, one per seed for a set of seeds (drawn thinner, named once). Rows
    without validation scores are left out.
    """
    if not runs:
        raise ValueError("there are no runs to plot")
    colours = matplotlib.colormaps["tab10"]
    figure = Figure(figsize=(10, 3.8))
    panels = figure.subplots(1, 2)
    epochs = [int(row["epoch"]) + 1 for _, curves in runs for rows in curves for row in rows] or [1]
    for axes, key, scale, title, label in ((panels[0], "val_loss", 1.0, "Validation loss", "loss"),
                                           (panels[1], "val_acc", 100.0, "Validation accuracy", "accuracy (%)")):
        for index, (name, curves) in enumerate(runs):
            for number, rows in enumerate(curves):
                points = [(int(row["epoch"]) + 1, row[key] * scale) for row in rows if row.get(key) is not None]
                if points:
                    xs, ys = zip(*points)
                    axes.plot(xs, ys, marker="o" if len(points) <= 50 else None, markersize=4,
                              linewidth=1.8 if len(curves) == 1 else 1.0, color=colours(index % 10),
                              label=name if number == 0 else None)
        axes.set_title(title)
        axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.grid(alpha=0.3)
    for text in panels[1].legend(fontsize=8).get_texts():
        text.set_parse_math(False)  # a run's name is text, not TeX
    return _png(figure)
