"""Metrics of a set of predictions against true labels: accuracy and balanced accuracy with their
intervals, per-class precision and recall, the confusion matrix, and the most confident mistakes."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainval.stats import format_balanced_accuracy, mean_proportion_interval, wilson_interval


@dataclass(frozen=True)
class ClassScore:
    """One class's scores. ``recall`` is the class's accuracy: correct / images of that class."""

    name: str
    support: int  # images of this class
    predicted: int  # images predicted as this class
    correct: int
    precision: float | None  # None when nothing was predicted as this class
    recall: float | None  # None when the class has no images
    recall_interval: tuple[float, float] | None  # 95% Wilson interval of the recall

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {"name": self.name, "support": self.support, "predicted": self.predicted, "correct": self.correct,
                "precision": self.precision, "recall": self.recall,
                "recall_interval_95": list(self.recall_interval) if self.recall_interval else None}


@dataclass(frozen=True)
class Scores:
    """Scores of predictions on ``samples`` labelled images."""

    samples: int
    correct: int
    loss: float | None
    confusion: np.ndarray  # int64 (classes, classes): rows are true classes, columns predicted ones
    classes: tuple[ClassScore, ...]

    @property
    def class_names(self) -> list[str]:
        """The class names, in class order."""
        return [score.name for score in self.classes]

    @property
    def accuracy(self) -> float:
        """Fraction of images predicted correctly."""
        return self.correct / self.samples

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of the accuracy."""
        return wilson_interval(self.correct, self.samples)

    @property
    def classes_with_images(self) -> list[ClassScore]:
        """The classes that have at least one image here."""
        return [score for score in self.classes if score.support]

    @property
    def balanced_accuracy(self) -> float:
        """The mean of the per-class recalls over the classes that have images (scikit-learn's
        ``balanced_accuracy_score``): every class counts alike, however many images it has."""
        return statistics.fmean(score.correct / score.support for score in self.classes_with_images)

    def balanced_summary(self) -> str:
        """``61.20% (95% CI 55.10-67.30%, mean recall of 10 classes)``."""
        return format_balanced_accuracy(self.balanced_accuracy, self.balanced_interval, len(self.classes_with_images))

    @property
    def balanced_interval(self) -> tuple[float, float]:
        """95% interval of the balanced accuracy (see :func:`trainval.stats.mean_proportion_interval`)."""
        return mean_proportion_interval([score.correct for score in self.classes_with_images],
                                        [score.support for score in self.classes_with_images])

    @property
    def uneven(self) -> bool:
        """Whether the classes with images have different numbers of them (balanced accuracy then differs
        from accuracy, and is shown beside it)."""
        return len({score.support for score in self.classes_with_images}) > 1

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {"samples": self.samples, "correct": self.correct, "loss": self.loss, "accuracy": self.accuracy,
                "accuracy_interval_95": list(self.interval), "balanced_accuracy": self.balanced_accuracy,
                "balanced_accuracy_interval_95": list(self.balanced_interval), "confusion": self.confusion.tolist(),
                "classes": [score.to_dict() for score in self.classes]}


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs, shape (num_classes, num_classes)."""
    pairs = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def score_predictions(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None,
                      loss: float | None = None) -> Scores:
    """Score class ``probabilities`` (N, classes) against integer ``labels`` (N,); ``loss`` is carried along."""
    if len(probabilities) == 0:
        raise ValueError("there are no predictions to score")
    num_classes = probabilities.shape[1]
    labels = np.asarray(labels).reshape(-1)
    confusion = confusion_matrix(probabilities.argmax(axis=1), labels, num_classes)
    names = list(class_names) if class_names is not None else [str(index) for index in range(num_classes)]
    classes = []
    for index, name in enumerate(names):
        correct, support, predicted = (int(confusion[index, index]), int(confusion[index].sum()),
                                       int(confusion[:, index].sum()))
        classes.append(ClassScore(
            name=name, support=support, predicted=predicted, correct=correct,
            precision=correct / predicted if predicted else None, recall=correct / support if support else None,
            recall_interval=wilson_interval(correct, support) if support else None))
    return Scores(samples=len(labels), correct=int(np.trace(confusion)), loss=loss, confusion=confusion,
                  classes=tuple(classes))


def most_confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to ``count`` wrongly predicted images, the most confident (highest top probability) first."""
    labels = np.asarray(labels).reshape(-1)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]
