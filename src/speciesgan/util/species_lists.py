"""Checks that two files agree on the species list, name by name and in order.

A model stores species as output indices; a classifier with the same number of
species in another order (or with one species renamed) still runs, but scores
every generated image against the wrong species and steers training towards it.
Counting species is not enough, so the lists are compared entry by entry.
"""

from __future__ import annotations

from pathlib import Path

from speciesgan.util.errors import SpeciesganError


def require_same_species(
    expected: list[str], expected_file: str | Path, actual: list[str], actual_file: str | Path
) -> None:
    """Raise a SpeciesganError naming the first index where the two species lists differ."""
    expected, actual = list(expected), list(actual)
    if expected == actual:
        return
    index = next(
        (k for k, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
        min(len(expected), len(actual)),
    )

    def name(names: list[str]) -> str:
        return repr(names[index]) if index < len(names) else "no species (list ends)"

    raise SpeciesganError(
        f"{actual_file}: its species list differs from {expected_file}'s at index {index}: "
        f"{name(actual)} in {actual_file}, {name(expected)} in {expected_file} "
        f"({len(actual)} and {len(expected)} species); were they built from different manifests?"
    )
