"""iWildCam2020 as WILDS v2.0 distributes it, boxed by MegaDetector's detections.

Layout of ``iwildcam_v2.0.tar.gz`` (the ``wilds`` package's ``IWildCamDataset``,
which extracts the archive into ``iwildcam_v2.0/``)::

    metadata.csv     split, location_remapped, sequence_remapped, y, filename,
                     datetime, ... (one row per photo; extra columns ignored)
    categories.csv   y, category_id, name
    train/<filename> every photo, whatever its split, 448 px high

``root`` may be the folder the archive was extracted into or ``iwildcam_v2.0/``.
The archive has labels but no boxes: those come from a MegaDetector batch-output
file (``options["detections"]``, see ``megadetector``), matched by file name.

Per photo, in this order, the first problem met is its reject reason: a metadata
row that cannot be read; its WILDS split mapped to ``drop``; the label "empty";
the image file missing; no entry in the detections file; the detector failed;
no animal detection at or above ``min_confidence`` (the reason says whether
there were only people/vehicles or only weaker animal detections); thinned as a
near-duplicate of its sequence.  A detection outside the frame is rejected by
the index step, which knows the photo's size.

Splits: ``splits`` maps each WILDS split to the pipeline's ``train``/``test``,
to ``ood`` (kept in the manifest for evaluation only, never trained on) or to
``drop``.  By default (the schema's, for ``camera_trap.splits``) the
in-distribution splits train (``train``, ``id_val``) and test (``id_test``), and
the out-of-distribution camera locations (``val``, ``test``) are ``ood``.  A
sequence is never split: see ``camera_trap.settle_sequences``.

Species names are the ``name`` column with its first letter capitalised
("tayassu pecari" -> "Tayassu pecari", the binomial convention).

Memory: metadata.csv is streamed row by row into compact rows, and the
detections file is streamed photo by photo (``json_stream``), keeping only the
detections at or above the threshold for the photos still in play.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from speciesgan.data.sources.camera_trap import (
    FRAME_MODES,
    Frame,
    settle_sequences,
    thin_sequences,
)
from speciesgan.data.sources.megadetector import image_key, read_detections
from speciesgan.data.sources.records import Reject, RelativeBox, SourceRecord
from speciesgan.data.sources.registry import SOURCES, Source
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.schema_defaults import ANY_NAME, schema_defaults

log = logging.getLogger(__name__)

ARCHIVE = "iwildcam_v2.0.tar.gz"
"""The one archive (WILDS v2.0), extracted into ``TOP_FOLDER``."""
TOP_FOLDER = "iwildcam_v2.0"
IMAGES_FOLDER = "train"  # WILDS keeps every split's photos here
METADATA_COLUMNS = ("split", "sequence_remapped", "y", "filename", "datetime")
CATEGORY_COLUMNS = ("y", "name")
WILDS_SPLITS = ("train", "id_val", "id_test", "val", "test")
SPLIT_TARGETS = ("train", "test", "ood", "drop")
EMPTY_LABEL = "empty"
OPTION_KEYS = ("detections", "min_confidence", "splits", "frames", "frame_interval_seconds")


@dataclass(frozen=True)
class IWildCamOptions:
    """Per-dataset settings (config ``datasets.NAME.detections`` and ``camera_trap``;
    ``from_dict``: the schema's ``camera_trap`` defaults for those left out)."""

    detections: Path
    min_confidence: float
    splits: dict[str, str]
    frames: str
    frame_interval_seconds: float

    @classmethod
    def from_dict(cls, options: Mapping[str, Any] | None, dataset: str) -> IWildCamOptions:
        """Checked options; errors name the dataset and the key."""
        options = dict(options or {})
        where = f"dataset {dataset} (format iwildcam)"
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            raise SpeciesganError(f"{where}: unknown option(s) {unknown} (known: {OPTION_KEYS})")
        if not options.get("detections"):
            raise SpeciesganError(
                f"{where}: needs the MegaDetector detections file (config "
                f"datasets.{dataset}.detections)"
            )
        given = {**schema_defaults("datasets", ANY_NAME, "camera_trap"), **options}
        splits = {
            **schema_defaults("datasets", ANY_NAME, "camera_trap", "splits"),
            **dict(options.get("splits") or {}),
        }
        bad = {k: v for k, v in splits.items() if k not in WILDS_SPLITS or v not in SPLIT_TARGETS}
        if bad:
            raise SpeciesganError(
                f"{where}: splits {bad}: keys must be WILDS splits {WILDS_SPLITS}, "
                f"values one of {SPLIT_TARGETS}"
            )
        value = cls(
            detections=Path(options["detections"]),
            min_confidence=float(given["min_confidence"]),
            splits=splits,
            frames=str(given["frames"]),
            frame_interval_seconds=float(given["frame_interval_seconds"]),
        )
        if not 0 <= value.min_confidence <= 1:
            raise SpeciesganError(f"{where}: min_confidence must be in [0, 1]")
        if value.frames not in FRAME_MODES:
            raise SpeciesganError(f"{where}: frames must be one of {FRAME_MODES}")
        if value.frame_interval_seconds <= 0:
            raise SpeciesganError(f"{where}: frame_interval_seconds must be positive")
        return value


@dataclass(frozen=True, slots=True)
class Row:
    """One readable metadata.csv row (slots: 200k of them are held)."""

    filename: str
    key: str  # megadetector.image_key(filename): how the detections name it
    wilds_split: str
    sequence: str
    species: str
    time: datetime | None


def find_base(root: Path) -> Path:
    """The folder holding ``metadata.csv``: ``root/iwildcam_v2.0`` or ``root`` itself."""
    for base in (root / TOP_FOLDER, root):
        if (base / "metadata.csv").is_file():
            return base
    raise SpeciesganError(
        f"{root}: no metadata.csv here or in {TOP_FOLDER}/; expected the extracted "
        "WILDS iwildcam_v2.0 archive"
    )


def _open_csv(path: Path, required: tuple[str, ...]) -> tuple[Any, csv.DictReader]:
    if not path.is_file():
        raise SpeciesganError(f"{path}: missing (part of the WILDS iwildcam_v2.0 layout)")
    fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - the caller closes it
    rows = csv.DictReader(fh)
    columns = [c.strip() for c in rows.fieldnames or []]
    missing = [c for c in required if c not in columns]
    if missing:
        fh.close()
        raise SpeciesganError(f"{path}: missing column(s) {missing} (columns: {columns})")
    rows.fieldnames = columns
    return fh, rows


def species_name(name: str) -> str:
    """``tayassu pecari`` -> ``Tayassu pecari``."""
    name = " ".join(name.split())
    return name[:1].upper() + name[1:]


def read_categories(path: Path) -> dict[str, str]:
    """``y`` (as written) -> species name (``species_name``); a broken table stops the run."""
    fh, rows = _open_csv(path, CATEGORY_COLUMNS)
    names: dict[str, str] = {}
    with fh:
        try:
            for number, row in enumerate(rows, start=2):
                y, name = ((row.get(c) or "").strip() for c in CATEGORY_COLUMNS)
                if not y.isdigit() or not name:
                    raise SpeciesganError(f"{path}:{number}: expected a label y and a name")
                if y in names:
                    raise SpeciesganError(f"{path}:{number}: label y={y} listed twice")
                names[str(int(y))] = species_name(name)
        except UnicodeDecodeError as exc:
            raise SpeciesganError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return names


_SPLITS = {split: split for split in WILDS_SPLITS}


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _row(cells: dict[str, str | None], names: dict[str, str]) -> Row | str:
    """One metadata row checked, or the reason it is unusable."""
    filename = (cells.get("filename") or "").strip()
    if not filename:
        return "empty filename"
    parts = PurePosixPath(filename.replace("\\", "/")).parts
    if filename.startswith(("/", "\\")) or ".." in parts:
        return f"file name {filename!r} leaves the {IMAGES_FOLDER}/ folder"
    split = _SPLITS.get((cells.get("split") or "").strip())  # one shared string per split
    if split is None:
        return f"unknown WILDS split {cells.get('split')!r} (expected one of {WILDS_SPLITS})"
    y = (cells.get("y") or "").strip()
    name = names.get(str(int(y))) if y.isdigit() else None
    if name is None:
        return f"label y={y!r} is not in categories.csv"
    sequence = (cells.get("sequence_remapped") or "").strip() or f"photo {filename}"
    time = _parse_time(cells.get("datetime") or "")
    return Row(filename, image_key(filename), split, sequence, name, time)


def read_metadata(
    path: Path, names: dict[str, str], dataset: str, images: str
) -> tuple[list[Row], list[Reject]]:
    """The readable rows of ``metadata.csv`` (streamed), and a reject for each other row."""
    fh, reader = _open_csv(path, METADATA_COLUMNS)
    rows: list[Row] = []
    rejects: list[Reject] = []
    seen: dict[str, int] = {}
    with fh:
        try:
            for number, cells in enumerate(reader, start=1):
                row = _row(cells, names)
                if isinstance(row, str):
                    name = (cells.get("filename") or "").strip()
                    where = os.path.join(images, name) if name else str(path)
                    reason = f"{row} ({path.name}, data row {number})"
                    rejects.append(Reject(dataset, where, "", reason, "source"))
                    continue
                key = row.key
                if key in seen:
                    reason = f"listed again in {path.name} (data rows {seen[key]} and {number})"
                    where = os.path.join(images, row.filename)
                    rejects.append(Reject(dataset, where, row.species, reason, "source"))
                    continue
                seen[key] = number
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise SpeciesganError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            raise SpeciesganError(f"{path}: line {reader.line_num}: {exc}") from None
    return rows, rejects


@dataclass
class _Rejects:
    """The rejects so far, and a count per kind of reason (the reason without its numbers)."""

    dataset: str
    images: str
    items: list[Reject]
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, row: Row, reason: str, kind: str) -> None:
        path = os.path.join(self.images, row.filename)
        self.items.append(Reject(self.dataset, path, row.species, reason, "source"))
        self.kinds[kind] += 1


