"""Where data sets are looked for: an explicit folder, ``TRAINVAL_DATA``, or the user cache."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "TRAINVAL_DATA"


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
