"""Progress: a bar on a terminal, a status line every ~30 s in a log file.

On a cluster, stderr goes to a log file; a tqdm bar there becomes thousands of
carriage-return lines, and no bar at all leaves a multi-hour job silent.  So when
stderr is not a terminal the same tqdm object writes one plain line at most every
``STATUS_INTERVAL_S`` seconds (and at the start and the end): what it is doing,
done / total, the rate and the time left, plus whatever the loop set as postfix
(the GAN's losses).  ``SPECIESGAN_PROGRESS=1`` forces the bar, ``0`` silences
both; ``SPECIESGAN_STATUS_INTERVAL`` sets the interval in seconds.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

STATUS_INTERVAL_S = 30.0
"""Seconds between status lines in a log file (``SPECIESGAN_STATUS_INTERVAL``)."""

STATUS_FORMAT = (
    "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_fmt}, "
    "{elapsed} elapsed, {remaining} left{postfix}"
)
"""A status line: no bar, every figure a reader of a batch log needs."""


def _mode() -> str:
    """ "bar", "lines" or "off" (module docstring)."""
    forced = os.environ.get("SPECIESGAN_PROGRESS")
    if forced is not None:
        return "off" if forced in ("0", "", "false", "no") else "bar"
    return "bar" if sys.stderr.isatty() else "lines"


def progress_enabled() -> bool:
    """Whether an interactive bar is shown (not a log file's status lines)."""
    return _mode() == "bar"


def status_interval() -> float:
    value = os.environ.get("SPECIESGAN_STATUS_INTERVAL")
    try:
        return max(float(value), 0.0) if value else STATUS_INTERVAL_S
    except ValueError:
        return STATUS_INTERVAL_S


class _StatusLines(io.TextIOBase):
    """A file for tqdm that turns each refresh into one timestamped line on stderr."""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            stream = sys.stderr
            stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            stream.flush()
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on a terminal, status lines in a log file (see module docstring)."""
    mode = _mode()
    if mode == "off":
        kwargs["disable"] = True
    elif mode == "lines" and not kwargs.get("disable"):
        kwargs.update(
            file=_StatusLines(),
            mininterval=status_interval(),
            maxinterval=max(status_interval(), 1.0),
            bar_format=STATUS_FORMAT,
            ascii=True,
            dynamic_ncols=False,
        )
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
