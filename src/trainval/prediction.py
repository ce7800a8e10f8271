"""``trainval predict``: the top classes of image files, by a saved model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainval.checks import require_int
from trainval.data.image_files import UnreadableImage, load_image_files, resize_policy
from trainval.errors import ConfigError
from trainval.model import Model


@dataclass
class FilePrediction:
    """The ``top`` (class name, probability) pairs of one image file, most probable first."""

    path: Path
    original_size: tuple[int, int]  # (width, height) as stored
    top: list[tuple[str, float]]
    resized: bool  # whether it had to be cropped and resized to the model's input size

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {"file": str(self.path), "original_size": list(self.original_size), "resized": self.resized,
                "top": [{"class": name, "probability": probability} for name, probability in self.top]}


@dataclass
class FilePredictions:
    """Predictions for the readable files, and the reasons the others could not be read."""

    resize_policy: str
    predictions: list[FilePrediction] = field(default_factory=list)
    unreadable: list[UnreadableImage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {"resize_policy": self.resize_policy, "predictions": [p.to_dict() for p in self.predictions],
                "unreadable": [{"file": str(u.path), "reason": u.reason} for u in self.unreadable]}


def predict_image_files(model: Model, paths: Sequence[str | os.PathLike[str]], top_k: int = 3) -> FilePredictions:
    """Read ``paths`` as images the model takes (converted and resized as ``resize_policy`` says)
    and predict the ``top_k`` classes of each. Unreadable files are reported, not raised."""
    if model.input_shape is None or model.num_classes is None:
        raise ConfigError("the model does not know its input shape and class count yet: predict with a saved "
                          "or trained model")
    require_int("top-k", top_k, 1)
    height, width, channels = model.input_shape
    loaded = load_image_files(paths, height, width, channels)
    result = FilePredictions(resize_policy(height, width, channels), unreadable=loaded.unreadable)
    if len(loaded.images) == 0:
        return result
    probabilities = model.predict(loaded.images)
    names = model.class_names or [str(index) for index in range(model.num_classes)]
    for path, size, row in zip(loaded.paths, loaded.original_sizes, probabilities):
        best = np.argsort(-row, kind="stable")[:top_k]
        result.predictions.append(FilePrediction(path, size, [(names[index], float(row[index])) for index in best],
                                                 resized=size != (width, height)))
    return result
