"""Scores as plain-text tables for the terminal."""

from __future__ import annotations

from trainval.reports.scores import Scores


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def class_table(scores: Scores) -> str:
    """One line per class: images, precision, and recall (the class's accuracy) with its 95% interval."""
    width = max(len("class"), *(len(score.name) for score in scores.classes))
    lines = [f"{'class':<{width}}  {'images':>6}  {'precision':>9}  {'recall':>7}  95% CI of recall"]
    for score in scores.classes:
        interval = "—" if score.recall_interval is None else \
            f"{score.recall_interval[0] * 100:.1f}-{score.recall_interval[1] * 100:.1f}%"
        lines.append(f"{score.name:<{width}}  {score.support:>6}  {_percent(score.precision):>9}  "
                     f"{_percent(score.recall):>7}  {interval}")
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
