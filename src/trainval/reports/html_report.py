"""A run's report as one self-contained HTML page: inline CSS, plots embedded as data: URLs, nothing fetched.

The page opens the same anywhere, offline and years later, and can be mailed as a single file.
"""

from __future__ import annotations

import base64
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from trainval.metrics import ClassScore
from trainval.stats import MISSING, format_interval, format_percent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; background: #fff; margin: 0; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 0.8rem; }
h2 { font-size: 1.2rem; margin: 2.2rem 0 0.8rem; padding-bottom: 0.3rem; border-bottom: 1px solid #e3e3e3; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1.2rem; margin: 0; }
dl.summary dt { color: #666; }
dl.summary dd { margin: 0; font-weight: 600; }
figure { margin: 0 0 1.8rem; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: #666; font-size: 0.9rem; margin-top: 0.3rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #e3e3e3; padding: 0.3rem 0.7rem; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafafa; }
table.numbers td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
"""


def render_report(*, title: str, summary: Sequence[tuple[str, str]], config: Mapping[str, Any],
                  timings: Mapping[str, float], epochs: Sequence[Mapping[str, Any]], classes: Sequence[ClassScore],
                  plots: Sequence[tuple[str, bytes]], notes: Sequence[str] = (),
                  train_counts: Sequence[int] | None = None, class_weights: Sequence[float] | None = None) -> str:
    """The report page as an HTML5 string; every text value is escaped, so any class name is safe.

    ``summary`` holds (label, value) lines for the header, e.g. ("Test accuracy", "94.12% (95% CI ...)");
    ``plots`` holds (caption, PNG bytes); ``epochs`` are per-epoch metric rows with a 0-based ``epoch``,
    shown counted from 1 like the learning curves; ``timings`` are seconds by phase; ``train_counts`` and
    ``class_weights`` (one per class) add the training images and loss weight of each class to the
    per-class table. Empty sections are left out.
    """
    summary_lines = "".join(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>" for label, value in summary)
    sections = [
        _section("Plots", "".join(_figure(caption, png) for caption, png in plots)),
        _section("Per-class scores", _class_table(classes, train_counts, class_weights) if classes else ""),
        _section("Per-epoch metrics", _epoch_table(epochs) if epochs else ""),
        _section("Timings", _table(["phase", "time"], ([name, _duration(seconds)] for name, seconds in timings.items()))
                 if timings else ""),
        _section("Configuration", _table(["setting", "value"], _flatten(config), numeric=False) if config else ""),
        _section("Notes", "<ul>" + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>" if notes else ""),
    ]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            f'<header>\n<h1>{escape(title)}</h1>\n<dl class="summary">{summary_lines}</dl>\n</header>\n'
            + "".join(sections) + "</main>\n</body>\n</html>\n")


def _section(heading: str, body: str) -> str:
    """A titled section, or nothing when it has no body."""
    return f"<section>\n<h2>{escape(heading)}</h2>\n{body}\n</section>\n" if body else ""


def _figure(caption: str, png: bytes) -> str:
    """A plot embedded as a data: URL, so the page needs no other file."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError(f"plot {caption!r} is not a PNG image")
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>\n")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: bool = True) -> str:
    """An HTML table of text cells; with ``numeric``, every column after the first is right-aligned."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>\n" for row in rows)
    css_class = ' class="numbers"' if numeric else ""
    return (f'<div class="scroll"><table{css_class}><thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}</tbody></table></div>")


def _class_table(classes: Sequence[ClassScore], train_counts: Sequence[int] | None,
                 class_weights: Sequence[float] | None) -> str:
    """Training images (and loss weight), test images, precision and accuracy (recall) with its 95% interval,
    one class per row."""
    headers = ["class", *(["training images"] if train_counts else []), *(["class weight"] if class_weights else []),
               "test images", "correct", "precision", "accuracy (recall)", "95% interval"]
    rows = []
    for index, score in enumerate(classes):
        trained = [f"{train_counts[index]:,}"] if train_counts else []
        weight = [f"{class_weights[index]:.3g}"] if class_weights else []
        rows.append([score.name, *trained, *weight, str(score.support), str(score.correct),
                     format_percent(score.precision), format_percent(score.recall),
                     format_interval(score.recall_interval)])
    return _table(headers, rows)


def _epoch_table(epochs: Sequence[Mapping[str, Any]]) -> str:
    """Every key of every row as a column, in order of first appearance; accuracies shown as %."""
    keys = list(dict.fromkeys(key for row in epochs for key in row))
    rows = []
    for row in epochs:
        cells = []
        for key in keys:
            value = row.get(key)
            if key == "epoch" and isinstance(value, numbers.Integral):
                value = int(value) + 1
            cells.append(format_percent(value) if key.endswith(("acc", "accuracy")) else _number(value))
        rows.append(cells)
    return _table(keys, rows)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as ("optimizer.lr", "0.1") pairs; lists and other values as JSON."""
    pairs = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            pairs.extend(_flatten(value, name + "."))
        else:
            pairs.append((name, value if isinstance(value, str) else json.dumps(value, default=str)))
    return pairs


def _number(value: Any) -> str:
    """Integers as they are, floats to 4 significant digits, big floats without decimals."""
    if value is None:
        return MISSING
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):  # floats, numpy's included
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    """Seconds, minutes or hours, whichever reads best."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, whole_seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{minutes} min {whole_seconds:02d} s" if not hours else f"{hours} h {minutes:02d} min"
