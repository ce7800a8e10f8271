"""Where data sets are looked for: an explicit folder, ``TRAINVAL_DATA``, or the user cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trainval.errors import DataError

DATA_ENV_VAR = "TRAINVAL_DATA"

Found = TypeVar("Found")


def cache_root() -> Path:
    """The user cache for downloads and decoded arrays: ``$XDG_CACHE_HOME/trainval`` or ``~/.cache/trainval``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trainval"


def user_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The folder the user pointed at (argument first, then ``TRAINVAL_DATA``), or None for the cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV_VAR)
    return Path(from_env).expanduser() if from_env else None


def locate_files(dataset: str, title: str, data_dir: str | os.PathLike[str] | None,
                 find_in: Callable[[Path], Found | None], download_into: Callable[[Path], None],
                 expected: str) -> Found:
    """Find a data set's files with ``find_in(folder)``, downloading them into the cache if no folder was given.

    A folder given by argument or ``TRAINVAL_DATA`` is searched itself and then its ``dataset``
    sub-folder, so one folder can hold several data sets; ``find_in`` may also be handed a file
    (an archive the user pointed at). ``expected`` describes the files for the error message.
    """
    root = user_data_dir(data_dir)
    if root is None:
        cache = cache_root() / dataset
        found = find_in(cache)
        if found is None:
            download_into(cache)
            found = find_in(cache)
        if found is None:
            raise DataError(f"the download of {title} into {cache} did not produce {expected}; delete that "
                            "folder and try again")
        return found
    for candidate in (root, root / dataset):
        found = find_in(candidate)
        if found is not None:
            return found
    if root.is_file():
        raise DataError(f"the --data-dir/{DATA_ENV_VAR} path {root} is a file, not a folder holding {title} files "
                        f"({expected}); point it at the folder that holds them")
    where = f"--data-dir/{DATA_ENV_VAR} folder {root}" if root.exists() else f"folder {root}, which does not exist"
    raise DataError(
        f"no {title} files in the {where}: expected {expected} there (or in its {dataset}/ sub-folder). Point "
        f"--data-dir or {DATA_ENV_VAR} at the folder that holds them, or leave both unset to download the data set."
    )
