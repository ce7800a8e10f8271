"""``resnet18``: ResNet-18 as CIFAR papers use it, with a 3x3 stem and no early pooling for small images.

Four stages of two basic blocks (64, 128, 256, 512 channels; the last three halve the spatial
size), global average pooling and a linear head: 11.2M parameters, 0.56 G multiply-adds per
32x32 image. Unlike the ImageNet stem (7x7 stride 2 and a max-pool), the 3x3 stride-1 stem keeps
a 32-pixel image's detail for the first stage.

Larger images get a stem that strides (:mod:`trainval.models.stems`): from 64 pixels a side the 3x3
convolution takes stride 2, and from 128 pixels the stem is ImageNet's (7x7 stride 2, then a 3x3
max-pool of stride 2), so a 224-pixel image costs what torchvision's ResNet-18 costs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainval.models.registry import register_model
from trainval.models.stems import checked_stride

_STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (a strided 1x1 conv-BN where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        # Each residual branch starts at zero, so the network begins as its shortcuts (trains
        # stably at the high learning rates of short schedules).
        nn.init.zeros_(self.norm2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """3x3 stem, four stages of two :class:`BasicBlock`, global average pool, linear head."""

    def __init__(self, num_classes: int, in_channels: int, stem_stride: int = 1) -> None:
        super().__init__()
        self.stem = _stem(in_channels, stem_stride)
        blocks: list[nn.Module] = []
        in_width = _STAGE_WIDTHS[0]
        for stage, width in enumerate(_STAGE_WIDTHS):
            for block in range(2):
                blocks.append(BasicBlock(in_width, width, stride=2 if stage > 0 and block == 0 else 1))
                in_width = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _stem(in_channels: int, stride: int) -> nn.Sequential:
    """3x3 conv-BN-ReLU of stride 1 or 2; for a stride of 4 or more, ImageNet's 7x7/2 conv-BN-ReLU and 3x3/2 max-pool."""
    width = _STAGE_WIDTHS[0]
    if stride < 4:
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False),
                             nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))


@register_model("resnet18", description="ResNet-18 for small images: 3x3 stem, no max-pool (ImageNet's stem from "
                                        "128 pixels), 4 stages of 2 basic blocks (64/128/256/512)")
def resnet18(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3),
             stem_stride: int | None = None) -> nn.Module:
    """Build a CIFAR-style :class:`ResNet18` for ``input_shape`` (H, W, C) images of any size; its stem strides
    for larger images (``stem_stride``: 1, 2, or 4 for ImageNet's stem; None: chosen from the image size)."""
    height, width, channels = input_shape
    return ResNet18(num_classes, in_channels=channels, stem_stride=checked_stride(stem_stride, height, width))
