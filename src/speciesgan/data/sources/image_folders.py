"""A folder per species, optionally inside split folders; photos without boxes.

Two layouts are read in place (nothing is downloaded)::

    <root>/<Species name>/*.jpg                 no split: the index step draws one
    <root>/train/<Species name>/*.jpg           split folders, e.g. the hand-downloaded
    <root>/valid/<Species name>/*.jpg           butterfly collections with train/,
    <root>/test/<Species name>/*.jpg            valid/ and test/

Split folders are recognised by name, case-insensitively: ``train`` is "train";
``test``, ``val``, ``valid`` and ``validation`` are all "test", because the
pipeline has only a train/test split and held-out photos of any kind serve to
score the classifier.  When any top-level folder is a split folder they must all
be, since a species folder named like a split cannot be told apart.

Species names are folder names made readable: underscores become spaces and an
ALL-CAPS name is capitalised word by word ("RED ADMIRAL" -> "Red Admiral"), so
the same species spelled both ways in different splits is one species.

Photos are files with an image extension (jpg, jpeg, png, webp, bmp, any case)
directly in a species folder; other files are rejected, hidden files and deeper
folders are ignored.  No boxes are known, so the crop step takes a centre square.
"""

from __future__ import annotations

import logging
from pathlib import Path

from speciesgan.data.sources.records import Reject, SourceRecord
from speciesgan.data.sources.registry import SOURCES, Source
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
SPLIT_FOLDERS = {
    "train": "train",
    "test": "test",
    "val": "test",
    "valid": "test",
    "validation": "test",
}
"""Split folder name (lower case) -> the pipeline's split."""


def readable_species(folder: str) -> str:
    """``RED_ADMIRAL`` -> ``Red Admiral``; ``Border_collie`` -> ``Border collie``."""
    name = " ".join(folder.replace("_", " ").split())
    if any(ch.isalpha() for ch in name) and name == name.upper():
        name = " ".join(word[:1].upper() + word[1:].lower() for word in name.split(" "))
    return name


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_species_folder(
    folder: Path, dataset: str, category: str, split: str | None
) -> tuple[list[SourceRecord], list[Reject]]:
    species = readable_species(folder.name)
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            log.warning(
                "%s: ignoring sub-folder %s (photos must sit directly in it)", folder, path.name
            )
            continue
        image_path = str(path.absolute())
        if path.suffix.lower() in IMAGE_SUFFIXES:
            records.append(SourceRecord(dataset, image_path, species, category, (), split))
        else:
            rejects.append(Reject(dataset, image_path, species, "not an image file", "source"))
    return records, rejects


def species_folders(root: Path) -> list[tuple[Path, str | None]]:
    """Each species folder with the split its parent folder gives (None without splits)."""
    top = _visible_dirs(root)
    if not top:
        raise SpeciesganError(f"{root}: no species folders (expected <root>/<species>/<photos>)")
    split_names = [p.name for p in top if p.name.lower() in SPLIT_FOLDERS]
    if not split_names:
        return [(folder, None) for folder in top]
    others = [p.name for p in top if p.name.lower() not in SPLIT_FOLDERS]
    if others:
        raise SpeciesganError(
            f"{root}: has split folders {split_names} and other folders {others}; "
            f"put every species folder inside a split folder ({', '.join(SPLIT_FOLDERS)}) or none"
        )
    return [
        (folder, SPLIT_FOLDERS[split.name.lower()])
        for split in top
        for folder in _visible_dirs(split)
    ]


def read(root: Path, dataset: str, category: str) -> tuple[list[SourceRecord], list[Reject]]:
    """Every photo in the species folders under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise SpeciesganError(f"{root}: not a folder (expected a folder of species folders)")
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    for folder, split in species_folders(root):
        found, dropped = _read_species_folder(folder, dataset, category, split)
        records += found
        rejects += dropped
    records.sort(key=lambda r: r.image_path)
    rejects.sort(key=lambda r: r.image_path)
    log.info("%s: %d photos, %d rejected (image folders)", dataset, len(records), len(rejects))
    return records, rejects


SOURCES.add("image_folders", Source(read, local=True))  # read in place from the dataset's path
