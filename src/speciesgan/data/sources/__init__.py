"""Dataset sources: each turns an extracted archive tree into the same records.

Every source module has a ``read(root, dataset, category) -> (records, rejects)``
and adds a ``Source`` under its format name to ``SOURCES`` (its archives and their
official URLs, whether it is read in place, whether detections box it; see
``speciesgan.data.sources.registry``).  A record is one photo with all of its
boxes; the index step decides whether that becomes one crop per box or one crop
of the largest box.  docs/extending.md shows how to add a source.
"""

from __future__ import annotations

# the record types live in records.py (the source modules import them from there)
from speciesgan.data.sources.records import Box, Reject, RelativeBox, SourceRecord  # noqa: F401
from speciesgan.data.sources.registry import SOURCES, Reader, Source
from speciesgan.util.registry import Registry


def registered() -> Registry[Source]:
    """Every source, by format name.

    Importing a source module adds its ``Source``, so a new source is its module
    and one line below.  Imported on first use rather than with this package:
    some readers load pandas or PIL, which a stage that only reads the config
    does not need.
    """
    from speciesgan.data.sources import (  # noqa: F401 - each adds itself to SOURCES
        cub,
        image_folders,
        iwildcam,
        leeds_butterflies,
        stanford_dogs,
        table,
    )

    return SOURCES


DEMO_PREFIX = "demo_"


def base_format(fmt: str) -> str:
    """The real layout a (possibly demo_) format uses: demo_cub -> cub."""
    return fmt.removeprefix(DEMO_PREFIX)


def source(fmt: str) -> Source:
    """The ``Source`` of format ``fmt`` (a demo_ format's is its real layout's).

    Raises ValueError for a format no source has.
    """
    found = registered().get(base_format(fmt))
    if found is None or (fmt.startswith(DEMO_PREFIX) and not found.demo):
        raise ValueError(f"unknown dataset format {fmt!r}")
    return found


def formats() -> list[str]:
    """Every format a dataset may name: the downloaded ones, their demo_ twins, the local ones."""
    sources = registered()
    downloaded = [name for name, found in sources.items() if not found.local]
    demos = [DEMO_PREFIX + name for name in downloaded if sources[name].demo]
    return downloaded + demos + [name for name, found in sources.items() if found.local]


def reader(fmt: str) -> Reader:
    """The ``read(root, dataset, category)`` function of the source of ``fmt``.

    Sources boxed by detections (``Source.detections``) also take ``options=`` (a mapping).
    """
    return source(fmt).read


DEMO_DETECTIONS = "megadetector_results.json"
"""The detections file ``demo-data --layout iwildcam`` writes beside its archive."""


DEMO_ROOT = "data/demo"
"""Where the workflow's demo rules write, relative to the workflow folder."""


def demo_folder(dataset: str, key: str) -> str:
    """The folder of a demo_* dataset's files, keyed by the run (``config.demo_key``),
    so that runs of other configs write elsewhere instead of over them."""
    return f"{DEMO_ROOT}/{key}/{dataset}"


def demo_url(dataset: str, name: str, key: str) -> str:
    """Where the workflow's demo rules put a demo_* dataset's file: a relative file:// URL,
    which the download rule fetches like any other (and Snakemake builds first)."""
    return f"file://{demo_folder(dataset, key)}/{name}"


def stored_name(dataset: str, key: str | None) -> str:
    """A dataset's folder name under ``downloads_dir``: its name, plus ``.<run key>`` for a
    demo_* dataset (a real archive is the same file whichever run fetches it)."""
    return f"{dataset}.{key}" if key else dataset
