"""Name -> builder maps (models, data sets, losses). A miss lists the valid names and suggests one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from kdedge.errors import InputError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """A small named table of builders (or specs), filled by the `register` decorator or by `add`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._builders[name] = builder
            return builder

        return add

    def add(self, name: str, item: T) -> T:
        """Register `item` under `name` (explicit registration, e.g. in a package's __init__)."""
        return self.register(name)(item)

    def remove(self, name: str) -> None:
        """Forget `name` (tests that register a temporary entry clean up with this)."""
        self._builders.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def get(self, name: str) -> T:
        if name not in self._builders:
            raise InputError(self.unknown_message(name))
        return self._builders[name]

    def unknown_message(self, name: str) -> str:
        hint = did_you_mean(name, self._builders)
        head = f"unknown {self.kind} '{name}'," + hint if hint else f"unknown {self.kind} '{name}';"
        return f"{head} valid: {', '.join(self.names())}"