def _screen(rows: list[Row], splits: dict[str, str], images: str, rejects: _Rejects) -> list[Row]:
    """The rows still in play after the split mapping, the empty label and the file check."""
    in_play: list[Row] = []
    for row in rows:
        if splits[row.filename] == "drop":
            reason = f"WILDS split {row.wilds_split} is mapped to drop (camera_trap.splits)"
            rejects.add(row, reason, "split mapped to drop")
        elif row.species.lower() == EMPTY_LABEL:
            rejects.add(row, "labelled empty: no animal in the photo", "labelled empty")
        elif not os.path.isfile(os.path.join(images, row.filename)):
            rejects.add(row, "missing image file", "missing image file")
        else:
            in_play.append(row)
    return in_play


def _with_animals(
    rows: list[Row], splits: dict[str, str], settings: IWildCamOptions, rejects: _Rejects
) -> tuple[list[Frame], dict[str, tuple[RelativeBox, ...]]]:
    """Frames with an animal detection at or above the threshold, and their boxes."""
    detections = read_detections(
        settings.detections, {r.key for r in rows}, settings.min_confidence
    )
    frames: list[Frame] = []
    boxes: dict[str, tuple[RelativeBox, ...]] = {}
    for row in rows:
        found = detections.frames.get(row.key)
        if found is None:
            reason = f"not in the detections file {settings.detections.name}"
            rejects.add(row, reason, "no detections entry")
            continue
        animals = detections.animal_boxes(found)
        if not animals:
            kind, reason = detections.why_no_animal(found, settings.min_confidence)
            rejects.add(row, reason, kind)
            continue
        boxes[row.filename] = tuple(box for _, box in animals)
        best = max(conf for conf, _ in animals)
        split = splits[row.filename]
        frames.append(Frame(row.filename, row.sequence, split, row.time, row.species, best))
    return frames, boxes


