"""Leeds Butterfly Dataset (Wang, Markert, Everingham, BMVC 2009): boxes from masks.

Layout of ``leedsbutterfly_dataset_v1.0.zip`` as this reader assumes it (from the
dataset's description and code that reads it; not re-checked against the archive,
which cannot be fetched here)::

    leedsbutterfly/
        images/0010001.jpg ...          first three digits: class number 001..010
        segmentations/0010001_seg0.png  one mask per image, same size as the image
        descriptions/001.txt ...        one text per class, starting with its names

* Masks are palette PNGs whose README says pixel values 1 and 3 are foreground and
  all others background; value 2 marks scattered pixels near the border, so "any
  non-zero pixel" would stretch boxes to the whole frame.  The palette indices are
  read raw (converting to grey would remap them).  A mask with values above 3 is
  taken to be a plain 0/255 binary mask (e.g. re-saved by a user): foreground is
  then ``value >= 128``.  The box is the tight box of the foreground pixels.
* A description starts with the scientific name and the common name on their own
  lines (``Danaus plexippus`` / ``Monarch``) before the free text; a single line
  ``Monarch (Danaus plexippus)`` is read too.  The common name is preferred because
  it is what people call the butterfly; without one the scientific name is used.
  When a description is missing, the published class list below fills in.
* The dataset has no official train/test split, so ``split`` stays None.

``root`` may be the folder the zip was extracted into or ``leedsbutterfly/`` itself.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from speciesgan.data.sources.records import Box, Reject, SourceRecord
from speciesgan.data.sources.registry import SOURCES, Source
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

TOP_FOLDER = "leedsbutterfly"
ARCHIVE = "leedsbutterfly_dataset_v1.0.zip"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})

KNOWN_CLASSES: dict[str, tuple[str, str]] = {
    "001": ("Danaus plexippus", "Monarch"),
    "002": ("Heliconius charitonius", "Zebra Longwing"),
    "003": ("Heliconius erato", "Crimson-patched Longwing"),
    "004": ("Junonia coenia", "Common Buckeye"),
    "005": ("Lycaena phlaeas", "American Copper"),
    "006": ("Nymphalis antiopa", "Mourning Cloak"),
    "007": ("Papilio cresphontes", "Giant Swallowtail"),
    "008": ("Pieris rapae", "Cabbage White"),
    "009": ("Vanessa atalanta", "Red Admiral"),
    "010": ("Vanessa cardui", "Painted Lady"),
}
"""Class number -> (scientific, common) name as published with the dataset."""

_SCIENTIFIC = re.compile(r"^[A-Z][a-z]+ [a-z]+(?: [a-z]+)?$")
_COMMON_WITH_SCIENTIFIC = re.compile(r"^(?P<common>[^()]+?)\s*\((?P<scientific>[^()]+)\)$")
_ORIENTATION_TAG = 0x0112
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF values that swap width and height


def find_base(root: Path) -> Path:
    """The folder holding ``images/``: ``root/leedsbutterfly`` or ``root`` itself."""
    for base in (root / TOP_FOLDER, root):
        if (base / "images").is_dir():
            return base
    raise SpeciesganError(
        f"{root}: no images/ folder here or in {TOP_FOLDER}/; expected the extracted {ARCHIVE}"
    )


def _looks_like_name(line: str) -> bool:
    """A short title line, not the start of the free-text description."""
    return (
        len(line.split()) <= 5 and not any(ch.isdigit() for ch in line) and not line.endswith(".")
    )


def species_from_description(text: str) -> str | None:
    """The common name of a description text, else its scientific name, else None."""
    header: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if header:
                break
            continue
        if len(header) == 3 or not _looks_like_name(line):
            break
        header.append(line)
    scientific = common = None
    for line in header:
        both = _COMMON_WITH_SCIENTIFIC.match(line)
        if both and _SCIENTIFIC.match(both["scientific"].strip()):
            return both["common"].strip()
        if scientific is None and _SCIENTIFIC.match(line):
            scientific = line
        elif common is None:
            common = line
    return common or scientific


def species_names(base: Path) -> dict[str, str]:
    """Class number -> species name, from ``descriptions/`` with the published list as fallback."""
    names = {number: common for number, (_, common) in KNOWN_CLASSES.items()}
    descriptions = base / "descriptions"
    if descriptions.is_dir():
        for path in sorted(descriptions.glob("*.txt")):
            if not (len(path.stem) == 3 and path.stem.isdigit()):
                continue
            name = species_from_description(path.read_text(encoding="utf-8", errors="replace"))
            if name:
                names[path.stem] = name
    return names


def foreground(mask: np.ndarray) -> np.ndarray:
    """Boolean foreground of a raw mask array (see the module doc for the rule)."""
    if mask.ndim == 3:  # an RGB(A) re-save: any colour channel set counts
        mask = mask[..., :3].max(axis=2)
    if mask.size and int(mask.max()) <= 3:
        return (mask == 1) | (mask == 3)
    return mask >= 128


def box_from_mask(path: Path) -> tuple[Box | None, tuple[int, int]]:
    """Tight box of the mask's foreground (None when it has none) and the mask's (w, h)."""
    with Image.open(path) as image:
        mask = np.asarray(image)
        size = image.size
    ys, xs = np.nonzero(foreground(mask))
    if xs.size == 0:
        return None, size
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), size


def displayed_size(path: Path) -> tuple[int, int] | None:
    """(w, h) of an image after EXIF rotation, from its header; None if unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_ORIENTATION_TAG)
    except (OSError, UnidentifiedImageError):
        return None  # the crop stage rejects undecodable photos itself
    return (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)


def _mask_box(image: Path, mask_path: Path) -> Box | str:
    """The photo's box, or the reason it has none."""
    if not mask_path.is_file():
        return f"missing mask {mask_path.name}"
    try:
        box, mask_size = box_from_mask(mask_path)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return f"unreadable mask {mask_path.name}: {exc}"
    if box is None:
        return f"empty mask {mask_path.name}"
    image_size = displayed_size(image)
    if image_size is not None and image_size != mask_size:
        return (
            f"mask {mask_path.name} is {mask_size[0]}x{mask_size[1]} "
            f"but the image is {image_size[0]}x{image_size[1]}"
        )
    return box


def read(root: Path, dataset: str, category: str) -> tuple[list[SourceRecord], list[Reject]]:
    """Every photo in ``images/``, boxed by its segmentation mask."""
    base = find_base(Path(root))
    names = species_names(base)
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    images = sorted(
        p for p in (base / "images").iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )  # fmt: skip
    for image in images:
        image_path = str(image.absolute())
        number = image.stem[:3]
        if not number.isdigit():
            reason = "file name does not start with a class number"
            rejects.append(Reject(dataset, image_path, "", reason, "source"))
            continue
        species = names.get(number, f"Class {number}")
        box = _mask_box(image, base / "segmentations" / f"{image.stem}_seg0.png")
        if isinstance(box, str):
            rejects.append(Reject(dataset, image_path, species, box, "source"))
            continue
        records.append(SourceRecord(dataset, image_path, species, category, (box,), None))
    log.info(
        "%s: %d photos, %d rejected (Leeds Butterflies layout)", dataset, len(records), len(rejects)
    )
    return records, rejects


SOURCES.add(
    "leeds_butterflies",
    Source(
        read,
        archives={
            "leedsbutterfly_dataset_v1.0.zip": (
                "http://www.comp.leeds.ac.uk/scs6jwks/dataset/leedsbutterfly/leedsbutterfly_dataset_v1.0.zip"
            )
        },
    ),
)
