"""Tiny in-memory data sets, networks and callbacks for fast tests of the training API."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from trainval.callbacks import Callback


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


class PoisonedAfter(nn.Module):
    """TinyNet whose training outputs turn NaN from the ``steps``-th training forward pass on."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.net, self.steps, self.calls = TinyNet(), steps, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.steps:
                return out * float("nan")
        return out


class AfterSteps(Callback):
    """Calls ``action`` (a crash, a kill) at the end of update number ``steps`` of the process."""

    def __init__(self, steps: int, action: Callable[[], None]) -> None:
        super().__init__()
        self.steps, self.action, self.done = steps, action, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.steps:
            self.action()
class LearningRates(Callback):
    """Records every parameter group's learning rate after each update."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[float]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([group["lr"] for group in self.model._compiled().optimizer.param_groups])
