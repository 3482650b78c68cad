"""Index -> crop shards -> manifest -> load_split, and the manifest's validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from speciesgan.data.dataset import load_split, recorded_shard_hashes
from speciesgan.data.index import index_records
from speciesgan.data.manifest import (
    manifest_image_size,
    merge_shards,
    read_manifest,
    validate_manifest,
)
from speciesgan.data.preprocess import process_shard
from speciesgan.data.sources import SourceRecord
from speciesgan.util.errors import SpeciesganError

SIZE = 24
SHARDS = 2


def colored_photo(path: Path, color: tuple[int, int, int], seed: int) -> str:
    """A JPEG of one colour with a little noise (unique bytes, predictable mean)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(-8, 9, (48, 64, 3))
    pixels = np.clip(np.array(color) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return str(path)


def build_data(tmp_path: Path, wren_photos: int = 6, corrupt_wren: int = 0) -> Path:
    """records.parquet + index rejects for two species; Wren photos may be truncated."""
    records = []
    species_list = (("Owl", (200, 40, 40), 6), ("Wren", (40, 40, 200), wren_photos))
    for k, (species, color, n) in enumerate(species_list):
        for i in range(n):
            path = colored_photo(tmp_path / "src" / species / f"{i}.jpg", color, 100 * k + i)
            if species == "Wren" and i < corrupt_wren:
                Path(path).write_bytes(Path(path).read_bytes()[:-400])  # header intact, data cut
            records.append(SourceRecord("ds", path, species, "bird", ((8, 4, 56, 44),), None))
    data = tmp_path / "results" / "data"
    index_records(
        records,
        [],
        data / "records.parquet",
        data / "index_rejects.parquet",
        {"shards": SHARDS, "min_images_per_species": 5},
        seed=0,
    )
    return data


def crop_all(data: Path) -> list[Path]:
    rows = []
    for shard in range(SHARDS):
        out_rows = data / "shards" / f"shard-{shard:03d}.parquet"
        process_shard(
            data / "records.parquet",
            shard,
            data / "shards" / f"shard-{shard:03d}.npy",
            out_rows,
            {"image_size": SIZE},
        )
        rows.append(out_rows)
    return rows


def test_pipeline_output_loads_with_load_split(tmp_path: Path) -> None:
    data = build_data(tmp_path, corrupt_wren=1, wren_photos=7)
    merge(data, crop_all(data))

    manifest = read_manifest(data / "manifest.parquet")
    assert len(manifest) == 12
    assert list(manifest[["shard", "index"]].itertuples(index=False)) == sorted(
        manifest[["shard", "index"]].itertuples(index=False)
    )
    assert manifest_image_size(data / "manifest.parquet") == SIZE
    rejects = pd.read_parquet(data / "rejects.parquet")
    assert rejects[["species", "stage"]].values.tolist() == [["Wren", "crop"]]
    assert "truncated" in rejects["reason"].iloc[0]

    every = load_split(data / "manifest.parquet", "all")
    assert every.images.shape == (12, 3, SIZE, SIZE) and every.images.dtype == torch.uint8
    assert every.species == ["Owl", "Wren"]
    # Each crop shows its species' colour: labels and pixels stayed together.
    channel_means = every.images.float().mean(dim=(2, 3))
    red_minus_blue = channel_means[:, 0] - channel_means[:, 2]
    assert ((red_minus_blue > 100) == (every.labels == 0)).all()
    manifest_path = data / "manifest.parquet"
    train, test = load_split(manifest_path, "train"), load_split(manifest_path, "test")
    assert len(train.labels) + len(test.labels) == 12
    assert set(test.labels.tolist()) == {0, 1}  # stratified: both species in test


def test_crop_rejects_can_push_a_species_below_the_minimum(tmp_path: Path) -> None:
    data = build_data(tmp_path, wren_photos=5, corrupt_wren=1)
    rows = crop_all(data)
    with pytest.raises(SpeciesganError, match=r"bird/Wren: 4"):
        merge_shards(
            rows,
            data / "index_rejects.parquet",
            data / "manifest.parquet",
            data / "rejects.parquet",
            {"image_size": SIZE, "min_images_per_species": 5},
        )
    assert not (data / "manifest.parquet").exists()


def test_stale_shards_of_another_size_are_refused(tmp_path: Path) -> None:
    data = build_data(tmp_path)
    rows = crop_all(data)
    with pytest.raises(SpeciesganError, match="image_size is 64"):
        merge_shards(
            rows,
            data / "index_rejects.parquet",
            data / "manifest.parquet",
            data / "rejects.parquet",
            {"image_size": 64},
        )


def valid_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["ds"],
            "file": ["/a.jpg"],
            "species": ["Owl"],
            "species_id": np.int32([0]),
            "category": ["bird"],
            "split": ["train"],
            "box_x0": np.int32([0]),
            "box_y0": np.int32([0]),
            "box_x1": np.int32([5]),
            "box_y1": np.int32([5]),
            "shard": np.int32([0]),
            "sha256": ["ab"],
            "index": np.int32([0]),
            "crop_x0": np.int32([0]),
            "crop_y0": np.int32([0]),
            "crop_size": np.int32([5]),
        }
    )


