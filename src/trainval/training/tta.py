"""Test-time augmentation: average the logits of a few cheap views of each image."""

from __future__ import annotations

import torch
from torch import nn

from trainval.data.augment import reflect_pad

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
