"""Merge the crop shards' rows into the manifest, and all rejects into one table.

The manifest is what training and evaluation read, so it is validated here,
where a problem can still be blamed on the data step: columns and types,
species ids 0..K-1, enough crops per species once crop failures are counted,
and that each shard's three files come from one crop-shard run (a job killed
between its renames leaves files of two runs side by side).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from speciesgan.data.download import sha256_of
from speciesgan.data.preprocess import (
    GREYSCALE_REJECT,
    IMAGE_SIZE_KEY,
    IMAGES_SHA256_KEY,
    REJECTS_SHA256_KEY,
    SHARD_SEAL_KEYS,
    SHARDS_SHA256_KEY,
    images_path,
    rejects_path,
)
from speciesgan.util.atomic import atomic_path
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.schema_defaults import schema_defaults

log = logging.getLogger(__name__)

STRING_COLUMNS = ("dataset", "file", "species", "category", "split", "sha256")
INT_COLUMNS = (
    "species_id",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "shard",
    "index",
    "crop_x0",
    "crop_y0",
    "crop_size",
)
MANIFEST_COLUMNS = (
    "dataset",
    "file",
    "species",
    "species_id",
    "category",
    "split",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
    "shard",
    "sha256",
    "index",
    "crop_x0",
    "crop_y0",
    "crop_size",
)
FLAG_COLUMNS = ("greyscale",)
"""Boolean columns crop-shard writes (``greyscale``: an infrared/monochrome photo).
Required from shards; optional when validating, for manifests made by other tools."""
REJECT_COLUMNS = ("dataset", "file", "species", "reason", "stage")
SPLIT_VALUES = ("train", "test", "ood")
"""``ood``: evaluation-only photos (camera locations never trained on); ``load_split``
returns them only when asked for by name."""
TRAIN_TEST = ("train", "test")


def validate_manifest(frame: pd.DataFrame, source: str = "manifest") -> None:
    """Raise SpeciesganError naming the first missing or mistyped column (or bad value)."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise SpeciesganError(f"{source}: missing column(s) {missing}")
    for column in STRING_COLUMNS:
        if not pd.api.types.is_string_dtype(frame[column]):
            raise SpeciesganError(
                f"{source}: column {column!r} must hold strings, not {frame[column].dtype}"
            )
    for column in INT_COLUMNS:
        dtype = frame[column].dtype
        if not pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise SpeciesganError(f"{source}: column {column!r} must hold integers, not {dtype}")
    for column in FLAG_COLUMNS:
        if column in frame.columns and not pd.api.types.is_bool_dtype(frame[column]):
            raise SpeciesganError(
                f"{source}: column {column!r} must hold booleans, not {frame[column].dtype}"
            )
    bad_splits = sorted(set(frame["split"]) - set(SPLIT_VALUES))
    if bad_splits:
        raise SpeciesganError(
            f"{source}: column 'split' has values {bad_splits}, expected one of {SPLIT_VALUES}"
        )
    ids = sorted(set(frame["species_id"].tolist()))
    if ids != list(range(len(ids))):
        raise SpeciesganError(f"{source}: species ids are not 0..{len(ids) - 1}: {ids[:10]}")
    names_per_id = frame.groupby("species_id")["species"].nunique()
    if (names_per_id > 1).any():
        raise SpeciesganError(
            f"{source}: species id(s) {names_per_id[names_per_id > 1].index.tolist()} "
            "name several species"
        )
    if frame.duplicated(["shard", "index"]).any():
        raise SpeciesganError(f"{source}: (shard, index) pairs are not unique")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest as a DataFrame, validated (a clear error instead of a KeyError later)."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise SpeciesganError(f"{path}: manifest not found") from exc
    except (OSError, pa.ArrowInvalid) as exc:
        raise SpeciesganError(f"{path}: cannot read the manifest: {exc}") from exc
    validate_manifest(frame, str(path))
    return frame


def manifest_image_size(path: str | Path) -> int:
    """The crop size stored in the manifest's parquet metadata."""
    metadata = pq.read_schema(path).metadata or {}
    if IMAGE_SIZE_KEY not in metadata:
        raise SpeciesganError(f"{path}: no {IMAGE_SIZE_KEY.decode()} in the parquet metadata")
    return int(metadata[IMAGE_SIZE_KEY])


def _read_parquet(path: Path, what: str) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError as exc:
        raise SpeciesganError(f"{path}: {what} not found (rerun crop-shard)") from exc
    except (OSError, pa.ArrowInvalid) as exc:
        raise SpeciesganError(f"{path}: cannot read {what}: {exc}") from exc


