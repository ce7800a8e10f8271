"""MixUp and CutMix: each training image is mixed with another image of its batch, and so is its label.

MixUp (Zhang et al., 2018) blends two whole images, ``share * a + (1 - share) * b``; CutMix (Yun et
al., 2019) pastes a rectangle of ``b`` into ``a``. Either way the target becomes the soft label
``share * onehot(a) + (1 - share) * onehot(b)``, with ``share`` drawn from Beta(alpha, alpha).
As in the papers and timm's default ("batch" mode), one share, one pairing and one rectangle serve
a whole batch: a handful of random numbers per step, and the mixing is two tensor operations on the
device the model trains on.

Every random number comes from the fit's seeded generator, so mixed runs repeat exactly and resume
exactly (the generator is in the checkpoint; nothing else is kept between batches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from trainval.errors import ConfigError


def check_alpha(name: str, alpha: float) -> None:
    """A ConfigError unless ``alpha`` is a usable Beta concentration (0 switches the mix off)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < math.inf:
        raise ConfigError(f"{name} must be a Beta concentration >= 0 (0: off; 0.2 to 1 are usual); got {alpha!r}")


@dataclass(frozen=True)
class BatchMix:
    """How one batch is mixed: image ``i`` is mixed with image ``partner[i]`` of the same batch and keeps
    ``share`` of its own label. ``box`` (top, bottom, left, right) is CutMix's pasted rectangle; None
    for MixUp."""

    partner: torch.Tensor  # int64 (N,): positions in the batch
    share: float
    box: tuple[int, int, int, int] | None = None

    def apply(self, inputs: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
        """Mix float ``inputs`` (N, C, H, W) with ``partners`` (the partner images, in the same order), in place."""
        if self.box is None:
            return inputs.mul_(self.share).add_(partners, alpha=1.0 - self.share)
        top, bottom, left, right = self.box
        inputs[:, :, top:bottom, left:right] = partners[:, :, top:bottom, left:right]
        return inputs


def draw_mix(mixup: float, cutmix: float, count: int, height: int, width: int,
             generator: torch.Generator) -> BatchMix | None:
    """Draw the mixing of a batch of ``count`` images of ``height`` x ``width``; None when both are off.

    With both on, each batch takes one of the two by a fair coin (as timm's ``switch_prob=0.5``).
    """
    if not mixup and not cutmix:
        return None
    device = generator.device  # a GPU's, when the data lives there (the coin and the seed are then read back)
    use_cutmix = bool(cutmix) and (not mixup or bool(torch.rand((), generator=generator, device=device) < 0.5))
    # torch draws Beta variates from its global generator only: a seed from the fit's generator keeps them its own.
    rng = np.random.default_rng(int(torch.randint(0, 2**63 - 1, (), generator=generator, device=device)))
    share = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    partner = torch.randperm(count, generator=generator, device=device)
    if not use_cutmix:
        return BatchMix(partner, share)
    # The rectangle covers 1 - share of the image around a uniform centre, clipped at the borders;
    # the share is then what the clipped rectangle left, so labels match the pixels exactly.
    cut = math.sqrt(1.0 - share)
    centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
    half_h, half_w = int(height * cut) // 2, int(width * cut) // 2
    top, bottom = max(centre_y - half_h, 0), min(centre_y + half_h, height)
    left, right = max(centre_x - half_w, 0), min(centre_x + half_w, width)
    share = 1.0 - (bottom - top) * (right - left) / (height * width)
    return BatchMix(partner, share, (top, bottom, left, right))
