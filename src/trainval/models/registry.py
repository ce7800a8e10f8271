"""Architectures found by name, so the CLI and the Python API share one lookup.

Adding a model family means one new module that decorates its builder with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from trainval.errors import ConfigError
from trainval.registry import Registry

ModuleBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: how to build it and how it trains when the user says nothing."""

    name: str
    build: ModuleBuilder  # build(num_classes=..., input_shape=(H, W, C), **options) -> module returning logits
    description: str
    default_optimizer: Any = None  # an optimizer spec from trainval.optimizers, or None for Adam
    # published_weights(input_shape, **options) -> tensors: the pretrained weights its library publishes, if any
    published_weights: Callable[..., dict[str, Any]] | None = None


_MODELS: Registry[ModelEntry] = Registry("model")
# Prefix ("timm:") -> entry_for(name): architectures that a library builds by name, named PREFIX + NAME.
_FAMILIES: dict[str, Callable[[str], ModelEntry]] = {}


def register_model(name: str, *, description: str, default_optimizer: Any = None) -> Callable[[ModuleBuilder], ModuleBuilder]:
    """Decorator that adds an architecture builder to the registry under ``name``."""
    def add(build: ModuleBuilder) -> ModuleBuilder:
        _MODELS.add(name, ModelEntry(name, build, description, default_optimizer))
        return build
    return add


def register_family(prefix: str, entry_for: Callable[[str], ModelEntry]) -> None:
    """Make every name ``PREFIX + NAME`` an architecture whose entry ``entry_for(NAME)`` gives (``timm:``)."""
    _FAMILIES[prefix] = entry_for


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; a ConfigError listing the known names if there is none."""
    for prefix, entry_for in _FAMILIES.items():
        if isinstance(name, str) and name.startswith(prefix):
            return entry_for(name[len(prefix):])
    try:
        return _MODELS.get(name)
    except ConfigError as error:
        families = "".join(f", or {prefix}NAME" for prefix in _FAMILIES)
        raise ConfigError(f"{error}{families}") from None


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered architecture or names one of a family (``timm:NAME``), which
    may still fail to build (a name its library lacks, the library not installed)."""
    return name in _MODELS.names() or any(name.startswith(prefix) for prefix in _FAMILIES)


def family_prefixes() -> list[str]:
    """The prefixes of the architecture families (``timm:``)."""
    return list(_FAMILIES)


def registered_names() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_MODELS.names())
