"""Will decoded images fit in memory? Asked before decoding, so that an image size too large for the
machine is one clear error rather than gigabytes of swap or a MemoryError deep inside a decoder."""

from __future__ import annotations

import math
import os
from pathlib import Path

from trainval.errors import DataError

_PEAK_COPIES = 2  # splitting into training, validation and test images copies them once more
SPARE_SHARE = 0.8  # of the memory available, what the arrays (or a training step) may take


def available_memory() -> int | None:
    """Bytes the machine can give a new allocation now (Linux's MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """``12.3 GB``: a byte count for people (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def check_images_fit(count: int, side: int, channels: int, what: str, available: int | None = None) -> None:
    """A DataError, with the figures and the largest side that would fit, unless ``count`` uint8 images of
    ``side`` x ``side`` x ``channels`` can be decoded in the memory ``available`` (default: the machine's)."""
    available = available_memory() if available is None else available
    if available is None or count == 0:
        return
    needed = count * side * side * channels
    budget = available * SPARE_SHARE / _PEAK_COPIES
    if needed <= budget:
        return
    largest = math.isqrt(int(budget // (count * channels)))
    advice = (f"use --image-size {largest} or less" if largest >= 8 else
              "use fewer images or a machine with more memory")
    raise DataError(f"decoding the {count:,} images of {what} at {side}x{side} pixels needs {format_bytes(needed)} "
                    f"for the image arrays, twice that while they are split for training, and this machine has "
                    f"{format_bytes(available)} of memory available; {advice}")