def read(
    root: Path, dataset: str, category: str, options: Mapping[str, Any] | None = None
) -> tuple[list[SourceRecord], list[Reject]]:
    """Every photo of ``root`` with an animal detection, and a reject for every other."""
    settings = IWildCamOptions.from_dict(options, dataset)
    base = find_base(Path(root))
    images = str((base / IMAGES_FOLDER).absolute())  # joined as text: 200k Path objects are slow
    names = read_categories(base / "categories.csv")
    rows, unreadable = read_metadata(base / "metadata.csv", names, dataset, images)
    rejects = _Rejects(dataset, images, unreadable, Counter({"unreadable row": len(unreadable)}))

    mapped = (Frame(r.filename, r.sequence, settings.splits[r.wilds_split], r.time) for r in rows)
    splits, moved = settle_sequences(mapped)
    if moved:
        log.info("%s: %d photos moved so that no sequence straddles splits", dataset, moved)
    in_play = _screen(rows, splits, images, rejects)
    del rows  # only the photos still in play are held while the detections are read
    frames, boxes = _with_animals(in_play, splits, settings, rejects)
    rows_by_name = {row.filename: row for row in in_play}
    kept, thinned = thin_sequences(frames, settings.frames, settings.frame_interval_seconds)
    for frame, reason in thinned:
        rejects.add(rows_by_name[frame.key], reason, "thinned near-duplicate")
    records = [
        SourceRecord(
            dataset, os.path.join(images, f.key), f.species, category, (), f.split, boxes[f.key]
        )
        for f in kept
    ]
    records.sort(key=lambda r: r.image_path)
    rejects.items.sort(key=lambda r: (r.image_path, r.reason))
    summary = ", ".join(f"{kind}: {n}" for kind, n in sorted(rejects.kinds.items()) if n)
    log.info(
        "%s: %d photos, %d rejected (WILDS iwildcam_v2.0; %s)",
        dataset,
        len(records),
        len(rejects.items),
        summary or "none",
    )
    return records, rejects.items


SOURCES.add(
    "iwildcam",
    Source(
        read,
        # WILDS v2.0's iWildCam2020 (the URL of the `wilds` package's iwildcam_dataset.py,
        # 11,957,420,032 bytes; a tar.gz of metadata.csv, categories.csv and train/)
        archives={
            ARCHIVE: (
                "https://worksheets.codalab.org/rest/bundles/"
                "0x6313da2b204647e79a14b468131fcd64/contents/blob/"
            )
        },
        detections=True,
        demo=True,
    ),
)
