"""The test predictions a run saves once, so its report can be made again without the test set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as dump_arrays

from trainval.atomic_files import write_bytes_atomically
from trainval.errors import OutputError, ReportError
from trainval.metrics import most_confident_mistakes

MISTAKES_KEPT = 20  # the most confident mistakes whose pixels are kept for the report


@dataclass
class SavedPredictions:
    """Class probabilities and true labels of every test image, and the pixels of the worst mistakes."""

    probabilities: np.ndarray  # float32 (N, classes)
    labels: np.ndarray  # int64 (N,)
    mistake_indices: np.ndarray  # int64 (M,): the most confident mistakes first
    mistake_images: np.ndarray  # uint8 (M, H, W, C)

    @classmethod
    def of(cls, probabilities: np.ndarray, labels: np.ndarray, images: np.ndarray) -> SavedPredictions:
        """Keep the pixels of the ``MISTAKES_KEPT`` most confident mistakes among ``images``."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        mistakes = most_confident_mistakes(probabilities, labels, MISTAKES_KEPT)
        return cls(probabilities.astype(np.float32), labels, mistakes.astype(np.int64),
                   np.ascontiguousarray(np.asarray(images)[mistakes], dtype=np.uint8))

    def write(self, path: str | os.PathLike[str]) -> None:
        """Replace ``path`` atomically with these arrays as safetensors."""
        arrays = {name: np.ascontiguousarray(value) for name, value in vars(self).items()}
        try:
            write_bytes_atomically(path, dump_arrays(arrays))
        except OSError as error:
            raise OutputError(f"cannot write {path} ({error.strerror or error}); free disk space") from error

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SavedPredictions:
        """The predictions :meth:`write` saved; a ReportError if the file is missing or damaged."""
        try:
            arrays = load_arrays(Path(path).read_bytes())
            predictions = cls(**{name: arrays[name] for name in ("probabilities", "labels", "mistake_indices",
                                                                 "mistake_images")})
        except FileNotFoundError:
            raise ReportError(f"{path} is missing") from None
        except (OSError, SafetensorError, KeyError, TypeError) as error:
            raise ReportError(f"{path} is unreadable or corrupt ({error})") from error
        problem = predictions._inconsistency()
        if problem:
            raise ReportError(f"{path} is corrupt ({problem})")
        return predictions

    def _inconsistency(self) -> str | None:
        """What makes these arrays unusable together, or None."""
        probabilities, labels, indices, images = (self.probabilities, self.labels, self.mistake_indices,
                                                   self.mistake_images)
        if probabilities.ndim != 2 or labels.shape != (len(probabilities),) or indices.ndim != 1:
            return "arrays of the wrong shapes"
        if labels.dtype.kind not in "iu" or indices.dtype.kind not in "iu" or images.dtype != np.uint8:
            return "arrays of the wrong types"
        if images.ndim != 4 or len(images) != len(indices):
            return "mistake images that do not match their indices"
        if len(labels) and not (0 <= labels.min() and labels.max() < probabilities.shape[1]):
            return "labels outside the classes"
        if len(indices) and not (0 <= indices.min() and indices.max() < len(labels)):
            return "mistake indices outside the test set"
        return None