def _check_shard_files(path: Path, table: pa.Table, size: int) -> None:
    """Raise unless the images and rejects files beside ``path`` are the ones its run wrote.

    The rows file is written last and carries the SHA-256 of the other two, so
    a match proves all three come from the same finished run.  Reading the
    array header first gives the more useful message for the common mix-up
    (another crop size or another shard).
    """
    metadata = table.schema.metadata or {}
    missing = [k.decode() for k in SHARD_SEAL_KEYS if k not in metadata]
    if missing:
        raise SpeciesganError(
            f"{path}: no {', '.join(missing)} metadata: written by an older crop-shard; "
            "rerun crop-shard for this shard"
        )
    images = images_path(path)
    advice = (
        "the files come from different crop-shard runs (one killed between its renames?); "
        "delete them and rerun crop-shard for this shard"
    )
    try:
        array = np.load(images, mmap_mode="r")
    except FileNotFoundError as exc:
        raise SpeciesganError(f"{images}: shard images not found beside {path}") from exc
    except (OSError, ValueError) as exc:
        raise SpeciesganError(f"{images}: cannot read the shard images: {exc}") from exc
    expected = (table.num_rows, size, size, 3)
    if array.shape != expected or array.dtype != np.uint8:
        raise SpeciesganError(
            f"{images} holds {array.dtype} crops of shape {array.shape} but {path} describes "
            f"{expected}: {advice}"
        )
    del array  # release the memory map before hashing the file
    if sha256_of(images) != metadata[IMAGES_SHA256_KEY].decode():
        raise SpeciesganError(f"{images} is not the images file {path} was written with: {advice}")
    rejects = rejects_path(path)
    if rejects.is_file() and sha256_of(rejects) != metadata[REJECTS_SHA256_KEY].decode():
        raise SpeciesganError(
            f"{rejects} is not the rejects file {path} was written with: {advice}"
        )


def _read_shard(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, int, str]:
    """A shard's kept rows, its crop rejects (the sibling file), its crop size and the
    SHA-256 of its images file (checked against the rows file's seal)."""
    table = _read_parquet(path, "shard rows")
    metadata = table.schema.metadata or {}
    if IMAGE_SIZE_KEY not in metadata:
        raise SpeciesganError(
            f"{path}: no {IMAGE_SIZE_KEY.decode()} metadata: not crop-shard output"
        )
    _check_shard_files(path, table, int(metadata[IMAGE_SIZE_KEY]))
    rejects = _read_parquet(rejects_path(path), "crop rejects").to_pandas()
    missing = [c for c in (*REJECT_COLUMNS, "species_id", "category") if c not in rejects.columns]
    if missing:
        raise SpeciesganError(f"{rejects_path(path)}: missing column(s) {missing}")
    images_sha = metadata[IMAGES_SHA256_KEY].decode()
    return table.to_pandas(), rejects, int(metadata[IMAGE_SIZE_KEY]), images_sha


def _short_species(
    kept: pd.DataFrame, crop_rejects: pd.DataFrame, minimum: int
) -> list[tuple[int, str, str, int]]:
    """(species_id, category, species, train/test crops) of species under ``minimum``."""
    columns = ["species_id", "category", "species"]
    species = pd.concat([kept[columns], crop_rejects[columns]]).drop_duplicates("species_id")
    counts = kept.loc[kept["split"].isin(TRAIN_TEST), "species_id"].value_counts()
    return [
        (int(row.species_id), row.category, row.species, int(counts.get(row.species_id, 0)))
        for row in species.sort_values("species_id").itertuples()
        if counts.get(row.species_id, 0) < minimum
    ]


def _check_species_counts(kept: pd.DataFrame, crop_rejects: pd.DataFrame, minimum: int) -> None:
    """Every species the index accepted must still have ``minimum`` train/test crops."""
    short = [(c, s, n) for _, c, s, n in _short_species(kept, crop_rejects, minimum)]
    if short:
        listing = "; ".join(f"{c}/{s}: {n}" for c, s, n in short)
        raise SpeciesganError(
            f"after dropping photos that failed to decode, {len(short)} species have fewer "
            f"than preprocess.min_images_per_species={minimum} crops: {listing} "
            "(the shards' rejects-*.parquet files say why)"
        )


