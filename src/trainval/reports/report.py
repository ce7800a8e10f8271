"""A finished run's report: PNG plots in ``plots/`` and one self-contained ``report.html``, made
from the run folder's files alone (the test set is not scored again)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainval.atomic_files import write_bytes_atomically
from trainval.errors import OutputError, ReportError
from trainval.reports import plots
from trainval.reports.html_report import render_report
from trainval.reports.predictions_file import SavedPredictions
from trainval.metrics import Scores, score_predictions
from trainval.runs.record import RunRecord, RunResult
from trainval.runs.run_folder import RunFolder
from trainval.stats import format_accuracy


def write_report(path: str | os.PathLike[str], result: RunResult | None = None,
                 class_names: list[str] | None = None) -> Path:
    """(Re)make the plots and ``report.html`` of the finished run in folder ``path`` from its files alone;
    returns the report's path.

    ``result`` is what the run's result.json holds (read from it when not given: a run writes its
    report before result.json, which comes last). ``class_names`` stand in for runs whose result lacks
    them (runs older than per-class scores). A ReportError if the saved test predictions are missing
    or damaged (``trainval.evaluation.remake_report`` scores the test set again then)."""
    folder = RunFolder.open(path)
    folder.refuse_seeds_parent()
    saved = folder.read_config()
    if result is None:
        if not folder.result_file.exists():
            raise ReportError(f"the run in {path} has not finished, so it has no test score to report yet; "
                              f"finish it with {folder.command_hint()}")
        result = folder.read_result()
    epochs = _read_epochs(folder.metrics_jsonl)
    predictions = SavedPredictions.read(folder.test_predictions)
    scores = score_predictions(predictions.probabilities, predictions.labels, result.class_names() or class_names,
                               result.test_loss)

    names = scores.class_names
    predicted = predictions.probabilities[predictions.mistake_indices].argmax(axis=1)
    figures = {}
    if epochs:  # a run of 0 epochs has none
        figures["learning_curves"] = ("Learning curves: loss and accuracy per epoch, training vs validation",
                                      plots.learning_curves(epochs))
    figures |= {
        "confusion_matrix": ("Confusion matrix on the test set (rows: true class, columns: predicted)",
                             plots.confusion_matrix_plot(scores.confusion, names)),
        "per_class_accuracy": ("Test accuracy per class, with 95% Wilson intervals",
                               plots.per_class_accuracy_plot(scores.classes)),
        "confident_mistakes": ("The most confidently wrong test images",
                               plots.mistakes_grid(predictions.mistake_images,
                                                   [names[label] for label in predictions.labels[predictions.mistake_indices]],
                                                   [names[index] for index in predicted],
                                                   predictions.probabilities[predictions.mistake_indices, predicted])),
    }
    html = render_report(
        title=f"trainval run {folder.path.name}", summary=_summary(scores, result, saved),
        config=saved.to_dict(), timings=result.seconds or {}, epochs=epochs, classes=scores.classes,
        plots=[(caption, png) for caption, png in figures.values()], notes=_notes(saved.config, result, scores),
        train_counts=result.train_class_counts, class_weights=result.class_weights)
    plots_folder = folder.owned_subfolder(folder.plots)
    try:
        for name, (_, png) in figures.items():
            write_bytes_atomically(plots_folder / f"{name}.png", png)
        write_bytes_atomically(folder.report_file, html.encode())
    except OSError as error:
        raise OutputError(f"cannot write the report in {folder.path} ({error.strerror or error}); free disk space "
                          "or make the folder writable") from error
    return folder.report_file


def _summary(scores: Scores, result: RunResult, saved: RunRecord) -> list[tuple[str, str]]:
    config = saved.config
    lines = [("Test accuracy", format_accuracy(scores.accuracy, scores.interval, scores.samples))]
    if scores.uneven:
        lines.append(("Balanced accuracy", scores.balanced_summary()))
    lines += [("Test loss", f"{result.test_loss:.4f}"),
              ("Data", f"{config['dataset']}: {result.train_samples} training, "
                       f"{result.validation_samples} validation ({config['validation']}), "
                       f"{scores.samples} test images"),
              ("Recipe", f"preset {saved.preset.get('name')}, model {result.model} "
                         f"({result.parameters:,} parameters), {_count(result.epochs_trained, 'epoch')}, "
                         f"seed {config['seed']}")]
    if result.precision is not None:
        lines.append(("Ran on", f"{result.device} in {result.precision}"))
    if result.seconds is not None:
        lines.append(("Time", f"{result.seconds.get('total', 0.0):.1f} s in all, "
                              f"{result.seconds.get('training', 0.0):.1f} s training"))
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _notes(config: dict[str, Any], result: RunResult, scores: Scores) -> list[str]:
    notes = ["The test set was scored once, after training; the interval is a 95% Wilson score interval for "
             "the accuracy on this many test images."]
    if scores.uneven:
        notes.append("The test classes have different numbers of images, so the balanced accuracy (the mean of the "
                     "per-class accuracies, every class counting alike) is shown beside the accuracy; its interval "
                     "is a normal approximation from the per-class counts.")
    if result.class_weights:
        notes.append("Training weighted each image's loss by its class weight (--class-weight balanced: the number "
                     "of training images over the number of classes times the images of that class).")
    if config.get("validation") == "test":
        notes.append("This run validated on the test set (the tutorial's way), so its test accuracy is an "
                     "optimistic estimate; --validation holdout gives an honest one.")
    if result.tta:
        notes.append(f"Test-time augmentation level {result.tta}: predictions average flipped"
                     f"{' and shifted' if result.tta > 1 else ''} views of each image.")
    return notes


def _read_epochs(path: Path) -> list[dict[str, Any]]:
    """The rows of metrics.jsonl; none when it is missing (a run of 0 epochs writes none)."""
    if not path.exists():
        return []
    try:
        rows = [json.loads(line) for line in _read_text(path).splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is corrupt ({error})") from error
    if not all(isinstance(row, dict) and {"epoch", "loss", "acc"} <= set(row) for row in rows):
        raise ReportError(f"{path} is corrupt (a row without epoch, loss and acc)")
    return rows


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ReportError(f"{path} is missing; the run folder is incomplete") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path} is unreadable ({error})") from error
