"""Species names as file names: one rule shared by the index check and the samplers.

Kept free of torch so the index stage can refuse clashing names without
importing the deep-learning stack.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


SLUG_MAX_BYTES = 120
"""Longest slug in UTF-8 bytes: file names built from it (``<slug>-000.png``) stay far
under the usual 255-byte limit."""


def slugify(name: str) -> str:
    """File-name form of a species: case-folded, runs of anything but letters and digits
    (of any script) -> '-'.

    Letters of every script are kept, so distinct names in Japanese, Hebrew or
    Greek get distinct slugs ("柴犬", "秋田犬"); direction marks and other
    invisible characters count as punctuation.  A name with no letter or digit at
    all, or a very long one, gets a short hash of the full name as a suffix, so it
    never collapses into another name's slug.
    """
    text = unicodedata.normalize("NFC", name).casefold()
    slug = re.sub(r"[\W_]+", "-", text).strip("-")
    if slug and len(slug.encode()) <= SLUG_MAX_BYTES:
        return slug
    suffix = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = slug.encode()[: SLUG_MAX_BYTES - 9].decode(errors="ignore").strip("-")
    return f"{head or 'species'}-{suffix}"


def slug_clashes(items: Iterable[T], name: Callable[[T], str] = str) -> dict[str, list[T]]:
    """Slug -> the items whose ``name`` shares it, for every slug two or more items share."""
    by_slug: dict[str, list[T]] = defaultdict(list)
    for item in items:
        by_slug[slugify(name(item))].append(item)
    return {slug: group for slug, group in sorted(by_slug.items()) if len(group) > 1}
