"""Turn dataset sources into the records table: one row per crop to make.

This is where every decision that must be made once, over the whole run, is
made: which photos are duplicates, which split each photo is in, which species
id each species gets, which shard each crop goes to.  The crop jobs that follow
are then independent of each other.

Nothing is decoded here.  Each photo is read once to hash it (SHA-256, which is
also how duplicates are found) and its header is parsed for the displayed size
(after EXIF orientation), which clips the boxes and gives box-less photos the
whole frame as their box.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from speciesgan.data.crop import Box, clip_box
from speciesgan.data.preprocess import ROTATED_ORIENTATIONS, orientation_of
from speciesgan.data.sources import Reject, RelativeBox, SourceRecord, source
from speciesgan.util.atomic import atomic_path
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.names import slug_clashes
from speciesgan.util.progress import progress
from speciesgan.util.schema_defaults import schema_defaults

log = logging.getLogger(__name__)

SourceArg = tuple[str, str, str, Path]
"""(dataset name, format, category, extracted root)."""

BOX_MODES = ("all", "largest")
SPLITS = ("train", "test")
EVAL_ONLY_SPLITS = ("ood",)
"""Splits a source may give besides train/test: photos kept for evaluation only
(e.g. camera locations never trained on), never drawn into train or test."""
SMALL_SPECIES_ACTIONS = ("stop", "drop")
HASH_CHUNK = 1 << 20
IO_THREADS = min(8, os.cpu_count() or 1)  # hashing is I/O bound; results do not depend on it

RECORDS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("species", pa.string()),
        ("species_id", pa.int32()),
        ("category", pa.string()),
        ("split", pa.string()),
        ("box_x0", pa.int32()),
        ("box_y0", pa.int32()),
        ("box_x1", pa.int32()),
        ("box_y1", pa.int32()),
        ("shard", pa.int32()),
        ("sha256", pa.string()),
    ]
)
REJECTS_SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("dataset", "file", "species", "reason", "stage")]
)


@dataclass(frozen=True)
class IndexSettings:
    """The ``preprocess`` settings the index uses (``from_dict``: the schema's defaults
    for those left out)."""

    test_fraction: float
    shards: int
    box_mode: str
    min_images_per_species: int
    small_species: str  # "drop": reject species under the minimum, do not stop

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> IndexSettings:
        given = {**schema_defaults("preprocess"), **settings}
        value = cls(
            test_fraction=float(given["test_fraction"]),
            shards=int(given["shards"]),
            box_mode=str(given["box_mode"]),
            min_images_per_species=int(given["min_images_per_species"]),
            small_species=str(given["small_species"]),
        )
        if not 0 < value.test_fraction < 1:
            raise SpeciesganError(
                f"preprocess.test_fraction must be between 0 and 1, not {value.test_fraction}"
            )
        if value.shards < 1:
            raise SpeciesganError(f"preprocess.shards must be at least 1, not {value.shards}")
        if value.box_mode not in BOX_MODES:
            raise SpeciesganError(
                f"preprocess.box_mode must be one of {BOX_MODES}, not {value.box_mode!r}"
            )
        if value.min_images_per_species < 1:
            raise SpeciesganError("preprocess.min_images_per_species must be at least 1")
        if value.small_species not in SMALL_SPECIES_ACTIONS:
            raise SpeciesganError(
                f"preprocess.small_species must be one of {SMALL_SPECIES_ACTIONS}, "
                f"not {value.small_species!r}"
            )
        return value


@dataclass(frozen=True)
class PhotoFile:
    """What the index learns from a photo file without decoding it."""

    sha256: str | None = None
    width: int = 0  # displayed (after EXIF orientation)
    height: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Row:
    """One crop to make (before species ids and shards are assigned)."""

    record: SourceRecord
    box: Box
    sha256: str
    split: str

    @property
    def species_key(self) -> tuple[str, str]:
        return self.record.category, self.record.species


def parse_source_arg(text: str) -> SourceArg:
    """``NAME:FORMAT:CATEGORY:ROOT`` -> parts; ROOT is everything after the third colon."""
    parts = text.split(":", 3)
    if len(parts) != 4 or not all(parts):
        raise SpeciesganError(f"--source {text!r}: expected NAME:FORMAT:CATEGORY:ROOT")
    name, fmt, category, root = parts
    return name, fmt, category, Path(root)


SOURCE_KEYS = ("name", "format", "category", "root")
OPTIONS_KEY = "options"
"""Optional member of a --sources entry: the reader's per-dataset options (an object)."""


