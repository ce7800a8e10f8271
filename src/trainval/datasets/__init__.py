"""Data sets on disk: find, download, verify and decode them into Keras-shaped uint8 arrays."""

from __future__ import annotations

from types import ModuleType

from trainval.datasets import cifar10
from trainval.errors import ConfigError

_BY_NAME: dict[str, ModuleType] = {"cifar10": cifar10}


def get(name: str) -> ModuleType:
    """The data set module for ``name``; it has ``load_data(data_dir=None)`` and ``CLASS_NAMES``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_BY_NAME))}") from None


def names() -> list[str]:
    """Names accepted by :func:`get`, sorted."""
    return sorted(_BY_NAME)


__all__ = ["cifar10", "get", "names"]
