"""Keep decoded data sets as .npy files so that every load after the first takes a fraction of a second."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from trainval.atomic_files import atomic_writer
from trainval.datasets.locations import cache_root

Arrays = dict[str, np.ndarray]
Split = tuple[np.ndarray, np.ndarray]  # (images, labels)
TRAIN_TEST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def source_fingerprint(paths: Iterable[Path], settings: str = "") -> str:
    """A short key that changes whenever any source file is replaced, grown or touched, or ``settings`` change."""
    digest = hashlib.sha256(settings.encode())
    for path in sorted(paths):
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached_arrays(name: str, fingerprint: str, keys: Sequence[str], decode: Callable[[], Arrays]) -> Arrays:
    """Load the arrays ``keys`` cached for ``name``/``fingerprint``, or ``decode()`` them and cache the result.

    A cache that is unreadable (a crash cannot cause one, since writes are atomic, but a user might
    edit it) is decoded again. A cache folder that cannot be written is not an error: the data is
    simply decoded on every load.
    """
    folder = cache_root() / "decoded" / f"{name}-{fingerprint}"
    arrays = _load_all(folder, keys)
    if arrays is not None:
        return arrays
    arrays = decode()
    try:
        for key, array in arrays.items():
            with atomic_writer(folder / f"{key}.npy") as handle:
                np.save(handle, array, allow_pickle=False)
        (folder / "complete").touch()
    except OSError:
        pass
    return arrays


def cached_train_test(name: str, sources: Iterable[Path], decode: Callable[[], Arrays],
                      settings: str = "") -> tuple[Split, Split]:
    """``(x_train, y_train), (x_test, y_test)`` decoded from ``sources`` by ``decode()``, once per version of them."""
    arrays = cached_arrays(name, source_fingerprint(sources, settings), TRAIN_TEST_KEYS, decode)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_all(folder: Path, keys: Sequence[str]) -> Arrays | None:
    if not (folder / "complete").exists():
        return None
    try:
        return {key: np.load(folder / f"{key}.npy", allow_pickle=False) for key in keys}
    except (OSError, ValueError):
        return None
