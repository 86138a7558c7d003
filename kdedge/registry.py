"""Name -> builder maps (models, data sets, losses). A miss lists the valid names and suggests one.

An entry is either the object itself (added by the `register` decorator, as tests and extensions do) or a
"package.module:attribute" string that is imported on first `get`: the tables of kdedge's own entries are
written that way, so a recipe's names are checked without importing torch (`kdedge recipes`, `init`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from kdedge.errors import InputError, did_you_mean

T = TypeVar("T")


def resolve(reference: str) -> object:
    """'package.module:attribute' -> that attribute (the module is imported now)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
    """A small named table of builders (or specs), filled by the `register` decorator or by `add`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, T | str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._builders[name] = builder
            return builder

        return add

    def add(self, name: str, item: T | str) -> T | str:
        """Register `item` under `name`; a "module:attribute" string is imported on first use."""
        return self.register(name)(item)

    def add_lazy(self, module: str, names: Iterable[str]) -> None:
        """Register `module:name` for each name: entries whose attribute is called like the entry."""
        for name in names:
            self.add(name, f"{module}:{name}")

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
        item = self._builders[name]
        if isinstance(item, str):  # a lazy reference: import it once, keep the object
            item = self._builders[name] = resolve(item)  # type: ignore[assignment]
        return item  # type: ignore[return-value]

    def unknown_message(self, name: str, extra: Iterable[str] = ()) -> str:
        """ "unknown model 'x', did you mean 'y'? valid: ..."; `extra`: more valid names to suggest from
        (timm's), which are not listed in full."""
        extra = list(extra)
        hint = did_you_mean(name, [*self._builders, *extra])
        head = f"unknown {self.kind} '{name}'," + hint if hint else f"unknown {self.kind} '{name}';"
        more = f" or a timm model name ({len(extra)} known)" if extra else ""
        return f"{head} valid: {', '.join(self.names())}{more}"
