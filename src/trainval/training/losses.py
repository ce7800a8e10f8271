"""Losses on logits and class indices, with Keras names."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainval.errors import ConfigError


@dataclass(frozen=True)
class CategoricalCrossentropy:
    """Cross-entropy of logits against class indices, as ``keras.losses.CategoricalCrossentropy``.

    ``label_smoothing`` moves that fraction of each target's probability mass evenly onto all
    classes, which keeps logits from growing without bound and generalises better in short runs.
    """

    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1); got {self.label_smoothing}")

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of each sample, shape (N,), unreduced: what sample and class weights multiply."""
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing, reduction="none")