def test_validate_manifest_names_the_bad_column() -> None:
    validate_manifest(valid_frame())
    with pytest.raises(SpeciesganError, match="crop_size"):
        validate_manifest(valid_frame().drop(columns="crop_size"))
    with pytest.raises(SpeciesganError, match="'species_id'"):
        validate_manifest(valid_frame().astype({"species_id": float}))
    with pytest.raises(SpeciesganError, match="'split'"):
        validate_manifest(valid_frame().assign(split="val"))
    with pytest.raises(SpeciesganError, match="species ids"):
        validate_manifest(valid_frame().assign(species_id=np.int32(1)))


def test_read_manifest_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="manifest not found"):
        read_manifest(tmp_path / "manifest.parquet")


def crop_elsewhere(tmp_path: Path, size: int) -> Path:
    """The same records cropped at ``size`` in another folder (another run of crop-shard)."""
    other = build_data(tmp_path / f"run{size}")
    for shard in range(SHARDS):
        process_shard(
            other / "records.parquet",
            shard,
            other / "shards" / f"shard-{shard:03d}.npy",
            other / "shards" / f"shard-{shard:03d}.parquet",
            {"image_size": size},
        )
    return other / "shards"


def merge(data: Path, rows: list[Path]) -> None:
    merge_shards(
        rows,
        data / "index_rejects.parquet",
        data / "manifest.parquet",
        data / "rejects.parquet",
        {"image_size": SIZE, "min_images_per_species": 5},
    )


@pytest.mark.parametrize("stale", ["images_of_another_size", "images_of_another_shard"])
def test_shard_whose_files_come_from_different_runs_is_refused_naming_them(
    tmp_path: Path, stale: str
) -> None:
    """A kill between crop-shard's renames can leave new images beside old rows (or the reverse)."""
    data = build_data(tmp_path)
    rows = crop_all(data)
    images = data / "shards" / "shard-000.npy"
    if stale == "images_of_another_size":
        source = crop_elsewhere(tmp_path, 2 * SIZE) / "shard-000.npy"
    else:
        source = data / "shards" / "shard-001.npy"
    images.write_bytes(source.read_bytes())
    with pytest.raises(SpeciesganError) as info:
        merge(data, rows)
    assert str(images) in str(info.value) and str(rows[0]) in str(info.value)
    assert "crop-shard" in str(info.value)
    assert not (data / "manifest.parquet").exists()


def test_stale_rejects_file_beside_a_shard_is_refused(tmp_path: Path) -> None:
    data = build_data(tmp_path, corrupt_wren=1, wren_photos=7)
    rows = crop_all(data)
    clean = crop_elsewhere(tmp_path, SIZE)  # no corrupt photo there: no crop rejects
    for shard in range(SHARDS):
        name = f"rejects-{shard:03d}.parquet"
        (data / "shards" / name).write_bytes((clean / name).read_bytes())
    with pytest.raises(SpeciesganError, match="rejects-00"):
        merge(data, rows)


def test_loading_a_manifest_whose_shard_file_was_replaced_is_a_clear_error(
    tmp_path: Path,
) -> None:
    data = build_data(tmp_path)
    merge(data, crop_all(data))
    images = data / "shards" / "shard-000.npy"
    images.write_bytes((crop_elsewhere(tmp_path, 2 * SIZE) / "shard-000.npy").read_bytes())
    with pytest.raises(SpeciesganError, match=str(images)):
        load_split(data / "manifest.parquet", "all")
    np.save(images, np.zeros((1, SIZE, SIZE, 3), dtype=np.uint8))  # too few crops
    with pytest.raises(SpeciesganError, match=str(images)):
        load_split(data / "manifest.parquet", "all")


def test_shard_overwritten_with_crops_of_the_same_shape_is_refused_on_load(
    tmp_path: Path,
) -> None:
    """Zeros of the right shape pass every shape check: only the recorded hash tells."""
    data = build_data(tmp_path)
    merge(data, crop_all(data))
    load_split(data / "manifest.parquet", "all")  # intact: loads (and is hashed once)
    images = data / "shards" / "shard-000.npy"
    np.save(images, np.zeros_like(np.load(images)))
    with pytest.raises(SpeciesganError, match="changed after") as error:
        load_split(data / "manifest.parquet", "all")
    assert str(images) in str(error.value)


def test_manifest_records_each_shards_hash_and_recropping_changes_it(tmp_path: Path) -> None:
    """Other pixels in the same rows (recropped photos) change the manifest's recorded hashes."""
    data = build_data(tmp_path)
    merge(data, crop_all(data))
    manifest = data / "manifest.parquet"
    before = recorded_shard_hashes(manifest)
    assert before is not None and sorted(before) == list(range(SHARDS))
    rows_before = read_manifest(manifest)
    for k, species in enumerate(("Owl", "Wren")):  # the same photos, other pixels
        for i in range(6):
            colored_photo(tmp_path / "src" / species / f"{i}.jpg", (90, 160, 90), 7 + 10 * k + i)
    merge(data, crop_all(data))
    after = recorded_shard_hashes(manifest)
    assert after is not None and all(after[s] != before[s] for s in before)
    pd.testing.assert_frame_equal(read_manifest(manifest), rows_before)  # rows unchanged
    load_split(manifest, "all")