def parse_sources_json(text: str) -> list[SourceArg]:
    """``[{"name", "format", "category", "root"}, ...]`` (the workflow's form) -> parts.

    JSON rather than ``NAME:FORMAT:CATEGORY:ROOT``: a category or path may hold
    colons, and the rule passes the whole list as one quoted shell word.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpeciesganError(f"--sources is not valid JSON: {exc}") from None
    if not isinstance(value, list) or not value:
        raise SpeciesganError("--sources must be a non-empty JSON list of sources")
    sources = []
    for i, item in enumerate(value):
        if not (
            isinstance(item, dict)
            and set(item) - {OPTIONS_KEY} == set(SOURCE_KEYS)
            and all(isinstance(item[key], str) and item[key] for key in SOURCE_KEYS)
            and isinstance(item.get(OPTIONS_KEY, {}), dict)
        ):
            raise SpeciesganError(
                f"--sources entry {i}: expected an object with the non-empty strings "
                f"{', '.join(SOURCE_KEYS)} (and optionally an object {OPTIONS_KEY}), got {item!r}"
            )
        sources.append((item["name"], item["format"], item["category"], Path(item["root"])))
    return sources


def parse_source_options(text: str) -> dict[str, dict[str, Any]]:
    """Dataset name -> its ``options`` from ``--sources`` JSON (checked by parse_sources_json)."""
    return {item["name"]: item[OPTIONS_KEY] for item in json.loads(text) if item.get(OPTIONS_KEY)}


def inspect_photo(path: str) -> PhotoFile:
    """SHA-256 (streamed) and displayed size of ``path``; ``error`` says why not."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return PhotoFile(error=f"cannot read file: {exc.strerror or exc}")
    try:
        with Image.open(path) as image:  # parses the header only
            width, height = image.size
            if orientation_of(image) in ROTATED_ORIENTATIONS:
                width, height = height, width
    except Exception as exc:  # noqa: BLE001 - any header failure means "not a usable image"
        return PhotoFile(
            sha256=digest.hexdigest(), error=f"not an image: {type(exc).__name__}: {exc}"
        )
    return PhotoFile(sha256=digest.hexdigest(), width=width, height=height)


def _reject(record: SourceRecord, reason: str) -> Reject:
    return Reject(record.dataset, record.image_path, record.species, reason, "index")


