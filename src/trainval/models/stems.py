"""How far a network's stem shrinks its input, chosen from the image size.

At 224 pixels a network built for 32-pixel images would run its first, widest-in-pixels layers on
49 times the positions, at 49 times the compute and activation memory. Large images are therefore
folded early: the stem's stride doubles each time the image side doubles past 63 pixels, so the
layers after it see 32 to 63 positions a side for any image up to 255 pixels (and the same work an
image as at 32 to 63 pixels). Below 64 pixels nothing changes.
"""

from __future__ import annotations

from trainval.errors import ConfigError

FIRST_FOLDED_SIDE = 64  # pixels: the smallest side whose stem strides


def stem_stride(height: int, width: int) -> int:
    """The stem's stride for ``height`` x ``width`` images: 1 below 64 pixels a side, 2 from 64, 4 from 128,
    8 from 256, ... (the shorter side decides).

    >>> [stem_stride(side, side) for side in (32, 63, 64, 128, 224, 256)]
    [1, 1, 2, 4, 4, 8]
    """
    return 1 << max((min(height, width) // (FIRST_FOLDED_SIDE // 2)).bit_length() - 1, 0)


def checked_stride(stride: int | None, height: int, width: int) -> int:
    """``stride`` if given (a whole number >= 1), else the one :func:`stem_stride` picks for the image size."""
    if stride is None:
        return stem_stride(height, width)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ConfigError(f"stem_stride must be a whole number of pixels >= 1 (or None: from the image size); "
                          f"got {stride!r}")
    return stride
