"""Load packed crops into memory, or map them.

Training reads the whole split once (uint8, a few hundred MB even for Stanford
Dogs at 128 px) instead of decoding files every step: on a GPU node the data
then lives on the device and augmentation runs there.

``open_split`` leaves the crops in their memory-mapped shard files and gathers
rows on demand: the processes of a multi-rank run on one node then share one
copy in the page cache instead of each holding its own, and filling a GPU needs
no host copy of the whole split.  ``load_split`` gathers a whole split from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from speciesgan.data.download import sha256_of
from speciesgan.data.preprocess import IMAGE_SIZE_KEY, SHARDS_SHA256_KEY
from speciesgan.util.errors import SpeciesganError


@dataclass
class CropSet:
    """A split's crops: ``images`` uint8 [N, 3, S, S], ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    species: list[str]  # all species of the run, indexed by species_id
    categories: list[str]  # category of each species, same order

    @property
    def num_classes(self) -> int:
        return len(self.species)


def shard_path(manifest: Path, shard: int) -> Path:
    """Where shard ``shard``'s packed array lives, next to the manifest."""
    return Path(manifest).parent / "shards" / f"shard-{shard:03d}.npy"


def species_table(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Species names and categories in species_id order (ids are 0..K-1)."""
    table = frame.drop_duplicates("species_id").sort_values("species_id")
    ids = table["species_id"].tolist()
    if ids != list(range(len(ids))):
        raise SpeciesganError(f"species ids are not 0..{len(ids) - 1}: {ids[:10]}...")
    return table["species"].tolist(), table["category"].tolist()


def _image_size(manifest: Path) -> int | None:
    """The crop size in the manifest's metadata, to check each shard file against.

    A manifest written by other tools may lack it: then the first shard's crop
    size is the one every other shard must match.
    """
    metadata = pq.read_schema(manifest).metadata or {}
    return int(metadata[IMAGE_SIZE_KEY]) if IMAGE_SIZE_KEY in metadata else None


def recorded_shard_hashes(manifest: str | Path) -> dict[int, str] | None:
    """Shard number -> SHA-256 of its images file, as the manifest step recorded them.

    None for a manifest written by other tools (or before the hashes were recorded):
    its shards cannot be checked.
    """
    metadata = pq.read_schema(manifest).metadata or {}
    if SHARDS_SHA256_KEY not in metadata:
        return None
    try:
        recorded = json.loads(metadata[SHARDS_SHA256_KEY])
        return {int(shard): str(sha) for shard, sha in recorded.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise SpeciesganError(
            f"{manifest}: damaged {SHARDS_SHA256_KEY.decode()} metadata ({exc}); rerun the "
            "manifest step"
        ) from exc


def shard_hashes(manifest: str | Path) -> dict[int, str]:
    """Shard number -> SHA-256 of the crops a run on ``manifest`` reads.

    The recorded hashes when the manifest has them (``open_split`` holds the files
    to them), else the shard files' own, so that the crops count even in a manifest
    made by other tools.
    """
    recorded = recorded_shard_hashes(manifest)
    if recorded is not None:
        return recorded
    shards = pq.read_table(manifest, columns=["shard"]).column("shard").to_pylist()
    hashes = {}
    for shard in sorted(set(shards)):
        path = shard_path(Path(manifest), int(shard))
        if not path.is_file():
            raise SpeciesganError(f"{manifest}: shard file missing: {path}")
        hashes[int(shard)] = _file_hash(path)
    return hashes


def _file_hash(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path)
    return _VERIFIED[key]


_VERIFIED: dict[tuple[str, int, int, int], str] = {}
"""(path, inode, size, mtime) -> SHA-256 of shard files hashed by this process: each
file is read in full once per process, and again only if it changes."""


def verify_shard(manifest: Path, path: Path, expected: str) -> None:
    """Raise unless shard file ``path`` is the one ``manifest`` was made from."""
    actual = _file_hash(path)
    if actual != expected:
        raise SpeciesganError(
            f"{path}: shard images changed after {manifest} was made (SHA-256 "
            f"{actual[:12]}..., recorded {expected[:12]}...); rerun the data stages "
            "(crop_shard and manifest) instead of training or scoring on other crops"
        )


GATHER_CHUNK = 1024
"""Crops copied at a time when a whole split is gathered (bounds the extra memory)."""


@dataclass
class MappedSplit:
    """A split's crops left in their memory-mapped shard files, gathered on demand."""

    shards: list[np.ndarray]  # memory-mapped uint8 [n, S, S, 3], one per shard file used
    shard_of: np.ndarray  # int64 [N]: which of ``shards`` holds crop i
    row_of: np.ndarray  # int64 [N]: its row there
    labels: torch.Tensor  # int64 [N]
    species: list[str]
    categories: list[str]
    image_size: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def gather(self, index: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Crops ``index`` as contiguous uint8 [n, 3, S, S], equal to ``load_split``'s rows."""
        index = np.asarray(index, dtype=np.int64)
        size = self.image_size
        out = np.empty((len(index), size, size, 3), dtype=np.uint8)
        shard_of, rows = self.shard_of[index], self.row_of[index]
        for shard in np.unique(shard_of):
            pick = shard_of == shard
            out[pick] = self.shards[int(shard)][rows[pick]]
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def gather_all(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every crop, in order, on ``device``, copied chunk by chunk (no second full copy)."""
        size = self.image_size
        images = torch.empty((len(self), 3, size, size), dtype=torch.uint8, device=device)
        for start in range(0, len(self), GATHER_CHUNK):
            stop = min(start + GATHER_CHUNK, len(self))
            images[start:stop] = self.gather(np.arange(start, stop)).to(device)
        return images


LOADABLE_SPLITS = ("train", "test", "all", "ood")


def open_split(manifest: str | Path, split: str = "train") -> MappedSplit:
    """The crops of ``split``, memory-mapped, in manifest order.

    "all" is train and test together.  Evaluation-only crops ("ood": camera
    locations never trained on) come only when asked for by name, so that no
    training or metric that reads "all" takes them in unawares.
    """
    if split not in LOADABLE_SPLITS:
        raise SpeciesganError(f"unknown split {split!r} (expected one of {LOADABLE_SPLITS})")
    manifest = Path(manifest)
    frame = pd.read_parquet(manifest)
    size = _image_size(manifest)
    hashes = recorded_shard_hashes(manifest)
    species, categories = species_table(frame)
    if split == "all":
        rows = frame[frame["split"].isin(("train", "test"))]
    else:
        rows = frame[frame["split"] == split]
    if rows.empty:
        raise SpeciesganError(f"{manifest}: no images in split {split!r}")
    rows = rows.reset_index(drop=True)
    shards: list[np.ndarray] = []
    shard_of = np.empty(len(rows), dtype=np.int64)
    row_of = rows["index"].to_numpy(dtype=np.int64)
    for shard, group in rows.groupby("shard", sort=True):
        path = shard_path(manifest, int(shard))
        try:
            array = np.load(path, mmap_mode="r")
        except FileNotFoundError as exc:
            raise SpeciesganError(f"{manifest}: shard file missing: {path}") from exc
        if hashes is not None:
            if int(shard) not in hashes:
                raise SpeciesganError(
                    f"{manifest}: no recorded SHA-256 for shard {int(shard)} (damaged "
                    "manifest?); rerun the manifest step"
                )
            verify_shard(manifest, path, hashes[int(shard)])
        indices = group["index"].to_numpy()
        if size is None and array.ndim == 4:
            size = int(array.shape[1])
        if array.shape[1:] != (size, size, 3) or (len(indices) and indices.max() >= len(array)):
            raise SpeciesganError(
                f"{manifest}: shard file {path} holds crops of shape {array.shape}, but the "
                f"manifest wants {size}px crops up to index {indices.max()} (a stale or "
                "replaced shard file; rerun the data stages)"
            )
        shard_of[group.index.to_numpy()] = len(shards)
        shards.append(array)
    assert size is not None
    return MappedSplit(
        shards=shards,
        shard_of=shard_of,
        row_of=row_of,
        labels=torch.from_numpy(rows["species_id"].to_numpy(dtype=np.int64)),
        species=species,
        categories=categories,
        image_size=int(size),
    )


def load_split(manifest: str | Path, split: str = "train") -> CropSet:
    """All crops of ``split`` (see ``open_split``) in manifest order, in memory."""
    mapped = open_split(manifest, split)
    return CropSet(
        images=mapped.gather_all(),
        labels=mapped.labels,
        species=mapped.species,
        categories=mapped.categories,
    )
