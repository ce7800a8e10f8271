"""Augmentation that costs almost nothing: a batch is flipped and shifted by a few tensor ops.

No per-image Python: every image's flip and offset are drawn as tensors and applied by indexing.
Random numbers come from the generator on its own device and index tensors are made on the
images' device, so a batch on a GPU is augmented there without a copy to or from the host.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from trainval.data.mixing import BatchMix, check_alpha, draw_mix
from trainval.errors import ConfigError

FLIP_MODES = ("alternating", "random", "none")


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation of uint8 or float NCHW batches.

    ``flip``: ``"random"`` mirrors each image with probability 1/2 every epoch; ``"alternating"``
    draws that coin once per image and then mirrors it on every other epoch, so over any two
    epochs each image is seen both ways (fewer epochs for the same accuracy); ``"none"``.
    ``translate``: shift each image by up to this many pixels along each axis, filling the
    border by reflection.
    ``mixup`` and ``cutmix``: the Beta concentration of MixUp and CutMix (0: off), which mix each
    batch's images and labels in pairs on the training device (see :mod:`trainval.data.mixing`);
    with both on, each batch takes one of them by a fair coin. The loss then takes soft labels.
    ``crop`` and ``crop_epochs``: progressive resizing; the first ``crop_epochs`` epochs train on a
    random window of each (shifted) image that keeps the share ``crop`` of each side (0.75: 24 of 32
    pixels), which costs a network whose work grows with the pixel count proportionally less; later
    epochs see whole images, as the test does. A share, not pixels, so a preset suits any image size.
    ``cutout``: blank a square of this many pixels a side, placed at random (it may overhang the
    edge), with the batch's mean colour, so the network cannot lean on any one part of an image.
    """

    flip: str = "alternating"
    translate: int = 2  # pixels, each axis, uniform in [-translate, translate]
    mixup: float = 0.0  # Beta(mixup, mixup) draws each batch's share of its own images; 0: no MixUp
    cutmix: float = 0.0  # Beta(cutmix, cutmix) draws the share left outside the pasted box; 0: no CutMix
    crop: float = 0.0  # share of each side the early epochs' random windows keep; 0: whole images throughout
    crop_epochs: int = 0  # how many of the first epochs train on crops
    cutout: int = 0  # pixels a side of a square blanked at a random place in each image; 0: none

    def __post_init__(self) -> None:
        if self.flip not in FLIP_MODES:
            raise ConfigError(f"flip must be one of {', '.join(FLIP_MODES)}; got {self.flip!r}")
        for name in ("translate", "crop_epochs", "cutout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0; got {value!r}")
        if isinstance(self.crop, bool) or not isinstance(self.crop, (int, float)) or not 0 <= self.crop < 1:
            raise ConfigError(f"crop is the share of each side that early epochs keep, at least 0 and below 1 "
                              f"(0: no crops); got {self.crop!r}")
        if (self.crop == 0) != (self.crop_epochs == 0):
            raise ConfigError(f"crop and crop_epochs go together (both 0: no crops); got crop={self.crop}, "
                              f"crop_epochs={self.crop_epochs}")
        check_alpha("mixup", self.mixup)
        check_alpha("cutmix", self.cutmix)

    def with_crop_epochs(self, crop_epochs: int) -> Augmentation:
        """This augmentation cropping the first ``crop_epochs`` epochs (0: none), at the same share of each side."""
        return replace(self, crop=self.crop if crop_epochs else 0.0, crop_epochs=crop_epochs)

    def bind(self, num_samples: int, generator: torch.Generator) -> BoundAugmentation:
        """Draw the per-image state (the alternating flip's first coin) for a data set of ``num_samples``."""
        first_flip = torch.rand(num_samples, generator=generator, device=generator.device) < 0.5
        return BoundAugmentation(self, first_flip, generator)


