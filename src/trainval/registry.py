"""A name -> thing lookup shared by the data set, model and preset registries."""

from __future__ import annotations

from typing import Generic, TypeVar

from trainval.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Things found by name; an unknown name is a ConfigError that lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "model", "dataset", ... for messages
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        """Register ``item`` under ``name``; a name can be taken only once."""
        if name in self._items:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._items[name] = item

    def get(self, name: str) -> T:
        """The item called ``name``."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)