def _drop_species(
    kept: pd.DataFrame, crop_rejects: pd.DataFrame, minimum: int
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``small_species: drop``: the crops of species left with enough, renumbered; rejects.

    Species ids must stay 0..K-1 (the networks' class count), so the remaining
    species keep their order and close the gaps.
    """
    short = _short_species(kept, crop_rejects, minimum)
    if not short:
        return kept, None
    gone = {species_id: n for species_id, _, _, n in short}
    dropped = kept[kept["species_id"].isin(gone)]
    reasons = [
        f"species has {gone[i]} train/test crop(s) after the crop step, fewer than "
        f"preprocess.min_images_per_species={minimum} (preprocess.small_species: drop)"
        for i in dropped["species_id"]
    ]
    rejects = dropped.loc[:, ["dataset", "file", "species"]].assign(
        reason=reasons, stage="manifest"
    )
    kept = kept[~kept["species_id"].isin(gone)].copy()
    remaining = sorted(kept["species_id"].unique())
    renumber = {old: new for new, old in enumerate(remaining)}
    kept["species_id"] = kept["species_id"].map(renumber).astype(np.int32)
    log.warning(
        "manifest: dropped %d species left with fewer than %d train/test crops: %s",
        len(short),
        minimum,
        "; ".join(f"{c}/{s}: {n}" for _, c, s, n in short[:20]),
    )
    return kept, rejects


def merge_shards(
    rows: Sequence[Path],
    index_rejects: Path,
    out: Path,
    out_rejects: Path,
    settings: dict[str, Any],
) -> None:
    """Write ``manifest.parquet`` (kept crops, sorted by shard and index) and ``rejects.parquet``.

    Each ``rows`` file's crop rejects are read from its sibling
    ``rejects-NNN.parquet`` (see ``preprocess.rejects_path``).  Settings:
    ``min_images_per_species`` and ``small_species`` (the schema's ``preprocess``
    defaults when left out), ``image_size`` (when given, the shards' must equal it).
    """
    if not rows:
        raise SpeciesganError("manifest: no shard rows files given")
    kept_frames, reject_frames = [], []
    sizes: dict[int, list[str]] = {}
    shard_hashes: dict[str, str] = {}
    for path in rows:
        kept, rejects, size, images_sha = _read_shard(Path(path))
        for shard in sorted(set(kept["shard"].tolist())) if "shard" in kept.columns else []:
            shard_hashes[str(int(shard))] = images_sha
        kept_frames.append(kept)
        reject_frames.append(rejects)
        sizes.setdefault(size, []).append(str(path))
    if len(sizes) > 1:
        raise SpeciesganError(f"shards were cropped at different sizes (stale shards?): {sizes}")
    image_size = next(iter(sizes))
    wanted = int(settings.get("image_size", image_size))
    if wanted != image_size:
        raise SpeciesganError(
            f"shard rows {rows[0]} hold {image_size}px crops but preprocess.image_size is {wanted}"
        )
    kept = pd.concat(kept_frames, ignore_index=True)
    if kept.duplicated(["shard", "index"]).any():
        raise SpeciesganError(f"the same shard appears twice among {[str(p) for p in rows]}")
    crop_rejects = pd.concat(reject_frames, ignore_index=True)
    missing = [c for c in (*MANIFEST_COLUMNS, *FLAG_COLUMNS) if c not in kept.columns]
    if missing:
        raise SpeciesganError(
            f"{rows[0]}: shard rows lack column(s) {missing} (written by an older "
            "crop-shard? rerun crop-shard)"
        )
    given = {**schema_defaults("preprocess"), **settings}
    minimum = int(given["min_images_per_species"])
    small_rejects = None
    if given["small_species"] == "drop":
        kept, small_rejects = _drop_species(kept, crop_rejects, minimum)
    else:
        _check_species_counts(kept, crop_rejects, minimum)
    columns = [*MANIFEST_COLUMNS, *FLAG_COLUMNS]
    manifest = kept.sort_values(["shard", "index"], kind="stable").loc[:, columns]
    manifest = manifest.reset_index(drop=True)
    validate_manifest(manifest, str(out))

    table = pa.Table.from_pandas(manifest, preserve_index=False)
    table = table.replace_schema_metadata(
        {
            **(table.schema.metadata or {}),
            IMAGE_SIZE_KEY: str(image_size).encode(),
            SHARDS_SHA256_KEY: json.dumps(shard_hashes, sort_keys=True).encode(),
        }
    )
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)

    earlier = _read_parquet(Path(index_rejects), "index rejects").to_pandas()
    missing = [c for c in REJECT_COLUMNS if c not in earlier.columns]
    if missing:
        raise SpeciesganError(f"{index_rejects}: missing column(s) {missing}")
    parts = [earlier.loc[:, list(REJECT_COLUMNS)], crop_rejects.loc[:, list(REJECT_COLUMNS)]]
    if small_rejects is not None:
        parts.append(small_rejects.loc[:, list(REJECT_COLUMNS)])
    merged = pd.concat(parts, ignore_index=True)
    schema = pa.schema([(c, pa.string()) for c in REJECT_COLUMNS])
    with atomic_path(out_rejects) as tmp:
        pq.write_table(pa.Table.from_pandas(merged, schema=schema, preserve_index=False), tmp)
    log.info(
        "manifest: %d crops of %d species (%s); %d rejects (%d at crop stage)",
        len(manifest),
        manifest["species_id"].nunique(),
        ", ".join(f"{k} {v}" for k, v in sorted(manifest["split"].value_counts().items())),
        len(merged),
        len(crop_rejects),
    )
    greyscale_dropped = int((crop_rejects["reason"] == GREYSCALE_REJECT).sum())
    log.info(
        "manifest: %d greyscale (infrared) crops kept, %d dropped (preprocess.greyscale)",
        int(manifest["greyscale"].sum()),
        greyscale_dropped,
    )
