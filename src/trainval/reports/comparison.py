"""``trainval compare``: finished runs side by side, and whether their test accuracies differ beyond chance.

Runs scored on the same test set (the same labels, in the same order, in their saved test
predictions) are paired image by image: McNemar's exact test looks only at the images two runs got
differently right and asks how likely so uneven a split of them would be if neither run were the
better one (a binomial with p = 1/2). Each run is tested against the most accurate one. A ``--seeds``
set's parent folder stands for its recipe: the spread of its test accuracy over the seeds shows how
far the seed alone moves it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainval.errors import ConfigError, TrainvalError
from trainval.reports import plots
from trainval.reports.predictions_file import SavedPredictions
from trainval.reports.report import read_epochs
from trainval.runs.record import RunResult
from trainval.runs.run_folder import RunFolder
from trainval.stats import format_accuracy, format_spread, mcnemar_exact, spread

SIGNIFICANCE = 0.05  # p-values below this are called a difference beyond chance


@dataclass
class ComparedRun:
    """A finished run, or a set of seeds standing for its recipe (its scores the mean over the seeds)."""

    name: str  # the path as given
    preset: str
    dataset: str
    epochs: str  # "2", or "1-2" for seeds that stopped early at different epochs
    test_accuracy: float
    test_samples: int
    seconds: float | None  # total time (a set: the mean over seeds)
    curves: list[list[dict[str, Any]]]  # per-epoch metric rows: one list for a run, one per seed for a set
    test_interval: tuple[float, float] | None = None  # 95% Wilson interval (a single run's)
    seed_accuracies: dict[int, float] | None = None  # a set's test accuracy per seed
    correct: np.ndarray | None = None  # per test image, whether a single run got it right (None: no predictions)
    labels: np.ndarray | None = None  # the test labels, in order

    @property
    def seed_spread(self) -> dict[str, float] | None:
        """A set's mean, std, min and max test accuracy over its seeds; None for a single run."""
        return None if self.seed_accuracies is None else spread(list(self.seed_accuracies.values()))

    @property
    def accuracy_text(self) -> str:
        """``76.65% (95% CI 75.81-77.47%)``, or for a set ``76.30 ± 0.19% over 3 seeds``."""
        values = self.seed_spread
        if values is None:
            assert self.test_interval is not None
            return format_accuracy(self.test_accuracy, self.test_interval)
        return f"{values['mean'] * 100:.2f} ± {values['std'] * 100:.2f}% over {len(self.seed_accuracies)} seeds"

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        values: dict[str, Any] = {
            "name": self.name, "kind": "run" if self.seed_accuracies is None else "seeds", "preset": self.preset,
            "dataset": self.dataset, "epochs": self.epochs, "test_accuracy": self.test_accuracy,
            "test_interval_95": list(self.test_interval) if self.test_interval else None,
            "test_samples": self.test_samples, "seconds": self.seconds}
        if self.seed_accuracies is not None:
            values["seeds"] = [{"seed": seed, "test_accuracy": accuracy}
                               for seed, accuracy in self.seed_accuracies.items()]
            values["test_accuracy_spread"] = self.seed_spread
        return values


@dataclass
class PairedTest:
    """McNemar's exact test of one run against the best run on the test images they share."""

    best: str
    other: str
    images: int
    only_best: int  # images the best run got right and the other wrong
    only_other: int  # the reverse
    p_value: float

    @property
    def points_behind(self) -> float:
        """How many percentage points the other run's accuracy is below the best run's."""
        return 100 * (self.only_best - self.only_other) / self.images

    def verdict(self) -> str:
        """The test's outcome in plain words."""
        p_value = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        evidence = (f"{self.only_best} images right only in {self.best}, {self.only_other} only in {self.other}; "
                    f"McNemar's exact {p_value}")
        if self.p_value < SIGNIFICANCE:
            return f"{self.other}: {self.points_behind:.2f} points below {self.best}, beyond chance ({evidence})"
        return (f"{self.other}: {self.points_behind:.2f} points below {self.best}, within chance ({evidence}): "
                f"no evidence that either is better")

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {"best": self.best, "other": self.other, "images": self.images, "only_best": self.only_best,
                "only_other": self.only_other, "p_value": self.p_value,
                "beyond_chance": self.p_value < SIGNIFICANCE, "verdict": self.verdict()}


@dataclass
class Comparison:
    """Several runs side by side, their paired tests, and notes on what was skipped or left out."""

    runs: list[ComparedRun]
    tests: list[PairedTest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        """One line per run: preset, data set, epochs, test accuracy with its interval, time."""
        header = ("run", "preset", "data set", "epochs", "test accuracy (95% CI)", "time")
        rows = [header] + [(run.name, run.preset, run.dataset, run.epochs, run.accuracy_text,
                            "—" if run.seconds is None else f"{run.seconds:.1f}s") for run in self.runs]
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)

    def seed_lines(self) -> list[str]:
        """For each set of seeds, how far the seed alone moved its test accuracy."""
        return [f"{run.name}: test accuracy {format_spread(run.seed_spread, 100, 2, '%')} over "
                f"{len(run.seed_accuracies)} seeds: the seed alone moves it by {run.seed_spread['std'] * 100:.2f} "
                "points (std)" for run in self.runs if run.seed_spread is not None]

    def plot(self) -> bytes | None:
        """The runs' validation curves in one PNG; None when no run validated."""
        curves = [(run.name, run.curves) for run in self.runs
                  if any(row.get("val_acc") is not None for rows in run.curves for row in rows)]
        return plots.validation_curves(curves) if curves else None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {"runs": [run.to_dict() for run in self.runs], "paired_tests": [test.to_dict() for test in self.tests],
                "notes": self.notes}


