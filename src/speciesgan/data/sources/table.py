"""A CSV or parquet table listing photos: for collections no built-in layout covers.

``root`` is the table file itself (``.csv`` or ``.parquet``).  Columns:

* ``path`` (required): the photo, relative to the table's folder or absolute.
* ``species`` (required): the species name, used as written.
* ``category`` (optional): overrides the dataset's category for that row.
* ``split`` (optional): ``train`` or ``test``; ``val``/``valid``/``validation``
  count as ``test`` (as for image folders); empty means "let the index draw".
* ``x0, y0, x1, y1`` (optional, all four or none): a box in pixels of the photo as
  displayed, x1/y1 exclusive; fractional values are rounded.  A row with some of
  the four left empty has no box.

Several rows may name the same photo, one per box (e.g. two animals in one
photo); they become one record with all their boxes.  Rows of one photo that
disagree on species, category or split make the photo a reject, because it is
not clear which label is right.  Everything is read as text, so that a value
like ``007`` stays what the user wrote until it is checked.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from speciesgan.data.sources.records import Box, Reject, SourceRecord
from speciesgan.data.sources.registry import SOURCES, Source
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "species")
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
SPLIT_VALUES = {
    "train": "train",
    "test": "test",
    "val": "test",
    "valid": "test",
    "validation": "test",
}


@dataclass(frozen=True)
class Row:
    """One table row after its checks: a photo, its labels and at most one box."""

    image_path: str
    species: str
    category: str
    split: str | None
    box: Box | None


def load_table(path: Path) -> pd.DataFrame:
    """The table as text columns; missing cells become empty strings."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        elif suffix in (".parquet", ".pq"):
            frame = pq.read_table(path).to_pandas()
        else:
            raise SpeciesganError(
                f"{path}: unknown table type {suffix!r}; use a .csv or .parquet file"
            )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SpeciesganError(f"{path}: cannot read the photo table: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda column: column.map(_text))


def _text(value: object) -> str:
    """A cell as stripped text; None/NaN (parquet nulls) as the empty string."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def check_columns(frame: pd.DataFrame, path: Path) -> bool:
    """Raise for missing required columns or a partial box; True when boxes are given."""
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise SpeciesganError(
                f"{path}: missing required column {column!r} (columns: {list(frame.columns)})"
            )
    present = [c for c in BOX_COLUMNS if c in frame.columns]
    if present and len(present) != len(BOX_COLUMNS):
        missing = [c for c in BOX_COLUMNS if c not in frame.columns]
        raise SpeciesganError(
            f"{path}: box columns {present} given without {missing}; give all four or none"
        )
    return bool(present)


def parse_box(values: list[str]) -> Box | None | str:
    """The box of one row, None when it has none, or the reason it is unusable."""
    if any(v == "" for v in values):
        return None
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        shown = ", ".join(f"{c}={v!r}" for c, v in zip(BOX_COLUMNS, values, strict=True))
        return f"box is not numbers ({shown})"
    if any(n != n or n in (float("inf"), float("-inf")) for n in numbers):
        return f"box is not finite ({values})"
    x0, y0, x1, y1 = (round(n) for n in numbers)
    x0, y0 = max(x0, 0), max(y0, 0)
    if x1 <= x0 or y1 <= y0:
        return f"empty box ({', '.join(values)})"
    return (x0, y0, x1, y1)


def parse_row(cells: dict[str, str], folder: Path, category: str, has_boxes: bool) -> Row | str:
    """One row checked and resolved, or the reason it is unusable."""
    if not cells["path"]:
        return "empty path"
    if not cells["species"]:
        return "empty species"
    split_text = cells.get("split", "")
    split = SPLIT_VALUES.get(split_text.lower()) if split_text else None
    if split_text and split is None:
        return f"unknown split {split_text!r} (expected train or test)"
    box = parse_box([cells[c] for c in BOX_COLUMNS]) if has_boxes else None
    if isinstance(box, str):
        return box
    image_path = os.path.abspath(folder / cells["path"])  # normalises "..", keeps links
    return Row(image_path, cells["species"], cells.get("category") or category, split, box)


def _merge(rows: list[Row], dataset: str) -> SourceRecord | Reject:
    """One photo's rows as a record, or a reject when their labels disagree."""
    first = rows[0]
    labels = {(r.species, r.category, r.split) for r in rows}
    if len(labels) > 1:
        shown = "; ".join(f"{s}/{c}/{t or 'no split'}" for s, c, t in sorted(labels, key=str))
        return Reject(
            dataset,
            first.image_path,
            first.species,
            f"rows disagree on the labels ({shown})",
            "source",
        )
    boxes = tuple(sorted({r.box for r in rows if r.box is not None}))
    return SourceRecord(
        dataset, first.image_path, first.species, first.category, boxes, first.split
    )


def read(root: Path, dataset: str, category: str) -> tuple[list[SourceRecord], list[Reject]]:
    """Every photo the table at ``root`` lists, with its labels and boxes."""
    table = Path(root)
    if not table.is_file():
        raise SpeciesganError(f"{table}: photo table not found (expected a .csv or .parquet file)")
    frame = load_table(table)
    has_boxes = check_columns(frame, table)
    folder = table.absolute().parent
    by_photo: dict[str, list[Row]] = defaultdict(list)
    rejects: list[Reject] = []
    missing: set[str] = set()
    for number, cells in enumerate(frame.to_dict("records"), start=1):
        row = parse_row(cells, folder, category, has_boxes)
        if isinstance(row, str):
            where = os.path.abspath(folder / cells["path"]) if cells["path"] else str(table)
            reason = f"{row} ({table.name}, data row {number})"
            rejects.append(Reject(dataset, where, cells["species"], reason, "source"))
        elif not os.path.isfile(row.image_path):
            if row.image_path not in missing:  # one reject per photo, not per box row
                missing.add(row.image_path)
                rejects.append(
                    Reject(dataset, row.image_path, row.species, "file not found", "source")
                )
        else:
            by_photo[row.image_path].append(row)
    records: list[SourceRecord] = []
    for image_path in sorted(by_photo):
        merged = _merge(by_photo[image_path], dataset)
        (records if isinstance(merged, SourceRecord) else rejects).append(merged)
    rejects.sort(key=lambda r: (r.image_path, r.reason))
    log.info(
        "%s: %d photos, %d rejected (photo table %s)", dataset, len(records), len(rejects), table
    )
    return records, rejects


SOURCES.add("table", Source(read, local=True))  # the dataset's path is the table file
