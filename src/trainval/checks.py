"""Checks of plain values at the API's and the CLI's boundary, each failing with one clear ConfigError."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainval.errors import ConfigError


def require_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is a whole number (not a bool) >= ``minimum``; else a ConfigError naming ``name``.

    >>> require_int("epochs", 3, 0)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
