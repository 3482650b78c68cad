"""Dataset sources: each turns an extracted archive tree into the same records.

Every source module exposes ``read(root, dataset, category) -> (records, rejects)``.
A record is one photo with all of its boxes; the index step decides whether that
becomes one crop per box or one crop of the largest box.
"""

from __future__ import annotations

from collections.abc import Callable

# the record types live in records.py (the source modules import them from there)
from speciesgan.data.sources.records import Box, Reject, RelativeBox, SourceRecord  # noqa: F401

FILES_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "stanford_dogs": ("images.tar", "annotation.tar", "lists.tar"),
    "cub": ("CUB_200_2011.tgz",),
    "leeds_butterflies": ("leedsbutterfly_dataset_v1.0.zip",),
    "image_folders": (),  # local: read in place from the dataset's path
    "table": (),  # local: the path is the table file
    "iwildcam": ("iwildcam_v2.0.tar.gz",),
}
"""Archive files each real layout consists of (demo_* formats use the same names)."""

LOCAL_FORMATS = frozenset({"image_folders", "table"})
"""Formats read in place from a user-given path: nothing to download or extract."""

OFFICIAL_URLS: dict[str, dict[str, str]] = {
    "stanford_dogs": {
        name: f"http://vision.stanford.edu/aditya86/ImageNetDogs/{name}"
        for name in FILES_BY_FORMAT["stanford_dogs"]
    },
    "cub": {
        "CUB_200_2011.tgz": "https://data.caltech.edu/records/65de6-vzc04/files/CUB_200_2011.tgz",
    },
    "leeds_butterflies": {
        "leedsbutterfly_dataset_v1.0.zip": (
            "http://www.comp.leeds.ac.uk/scs6jwks/dataset/leedsbutterfly/leedsbutterfly_dataset_v1.0.zip"
        ),
    },
    # WILDS v2.0's iWildCam2020 (the URL of the `wilds` package's iwildcam_dataset.py,
    # 11,957,420,032 bytes; a tar.gz of metadata.csv, categories.csv and train/)
    "iwildcam": {
        "iwildcam_v2.0.tar.gz": (
            "https://worksheets.codalab.org/rest/bundles/"
            "0x6313da2b204647e79a14b468131fcd64/contents/blob/"
        ),
    },
}

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


OPTION_FORMATS = frozenset({"iwildcam"})
"""Formats whose reader takes per-dataset options (``read(..., options=...)``)."""


def base_format(fmt: str) -> str:
    """The real layout a (possibly demo_) format uses: demo_cub -> cub."""
    return fmt.removeprefix("demo_")


def reader(fmt: str) -> Callable[..., tuple[list[SourceRecord], list[Reject]]]:
    """The ``read(root, dataset, category)`` function of the source module for ``fmt``.

    Readers of ``OPTION_FORMATS`` also take ``options=`` (a mapping).
    """
    name = base_format(fmt)
    if name == "stanford_dogs":
        from speciesgan.data.sources import stanford_dogs as module
    elif name == "cub":
        from speciesgan.data.sources import cub as module
    elif name == "leeds_butterflies":
        from speciesgan.data.sources import leeds_butterflies as module
    elif name == "image_folders":
        from speciesgan.data.sources import image_folders as module
    elif name == "table":
        from speciesgan.data.sources import table as module
    elif name == "iwildcam":
        from speciesgan.data.sources import iwildcam as module
    else:
        raise ValueError(f"unknown dataset format {fmt!r}")
    return module.read
