"""Architectures found by name, so the CLI and the Python API share one lookup.

Adding a model family means one new module that decorates its builder with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from trainval.registry import Registry

ModuleBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: how to build it and how it trains when the user says nothing."""

    name: str
    build: ModuleBuilder  # build(num_classes=..., input_shape=(H, W, C), **options) -> module returning logits
    description: str
    default_optimizer: Any = None  # an optimizer spec from trainval.optimizers, or None for Adam


_MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, *, description: str, default_optimizer: Any = None) -> Callable[[ModuleBuilder], ModuleBuilder]:
    """Decorator that adds an architecture builder to the registry under ``name``."""
    def add(build: ModuleBuilder) -> ModuleBuilder:
        _MODELS.add(name, ModelEntry(name, build, description, default_optimizer))
        return build
    return add


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; a ConfigError listing the known names if there is none."""
    return _MODELS.get(name)


def registered_names() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_MODELS.names())
