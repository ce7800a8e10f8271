"""``fastnet``: the small, fast network family of the CIFAR-10 speed runs, in our own code.

A first convolution whose filters whiten 2x2 patches of the training data, then conv groups
(conv, max-pool, BatchNorm, GELU, conv, BatchNorm, GELU) of growing width, a global max-pool and
a linear head whose logits are scaled down. BatchNorm scales are frozen at 1 and only shifts
learn; convolutions start close to the identity, so the deep path begins as a shortcut.

Images of 64 pixels a side and more are folded by the stem (:mod:`trainval.models.stems`): it
whitens non-overlapping s x s patches with stride s (s = 2 from 64 pixels, 4 from 128, 8 from
256), so every pixel still reaches the network, as channels, while the conv groups work on 32 to
63 positions a side.

The network needs one look at training data before it trains (``initialize_from_data``):
``Model.fit`` does that on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainval.errors import ConfigError
from trainval.models.registry import register_model
from trainval.models.stems import checked_stride

_WHITENING_EPS = 5e-4  # added to patch-covariance eigenvalues: keeps noise directions from blowing up
_BN_MOMENTUM = 0.4  # torch convention: running stats move 40% toward each batch's


def _norm(channels: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=_BN_MOMENTUM)
    norm.weight.requires_grad_(False)  # scale frozen at 1; the shift still learns
    return norm


def _identity_start(conv: nn.Conv2d, enabled: bool = True) -> nn.Conv2d:
    # The first in_channels filters pass their input straight through; the rest keep their random init.
    if not enabled:
        return conv
    with torch.no_grad():
        overlap = min(conv.in_channels, conv.out_channels)
        nn.init.dirac_(conv.weight[:overlap])
    return conv


def _conv(in_channels: int, out_channels: int, identity_init: bool) -> nn.Conv2d:
    return _identity_start(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), identity_init)


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU; halves the spatial size.

    ``depth`` 3 adds a third conv -> BN -> GELU, and the last two convs then form a residual block
    (their output plus the pooled first one's): the deeper network of the 96% recipe."""

    def __init__(self, in_channels: int, out_channels: int, identity_init: bool = True, depth: int = 2) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels, identity_init)
        self.norm1 = _norm(out_channels)
        self.conv2 = _conv(out_channels, out_channels, identity_init)
        self.norm2 = _norm(out_channels)
        self.residual = depth == 3
        if self.residual:
            self.conv3 = _conv(out_channels, out_channels, identity_init)
            self.norm3 = _norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        if not self.residual:
            return F.gelu(self.norm2(self.conv2(x)))
        inner = F.gelu(self.norm2(self.conv2(x)))
        return x + F.gelu(self.norm3(self.conv3(inner)))


class PatchWhitening(nn.Module):
    """A frozen k x k convolution that decorrelates image patches, plus negated copies of its filters.

    Its filters are the eigenvectors of the training patches' covariance, each divided by the root
    of its eigenvalue, so every output channel has unit variance and no two correlate. The negated
    copies let the following GELU pass both signs. Nothing in it trains: a frozen stem also spares
    the backward pass the gradient of the full-resolution first conv group's input.
    """

    def __init__(self, in_channels: int, kernel_size: int = 2, from_data: bool = True, stride: int = 1) -> None:
        super().__init__()
        patch_dims = in_channels * kernel_size * kernel_size
        self.conv = nn.Conv2d(in_channels, 2 * patch_dims, kernel_size, stride=stride, padding=0, bias=True)
        # from_data=False keeps an ordinary, trainable, randomly initialised conv (for ablations).
        self.from_data = from_data
        if from_data:
            self.conv.requires_grad_(False)
            nn.init.zeros_(self.conv.bias)

    @torch.no_grad()
    def initialize_from_data(self, images: torch.Tensor) -> None:
        """Set the filters from float images (N, C, H, W), already normalised as the network sees them."""
        if not self.from_data:
            return
        kernel, stride = self.conv.kernel_size[0], self.conv.stride[0]
        patches = F.unfold(images.float(), kernel, stride=stride).transpose(1, 2)
        patches = patches.reshape(-1, self.conv.weight[0].numel())
        covariance = (patches.T @ patches).double() / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors / torch.sqrt(eigenvalues.clamp_min(0) + _WHITENING_EPS)).T.flip(0)
        filters = filters.reshape(-1, *self.conv.weight.shape[1:]).to(self.conv.weight.dtype)
        self.conv.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FastNet(nn.Module):
    """Whitening stem, conv groups of ``widths``, global max-pool, bias-free linear head times ``logit_scale``.

    ``stem_stride``: the stem whitens ``max(2, stem_stride)``-pixel patches ``stem_stride`` apart
    (None: chosen from the image size by :func:`~trainval.models.stems.stem_stride`). ``depth``: convs
    per group, 2 or 3 (3: the last two form a residual block).
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], widths: Sequence[int] = (64, 256, 256),
                 logit_scale: float = 1 / 9, whitening: bool = True, identity_init: bool = True,
                 stem_stride: int | None = None, depth: int = 2) -> None:
        super().__init__()
        if depth not in (2, 3):
            raise ConfigError(f"fastnet's depth is the number of convs per group, 2 or 3; got {depth!r}")
        height, width, channels = input_shape
        stride = checked_stride(stem_stride, height, width)
        kernel = max(2, stride)
        smallest = (2 ** len(widths) - 1) * stride + kernel  # the stem leaves 2**groups positions; each group halves
        if min(height, width) < smallest:
            raise ConfigError(f"fastnet with {len(widths)} groups needs images of at least {smallest} pixels "
                              f"a side; got {height}x{width}")
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        # Becomes True once the stem and normalisation have seen data; saved with the weights.
        self.register_buffer("data_initialized", torch.tensor(False))
        self.whiten = PatchWhitening(channels, kernel, from_data=whitening, stride=stride)
        stem_channels = self.whiten.conv.out_channels
        self.groups = nn.Sequential(*(ConvGroup(cin, cout, identity_init, depth)
                                      for cin, cout in zip([stem_channels, *widths[:-1]], widths)))
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = logit_scale

    @torch.no_grad()
    def initialize_from_data(self, images: torch.Tensor) -> None:
        """Fit the input normalisation and the whitening stem to a sample of float [0, 1] training images."""
        images = images.float()
        self.mean.copy_(images.mean(dim=(0, 2, 3), keepdim=True))
        self.std.copy_(images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3))
        self.whiten.initialize_from_data((images - self.mean) / self.std)
        self.data_initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten((x - self.mean) / self.std))
        x = self.groups(x)
        x = torch.amax(x, dim=(2, 3))
        return self.head(x) * self.logit_scale


@register_model("fastnet", description="the speed-run network: whitened 2x2 stem (folding larger images), 3 conv "
                                       "groups (64/256/256), options: widths, depth, whitening, identity_init, "
                                       "stem_stride")
def fastnet(num_classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3),
            widths: Sequence[int] = (64, 256, 256), whitening: bool = True, identity_init: bool = True,
            stem_stride: int | None = None, depth: int = 2) -> nn.Module:
    """Build a :class:`FastNet`: ``widths`` sets each conv group's channels and ``depth`` its convs (2,
    or 3 with a residual block); ``whitening`` and ``identity_init`` switch off the data-derived stem
    and the identity start (for ablations); ``stem_stride`` overrides the stride chosen from the image size."""
    return FastNet(num_classes, input_shape, tuple(widths), whitening=whitening, identity_init=identity_init,
                   stem_stride=stem_stride, depth=depth)