class BoundAugmentation:
    """An :class:`Augmentation` tied to one data set and one random generator."""

    def __init__(self, spec: Augmentation, first_flip: torch.Tensor, generator: torch.Generator) -> None:
        self.spec = spec
        self.first_flip = first_flip
        self.generator = generator

    def __call__(self, images: torch.Tensor, indices: torch.Tensor, epoch: int) -> torch.Tensor:
        """Augment the batch ``images`` holding samples ``indices`` of the data set, in epoch ``epoch``."""
        if self.spec.flip == "alternating":
            images = flip_where(images, self.first_flip[indices] ^ bool(epoch % 2))
        elif self.spec.flip == "random":
            images = flip_where(images, torch.rand(len(images), generator=self.generator,
                                                   device=self.generator.device) < 0.5)
        if self.spec.translate:
            images = translate(images, self.spec.translate, self.generator)
        if epoch < self.spec.crop_epochs:
            height, width = images.shape[2:]
            images = random_crop(images, max(1, round(self.spec.crop * height)), max(1, round(self.spec.crop * width)),
                                 self.generator)
        if self.spec.cutout:
            images = cutout(images, self.spec.cutout, self.generator)
        return images

    def draw_mix(self, images: torch.Tensor) -> BatchMix | None:
        """How to mix the augmented batch ``images`` (drawn after its flips and shifts); None without mixing."""
        count, _, height, width = images.shape
        return draw_mix(self.spec.mixup, self.spec.cutmix, count, height, width, self.generator)


def flip_where(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images where ``mask`` is True."""
    return torch.where(mask[:, None, None, None].to(images.device), images.flip(3), images)


def translate(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random offset in [-pixels, pixels] per axis, reflecting at the border."""
    count, _, height, width = images.shape
    if pixels >= min(height, width):
        raise ConfigError(f"cannot translate {height}x{width} images by {pixels} pixels; use fewer than "
                          f"{min(height, width)}")
    offsets = torch.randint(0, 2 * pixels + 1, (2, count), generator=generator, device=generator.device)
    return _windows(reflect_pad(images, pixels), height, width, offsets[0], offsets[1])


def random_crop(images: torch.Tensor, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``height`` x ``width`` window of each image, each at its own uniformly drawn position."""
    full_height, full_width = images.shape[2:]
    if height > full_height or width > full_width:
        raise ConfigError(f"cannot crop {full_height}x{full_width} images to {height}x{width}")
    rows = torch.randint(0, full_height - height + 1, (len(images),), generator=generator, device=generator.device)
    cols = torch.randint(0, full_width - width + 1, (len(images),), generator=generator, device=generator.device)
    return _windows(images, height, width, rows, cols)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Each image with a ``size`` x ``size`` square, centred at a uniformly drawn pixel, set to the batch's
    mean colour (the part of the square outside the image is dropped)."""
    count, _, height, width = images.shape
    device = images.device
    centres = torch.randint(0, height * width, (count,), generator=generator, device=generator.device).to(device)
    top, left = centres // width - size // 2, centres % width - size // 2
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    inside_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (N, H)
    inside_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # (N, W)
    square = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]  # (N, 1, H, W)
    mean = images.float().mean(dim=(0, 2, 3), keepdim=True).to(images.dtype)
    return torch.where(square, mean, images)


def _windows(images: torch.Tensor, height: int, width: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """The ``height`` x ``width`` window of each image whose top-left corner is at (``top``, ``left``)."""
    device = images.device
    top, left = top.to(device), left.to(device)
    rows = (top[:, None] + torch.arange(height, device=device))[:, :, None]  # (N, H, 1)
    cols = (left[:, None] + torch.arange(width, device=device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(len(images), device=device)[:, None, None]
    # Advanced indexing on (N, H, W, C) gathers every image's window at once.
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def reflect_pad(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Pad by reflection on all four sides (works for uint8, which F.pad's reflect mode does not take)."""
    if images.dtype.is_floating_point:
        return F.pad(images, (pixels,) * 4, mode="reflect")
    return F.pad(images.float(), (pixels,) * 4, mode="reflect").to(images.dtype)
