"""Progress bars that stay quiet in batch logs.

On a cluster, stderr goes to a log file; a tqdm bar there becomes thousands of
carriage-return lines.  Bars are shown only on an interactive terminal unless
``SPECIESGAN_PROGRESS=1`` forces them on (or ``0`` forces them off).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    forced = os.environ.get("SPECIESGAN_PROGRESS")
    if forced is not None:
        return forced not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar, disabled in non-interactive logs (see module docstring)."""
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
