"""Crop one shard of the records table into a packed uint8 array.

Shards are independent Snakemake jobs, so a cluster crops them in parallel and a
failed or preempted job redoes only its own slice.  Within a job a thread pool
does the work: Pillow releases the GIL while it decodes and resamples.

Per photo: open lazily, read the EXIF orientation, ask the JPEG decoder for the
smallest DCT scale (1/2, 1/4, 1/8) that still gives at least ``image_size``
pixels across the crop (most of the speed-up: far less to decode and resample),
decode, rotate to the displayed orientation, convert to RGB and resample the
crop square.  Boxes in the records are in *displayed* coordinates (after the
EXIF orientation), which is how annotators saw and drew them.

Outputs (named by the caller, except the rejects file):
- ``shard-NNN.npy``: uint8 ``[N, S, S, 3]``, the kept crops in records order;
- ``shard-NNN.parquet``: the manifest rows of the kept crops: the records
  columns plus ``index`` (row in the ``.npy``), ``crop_x0, crop_y0,
  crop_size`` and ``greyscale`` (the photo's channels are nearly equal: an
  infrared night frame; see ``greyscale``); the crop size is in the parquet metadata, with the SHA-256 of
  the images and rejects files (see ``SHARD_SEAL_KEYS``);
- ``rejects-NNN.parquet`` next to it (``rejects_path(out_rows)``): one row per
  record that could not be cropped (dataset, file, species, reason, stage,
  plus species_id and category so the manifest step can count every species).

The three files are renamed into place one by one, the rows file last: a job
killed in between leaves new images beside old rows (or the reverse), which
the sums in the rows file expose when the manifest step reads the shard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageFile, ImageOps

from speciesgan.data.crop import (
    PAD_MODES,
    RESAMPLE_FILTERS,
    Box,
    Square,
    clip_box,
    crop_region,
    square_crop_box,
)
from speciesgan.data.download import sha256_of
from speciesgan.data.greyscale import is_greyscale
from speciesgan.data.jpeg_end import jpeg_end_problem
from speciesgan.util.atomic import atomic_path
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress
from speciesgan.util.schema_defaults import schema_defaults

log = logging.getLogger(__name__)

IMAGE_SIZE_KEY = b"speciesgan.image_size"
"""Parquet metadata key holding the crop size (shard rows and the manifest)."""
IMAGES_SHA256_KEY = b"speciesgan.images_sha256"
REJECTS_SHA256_KEY = b"speciesgan.rejects_sha256"
SHARD_SEAL_KEYS = (IMAGES_SHA256_KEY, REJECTS_SHA256_KEY)
"""Rows-file metadata tying a shard's three files to one crop-shard run.

