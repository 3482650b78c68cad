"""Load packed crops into memory.

Training reads the whole split once (uint8, a few hundred MB even for Stanford
Dogs at 128 px) instead of decoding files every step: on a GPU node the data
then lives on the device and augmentation runs there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from speciesgan.data.preprocess import IMAGE_SIZE_KEY
from speciesgan.errors import SpeciesganError


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


LOADABLE_SPLITS = ("train", "test", "all", "ood")


def load_split(manifest: str | Path, split: str = "train") -> CropSet:
    """All crops of ``split`` in manifest order.

    "all" is train and test together.  Evaluation-only crops ("ood": camera
    locations never trained on) come only when asked for by name, so that no
    training or metric that reads "all" takes them in unawares.
    """
    if split not in LOADABLE_SPLITS:
        raise SpeciesganError(f"unknown split {split!r} (expected one of {LOADABLE_SPLITS})")
    manifest = Path(manifest)
    frame = pd.read_parquet(manifest)
    size = _image_size(manifest)
    species, categories = species_table(frame)
    if split == "all":
        rows = frame[frame["split"].isin(("train", "test"))]
    else:
        rows = frame[frame["split"] == split]
    if rows.empty:
        raise SpeciesganError(f"{manifest}: no images in split {split!r}")
    rows = rows.reset_index(drop=True)
    images: np.ndarray | None = None
    for shard, group in rows.groupby("shard", sort=True):
        path = shard_path(manifest, int(shard))
        try:
            array = np.load(path, mmap_mode="r")
        except FileNotFoundError as exc:
            raise SpeciesganError(f"{manifest}: shard file missing: {path}") from exc
        indices = group["index"].to_numpy()
        if size is None and array.ndim == 4:
            size = int(array.shape[1])
        if array.shape[1:] != (size, size, 3) or (len(indices) and indices.max() >= len(array)):
            raise SpeciesganError(
                f"{manifest}: shard file {path} holds crops of shape {array.shape}, but the "
                f"manifest wants {size}px crops up to index {indices.max()} (a stale or "
                "replaced shard file; rerun the data stages)"
            )
        if images is None:
            images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        images[group.index.to_numpy()] = array[indices]
    assert images is not None
    return CropSet(
        images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
        labels=torch.from_numpy(rows["species_id"].to_numpy(dtype=np.int64)),
        species=species,
        categories=categories,
    )
