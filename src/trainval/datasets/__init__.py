"""Data sets on disk: find, download, verify and decode them into Keras-shaped uint8 arrays."""

from __future__ import annotations

from types import ModuleType

from trainval.datasets import cifar10
from trainval.registry import Registry

_DATASETS: Registry[ModuleType] = Registry("dataset")
_DATASETS.add("cifar10", cifar10)


def get(name: str) -> ModuleType:
    """The data set module for ``name``; it has ``load_data(data_dir=None)`` and ``CLASS_NAMES``."""
    return _DATASETS.get(name)


def names() -> list[str]:
    """Names accepted by :func:`get`."""
    return _DATASETS.names()


__all__ = ["cifar10", "get", "names"]
