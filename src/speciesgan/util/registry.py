"""Things of one kind looked up by name: sources, models, losses, metrics.

The code that uses a source or a loss asks the registry for it by the name the
config gives, instead of branching on names; so a new one is added where it is
written (its module adds it), not in every place that chooses.  A registry is a
read-only mapping in the order things were added, with one extra: ``pick`` says
which names exist when the one asked for does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from speciesgan.util.errors import SpeciesganError

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Name -> thing, for one kind of thing (``kind`` names it in messages: ``gan.loss``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it; a name taken twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"two {self.kind} entries named {name!r}")
        self._entries[name] = entry
        return entry

    def pick(self, name: str) -> T:
        """The entry of ``name``; a SpeciesganError naming the known ones when there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise SpeciesganError(
                f"{self.kind} must be one of {list(self._entries)}, got {name!r}"
            ) from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        """False for anything not a known name, an unhashable value read from a file included."""
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
