"""The records table: splits, duplicates, boxes, species ids, shards, early failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from speciesgan.data.index import (
    build_index,
    index_records,
    parse_source_arg,
    parse_sources_json,
)
from speciesgan.data.sources import Reject, SourceRecord
from speciesgan.util.errors import SpeciesganError


def photo(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> str:
    """A small PNG with unique content (distinct SHA-256 per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def species_records(
    root: Path,
    species: str,
    n: int,
    seed: int,
    category: str = "bird",
    split: str | None = None,
    boxes=(),
) -> list[SourceRecord]:
    return [
        SourceRecord(
            "ds",
            photo(root / species / f"{i:02d}.png", seed * 1000 + i),
            species,
            category,
            tuple(boxes),
            split,
        )
        for i in range(n)
    ]


def run_index(tmp_path: Path, records, settings=None, seed: int = 0, rejects=(), name="records"):
    out, out_rejects = tmp_path / f"{name}.parquet", tmp_path / f"{name}-rejects.parquet"
    index_records(records, list(rejects), out, out_rejects, settings or {}, seed)
    return pd.read_parquet(out), pd.read_parquet(out_rejects), out


def test_parse_source_arg_keeps_colons_in_the_root() -> None:
    assert parse_source_arg("dogs:stanford_dogs:dog:/data/a:b") == (
        "dogs",
        "stanford_dogs",
        "dog",
        Path("/data/a:b"),
    )
    with pytest.raises(SpeciesganError, match="NAME:FORMAT:CATEGORY:ROOT"):
        parse_source_arg("dogs:stanford_dogs:/data")


def test_parse_sources_json_keeps_every_character_of_category_and_root() -> None:
    text = (
        '[{"name": "dogs", "format": "table", "category": "big:cat $(x)",'
        ' "root": "/data/a:b \'c\'/list.csv"}]'
    )
    assert parse_sources_json(text) == [
        ("dogs", "table", "big:cat $(x)", Path("/data/a:b 'c'/list.csv"))
    ]
    empty_name = '[{"name": "", "format": "cub", "category": "bird", "root": "r"}]'
    for bad in ("[]", "{}", '[{"name": "dogs"}]', "not json", empty_name):
        with pytest.raises(SpeciesganError, match="--sources"):
            parse_sources_json(bad)


def test_build_index_names_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="dataset x"):
        build_index(
            [("x", "nope", "dog", tmp_path)], tmp_path / "r.parquet", tmp_path / "j.parquet", {}, 0
        )


def test_splits_are_stratified_and_deterministic(tmp_path: Path) -> None:
    records = species_records(tmp_path, "Owl", 10, 1) + species_records(tmp_path, "Wren", 15, 2)
    frame, _, out_a = run_index(tmp_path, records, {"test_fraction": 0.2}, seed=3, name="a")
    assert frame.groupby("species")["split"].apply(lambda s: (s == "test").sum()).to_dict() == {
        "Owl": 2,
        "Wren": 3,
    }
    _, _, out_b = run_index(tmp_path, records, {"test_fraction": 0.2}, seed=3, name="b")
    assert out_a.read_bytes() == out_b.read_bytes()
    other, _, _ = run_index(tmp_path, records, {"test_fraction": 0.2}, seed=4, name="c")
    assert other["split"].tolist() != frame["split"].tolist()


def test_official_split_is_kept(tmp_path: Path) -> None:
    records = species_records(tmp_path, "Owl", 6, 1, split="test") + species_records(
        tmp_path, "Owl2", 6, 2, split="train"
    )
    frame, _, _ = run_index(tmp_path, records)
    assert set(frame.loc[frame.species == "Owl", "split"]) == {"test"}
    assert set(frame.loc[frame.species == "Owl2", "split"]) == {"train"}