def _stable_int(text: str) -> int:
    """A 64-bit integer from ``text`` that is the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def drop_duplicates(
    records: Sequence[SourceRecord], files: dict[str, PhotoFile]
) -> tuple[list[SourceRecord], list[Reject]]:
    """Keep one record per photo content.

    Copies with one species: the first by path stays.  Copies labelled as
    different species: all go, since either label may be the wrong one.  With
    one copy left per photo, no photo can land in both train and test.
    """
    groups: dict[str, list[SourceRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.image_path, r.dataset, r.species)):
        sha = files[record.image_path].sha256
        assert sha is not None
        groups[sha].append(record)
    kept: list[SourceRecord] = []
    rejects: list[Reject] = []
    for copies in groups.values():
        labels = sorted({(r.category, r.species) for r in copies})
        if len(labels) > 1:
            names = ", ".join(f"{c}/{s}" for c, s in labels)
            rejects += [
                _reject(r, f"same photo labelled as several species ({names})") for r in copies
            ]
            continue
        kept.append(copies[0])
        rejects += [_reject(r, f"duplicate of {copies[0].image_path}") for r in copies[1:]]
    return kept, rejects


def pixel_box(box: RelativeBox, width: int, height: int) -> Box:
    """A normalised ``(x_min, y_min, width, height)`` box in pixels of a ``width`` x ``height`` photo.

    Edges are rounded to the nearest pixel, as CUB's pixel boxes are, so a box
    drawn on a resized copy of the photo lands on the same content.
    """
    x, y, w, h = box
    return (
        round(x * width),
        round(y * height),
        round((x + w) * width),
        round((y + h) * height),
    )


def boxes_to_crop(
    record: SourceRecord, photo: PhotoFile, box_mode: str
) -> tuple[list[Box], list[Reject]]:
    """The clipped boxes of ``record`` to crop, and rejects for boxes outside the photo.

    Relative boxes (detector output) are turned into pixels of the photo first.
    """
    if not record.boxes and not record.relative_boxes:
        return [(0, 0, photo.width, photo.height)], []
    size = f"{photo.width}x{photo.height}"
    candidates = [(tuple(box), f"box {tuple(box)}") for box in record.boxes]
    candidates += [
        (pixel_box(box, photo.width, photo.height), f"detection {tuple(box)} (x, y, w, h relative)")
        for box in record.relative_boxes
    ]
    valid: list[Box] = []
    rejects: list[Reject] = []
    for box, shown in candidates:
        clipped = clip_box(box, photo.width, photo.height)
        if clipped is None:
            rejects.append(_reject(record, f"{shown} lies outside the {size} image"))
        else:
            valid.append(clipped)
    if box_mode == "largest" and valid:
        valid = [max(valid, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))]  # first wins ties
        rejects = []  # the other boxes were dropped on purpose
    return valid, rejects


def assign_splits(
    records: Sequence[SourceRecord], test_fraction: float, seed: int
) -> dict[str, str]:
    """Split per photo path: the dataset's official split, else a stratified draw.

    Photos without an official split are drawn per species: ``round(fraction *
    n)`` of them go to test, at least one and never all when the species has two
    or more.  Each species gets its own generator seeded from (seed, species),
    so adding a dataset does not reshuffle the splits of the others.
    """
    splits: dict[str, str] = {}
    unsplit: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in records:
        if record.split is None:
            unsplit[(record.category, record.species)].append(record.image_path)
        elif record.split in SPLITS + EVAL_ONLY_SPLITS:
            splits[record.image_path] = record.split
        else:
            raise SpeciesganError(
                f"{record.dataset}: {record.image_path}: unknown split {record.split!r} "
                f"(expected one of {SPLITS + EVAL_ONLY_SPLITS})"
            )
    for (category, species), paths in sorted(unsplit.items()):
        paths = sorted(paths)
        n = len(paths)
        n_test = round(test_fraction * n)
        if n >= 2:
            n_test = min(max(n_test, 1), n - 1)
        rng = np.random.default_rng([seed, _stable_int(f"{category}\0{species}")])
        order = rng.permutation(n)
        for rank, position in enumerate(order):
            splits[paths[position]] = "test" if rank < n_test else "train"
    return splits


def check_species_counts(
    counts: Counter[tuple[str, str]], minimum: int, rejects: Sequence[Reject]
) -> None:
    """Fail early, naming every species with fewer than ``minimum`` usable crops."""
    short = sorted((key, n) for key, n in counts.items() if n < minimum)
    if not short:
        return
    rejected = Counter(r.species for r in rejects)
    listing = "; ".join(
        f"{category}/{species}: {n} crop(s), {rejected[species]} rejected photo(s)/box(es)"
        for (category, species), n in short
    )
    raise SpeciesganError(
        f"{len(short)} species have fewer than preprocess.min_images_per_species={minimum} "
        f"usable train/test crops: {listing}. Add images, lower the setting, or set "
        "preprocess.small_species: drop to leave them out."
    )


def drop_small_species(
    rows: Sequence[Row], counts: Counter[tuple[str, str]], minimum: int
) -> tuple[list[Row], list[Reject], list[tuple[str, str]]]:
    """``preprocess.small_species: drop``: the rows of species with enough crops, and rejects.

    For long-tailed collections (camera traps: a few photos of the rare species)
    stopping would ask the user to list dozens of species by hand; dropping
    them keeps the run going and every dropped crop is a reject with its count.
    """
    small = {key for key, n in counts.items() if n < minimum}
    kept = [row for row in rows if row.species_key not in small]
    rejects = [
        _reject(
            row.record,
            f"species has {counts[row.species_key]} train/test crop(s), fewer than "
            f"preprocess.min_images_per_species={minimum} (preprocess.small_species: drop)",
        )
        for row in rows
        if row.species_key in small
    ]
    return kept, rejects, sorted(small)


def check_species_names(records: Iterable[SourceRecord]) -> None:
    """Fail early when two species' names differ only in case or punctuation.

    Species are keyed by (category, name), but their names are what the user types
    (``speciesgan generate NAME``) and what sample files are named after (the slug
    of ``speciesgan.util.names.slugify``), so names equal after ``slugify`` anywhere in
    the run -- "Border_collie" and "border-collie", or one name in two categories --
    would be told apart by neither.  The error names both species and their datasets.
    """

    datasets: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        datasets[(record.category, record.species)].add(record.dataset)
    clashes = slug_clashes(sorted(datasets), name=lambda key: key[1])
    if not clashes:
        return

    def describe(key: tuple[str, str]) -> str:
        category, species = key
        return f"{category}/{species!r} (dataset {', '.join(sorted(datasets[key]))})"

    listing = "; ".join(
        f"{' and '.join(describe(key) for key in keys)} -> {slug!r}"
        for slug, keys in clashes.items()
    )
    raise SpeciesganError(
        f"{len(clashes)} group(s) of species have names that are equal ignoring case and "
        f"punctuation, so their sample files and command-line names would clash: {listing}. "
        "Rename or merge these species in the source data."
    )


def _write_table(rows: list[dict[str, Any]], schema: pa.Schema, out: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def write_rejects(rejects: Sequence[Reject], out: Path) -> None:
    """Rejects as parquet (dataset, file, species, reason, stage), in a stable order."""
    rows = [
        {
            "dataset": r.dataset,
            "file": r.image_path,
            "species": r.species,
            "reason": r.reason,
            "stage": r.stage,
        }
        for r in rejects
    ]
    rows.sort(key=lambda r: (r["dataset"], r["file"], r["species"], r["stage"], r["reason"]))
    _write_table(rows, REJECTS_SCHEMA, out)


def index_records(
    records: Sequence[SourceRecord],
    source_rejects: Sequence[Reject],
    out: Path,
    out_rejects: Path,
    settings: dict[str, Any],
    seed: int,
) -> None:
    """Everything ``build_index`` does after the sources are read (tests call it directly)."""
    config = IndexSettings.from_dict(settings)
    check_species_names(records)
    rejects = list(source_rejects)
    paths = sorted({r.image_path for r in records})
    with ThreadPoolExecutor(max_workers=IO_THREADS) as pool:
        inspected = progress(pool.map(inspect_photo, paths), total=len(paths), desc="hashing")
        files = dict(zip(paths, inspected, strict=True))

    readable = []
    for record in records:
        error = files[record.image_path].error
        if error is None:
            readable.append(record)
        else:
            rejects.append(_reject(record, error))
    kept, duplicate_rejects = drop_duplicates(readable, files)
    rejects += duplicate_rejects
    splits = assign_splits(kept, config.test_fraction, seed)

    rows: list[Row] = []
    for record in kept:
        photo = files[record.image_path]
        boxes, box_rejects = boxes_to_crop(record, photo, config.box_mode)
        rejects += box_rejects
        assert photo.sha256 is not None
        rows += [Row(record, box, photo.sha256, splits[record.image_path]) for box in boxes]

    # evaluation-only crops (ood) do not count: nothing could be trained on them
    counts: Counter[tuple[str, str]] = Counter(r.species_key for r in rows if r.split in SPLITS)
    for record in records:  # species whose every photo was rejected count as 0
        counts.setdefault((record.category, record.species), 0)
    if config.small_species == "drop":
        rows, small_rejects, small = drop_small_species(rows, counts, config.min_images_per_species)
        rejects += small_rejects
        for key in small:
            del counts[key]
        if small:
            listing = "; ".join(f"{c}/{s}" for c, s in small[:20])
            more = f" and {len(small) - 20} more" if len(small) > 20 else ""
            log.warning(
                "index: dropped %d species with fewer than %d train/test crops "
                "(preprocess.small_species: drop): %s%s",
                len(small),
                config.min_images_per_species,
                listing,
                more,
            )
        if not counts:
            raise SpeciesganError(
                "no species has preprocess.min_images_per_species="
                f"{config.min_images_per_species} train/test crops; nothing is left to train on"
            )
    else:
        check_species_counts(counts, config.min_images_per_species, rejects)

    species_ids = {key: i for i, key in enumerate(sorted(counts))}
    rows.sort(key=lambda r: (r.species_key, r.record.image_path, r.box))
    table_rows = [
        {
            "dataset": row.record.dataset,
            "file": row.record.image_path,
            "species": row.record.species,
            "species_id": species_ids[row.species_key],
            "category": row.record.category,
            "split": row.split,
            "box_x0": row.box[0],
            "box_y0": row.box[1],
            "box_x1": row.box[2],
            "box_y1": row.box[3],
            "shard": i % config.shards,  # round-robin: every shard gets every species
            "sha256": row.sha256,
        }
        for i, row in enumerate(rows)
    ]
    by_split = Counter(row["split"] for row in table_rows)
    log.info(
        "index: %d crops (%s) of %d species from %d photos; %d rejects",
        len(table_rows),
        ", ".join(f"{split} {n}" for split, n in sorted(by_split.items())),
        len(species_ids),
        len(kept),
        len(rejects),
    )
    _write_table(table_rows, RECORDS_SCHEMA, out)
    write_rejects(rejects, out_rejects)


def portable_path(path: str) -> str:
    """``path`` relative to the working directory (the workflow root) when it lies inside it.

    Sources report absolute paths; stored as such, the manifest of the same data would
    differ between two clones of the project (and never be byte-identical), so paths
    inside the project are kept relative.  Paths elsewhere (a local collection given by
    absolute path) stay absolute.
    """
    absolute = os.path.abspath(path)
    root = os.getcwd()
    return os.path.relpath(absolute, root) if absolute.startswith(root + os.sep) else absolute


def build_index(
    sources: Sequence[SourceArg],
    out: Path,
    out_rejects: Path,
    settings: dict[str, Any],
    seed: int,
    options: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Read every source and write ``records.parquet`` and ``index_rejects.parquet``.

    ``options``: dataset name -> the reader's options, for formats that take
    them (those boxed by detections, ``Source.detections``).
    """
    records: list[SourceRecord] = []
    rejects: list[Reject] = []
    options = options or {}
    for name, fmt, category, root in sources:
        try:
            layout = source(fmt)
        except ValueError as exc:
            raise SpeciesganError(f"dataset {name}: {exc}") from exc
        read = layout.read
        if not Path(root).exists():  # a folder, or the table file of the "table" format
            raise SpeciesganError(f"dataset {name}: source {root} does not exist")
        if layout.detections:
            found, dropped = read(Path(root), name, category, options=options.get(name))
        elif options.get(name):
            raise SpeciesganError(f"dataset {name}: format {fmt} takes no options")
        else:
            found, dropped = read(Path(root), name, category)
        log.info("%s: %d photos, %d rejected by the source", name, len(found), len(dropped))
        records += [dataclasses.replace(r, image_path=portable_path(r.image_path)) for r in found]
        rejects += [dataclasses.replace(r, image_path=portable_path(r.image_path)) for r in dropped]
    if not records:
        raise SpeciesganError(f"no usable photos in any source: {[str(s[3]) for s in sources]}")
    index_records(records, rejects, Path(out), Path(out_rejects), settings, seed)
