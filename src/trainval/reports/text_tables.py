"""Scores as plain-text tables for the terminal."""

from __future__ import annotations

from trainval.metrics import Scores
from trainval.stats import format_interval, format_percent


def class_table(scores: Scores) -> str:
    """One line per class: images, precision, and recall (the class's accuracy) with its 95% interval."""
    width = max(len("class"), *(len(score.name) for score in scores.classes))
    lines = [f"{'class':<{width}}  {'images':>6}  {'precision':>9}  {'recall':>7}  95% CI of recall"]
    for score in scores.classes:
        interval = format_interval(score.recall_interval, digits=1)
        lines.append(f"{score.name:<{width}}  {score.support:>6}  {format_percent(score.precision):>9}  "
                     f"{format_percent(score.recall):>7}  {interval}")
    return "\n".join(lines)


def confusion_table(scores: Scores) -> str:
    """The confusion matrix with class names: rows are true classes, columns predicted ones."""
    names = scores.class_names
    corner = "true \\ predicted"
    width = max(len(corner), *(len(name) for name in names))
    cell = max(5, len(str(int(scores.confusion.max()))) + 1, *(min(len(name), 8) + 1 for name in names))
    lines = [f"{corner:<{width}}" + "".join(f"{name[:cell - 1]:>{cell}}" for name in names)]
    for name, row in zip(names, scores.confusion):
        lines.append(f"{name:<{width}}" + "".join(f"{int(count):>{cell}}" for count in row))
    return "\n".join(lines)
