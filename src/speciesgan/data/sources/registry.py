"""What a dataset format is: its archives, where they come from, and how its photos are read.

Each source module ends by adding its ``Source`` to ``SOURCES``; the workflow
(downloads, the extract and index steps), the config check and the index step
read these facts from there, so a new format is one module plus its name in
``speciesgan.data.sources.registered``.  Apart from the package's ``__init__``, so
that source modules import it without importing the package that imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from speciesgan.data.sources.records import Reject, SourceRecord
from speciesgan.util.registry import Registry

Reader = Callable[..., tuple[list[SourceRecord], list[Reject]]]
"""``read(root, dataset, category) -> (records, rejects)``; with ``options=`` too for
a source that takes detections."""


@dataclass(frozen=True)
class Source:
    """One dataset format, added to ``SOURCES`` under its name (``datasets.<name>.format``)."""

    read: Reader
    archives: Mapping[str, str] = field(default_factory=dict)
    """Archive file name -> official URL, in download order; a dataset's ``files``
    may override a URL (and pin a SHA-256), and a demo_ format fetches its own."""
    local: bool = False
    """Read in place from the dataset's ``path`` (a folder or a file): nothing to download."""
    detections: bool = False
    """Boxed by a MegaDetector file: the dataset must name its ``detections`` (and may set
    ``camera_trap``); ``read`` receives both as ``options=``."""
    demo: bool = False
    """``speciesgan demo-data --layout NAME`` writes synthetic archives of this format,
    read as format ``demo_NAME`` (one of the demo rules in rules/data.smk)."""


SOURCES: Registry[Source] = Registry("dataset format")
"""Every source module's ``Source``, by format name (filled as the modules are imported)."""
