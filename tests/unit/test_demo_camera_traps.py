"""The camera-trap demo: a WILDS iwildcam_v2.0 archive and MegaDetector file that the real
reader parses into records and rejects covering every camera-trap case, deterministically."""

from __future__ import annotations

import csv
import gzip
import json
import tarfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from speciesgan.cli import main
from speciesgan.config import demo_key, load_config, validate_config
from speciesgan.data.demo_camera_traps import (
    ARCHIVE,
    DETECTIONS,
    OOD_LOCATIONS,
    tail_counts,
    write_camera_trap_demo,
)
from speciesgan.data.extract import extract_archives
from speciesgan.data.greyscale import is_greyscale
from speciesgan.data.sources import reader
from speciesgan.util.errors import SpeciesganError

REPO = Path(__file__).resolve().parents[2]
SMALL = {"species_per_dataset": 5, "images_per_species": 16, "min_size": 128, "max_size": 160}
MIN_BOX_SIDE = 32  # preprocess.min_box_size's default: every animal box must make a crop


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The written files, extracted with the real extractor, read by the real reader."""
    out = tmp_path_factory.mktemp("cams")
    archive, detections = write_camera_trap_demo(out / "files", seed=3, **SMALL)
    extract_archives([archive], out / "extracted")
    base = out / "extracted"
    with open(base / "metadata.csv", newline="") as fh:
        rows = {row["filename"]: row for row in csv.DictReader(fh)}
    entries = {
        Path(e["file"]).name: e for e in json.loads(detections.read_text())["images"]
    }  # fmt: skip
    records, rejects = reader("demo_iwildcam")(
        base, "cams", "mammal", options={"detections": str(detections)}
    )
    return {
        "files": (archive, detections),
        "base": base,
        "rows": rows,
        "entries": entries,
        "records": {Path(r.image_path).name: r for r in records},
        "rejects": {Path(r.image_path).name: r.reason for r in rejects},
    }


def test_files_have_the_wilds_and_megadetector_layouts(collection) -> None:
    archive, detections = collection["files"]
    assert (
        (archive.name, detections.name)
        == (ARCHIVE, DETECTIONS)
        == (
            "iwildcam_v2.0.tar.gz",
            "megadetector_results.json",
        )
    )
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[:2] == ["categories.csv", "metadata.csv"]
    assert all(n == "train" or n.startswith("train/") for n in names[2:])
    row = next(iter(collection["rows"].values()))
    for column in ("split", "location_remapped", "sequence_remapped", "y", "filename", "datetime"):
        assert column in row
    document = json.loads(detections.read_text())
    assert list(document) == ["images", "detection_categories", "info"]
    assert document["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert collection["entries"].keys() == collection["rows"].keys()  # every frame ran


def _reason_kinds(rejects: dict[str, str]) -> Counter[str]:
    kinds = Counter()
    for reason in rejects.values():
        for kind in ("labelled empty", "only person", "only vehicle", "below confidence"):
            if kind in reason:
                kinds[kind] += 1
                break
        else:
            kinds[reason] += 1
    return kinds


def test_every_camera_trap_case_becomes_a_record_or_a_reject(collection) -> None:
    rows, entries, records = collection["rows"], collection["entries"], collection["records"]
    kinds = _reason_kinds(collection["rejects"])
    assert set(kinds) == {
        "labelled empty", "only person", "only vehicle", "below confidence", "no animal detection",
    }  # fmt: skip
    for name, reason in collection["rejects"].items():
        if "labelled empty" in reason:  # empty frames: label 0 and no detection at all
            assert rows[name]["y"] == "0" and entries[name]["detections"] == []
    several = [r for r in records.values() if len(r.relative_boxes) >= 2]
    assert several
    # low-confidence noise rides along with kept frames, and is not a box
    assert any(len([d for d in entries[n]["detections"] if d["conf"] < 0.8]) > 0 for n in records)
    assert all(
        len(r.relative_boxes) == sum(d["conf"] >= 0.8 for d in entries[n]["detections"])
        for n, r in records.items()
    )
    # out-of-distribution cameras: WILDS val/test locations, kept as ood
    ood_locations = {str(n) for locs in OOD_LOCATIONS.values() for n in locs}
    ood = [n for n, r in records.items() if r.split == "ood"]
    assert ood and {rows[n]["location_remapped"] for n in ood} <= ood_locations
    assert {rows[n]["split"] for n in ood} == {"val", "test"}
    assert all(rows[n]["location_remapped"] not in ood_locations
               for n, r in records.items() if r.split != "ood")  # fmt: skip


def test_sequences_straddling_splits_end_up_on_one_side(collection) -> None:
    rows, records = collection["rows"], collection["records"]
    wilds, kept = defaultdict(set), defaultdict(set)
    for name, row in rows.items():
        wilds[row["sequence_remapped"]].add(row["split"])
        if name in records:
            kept[row["sequence_remapped"]].add(records[name].split)
    straddling = [s for s, splits in wilds.items() if len(splits) > 1]
    assert straddling
    assert all(len(kept[s]) <= 1 for s in straddling)


def test_infrared_night_frames_are_greyscale_and_day_frames_are_not(collection) -> None:
    base, rows = collection["base"], collection["rows"]
    night = {n for n, row in rows.items() if not 7 <= int(row["datetime"][11:13]) < 18}
    assert night and len(night) < len(rows)
    for name in rows:
        with Image.open(base / "train" / name) as photo:
            assert is_greyscale(photo.convert("RGB")) == (name in night), name


def test_long_tail_of_species_and_bursts_of_near_identical_frames(collection) -> None:
    rows, base = collection["rows"], collection["base"]
    assert tail_counts(8, 40) == [40, 20, 13, 10, 8, 7, 6, 5]
    per_species = Counter(row["y"] for row in rows.values() if row["y"] != "0")
    counts = [per_species[str(y)] for y in range(1, SMALL["species_per_dataset"] + 1)]
    assert counts[0] > 3 * counts[-1] and counts[-1] <= 6
    # a burst (the first sequence: five frames of one animal, one second apart):
    # nearly the same pixels, never the same bytes (else the index drops them as copies)
    burst = sorted(
        (row["datetime"], n) for n, row in rows.items() if row["sequence_remapped"] == "0"
    )
    assert len(burst) == 5 and all(name in collection["records"] for _, name in burst)
    frames = [base / "train" / name for _, name in burst]
    pixels = [np.asarray(Image.open(f), dtype=np.int16) for f in frames]
    # the same scene and light: away from the animal's step only the grain differs
    assert all(np.median(np.abs(a - b)) <= 5 for a, b in zip(pixels, pixels[1:], strict=False))
    assert len({f.read_bytes() for f in frames}) == len(frames)


def test_animal_boxes_are_large_enough_to_crop(collection) -> None:
    base, records = collection["base"], collection["records"]
    for name, record in records.items():
        with Image.open(base / "train" / name) as photo:
            width, height = photo.size
        for _, _, w, h in record.relative_boxes:
            assert max(w * width, h * height) >= MIN_BOX_SIDE, name


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    collection, tmp_path: Path
) -> None:
    again = write_camera_trap_demo(tmp_path / "again", seed=3, **SMALL)
    for first, second in zip(collection["files"], again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
    assert again[0].read_bytes()[4:8] == b"\0\0\0\0"  # gzip header without a time
    with tarfile.open(again[0]) as tar:
        assert {(m.mtime, m.uid, m.gid) for m in tar.getmembers()} == {(0, 0, 0)}
    other = write_camera_trap_demo(tmp_path / "other", seed=4, **SMALL)
    assert gzip.decompress(other[0].read_bytes()) != gzip.decompress(again[0].read_bytes())


def test_cli_writes_the_files_and_refuses_bad_sizes(tmp_path: Path) -> None:
    settings = json.dumps({**SMALL, "species_per_dataset": 2, "images_per_species": 4})
    out = tmp_path / "cli"
    main(["demo-data", "--layout", "iwildcam", "--out-dir", str(out), "--settings", settings])
    assert sorted(p.name for p in out.iterdir()) == sorted([ARCHIVE, DETECTIONS])
    with pytest.raises(SpeciesganError, match="min_size"):
        write_camera_trap_demo(tmp_path / "bad", seed=0, min_size=64, max_size=96)


def test_config_defaults_the_detections_to_the_demo_file(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    config = load_config(["configs/demo_camera_traps.yaml"])
    (name,) = config["use_datasets"]
    assert config["datasets"][name]["format"] == "demo_iwildcam"
    key = demo_key(config, name)
    assert config["datasets"][name]["detections"] == f"file://data/demo/{key}/{name}/{DETECTIONS}"
    assert config["preprocess"]["small_species"] == "drop"
    given = {"format": "demo_iwildcam", "category": "mammal", "detections": "md.json"}
    config["datasets"][name] = given
    assert validate_config(config)["datasets"][name]["detections"] == "md.json"


# ---------------------------------------------------------------- the workflow
