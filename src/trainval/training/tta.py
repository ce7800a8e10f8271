"""Test-time augmentation: average the logits of a few cheap views of each image.

The views can be spent only where they matter: with a ``fraction`` below 1, every image is first
scored once, and only that fraction of them, those the model is least sure of, get the level's
views. Confident images rarely change their class under TTA, so accuracy stays while the cost of
the views falls with the fraction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainval.data.augment import reflect_pad
from trainval.errors import ConfigError

TTA_LEVELS = (0, 1, 2)


def tta_logits(module: nn.Module, inputs: torch.Tensor, level: int) -> torch.Tensor:
    """Logits of ``inputs`` (a float NCHW batch) averaged over views.

    Level 0: the image alone. Level 1: the image and its mirror. Level 2: half weight on those,
    half on the mirrored pair of the image shifted one pixel up-left and one pixel down-right.
    """
    def mirrored_mean(batch: torch.Tensor) -> torch.Tensor:
        return 0.5 * (module(batch) + module(batch.flip(3)))

    if level == 0:
        return module(inputs)
    logits = mirrored_mean(inputs)
    if level == 1:
        return logits
    padded = reflect_pad(inputs, 1)
    height, width = inputs.shape[2:]
    shifted = [padded[:, :, :height, :width], padded[:, :, 2:, 2:]]
    shifted_logits = sum(mirrored_mean(view.contiguous(memory_format=torch.channels_last)) for view in shifted) / 2
    return 0.5 * logits + 0.5 * shifted_logits


def is_fraction(value: object) -> bool:
    """Whether ``value`` is a number (not a bool) in (0, 1]: a share of the images to augment."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value <= 1.0


def check_fraction(fraction: float) -> float:
    """``fraction`` as a float if it is a share of the images in (0, 1]; a ConfigError otherwise."""
    if not is_fraction(fraction):
        raise ConfigError(f"tta_fraction must be a share of the images in (0, 1]; got {fraction!r}")
    return float(fraction)


def least_confident(logits: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the ``fraction`` of rows (rounded up) whose top softmax probability is lowest."""
    confidence = torch.softmax(logits.float(), dim=1).amax(dim=1)
    return confidence.argsort(stable=True)[:math.ceil(fraction * len(logits))]


def selective_logits(score: Callable[[torch.Tensor | None, int], torch.Tensor], level: int,
                     fraction: float) -> torch.Tensor:
    """Logits of a set of images: the TTA ``level`` for the least confident ``fraction``, one view for the rest.

    ``score(indices, level)`` returns the logits of the images at ``indices`` (all when None) at a level.
    """
    if level == 0 or fraction >= 1.0:
        return score(None, level)
    logits = score(None, 0)
    unsure = least_confident(logits, fraction)
    if len(unsure):
        logits[unsure] = score(unsure, level)
    return logits
