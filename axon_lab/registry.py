"""One registry shape (register / get / names) for backends, load shapes, metrics and scenarios."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from axon_lab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection; ``get`` of an unknown name raises an error listing the valid names.

    Parameters
    ----------
    kind
        What the entries are ("scenario", "vector store", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; without ``item`` returns a decorator."""
        if item is None:

            def deco(obj: T) -> T:
                self._items[name] = obj
                return obj

            return deco
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise :class:`ConfigError` naming the valid ones."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        """Sorted names of all entries."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
