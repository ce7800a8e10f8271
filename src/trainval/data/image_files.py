"""Read image files (PNG, JPEG, anything Pillow opens) into the uint8 arrays trainval models take.

A bad file never stops a load: it is listed in ``LoadedImages.unreadable`` with a one-line reason, so
one corrupt photo in a folder of thousands costs that photo and nothing else. Files are decoded by a
pool of threads (Pillow releases the GIL while it decodes and resizes), each straight into its row
of the result, with a progress bar on stderr for long loads.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from trainval.errors import ConfigError

MAX_IMAGE_SIDE = 4096  # pixels: the largest input side trainval trains, saves or loads a model for
_MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}
_WIDE_GRAYSCALE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_WHITE = (255, 255, 255, 255)
_BAR_DELAY_TERMINAL = 1.0  # seconds before a progress bar shows in a terminal: quick loads stay quiet
_BAR_DELAY_LOG = 10.0  # ...and in a log, where only a long load is worth its lines
_BAR_INTERVAL_LOG = 30.0  # seconds between a log's progress lines


@dataclass(frozen=True)
class UnreadableImage:
    """A file that could not be loaded, with a one-line reason such as ``"no such file"``."""

    path: Path
    reason: str


@dataclass
class LoadedImages:
    """The readable files as one uint8 array (N, height, width, channels), plus what was skipped and why."""

    images: np.ndarray
    paths: list[Path]
    original_sizes: list[tuple[int, int]]  # (width, height) as stored, before EXIF rotation
    unreadable: list[UnreadableImage]


def resize_policy(height: int, width: int, channels: int) -> str:
    """Return one sentence telling users how ``load_image_files`` converts and resizes images.

    >>> resize_policy(32, 32, 3).endswith("cropped about its centre to a square and resized with Lanczos filtering.")
    True
    """
    _check_target(height, width, channels)
    colour = "RGB (grayscale replicated" if channels == 3 else "8-bit grayscale (colour reduced to Pillow's luma"
    divisor = math.gcd(width, height)
    shape = "a square" if width == height else f"the {width // divisor}:{height // divisor} aspect ratio"
    return (f"Images are turned upright by their EXIF orientation and converted to {colour}, transparency "
            f"composited over white, 16-bit pixels divided by 257, 32-bit and float pixels clipped to 0..255 if none "
            f"exceeds 255 and otherwise scaled so the largest is 255), and any image not already {width} wide by "
            f"{height} high is cropped about its centre to {shape} and resized with Lanczos filtering.")


def load_image_files(paths: Sequence[str | os.PathLike[str]], height: int, width: int, channels: int, *,
                     workers: int | None = None, progress: str | None = None) -> LoadedImages:
    """Load ``paths`` as uint8 images of shape (height, width, channels); see ``resize_policy``.

    Photos are turned upright by their EXIF orientation first. Files that are missing, folders,
    not images, truncated or decompression bombs go to ``unreadable``; nothing is raised for them.
    ``workers`` threads decode (default: one per CPU core this process may use); ``progress``, if
    given, labels a progress bar on stderr, shown in a terminal after a second and in a log only
    for loads longer than ten seconds.

    >>> loaded = load_image_files(["cat.png", "dog.jpg"], 32, 32, 3)  # doctest: +SKIP
    >>> loaded.images.shape, loaded.unreadable                         # doctest: +SKIP
    ((2, 32, 32, 3), [])
    """
    _check_target(height, width, channels)
    paths = [Path(path) for path in paths]
    rows = np.empty((len(paths), height, width, channels), np.uint8)  # decoded in place: no second copy

    def load(index: int) -> tuple[int, int] | UnreadableImage:
        try:
            image, stored_size = _decode(paths[index])
        except _Unreadable as error:
            return UnreadableImage(paths[index], str(error))
        image = _to_mode(image, _MODE_FOR_CHANNELS[channels])
        if image.size != (width, height):
            image = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
        rows[index] = np.asarray(image, dtype=np.uint8).reshape(height, width, channels)
        return stored_size

    with ThreadPoolExecutor(max_workers=workers or usable_cores()) as pool, \
            _progress_bar(len(paths), progress) as bar:
        outcomes = []
        for outcome in pool.map(load, range(len(paths))):
            outcomes.append(outcome)
            bar.update(1)
    readable = [index for index, outcome in enumerate(outcomes) if not isinstance(outcome, UnreadableImage)]
    return LoadedImages(images=rows if len(readable) == len(paths) else rows[readable],
                        paths=[paths[index] for index in readable],
                        original_sizes=[outcomes[index] for index in readable],
                        unreadable=[outcome for outcome in outcomes if isinstance(outcome, UnreadableImage)])


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform says, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _progress_bar(total: int, description: str | None) -> tqdm:
    """A tqdm bar on stderr for ``total`` images; silent without a ``description``."""
    terminal = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit="image", file=sys.stderr, disable=description is None,
                delay=_BAR_DELAY_TERMINAL if terminal else _BAR_DELAY_LOG,
                mininterval=0.1 if terminal else _BAR_INTERVAL_LOG, dynamic_ncols=terminal)


class _Unreadable(Exception):
    """A file cannot be decoded; the message is the one-line reason users see."""


def _decode(path: Path) -> tuple[Image.Image, tuple[int, int]]:
    """Return the fully decoded, upright image and its (width, height) as stored in the file."""
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here rather than halfway through a resize
            return ImageOps.exif_transpose(opened), opened.size
    except FileNotFoundError:
        raise _Unreadable("no such file") from None
    except IsADirectoryError:
        raise _Unreadable("is a folder") from None
    except PermissionError:  # also what Windows raises for a folder
        raise _Unreadable("is a folder" if path.is_dir() else "no permission to read it") from None
    except UnidentifiedImageError:
        raise _Unreadable("not an image file Pillow can read (cannot identify image file)") from None
    except Image.DecompressionBombError as error:
        raise _Unreadable(f"too many pixels to decode safely ({_one_line(error)})") from None
    except Exception as error:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error...) on bad data
        raise _Unreadable(f"truncated or corrupt image data ({_one_line(error)})") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Return ``image`` in ``mode`` ("L" or "RGB") with 8-bit pixels and no transparency."""
    if image.mode in _WIDE_GRAYSCALE_MODES:
        image = _wide_grayscale_to_8bit(image)
    if image.has_transparency_data:
        # Composite rather than drop alpha: the colour stored under a transparent pixel is arbitrary, often black.
        image = Image.alpha_composite(Image.new("RGBA", image.size, _WHITE), image.convert("RGBA"))
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, 1-bit, palette: Pillow converts each of these to RGB
    return image.convert(mode)


def _wide_grayscale_to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float grayscale to 0..255 (see ``resize_policy``)."""
    pixels = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if image.mode.startswith("I;16"):
        pixels = pixels / 257  # maps 0..65535 exactly onto 0..255
    elif pixels.max() > 255:
        pixels = pixels * (255 / pixels.max())  # other wide images may use any range: keep their contrast
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _check_target(height: int, width: int, channels: int) -> None:
    if channels not in _MODE_FOR_CHANNELS:
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), not {channels}")
    if height < 1 or width < 1:
        raise ConfigError(f"height and width must be at least 1 pixel, not {height}x{width}")