def compare_runs(paths: Sequence[str | os.PathLike[str]]) -> Comparison:
    """Compare the finished runs (or ``--seeds`` sets) in ``paths``, where a pattern such as ``runs/*`` that the
    shell left alone is expanded; folders that are not finished runs are skipped with a note. A ConfigError
    for a path that does not exist or fewer than two runs to compare."""
    runs, notes, seen = [], [], set()
    for path in map(Path, _expanded(paths)):
        if not path.exists():
            raise ConfigError(f"{path} does not exist; pass finished run folders, e.g. runs/<name>, or runs/*")
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            runs.append(_load(path, notes))
        except _Skipped as skipped:
            notes.append(f"skipped {path}: {skipped}")
    if len(runs) < 2:
        found = f"only {runs[0].name}" if runs else "none"
        raise ConfigError(f"compare needs at least two finished runs; found {found} among the {len(seen)} "
                          f"path(s) given{' (' + '; '.join(notes) + ')' if notes else ''}")
    comparison = Comparison(runs, notes=notes)
    _pair_up(comparison)
    return comparison


def _expanded(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``paths`` with each pattern that names no file itself (``runs/*`` quoted, or from a shell that does not
    expand patterns) replaced by what it matches, sorted."""
    expanded = []
    for path in map(str, paths):
        matches = sorted(glob.glob(path)) if not os.path.exists(path) and any(char in path for char in "*?[") else []
        expanded += matches or [path]
    return expanded


class _Skipped(Exception):
    """Why a path given is left out of the comparison."""


def _load(path: Path, notes: list[str]) -> ComparedRun:
    if not path.is_dir():
        raise _Skipped("not a folder")
    folder = RunFolder(path)
    if not folder.config_file.is_file():
        raise _Skipped("not a trainval run folder (no config.json)")
    try:
        record = folder.read_config()
    except TrainvalError as error:
        raise _Skipped(str(error)) from None
    preset = str(record.preset.get("name") or record.config.get("preset") or "?")
    dataset = str(record.config.get("dataset", "?"))
    name = str(path)
    if record.seeds:
        return _load_seeds(folder, name, preset, dataset, record.seeds, notes)
    result, curves = _finished(folder)
    run = ComparedRun(name, preset, dataset, str(result.epochs_trained), result.test_accuracy, result.test_samples,
                      (result.seconds or {}).get("total"), [curves], test_interval=result.test_interval)
    try:
        predictions = SavedPredictions.read(folder.test_predictions)
    except TrainvalError as error:
        notes.append(f"{name} is left out of the paired tests: {error}")
    else:
        run.labels = predictions.labels
        run.correct = predictions.probabilities.argmax(axis=1) == predictions.labels
    return run


def _load_seeds(parent: RunFolder, name: str, preset: str, dataset: str, seeds: list[int],
                notes: list[str]) -> ComparedRun:
    finished = {seed: _finished(parent.seed_run(seed)) for seed in seeds
                if parent.seed_run(seed).result_file.exists()}
    if not finished:
        raise _Skipped(f"none of its {len(seeds)} seeds has finished; finish them with trainval train --resume {name}")
    if len(finished) < len(seeds):
        notes.append(f"{name}: {len(finished)} of its {len(seeds)} seeds have finished; the others are left out")
    results = [result for result, _ in finished.values()]
    epochs = sorted({result.epochs_trained for result in results})
    times = [result.seconds["total"] for result in results if result.seconds and "total" in result.seconds]
    accuracies = {seed: result.test_accuracy for seed, (result, _) in finished.items()}
    return ComparedRun(name, preset, dataset, f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else str(epochs[0]),
                       spread(list(accuracies.values()))["mean"], results[0].test_samples,
                       sum(times) / len(times) if times else None, [rows for _, rows in finished.values()],
                       seed_accuracies=accuracies)


def _finished(folder: RunFolder) -> tuple[RunResult, list[dict[str, Any]]]:
    """A finished run's result and per-epoch metrics; _Skipped if it has not finished or they are unreadable."""
    if not folder.result_file.exists():
        raise _Skipped(f"it has not finished; finish it with {folder.command_hint()}")
    try:
        return folder.read_result(), read_epochs(folder.metrics_jsonl)
    except TrainvalError as error:
        raise _Skipped(str(error)) from None


def _pair_up(comparison: Comparison) -> None:
    """Test every run that shares its test set with others against the most accurate of them."""
    groups: dict[tuple[str, bytes], list[ComparedRun]] = {}
    for run in comparison.runs:
        if run.correct is not None:
            groups.setdefault((run.dataset, run.labels.tobytes()), []).append(run)
    for (dataset, _), members in groups.items():
        if len(members) < 2:
            comparison.notes.append(f"{members[0].name}: no other run here was tested on its test set "
                                    f"({dataset}, {len(members[0].labels)} images), so it has no paired test")
            continue
        best = max(members, key=lambda run: run.correct.mean())  # the first of equals
        for other in members:
            if other is best:
                continue
            only_best = int(np.sum(best.correct & ~other.correct))
            only_other = int(np.sum(other.correct & ~best.correct))
            comparison.tests.append(PairedTest(best.name, other.name, len(best.correct), only_best, only_other,
                                               mcnemar_exact(only_best, only_other)))