def test_duplicates_keep_the_first_copy_and_conflicting_labels_drop_all(tmp_path: Path) -> None:
    records = species_records(tmp_path, "Owl", 6, 1) + species_records(tmp_path, "Wren", 6, 2)
    original = records[0].image_path  # Owl/00.png
    copy = tmp_path / "Owl" / "zz-copy.png"
    shutil.copy(original, copy)
    conflict = tmp_path / "Wren" / "zz-owl.png"
    shutil.copy(records[1].image_path, conflict)  # Owl/01.png, labelled Wren
    extra = [
        SourceRecord("ds", str(copy), "Owl", "bird", (), "test"),
        SourceRecord("ds", str(conflict), "Wren", "bird", (), None),
    ]
    frame, rejects, _ = run_index(tmp_path, records + extra)
    assert frame["sha256"].is_unique and frame["file"].is_unique
    assert original in set(frame["file"]) and str(copy) not in set(frame["file"])
    by_file = rejects.set_index("file")
    assert by_file.loc[str(copy), "reason"] == f"duplicate of {original}"
    assert records[1].image_path not in set(frame["file"]) and str(conflict) not in set(
        frame["file"]
    )
    assert "several species" in by_file.loc[str(conflict), "reason"]
    assert (rejects["stage"] == "index").all()


def test_too_few_crops_fails_early_naming_the_species(tmp_path: Path) -> None:
    records = species_records(tmp_path, "Owl", 6, 1) + species_records(tmp_path, "Rare tit", 3, 2)
    with pytest.raises(SpeciesganError, match=r"bird/Rare tit: 3 crop"):
        run_index(tmp_path, records, {"min_images_per_species": 5})
    assert not (tmp_path / "records.parquet").exists()


def test_boxes_species_ids_and_shards(tmp_path: Path) -> None:
    boxes = ((0, 0, 10, 10), (5, 5, 35, 25), (100, 100, 120, 120))  # last one outside 40x30
    records = (
        species_records(tmp_path, "Wren", 5, 1, boxes=boxes)
        + species_records(tmp_path, "Beagle", 7, 2, category="dog")
        + species_records(tmp_path, "Albatross", 5, 3)
    )
    text = tmp_path / "Wren" / "broken.png"
    text.write_text("not an image")
    records.append(SourceRecord("ds", str(text), "Wren", "bird", (), None))
    source_reject = Reject("ds", "/gone.png", "Wren", "no annotation", "source")
    frame, rejects, _ = run_index(tmp_path, records, {"shards": 3}, rejects=[source_reject])

    ids = frame.drop_duplicates("species_id").set_index("species")["species_id"].to_dict()
    assert ids == {"Albatross": 0, "Wren": 1, "Beagle": 2}  # sorted by (category, species)
    wren = frame[frame.species == "Wren"]
    assert len(wren) == 10  # two usable boxes per photo
    assert set(map(tuple, wren[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy())) == {
        (0, 0, 10, 10),
        (5, 5, 35, 25),
    }
    beagle = frame[frame.species == "Beagle"]
    assert (beagle[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy() == [0, 0, 40, 30]).all()
    assert np.bincount(frame["shard"]).tolist() == [8, 7, 7]  # balanced round-robin
    for column in ("species_id", "box_x0", "shard"):
        assert str(frame[column].dtype) == "int32"

    reasons = rejects.groupby("stage")["reason"].apply(list).to_dict()
    assert reasons["source"] == ["no annotation"]
    assert sum("outside the 40x30 image" in r for r in reasons["index"]) == 5
    assert any(r.startswith("not an image") for r in reasons["index"])

    largest, _, _ = run_index(tmp_path, records, {"box_mode": "largest"}, name="largest")
    wren = largest[largest.species == "Wren"]
    assert len(wren) == 5 and (wren["box_x1"] == 35).all()


def test_box_less_exif_rotated_photo_gets_its_displayed_size(tmp_path: Path) -> None:
    records = species_records(tmp_path, "Owl", 5, 1)
    rotated = tmp_path / "Owl" / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 20), (9, 9, 9)).save(rotated, exif=exif.tobytes())
    records.append(SourceRecord("ds", str(rotated), "Owl", "bird", (), None))
    frame, _, _ = run_index(tmp_path, records)
    row = frame.set_index("file").loc[str(rotated)]
    assert (row.box_x1, row.box_y1) == (20, 60)


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    records = species_records(tmp_path, "Owl", 5, 1)
    with pytest.raises(SpeciesganError, match="box_mode"):
        run_index(tmp_path, records, {"box_mode": "smallest"})
    with pytest.raises(SpeciesganError, match="test_fraction"):
        run_index(tmp_path, records, {"test_fraction": 1.5})
