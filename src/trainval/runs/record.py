"""The two JSON files of a run folder, as types: ``config.json`` (:class:`RunRecord`, written when the
run starts) and ``result.json`` (:class:`RunResult`, written last, when it has finished).

Everything that writes or reads them goes through these, so the format lives in one place.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainval.version import __version__


def software_versions() -> dict[str, str]:
    """The versions a run's numbers depend on."""
    return {"trainval": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


@dataclass(frozen=True)
class RunRecord:
    """``config.json``: how a run (or a ``--seeds`` set's parent folder) was started."""

    config: dict[str, Any]  # TrainConfig.to_dict()
    preset: dict[str, Any]  # the resolved preset, with its values as JSON gives them back (lists, not tuples)
    seeds: list[int] | None = None  # the seeds of a --seeds set; None for one run
    versions: dict[str, str] = field(default_factory=software_versions)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_dict(self) -> dict[str, Any]:
        """Plain values, in the file's order."""
        values: dict[str, Any] = {"config": self.config, "preset": self.preset}
        if self.seeds is not None:
            values["seeds"] = self.seeds
        return {**values, "versions": self.versions, "started": self.started}

    @classmethod
    def from_dict(cls, values: Any) -> RunRecord:
        """The record :meth:`to_dict` wrote; a ValueError naming what is malformed."""
        if not isinstance(values, dict) or not isinstance(values.get("config"), dict):
            raise ValueError("no 'config' entry")
        seeds = values.get("seeds")
        if seeds is not None and (not isinstance(seeds, list) or not seeds
                                  or not all(isinstance(seed, int) for seed in seeds)):
            raise ValueError("an invalid list of seeds")
        preset, versions = values.get("preset"), values.get("versions")
        return cls(config=values["config"], preset=preset if isinstance(preset, dict) else {}, seeds=seeds,
                   versions=versions if isinstance(versions, dict) else {}, started=str(values.get("started", "")))

    def with_data_dir(self, data_dir: str | None) -> RunRecord:
        """This record with the data folder a resume found the data in."""
        return RunRecord({**self.config, "data_dir": data_dir}, self.preset, self.seeds, self.versions, self.started)


@dataclass(frozen=True)
class RunResult:
    """``result.json``: what a finished run measured; the test set is scored once."""

    test_loss: float
    test_accuracy: float
    test_interval: tuple[float, float]  # 95% Wilson interval
    test_samples: int
    train_samples: int | None = None
    validation_samples: int | None = None
    epochs_trained: int = 0
    model: str = "?"
    parameters: int = 0
    device: str | None = None  # None in runs older than the field
    precision: str | None = None
    tta: int = 0
    seconds: dict[str, float] | None = None  # data, training, test, total
    test_scores: dict[str, Any] | None = None  # Scores.to_dict(): per class, confusion matrix
    train_class_counts: list[int] | None = None  # training images per class (None in older runs)
    class_weights: list[float] | None = None  # each class's loss weight; None when every image weighed 1

    def to_dict(self) -> dict[str, Any]:
        """Plain values, in the file's order."""
        return {"test_loss": self.test_loss, "test_accuracy": self.test_accuracy,
                "test_interval_95": list(self.test_interval), "test_samples": self.test_samples,
                "train_samples": self.train_samples, "validation_samples": self.validation_samples,
                "epochs_trained": self.epochs_trained, "model": self.model, "parameters": self.parameters,
                "device": self.device, "precision": self.precision, "tta": self.tta, "seconds": self.seconds,
                "test_scores": self.test_scores, "train_class_counts": self.train_class_counts,
                "class_weights": self.class_weights}

    @classmethod
    def from_dict(cls, values: Any) -> RunResult:
        """The result :meth:`to_dict` wrote (older runs may lack the later fields); a ValueError, KeyError or
        TypeError naming what is malformed."""
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
        low, high = values["test_interval_95"]
        seconds = values.get("seconds")
        return cls(test_loss=float(values["test_loss"]), test_accuracy=float(values["test_accuracy"]),
                   test_interval=(float(low), float(high)), test_samples=int(values["test_samples"]),
                   train_samples=values.get("train_samples"), validation_samples=values.get("validation_samples"),
                   epochs_trained=int(values.get("epochs_trained", 0)), model=str(values.get("model", "?")),
                   parameters=int(values.get("parameters", 0)), device=values.get("device"),
                   precision=values.get("precision"), tta=int(values.get("tta") or 0),
                   seconds={key: float(value) for key, value in seconds.items()} if isinstance(seconds, dict) else None,
                   test_scores=values.get("test_scores"),
                   train_class_counts=_numbers(values.get("train_class_counts"), int),
                   class_weights=_numbers(values.get("class_weights"), float))

    def class_names(self) -> list[str] | None:
        """The class names the test scores list, in class order; None if they are not there."""
        classes = (self.test_scores or {}).get("classes")
        if isinstance(classes, list) and all(isinstance(entry, dict) and isinstance(entry.get("name"), str)
                                             for entry in classes):
            return [entry["name"] for entry in classes]
        return None


def _numbers(values: Any, kind: type) -> list | None:
    """A list of numbers as ``kind`` (int or float); None when absent (runs older than the field)."""
    return None if values is None else [kind(value) for value in values]
