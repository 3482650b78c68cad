"""Species names as file names: one rule shared by the index check and the samplers.

Kept free of torch so the index stage can refuse clashing names without
importing the deep-learning stack.
"""

from __future__ import annotations

import re


def slugify(name: str) -> str:
    """File-name form of a species: lowercase, runs of non-alphanumerics -> '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "species"