The images file itself is not named (that would make equal shards differ by
their file names); readers find it as ``images_path(rows)``.
"""
SHARDS_SHA256_KEY = b"speciesgan.shards_sha256"
"""Manifest metadata: JSON ``{shard number: SHA-256 of its images file}``.  Loading
checks each shard file against it, and a GAN checkpoint's identity includes it, so
crops replaced after the manifest (or recropped with other settings into the same
rows) are noticed instead of trained on."""


EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # width and height swap when displayed
WHITE = (255, 255, 255)
NO_BOX = (-1, -1, -1, -1)  # records value for "no box known": crop the whole photo

JPEG_FORMATS = ("JPEG", "MPO")  # MPO: camera multi-picture files, first frame is a JPEG
GREY_FILL = frozenset((127, 128))
"""Sample values libjpeg gives blocks it had no data for: 128 (127 in inverted Adobe CMYK)."""

DEFAULT_IMAGE_SIZE = 128
"""Crop side when the settings leave ``image_size`` out (direct callers only: the
config requires it, and the schema has no default for it)."""
GREYSCALE_ACTIONS = ("keep", "drop")
GREYSCALE_REJECT = "greyscale (infrared) photo; preprocess.greyscale: drop"
# The other settings' defaults are the schema's (preprocess section).  min_box_size,
# the smallest photo side and box (long side) worth a crop in source pixels: below
# it the crop is mostly invented by the resampler (a 1-pixel box blown up to 128 px
# is a flat square that trains the GAN on nothing); the default keeps every animal
# of the demo and smoke configs and every real annotation we have seen.


class CropRejected(Exception):
    """One photo (or box) cannot be cropped; the message becomes the reject reason."""


@dataclass(frozen=True)
class Crop:
    """A finished crop and the square it was taken from (source pixels, displayed)."""

    pixels: np.ndarray
    square: Square
    greyscale: bool = False  # the whole photo's channels are (nearly) equal


def orientation_of(image: Image.Image) -> int:
    """EXIF orientation (1..8), 1 when absent or unreadable.

    A corrupt EXIF block is common in phone photos and says nothing about the
    pixels, so it must not cost the photo.
    """
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - any EXIF parse failure means "no orientation"
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparent parts become white.

    White rather than black because cut-out animal photos (the usual source of
    alpha) are shown on white.  16-bit modes keep their top 8 bits instead of
    being clipped at 255 (which would turn them white).
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.int64)
        top_bits = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(top_bits).convert("RGB")
    if mode == "F":
        values = np.clip(np.nan_to_num(np.asarray(image)), 0, 255).astype(np.uint8)
        return Image.fromarray(values).convert("RGB")
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _check_size(box: Box, displayed_w: int, displayed_h: int, min_box_size: int) -> None:
    """Reject photos and boxes too small to give a crop of real pixels.

    The box's long side is what matters: it is the side of the square that is
    resampled to the crop size (a thin box still gets a square of real photo).
    """
    if min(displayed_w, displayed_h) < min_box_size:
        raise CropRejected(
            f"photo {displayed_w}x{displayed_h} is smaller than "
            f"preprocess.min_box_size={min_box_size} px"
        )
    width, height = box[2] - box[0], box[3] - box[1]
    if max(width, height) < min_box_size:
        raise CropRejected(
            f"box {tuple(box)} is {width}x{height} px, smaller than "
            f"preprocess.min_box_size={min_box_size} px"
        )


def _displayed_box(box: Box, displayed_w: int, displayed_h: int) -> Box:
    """The record's box, or the whole photo when the record has none (-1)."""
    if tuple(box) == NO_BOX:
        return 0, 0, displayed_w, displayed_h
    clipped = clip_box(box, displayed_w, displayed_h)
    if clipped is None:
        raise CropRejected(f"box {box} lies outside the {displayed_w}x{displayed_h} image")
    return clipped


