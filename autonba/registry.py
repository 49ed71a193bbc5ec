"""Name -> object registries, so users plug in operations, templates, platforms and engines."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from autonba.errors import AutonbaError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection filled with the :meth:`register` decorator.

    >>> ENGINES = Registry("engine")
    >>> @ENGINES.register("mine")
    ... class Mine: ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        def add(item: T) -> T:
            if name in self._items:
                raise AutonbaError(f"{self.kind} '{name}' is already registered")
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise AutonbaError(
                f"unknown {self.kind} '{name}'; allowed: {', '.join(sorted(self._items))}"
            ) from None

    def unregister(self, name: str) -> T:
        """Remove an entry (a plug-in's, or a test's); the entry."""
        return self._items.pop(name)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items(), key=lambda kv: kv[0])

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
