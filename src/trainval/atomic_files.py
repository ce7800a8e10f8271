"""Write files so that a crash or a full disk never leaves a half-written one behind.

Everything goes to a temporary file in the destination's folder, is flushed and fsynced, and is
then renamed over the destination in one step.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_writer(destination: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``destination`` only if the block succeeds.

    >>> with atomic_writer("weights.bin") as f:   # doctest: +SKIP
    ...     f.write(payload)
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, destination)
        _sync_folder(destination.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable: a power cut after it must not bring the old file back."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic there
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; nothing more can be done
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomically(destination: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``destination`` with ``data`` in one step (see :func:`atomic_writer`)."""
    with atomic_writer(destination) as handle:
        handle.write(data)


def remove_stale_temporaries(folder: str | os.PathLike[str], name: str = "*") -> None:
    """Delete the temporary files of writes to ``folder/name`` that a killed process never finished
    (they never replaced their destination, so nothing is lost)."""
    for stale in Path(folder).glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def check_writable_folder(folder: str | os.PathLike[str]) -> None:
    """Raise OSError unless files can be written in ``folder`` (created if needed, as a write would).

    A probe file is written and removed, and folders made for it are removed again, so the check
    leaves nothing behind. Permission bits alone do not tell (a root process ignores them).
    """
    folder = Path(folder)
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        write_bytes_atomically(folder / ".trainval-write-check", b"")
        os.unlink(folder / ".trainval-write-check")
    finally:
        for made in missing:
            with contextlib.suppress(OSError):
                made.rmdir()
