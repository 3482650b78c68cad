"""Stanford Dogs: ``Images/<wnid>-<Breed>/*.jpg`` + PASCAL-VOC XML + MATLAB split lists.

``root`` is the folder the three archives were extracted into together, so it
holds ``Images/``, ``Annotation/`` and ``file_list.mat``/``train_list.mat``/
``test_list.mat`` at its top level (``lists.tar`` has no folder).

Box convention: the annotations follow PASCAL VOC, whose pixel coordinates are
1-based and inclusive.  A box ``xmin..xmax`` therefore covers 0-based columns
``xmin-1 .. xmax-1``, i.e. our ``(x0, x1) = (xmin - 1, xmax)`` with x1
exclusive (the demo writer uses the same rule in reverse).  Boxes are clipped to
the image size the XML states; a box left empty is dropped, and a photo with no
usable box is a reject.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from speciesgan.data.sources.mat_list import read_file_list
from speciesgan.data.sources.records import Box, Reject, SourceRecord
from speciesgan.data.sources.registry import SOURCES, Source
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

SPLIT_LISTS = {"train": "train_list.mat", "test": "test_list.mat"}


def species_from_folder(folder: str) -> str:
    """``n02106166-Border_collie`` -> ``Border collie`` (the wnid is dropped)."""
    _, _, breed = folder.partition("-")
    return (breed or folder).replace("_", " ")


def read_split_lists(root: Path) -> dict[str, str]:
    """``"<folder>/<file>.jpg"`` -> ``"train"``/``"test"``; empty when no lists are present."""
    split_of: dict[str, str] = {}
    for split, name in SPLIT_LISTS.items():
        path = root / name
        if path.is_file():
            split_of.update((rel, split) for rel in read_file_list(path))
    return split_of


def _int(node: ET.Element, tag: str) -> int:
    """A pixel coordinate; ValueError (a reject) for a missing, junk or non-finite one."""
    text = node.findtext(tag)
    if text is None:
        raise ValueError(f"no <{tag}>")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"<{tag}> is not a finite number: {text.strip()[:20]!r}")
    return int(round(value))


def parse_annotation(path: Path) -> list[Box]:
    """All object boxes of one VOC annotation file, converted and clipped (see module doc)."""
    tree = ET.parse(path).getroot()
    size = tree.find("size")
    width = _int(size, "width") if size is not None else 0
    height = _int(size, "height") if size is not None else 0
    boxes = []
    for obj in tree.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise ValueError("<object> without <bndbox>")
        x0, y0 = _int(bndbox, "xmin") - 1, _int(bndbox, "ymin") - 1
        x1, y1 = _int(bndbox, "xmax"), _int(bndbox, "ymax")
        x0, y0 = max(x0, 0), max(y0, 0)
        if width > 0:  # a few real files state size 0: leave clipping to the crop step
            x1 = min(x1, width)
        if height > 0:
            y1 = min(y1, height)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return boxes


def read(root: Path, dataset: str, category: str) -> tuple[list[SourceRecord], list[Reject]]:
    """Every photo under ``root/Images`` with its boxes and official split."""
    root = Path(root)
    images_dir, annotation_dir = root / "Images", root / "Annotation"
    if not images_dir.is_dir():
        raise SpeciesganError(
            f"{root}: no Images/ folder; expected images.tar, annotation.tar and lists.tar "
            "extracted together (Stanford Dogs layout)"
        )
    split_of = read_split_lists(root)
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        species = species_from_folder(folder.name)
        for image in sorted(folder.glob("*.jpg")):
            image_path = str(image.absolute())
            annotation = annotation_dir / folder.name / image.stem
            if not annotation.is_file():
                rejects.append(Reject(dataset, image_path, species, "missing annotation", "source"))
                continue
            try:
                boxes = parse_annotation(annotation)
            except (ET.ParseError, ValueError, OSError) as exc:
                rejects.append(
                    Reject(dataset, image_path, species, f"bad annotation: {exc}", "source")
                )
                continue
            if not boxes:
                rejects.append(
                    Reject(dataset, image_path, species, "bad annotation: no usable box", "source")
                )
                continue
            records.append(
                SourceRecord(
                    dataset=dataset, image_path=image_path, species=species, category=category,
                    boxes=tuple(boxes), split=split_of.get(f"{folder.name}/{image.name}"),
                )
            )  # fmt: skip
    log.info(
        "%s: %d photos, %d rejected (Stanford Dogs layout)", dataset, len(records), len(rejects)
    )
    records.sort(key=lambda r: r.image_path)
    rejects.sort(key=lambda r: r.image_path)
    return records, rejects


SOURCES.add(
    "stanford_dogs",
    Source(
        read,
        archives={
            name: f"http://vision.stanford.edu/aditya86/ImageNetDogs/{name}"
            for name in ("images.tar", "annotation.tar", "lists.tar")
        },
        demo=True,
    ),
)
