"""CUB-200-2011: ``images.txt`` + ``classes.txt`` + label, box and split tables.

All tables key on the 1-based ``image_id`` of ``images.txt``.  Boxes are
``x y width height`` floats in pixels; they become ``(x0, y0, x1, y1)`` with
``x0 = round(x)``, ``x1 = round(x + width)`` (x1 exclusive).  Species names come
from ``classes.txt``: ``001.Black_footed_Albatross`` -> ``Black footed
Albatross`` (number dropped, underscores to spaces, nothing else changed).

``root`` may be the folder ``CUB_200_2011.tgz`` was extracted into or the
``CUB_200_2011`` folder itself.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from pathlib import Path

from speciesgan.data.sources.records import Box, Reject, SourceRecord
from speciesgan.data.sources.registry import SOURCES, Source
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

TOP_FOLDER = "CUB_200_2011"


def species_from_class(name: str) -> str:
    """``001.Black_footed_Albatross`` -> ``Black footed Albatross``."""
    number, dot, rest = name.partition(".")
    return (rest if dot and number.isdigit() else name).replace("_", " ")


def find_base(root: Path) -> Path:
    """The folder holding ``images.txt``: ``root/CUB_200_2011`` or ``root`` itself."""
    for base in (root / TOP_FOLDER, root):
        if (base / "images.txt").is_file():
            return base
    raise SpeciesganError(
        f"{root}: no images.txt here or in {TOP_FOLDER}/; expected the extracted CUB_200_2011.tgz"
    )


_ID = re.compile(r"[0-9]{1,18}")
"""An id as the tables write it: ASCII digits (``str.isdigit`` also takes "²", which
``int`` refuses), short enough that no overlong number reaches ``int``."""


def _id(text: str) -> int | None:
    return int(text) if _ID.fullmatch(text) else None


def _table(path: Path, fields: int) -> dict[int, list[str]]:
    """``image_id -> remaining fields`` of a whitespace-separated table."""
    if not path.is_file():
        raise SpeciesganError(f"{path}: missing (part of the CUB-200-2011 layout)")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpeciesganError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    rows: dict[int, list[str]] = {}
    for number, line in enumerate(io.StringIO(text, newline=None), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=fields - 1) if fields == 2 else line.split()
        image_id = _id(parts[0]) if len(parts) == fields else None
        if image_id is None:
            raise SpeciesganError(
                f"{path}:{number}: expected {fields} fields, got {line.strip()!r}"
            )
        rows[image_id] = [p.strip() for p in parts[1:]]
    return rows


def _optional_table(path: Path, fields: int) -> dict[int, list[str]] | None:
    """Like ``_table``, but None when the file is absent (boxes and split are optional)."""
    return _table(path, fields) if path.is_file() else None


def _box(fields: list[str]) -> Box:
    """The box of one ``bounding_boxes.txt`` row; ValueError (a reject) when not numbers."""
    x, y, w, h = values = [float(v) for v in fields]
    if not all(math.isfinite(v) for v in (*values, x + w, y + h)):
        raise ValueError(f"box is not finite: {fields}")
    return (max(round(x), 0), max(round(y), 0), round(x + w), round(y + h))


def read(root: Path, dataset: str, category: str) -> tuple[list[SourceRecord], list[Reject]]:
    """Every photo listed in ``images.txt``, with its box and official split."""
    base = find_base(Path(root))
    images = _table(base / "images.txt", 2)
    classes = _table(base / "classes.txt", 2)
    labels = _table(base / "image_class_labels.txt", 2)
    boxes = _optional_table(base / "bounding_boxes.txt", 5)
    splits = _optional_table(base / "train_test_split.txt", 2)
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    for image_id, (rel,) in sorted(images.items()):
        image = base / "images" / rel
        image_path = str(image.absolute())
        label = labels.get(image_id)
        class_id = _id(label[0]) if label else None
        class_name = classes.get(class_id) if class_id is not None else None
        if class_name is None:
            raise SpeciesganError(
                f"{base / 'image_class_labels.txt'}: image {image_id} has no valid class in classes.txt"
            )
        species = species_from_class(class_name[0])
        if not os.path.isfile(image):
            rejects.append(Reject(dataset, image_path, species, "missing image file", "source"))
            continue
        box: tuple[Box, ...] = ()
        if boxes is not None:
            try:
                b = _box(boxes[image_id])
            except (KeyError, ValueError):
                rejects.append(
                    Reject(dataset, image_path, species, "bad annotation: no valid box", "source")
                )
                continue
            if b[2] <= b[0] or b[3] <= b[1]:
                rejects.append(
                    Reject(dataset, image_path, species, "bad annotation: empty box", "source")
                )
                continue
            box = (b,)
        split = None
        if splits is not None and image_id in splits:
            split = "train" if splits[image_id][0] == "1" else "test"
        records.append(SourceRecord(dataset, image_path, species, category, box, split))
    log.info(
        "%s: %d photos, %d rejected (CUB-200-2011 layout)", dataset, len(records), len(rejects)
    )
    records.sort(key=lambda r: r.image_path)
    rejects.sort(key=lambda r: r.image_path)
    return records, rejects


SOURCES.add(
    "cub",
    Source(
        read,
        archives={
            "CUB_200_2011.tgz": "https://data.caltech.edu/records/65de6-vzc04/files/CUB_200_2011.tgz"
        },
        demo=True,
    ),
)
