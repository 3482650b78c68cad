"""Species names as file names: one rule shared by the index check and the samplers.

Kept free of torch so the index stage can refuse clashing names without
importing the deep-learning stack.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def slugify(name: str) -> str:
    """File-name form of a species: lowercase, runs of non-alphanumerics -> '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "species"


def slug_clashes(items: Iterable[T], name: Callable[[T], str] = str) -> dict[str, list[T]]:
    """Slug -> the items whose ``name`` shares it, for every slug two or more items share."""
    by_slug: dict[str, list[T]] = defaultdict(list)
    for item in items:
        by_slug[slugify(name(item))].append(item)
    return {slug: group for slug, group in sorted(by_slug.items()) if len(group) > 1}