def _request_draft(image: Image.Image, side: int, size: int) -> float:
    """Ask a JPEG to decode at the coarsest scale that keeps ``size`` px across ``side``.

    libjpeg scales by 1/2, 1/4 or 1/8 inside the inverse DCT, which is both a
    good low-pass filter and far less work than decoding every pixel.  Pillow
    picks its scale as ``min(W // w, H // h)`` for a requested ``(w, h)``, so
    the request is the stored size floor-divided by the wanted factor (asking
    for the ceiling silently falls back to full scale).  Returns the factor
    the decoder will use (1 when no reduction applies).
    """
    if image.format != "JPEG":
        return 1.0
    factor = next((f for f in (8, 4, 2) if side // f >= size), 1)
    if factor == 1:
        return 1.0
    stored_w, stored_h = image.size
    result = image.draft("RGB", (stored_w // factor, stored_h // factor))
    if result is None:
        return 1.0
    _, reduced = result
    return stored_w / reduced[2]


def _ends_in_grey_fill(image: Image.Image) -> bool:
    """Whether a decoded JPEG's bottom row is entirely the decoder's fill for missing data.

    A JPEG cut short and closed with an end marker (FF D9) decodes without any
    error: libjpeg warns, Pillow silences the warning, and every block after the
    cut is zero, i.e. flat mid-grey (128 in every channel).  Baseline JPEGs are
    coded top to bottom, so any cut before the last row of blocks leaves the
    whole bottom row at exactly that value, while a real photo's bottom row is
    practically never one constant 128 across (sensor noise, chroma rounding).
    Checking one row costs nothing next to the decode.
    """
    width, height = image.size
    row = image.crop((0, height - 1, width, height)).tobytes()
    first = row[:1]
    return bool(row) and first[0] in GREY_FILL and row.count(first) == len(row)


def crop_photo(
    path: str,
    box: Box,
    size: int,
    pad_mode: str,
    resample: str | None = None,
    min_box_size: int | None = None,
) -> Crop:
    """Decode ``path`` and crop the square around ``box`` (displayed coordinates).

    Raises CropRejected for anything wrong with the file: missing, not an
    image, truncated (Pillow refuses partial data because LOAD_TRUNCATED_IMAGES
    stays False; a JPEG whose data stops before its end marker, e.g. padded with
    zeros, is caught by ``jpeg_end_problem``, and one closed early by an end
    marker by its grey fill), a box outside the photo, or a photo or box under ``min_box_size``.
    ``resample`` and ``min_box_size`` left out (None) are the schema's ``preprocess`` defaults.
    """
    if resample is None or min_box_size is None:
        defaults = schema_defaults("preprocess")
        resample = defaults["resample"] if resample is None else resample
        min_box_size = defaults["min_box_size"] if min_box_size is None else min_box_size
    try:
        data = Path(path).read_bytes()
        problem = jpeg_end_problem(data)
        if problem:
            raise CropRejected(problem)
        with Image.open(path) as image:  # by name: decoder messages name the file
            orientation = orientation_of(image)
            stored_w, stored_h = image.size
            if orientation in ROTATED_ORIENTATIONS:
                displayed_w, displayed_h = stored_h, stored_w
            else:
                displayed_w, displayed_h = stored_w, stored_h
            displayed_box = _displayed_box(box, displayed_w, displayed_h)
            _check_size(displayed_box, displayed_w, displayed_h, min_box_size)
            sx, sy, side = square_crop_box(displayed_box, displayed_w, displayed_h)
            scale = _request_draft(image, side, size)
            image.load()
            if image.format in JPEG_FORMATS and _ends_in_grey_fill(image):
                raise CropRejected(
                    "truncated JPEG data: the decoder filled the missing rows with grey"
                )
            if orientation != 1:
                ImageOps.exif_transpose(image, in_place=True)
            rgb = to_rgb(image)
    except CropRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
        raise CropRejected(f"cannot decode image: {type(exc).__name__}: {exc}") from exc
    region = (sx / scale, sy / scale, (sx + side) / scale, (sy + side) / scale)
    pixels = crop_region(rgb, region, size, pad_mode, resample)
    return Crop(pixels, (sx, sy, side), is_greyscale(rgb))


def _read_shard_rows(records: Path, shard: int) -> pa.Table:
    try:
        table = pq.read_table(records)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SpeciesganError(f"{records}: cannot read the records table: {exc}") from exc
    needed = {"dataset", "file", "species", "species_id", "category", "shard"}
    needed |= {"box_x0", "box_y0", "box_x1", "box_y1"}
    missing = sorted(needed - set(table.column_names))
    if missing:
        raise SpeciesganError(f"{records}: records table lacks columns {missing}")
    return table.filter(pc.equal(table["shard"], shard))


def _crop_results(
    rows: pa.Table, size: int, pad_mode: str, resample: str, min_box_size: int, threads: int
) -> Iterator[Crop | CropRejected]:
    """Crops (or rejections) in row order, computed by ``threads`` workers."""
    files = rows["file"].to_pylist()
    boxes = list(
        zip(*(rows[c].to_pylist() for c in ("box_x0", "box_y0", "box_x1", "box_y1")), strict=True)
    )

    def one(i: int) -> Crop | CropRejected:
        try:
            return crop_photo(files[i], boxes[i], size, pad_mode, resample, min_box_size)
        except CropRejected as exc:
            return exc

    if threads <= 1:  # no hand-off between threads: measurably faster on one core
        yield from map(one, range(len(files)))
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        yield from pool.map(one, range(len(files)))


def process_shard(
    records: Path,
    shard: int,
    out_images: Path,
    out_rows: Path,
    settings: dict[str, Any],
    threads: int = 1,
) -> None:
    """Crop every record of ``shard``: ``out_images`` (.npy), ``out_rows`` and its rejects file.

    Settings: ``image_size`` (``DEFAULT_IMAGE_SIZE``), ``pad_mode`` ("edge",
    "reflect" or "constant"), ``resample`` ("lanczos", "bicubic" or "bilinear"),
    ``min_box_size``, ``greyscale`` ("keep", or "drop": greyscale/infrared photos
    become rejects); those left out are the schema's ``preprocess`` defaults.  The
    result does not depend on ``threads``.  The manifest step looks for the images
    as ``images_path(out_rows)``.
    """
    settings = {**schema_defaults("preprocess"), **settings}
    size = int(settings.get("image_size", DEFAULT_IMAGE_SIZE))
    pad_mode = str(settings["pad_mode"])
    if pad_mode not in PAD_MODES:
        raise SpeciesganError(f"preprocess.pad_mode must be one of {PAD_MODES}, not {pad_mode!r}")
    resample = str(settings["resample"])
    if resample not in RESAMPLE_FILTERS:
        raise SpeciesganError(
            f"preprocess.resample must be one of {tuple(RESAMPLE_FILTERS)}, not {resample!r}"
        )
    if size < 1:
        raise SpeciesganError(f"preprocess.image_size must be positive, not {size}")
    min_box_size = int(settings["min_box_size"])
    if min_box_size < 1:
        raise SpeciesganError(f"preprocess.min_box_size must be at least 1, not {min_box_size}")
    greyscale = str(settings["greyscale"])
    if greyscale not in GREYSCALE_ACTIONS:
        raise SpeciesganError(
            f"preprocess.greyscale must be one of {GREYSCALE_ACTIONS}, not {greyscale!r}"
        )
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Something in this process switched on Pillow's partial decoding; a
        # half-grey crop must never be accepted as a photo.
        log.warning("Pillow LOAD_TRUNCATED_IMAGES was on; switching it off")
        ImageFile.LOAD_TRUNCATED_IMAGES = False

    rows = _read_shard_rows(Path(records), shard)
    count = rows.num_rows
    if count == 0:
        log.warning("%s: shard %d has no records", records, shard)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    squares: list[tuple[int, int, int]] = []
    grey_flags: list[bool] = []
    grey_count = 0
    kept_rows: list[int] = []
    rejected_rows: list[int] = []
    reasons: list[str] = []
    results = _crop_results(rows, size, pad_mode, resample, min_box_size, threads)
    for i, result in enumerate(progress(results, total=count, desc=f"shard {shard}")):
        if isinstance(result, CropRejected):
            rejected_rows.append(i)
            reasons.append(str(result))
            continue
        grey_count += result.greyscale
        if result.greyscale and greyscale == "drop":
            rejected_rows.append(i)
            reasons.append(GREYSCALE_REJECT)
            continue
        images[len(kept_rows)] = result.pixels
        kept_rows.append(i)
        squares.append(result.square)
        grey_flags.append(result.greyscale)
    if rejected_rows:
        log.info("shard %d: %d of %d crops rejected", shard, len(rejected_rows), count)
    if grey_count:
        action = "dropped" if greyscale == "drop" else "kept"
        log.info("shard %d: %d greyscale (infrared) crops, %s", shard, grey_count, action)

    # Images, then rejects, then the rows that carry both files' sums: the rows
    # file appearing is what marks the shard complete.
    with atomic_path(out_images) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, images[: len(kept_rows)])
        images_sha = sha256_of(tmp)
    rejects_sha = _write_parquet(
        _crop_rejects_table(rows.take(pa.array(rejected_rows, type=pa.int64())), reasons),
        rejects_path(out_rows),
    )
    kept = _manifest_rows_table(
        rows.take(pa.array(kept_rows, type=pa.int64())), squares, grey_flags, size
    )
    seal = {
        IMAGES_SHA256_KEY: images_sha.encode(),
        REJECTS_SHA256_KEY: rejects_sha.encode(),
    }
    _write_parquet(kept.replace_schema_metadata({**kept.schema.metadata, **seal}), out_rows)


def images_path(out_rows: str | Path) -> Path:
    """The images file the manifest step expects beside a shard's rows: same name, ``.npy``."""
    return Path(out_rows).with_suffix(".npy")


def rejects_path(out_rows: str | Path) -> Path:
    """The crop rejects file beside a shard's rows: ``shard-007.parquet`` -> ``rejects-007.parquet``."""
    out_rows = Path(out_rows)
    return out_rows.with_name("rejects-" + out_rows.name.removeprefix("shard-"))


def _manifest_rows_table(
    kept: pa.Table, squares: list[tuple[int, int, int]], greyscale: list[bool], size: int
) -> pa.Table:
    columns = np.array(squares, dtype=np.int32).reshape(-1, 3)
    table = kept.append_column("index", pa.array(np.arange(kept.num_rows, dtype=np.int32)))
    for j, name in enumerate(("crop_x0", "crop_y0", "crop_size")):
        table = table.append_column(name, pa.array(columns[:, j], type=pa.int32()))
    table = table.append_column("greyscale", pa.array(greyscale, type=pa.bool_()))
    metadata = {**(table.schema.metadata or {}), IMAGE_SIZE_KEY: str(size).encode()}
    return table.replace_schema_metadata(metadata)


def _crop_rejects_table(rejected: pa.Table, reasons: list[str]) -> pa.Table:
    return pa.table(
        {
            "dataset": rejected["dataset"],
            "file": rejected["file"],
            "species": rejected["species"],
            "reason": pa.array(reasons, type=pa.string()),
            "stage": pa.array(["crop"] * rejected.num_rows, type=pa.string()),
            "species_id": rejected["species_id"],
            "category": rejected["category"],
        }
    )


def _write_parquet(table: pa.Table, out: Path) -> str:
    """Write ``table`` atomically; return the SHA-256 of the file written."""
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
        return sha256_of(tmp)
