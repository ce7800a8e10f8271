"""Tiny in-memory data sets and networks for fast tests of the training API."""

from __future__ import annotations

import numpy as np
from torch import nn

from trainval.training.callbacks import Callback


def tiny_images(count: int = 40, size: int = 12, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC images whose class shows in their brightness, so a small net can learn it."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    base = (labels * (200 // classes))[:, None, None, None]
    images = np.clip(base + rng.integers(0, 40, size=(count, size, size, 3)), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


class TinyNet(nn.Module):
    """Conv + BatchNorm + linear head: small, fast, and sensitive to BatchNorm batch-size issues."""

    def __init__(self, classes: int = 4, channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, classes))

    def forward(self, x):
        return self.head(self.features(x))


class LearningRates(Callback):
    """Records every parameter group's learning rate after each update."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[float]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([group["lr"] for group in self.model._compiled().optimizer.param_groups])
