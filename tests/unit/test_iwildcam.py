"""iWildCam (WILDS v2.0 layout) boxed by MegaDetector detections, through index, crop, manifest.

The collection is written here the way the WILDS archive lays it out
(``metadata.csv``, ``categories.csv``, every photo under ``train/``, 448-px-high
JPEGs scaled down to 54 px) with a detections file in MegaDetector's batch
format.  Each photo stands for one case the source must handle; the tests check
the records and the reject reason of every case, then what the later stages do
with them: pixel boxes, greyscale flags, the evaluation-only split.
"""

from __future__ import annotations

import csv
import json
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from speciesgan.config import validate_config
from speciesgan.data import json_stream
from speciesgan.data.dataset import load_split
from speciesgan.data.extract import extract_archives
from speciesgan.data.index import build_index, index_records
from speciesgan.data.manifest import merge_shards, read_manifest
from speciesgan.data.preprocess import process_shard
from speciesgan.data.sources import reader, source
from speciesgan.data.sources.camera_trap import Frame, settle_sequences, thin_sequences
from speciesgan.util.errors import SpeciesganError

HEIGHT = 54  # WILDS stores 448 px high; the tests scale that down
T0 = datetime(2013, 6, 9, 16, 33, 20)
CATEGORIES = [  # y, category_id, name (as WILDS' categories.csv writes them)
    (0, 0, "empty"),
    (1, 17, "odocoileus virginianus"),
    (2, 42, "tayassu pecari"),
    (3, 99, "dasyprocta punctata"),
]
DEER, PECCARY, AGOUTI = "Odocoileus virginianus", "Tayassu pecari", "Dasyprocta punctata"


def det(conf: float, bbox: list[float] | None = None, category: str = "1") -> dict[str, Any]:
    return {"category": category, "conf": conf, "bbox": bbox or [0.2, 0.2, 0.5, 0.6]}


@dataclass
class Photo:
    """One metadata.csv row, its image file and its detections entry."""

    name: str
    split: str
    sequence: int
    y: int
    seconds: float = 0
    detections: list[dict[str, Any]] | str | None = field(default_factory=lambda: [det(0.95)])
    width: int = 96
    infrared: bool = False
    exists: bool = True
    location: int = 3


PHOTOS = [
    Photo("deer_a", "train", 10, 1, 0, [det(0.95, [0.1, 0.2, 0.5, 0.6])]),
    Photo("deer_b", "train", 10, 1, 2, [det(0.97)]),
    Photo("deer_c", "train", 10, 1, 90, [det(0.90)], width=120),
    Photo("empty", "train", 11, 0, 0, []),
    Photo("person", "train", 12, 1, 0, [det(0.92, category="2"), det(0.2)]),
    Photo("vehicle", "id_test", 13, 2, 0, [det(0.88, category="3")]),
    Photo("weak", "train", 14, 2, 0, [det(0.55), det(0.31)]),
    Photo("nothing", "train", 15, 2, 0, []),
    Photo(
        "several",
        "train",
        16,
        2,
        0,
        [det(0.9, [0.05, 0.1, 0.3, 0.4]), det(0.85, [0.5, 0.3, 0.45, 0.6]), det(0.3)],
    ),
    Photo("straddle_1", "train", 20, 3, 0),
    Photo("straddle_2", "id_test", 20, 3, 1),
    Photo("straddle_3", "id_test", 20, 3, 2),
    Photo("night", "train", 21, 3, 0, infrared=True),
    Photo("missing", "train", 22, 3, 0, exists=False),
    Photo("outside", "train", 23, 1, 0, [det(0.9, [1.2, 0.1, 0.3, 0.3])]),
    Photo("edge", "train", 24, 1, 0, [det(0.8, [0.7, 0.5, 0.5, 0.7])]),  # at the threshold: in
    Photo("absent", "train", 25, 1, 0, None),
    Photo("failed", "train", 26, 1, 0, "Failure image access"),
    Photo("ood_a", "val", 30, 2, 0, location=7),
    Photo("ood_b", "test", 31, 1, 0, location=8),
]

SOURCE_REJECTS = {
    "empty": "labelled empty",
    "person": "only person detections, no animal",
    "vehicle": "only vehicle detections, no animal",
    "weak": "animal detections below confidence 0.8 only (best 0.550)",
    "nothing": "no animal detection",
    "missing": "missing image file",
    "absent": "not in the detections file detections.json",
    "failed": "the detector failed on this photo (Failure image access)",
}


def write_photo(path: Path, width: int, infrared: bool, seed: int) -> None:
    """A JPEG of noise: colourful, or the same value in all channels (infrared)."""
    rng = np.random.default_rng(seed)
    if infrared:
        grey = rng.integers(0, 256, (HEIGHT, width, 1), dtype=np.uint8)
        pixels = np.repeat(grey, 3, axis=2)
    else:
        pixels = rng.integers(0, 256, (HEIGHT, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)


def write_wilds(base: Path, photos: list[Photo]) -> None:
    """metadata.csv (with WILDS' unnamed index and extra columns), categories.csv, train/."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "categories.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["y", "category_id", "name"])
        out.writerows(CATEGORIES)
    columns = ["", "split", "location_remapped", "location", "sequence_remapped", "y"]
    columns += ["category_id", "datetime", "filename", "image_id"]
    with open(base / "metadata.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(columns)
        for i, p in enumerate(photos):
            time = (T0 + timedelta(seconds=p.seconds)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            image_id = f"{p.name}-id"
            out.writerow(
                [i, p.split, p.location, 500 + p.location, p.sequence, p.y, CATEGORIES[p.y][1]]
                + [time, f"{p.name}.jpg", image_id]
            )
            if p.exists:
                write_photo(base / "train" / f"{p.name}.jpg", p.width, p.infrared, seed=i)


def write_detections(path: Path, photos: list[Photo]) -> Path:
    """MegaDetector batch output; categories after images, as MegaDetector writes them."""
    images = []
    for i, p in enumerate(photos):
        name = {"file": f"train/{p.name}.jpg"} if i % 2 else {"id": p.name}
        if p.detections is None:
            continue
        if isinstance(p.detections, str):
            images.append({**name, "failure": p.detections})
        else:
            best = max((d["conf"] for d in p.detections), default=0.0)
            images.append({**name, "max_detection_conf": best, "detections": p.detections})
    images.append({"file": "train/not-in-the-dataset.jpg", "detections": [det(0.99)]})
    document = {
        "images": images,
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "info": {"detector": "megadetector_v4.1", "format_version": "1.0"},
    }
    path.write_text(json.dumps(document, indent=1))
    return path


@pytest.fixture
def wilds(tmp_path: Path) -> tuple[Path, Path]:
    """(extracted root holding iwildcam_v2.0/, detections file)."""
    root = tmp_path / "extracted"
    write_wilds(root / "iwildcam_v2.0", PHOTOS)
    return root, write_detections(tmp_path / "detections.json", PHOTOS)


def read_source(root: Path, detections: Path, **options: Any):
    return reader("iwildcam")(
        root, "cams", "mammal", options={"detections": str(detections), **options}
    )


def by_name(items) -> dict[str, Any]:
    return {Path(item.image_path).stem: item for item in items}


def test_every_case_becomes_a_record_or_a_reject_with_its_reason(wilds) -> None:
    records, rejects = read_source(*wilds)
    kept = by_name(records)
    assert sorted(kept) == sorted(
        ["deer_a", "deer_b", "deer_c", "several", "straddle_1", "straddle_2", "straddle_3"]
        + ["night", "outside", "edge", "ood_a", "ood_b"]
    )
    assert kept["deer_a"].species == DEER and kept["deer_a"].category == "mammal"
    assert kept["deer_a"].relative_boxes == ((0.1, 0.2, 0.5, 0.6),)
    assert kept["deer_a"].boxes == ()
    assert kept["deer_a"].image_path == str(wilds[0] / "iwildcam_v2.0" / "train" / "deer_a.jpg")
    # every detection at or above 0.8 is a box, in the file's order; the weak one is not
    assert kept["several"].relative_boxes == ((0.05, 0.1, 0.3, 0.4), (0.5, 0.3, 0.45, 0.6))
    assert kept["ood_a"].species == PECCARY

    reasons = {name: r.reason for name, r in by_name(rejects).items()}
    assert reasons.keys() == SOURCE_REJECTS.keys()
    for name, expected in SOURCE_REJECTS.items():
        assert expected in reasons[name], (name, reasons[name])
    assert all(r.stage == "source" and r.dataset == "cams" for r in rejects)
    assert by_name(rejects)["weak"].species == PECCARY


def test_splits_map_by_config_and_a_sequence_never_straddles(wilds) -> None:
    records, _ = read_source(*wilds)
    splits = {name: r.split for name, r in by_name(records).items()}
    assert splits["deer_a"] == splits["several"] == splits["night"] == "train"
    # sequence 20: one train frame, two id_test frames -> all to the majority, test
    assert splits["straddle_1"] == splits["straddle_2"] == splits["straddle_3"] == "test"
    assert splits["ood_a"] == splits["ood_b"] == "ood"

    mapped, rejects = read_source(*wilds, splits={"val": "drop", "test": "test"})
    splits = {name: r.split for name, r in by_name(mapped).items()}
    assert "ood_a" not in splits and splits["ood_b"] == "test"
    assert "mapped to drop" in by_name(rejects)["ood_a"].reason


def test_a_tied_sequence_goes_to_its_earliest_frame_and_moves_are_counted() -> None:
    frames = [
        Frame("b", "s1", "test", T0 + timedelta(seconds=5)),
        Frame("a", "s1", "train", T0),
        Frame("c", "s2", "train", T0),
        Frame("d", "s2", "test", None),
        Frame("e", "s2", "test", T0 + timedelta(seconds=1)),
    ]
    splits, moved = settle_sequences(frames)
    assert splits == {"a": "train", "b": "train", "c": "test", "d": "test", "e": "test"}
    assert moved == 2


def test_bursts_are_thinned_to_one_per_sequence_or_one_per_interval(wilds) -> None:
    records, rejects = read_source(*wilds, frames="one_per_sequence")
    kept = by_name(records)
    # sequence 10: deer_b has the most confident animal
    assert "deer_b" in kept and "deer_a" not in kept and "deer_c" not in kept
    assert "one photo per sequence kept (deer_b.jpg)" in by_name(rejects)["deer_a"].reason
    assert [n for n in kept if n.startswith("straddle")] == ["straddle_1"]

    records, rejects = read_source(*wilds, frames="interval", frame_interval_seconds=60)
    kept = by_name(records)
    # deer_b comes 2 s after deer_a; deer_c 90 s after it
    assert {"deer_a", "deer_c"} <= kept.keys() and "deer_b" not in kept
    assert "within 60 s of a kept photo" in by_name(rejects)["deer_b"].reason

    everything, _ = read_source(*wilds, frames="all")
    assert len(everything) == 12


def test_thinning_keeps_frames_it_cannot_place_in_time() -> None:
    frames = [Frame(k, "s", "train", None, "Deer") for k in ("a", "b")]
    frames.append(Frame("c", "s", "train", T0, "Deer"))
    frames.append(Frame("d", "s", "train", T0 + timedelta(seconds=3), "Deer"))
    frames.append(Frame("e", "s", "train", T0 + timedelta(seconds=10), "Deer"))  # exactly 10 s
    kept, dropped = thin_sequences(frames, "interval", 10)
    assert sorted(f.key for f in kept) == ["a", "b", "c", "e"]
    assert [f.key for f, _ in dropped] == ["d"]


def test_confidence_threshold_is_a_setting(wilds) -> None:
    records, _ = read_source(*wilds, min_confidence=0.5)
    kept = by_name(records)
    assert kept["weak"].relative_boxes == ((0.2, 0.2, 0.5, 0.6),)  # 0.55 in, 0.31 out
    assert len(kept["several"].relative_boxes) == 2


# ---------------------------------------------------------------- index: boxes in pixels


def run_index(tmp_path: Path, records, rejects, **settings: Any):
    out, out_rejects = tmp_path / "records.parquet", tmp_path / "index_rejects.parquet"
    index_records(
        records, rejects, out, out_rejects, {"min_images_per_species": 1, **settings}, seed=0
    )
    return pd.read_parquet(out), pd.read_parquet(out_rejects)


def test_detections_become_pixel_boxes_of_each_photo_and_outside_ones_are_rejected(
    wilds, tmp_path: Path
) -> None:
    table, rejects = run_index(tmp_path, *read_source(*wilds))
    table["name"] = table["file"].map(lambda f: Path(f).stem)
    boxes = {
        name: [tuple(b) for b in group[["box_x0", "box_y0", "box_x1", "box_y1"]].values]
        for name, group in table.groupby("name")
    }
    # 0.1*96=9.6 -> 10, 0.2*54=10.8 -> 11, 0.6*96=57.6 -> 58, 0.8*54=43.2 -> 43
    assert boxes["deer_a"] == [(10, 11, 58, 43)]
    # the same relative box on a 120-px-wide photo (sizes come from each file)
    assert boxes["deer_c"] == [(24, 11, 84, 43)]
    assert sorted(boxes["several"]) == [(5, 5, 34, 27), (48, 16, 91, 49)]  # one crop each
    assert boxes["edge"] == [(67, 27, 96, 54)]  # clipped to the frame
    assert "outside" not in boxes
    outside = rejects[rejects["file"].str.endswith("outside.jpg")]
    assert outside["stage"].tolist() == ["index"]
    assert "lies outside the 96x54 image" in outside["reason"].iloc[0]
    assert sorted(set(table["split"])) == ["ood", "test", "train"]

    largest, _ = run_index(tmp_path, *read_source(*wilds), box_mode="largest")
    several = largest[largest["file"].str.endswith("several.jpg")]
    assert several[["box_x0", "box_y0", "box_x1", "box_y1"]].values.tolist() == [[48, 16, 91, 49]]


def test_species_under_the_minimum_can_be_dropped_instead_of_stopping(
    wilds, tmp_path: Path
) -> None:
    records, rejects = read_source(*wilds)
    # train/test crops: deer 4 (a, b, c, edge), peccary 2 (several), agouti 4; ood not counted
    with pytest.raises(SpeciesganError, match="mammal/Tayassu pecari: 2 crop"):
        run_index(tmp_path, records, rejects, min_images_per_species=3)
    table, index_rejects = run_index(
        tmp_path, records, rejects, min_images_per_species=3, small_species="drop"
    )
    assert sorted(set(table["species"])) == [AGOUTI, DEER]
    assert sorted(set(table["species_id"])) == [0, 1]
    dropped = index_rejects[index_rejects["reason"].str.contains("small_species: drop")]
    assert sorted(Path(f).stem for f in dropped["file"]) == ["ood_a", "several", "several"]
    assert "has 2 train/test crop(s)" in dropped["reason"].iloc[0]


# ---------------------------------------------------------------- crops and manifest


def crop_and_merge(tmp_path: Path, records, rejects, **preprocess: Any) -> Path:
    data = tmp_path / "data"
    settings = {"min_images_per_species": 1, "shards": 2, **preprocess}
    index_records(
        records, rejects, data / "records.parquet", data / "index_rejects.parquet", settings, 0
    )
    rows = []
    for shard in range(2):
        out_rows = data / "shards" / f"shard-{shard:03d}.parquet"
        crop = {"image_size": 16, "min_box_size": 8, **preprocess}
        process_shard(
            data / "records.parquet", shard, data / "shards" / f"shard-{shard:03d}.npy",
            out_rows, crop,
        )  # fmt: skip
        rows.append(out_rows)
    merge_shards(
        rows, data / "index_rejects.parquet", data / "manifest.parquet",
        data / "rejects.parquet", {"image_size": 16, **settings},
    )  # fmt: skip
    return data


def test_manifest_flags_infrared_frames_and_keeps_ood_for_evaluation_only(
    wilds, tmp_path: Path
) -> None:
    data = crop_and_merge(tmp_path, *read_source(*wilds))
    manifest = read_manifest(data / "manifest.parquet")
    manifest["name"] = manifest["file"].map(lambda f: Path(f).stem)
    grey = manifest.groupby("name")["greyscale"].all()
    assert grey["night"] and not grey.drop("night").any()
    assert manifest.loc[manifest["name"].str.startswith("ood"), "split"].eq("ood").all()

    everything = load_split(data / "manifest.parquet", "all")
    ood = load_split(data / "manifest.parquet", "ood")
    assert len(everything.labels) == (manifest["split"] != "ood").sum()
    assert len(ood.labels) == 2 and ood.species == everything.species
    with pytest.raises(SpeciesganError, match="unknown split 'val'"):
        load_split(data / "manifest.parquet", "val")

    rejects = pd.read_parquet(data / "rejects.parquet")
    rejected = {Path(f).stem for f in rejects["file"]}
    assert rejected == set(SOURCE_REJECTS) | {"outside"}


def test_infrared_frames_can_be_dropped_as_rejects(wilds, tmp_path: Path) -> None:
    data = crop_and_merge(tmp_path, *read_source(*wilds), greyscale="drop")
    manifest = read_manifest(data / "manifest.parquet")
    assert not manifest["greyscale"].any()
    assert not manifest["file"].str.endswith("night.jpg").any()
    rejects = pd.read_parquet(data / "rejects.parquet")
    night = rejects[rejects["file"].str.endswith("night.jpg")]
    assert night[["stage", "reason"]].values.tolist() == [
        ["crop", "greyscale (infrared) photo; preprocess.greyscale: drop"]
    ]


def test_greyscale_test_tells_tinted_infrared_from_dull_colour() -> None:
    from speciesgan.data.greyscale import is_greyscale

    rng = np.random.default_rng(0)
    grey = rng.integers(20, 230, (120, 200, 1)).astype(np.int16)
    tinted = np.clip(grey + np.array([4, 0, 5]), 0, 255).astype(np.uint8)  # faint magenta
    assert is_greyscale(Image.fromarray(tinted))
    dull = np.clip(grey + np.array([18, 6, -12]), 0, 255).astype(np.uint8)  # overcast brown
    assert not is_greyscale(Image.fromarray(dull))
    logo = tinted.copy()
    logo[:20] = (255, 0, 0)  # a red banner on an infrared frame
    assert is_greyscale(Image.fromarray(logo))


def test_crop_failures_may_drop_a_species_and_renumber_ids(wilds, tmp_path: Path) -> None:
    """small_species: drop also holds at the manifest step, after photos fail to decode."""
    records, rejects = read_source(*wilds)
    for name in ("several.jpg",):  # peccary's only train/test photo: cut it short
        path = wilds[0] / "iwildcam_v2.0" / "train" / name
        path.write_bytes(path.read_bytes()[:-600])
    with pytest.raises(SpeciesganError, match="Tayassu pecari: 0"):
        crop_and_merge(tmp_path / "stop", records, rejects)
    data = crop_and_merge(tmp_path / "drop", records, rejects, small_species="drop")
    manifest = read_manifest(data / "manifest.parquet")
    assert PECCARY not in set(manifest["species"])
    assert sorted(set(manifest["species_id"])) == [0, 1]
    reasons = pd.read_parquet(data / "rejects.parquet")
    dropped = reasons[reasons["stage"] == "manifest"]
    assert [Path(f).stem for f in dropped["file"]] == ["ood_a"]
    assert "after the crop step" in dropped["reason"].iloc[0]


# ---------------------------------------------------------------- archive, options, errors


def test_the_archive_extracts_into_the_layout_the_reader_expects(tmp_path: Path) -> None:
    """WILDS' archive has the files at its top (the wilds package extracts it into
    iwildcam_v2.0/ itself); the reader takes that folder or its parent."""
    layout = tmp_path / "layout"
    write_wilds(layout, PHOTOS[:3])
    archive = tmp_path / next(iter(source("iwildcam").archives))
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    extracted = tmp_path / "extracted"
    extract_archives([archive], extracted)
    records, rejects = read_source(extracted, write_detections(tmp_path / "d.json", PHOTOS[:3]))
    assert sorted(by_name(records)) == ["deer_a", "deer_b", "deer_c"] and not rejects
    assert source("iwildcam").archives[archive.name].startswith("https://worksheets.codalab.org/")


def test_build_index_passes_options_and_refuses_them_for_other_formats(
    wilds, tmp_path: Path
) -> None:
    root, detections = wilds
    out, out_rejects = tmp_path / "r.parquet", tmp_path / "rj.parquet"
    sources = [("cams", "iwildcam", "mammal", root)]
    settings = {"min_images_per_species": 1}
    build_index(sources, out, out_rejects, settings, 0, {"cams": {"detections": str(detections)}})
    assert len(pd.read_parquet(out)) == 12
    with pytest.raises(SpeciesganError, match="cams.*detections"):
        build_index(sources, out, out_rejects, settings, 0)
    with pytest.raises(SpeciesganError, match="format table takes no options"):
        build_index(
            [("t", "table", "x", detections)], out, out_rejects, settings, 0, {"t": {"a": 1}}
        )


def test_the_cli_takes_options_in_the_sources_json(wilds, tmp_path: Path) -> None:
    from speciesgan.cli import main

    root, detections = wilds
    sources = [{"name": "cams", "format": "iwildcam", "category": "mammal", "root": str(root)}]
    sources[0]["options"] = {"detections": str(detections), "frames": "one_per_sequence"}
    out = tmp_path / "records.parquet"
    code = main(
        ["index", "--sources", json.dumps(sources), "--out", str(out)]
        + ["--out-rejects", str(tmp_path / "rejects.parquet")]
        + ["--settings", json.dumps({"min_images_per_species": 1})]
    )
    assert code == 0
    files = {Path(f).stem for f in pd.read_parquet(out)["file"]}
    assert "deer_b" in files and "deer_a" not in files


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"splits": {"id_val": "validation"}}, "splits"),
        ({"splits": {"dev": "train"}}, "splits"),
        ({"frames": "every"}, "frames"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"frame_interval_seconds": 0}, "frame_interval_seconds"),
        ({"threshold": 0.5}, "unknown option"),
    ],
    ids=["bad-target", "bad-wilds-split", "bad-frames", "bad-confidence", "bad-interval", "typo"],
)
def test_bad_options_name_the_dataset_and_key(wilds, options, message: str) -> None:
    with pytest.raises(SpeciesganError, match=f"dataset cams.*{message}"):
        read_source(*wilds, **options)


def test_broken_tables_name_the_file_and_problem(wilds, tmp_path: Path) -> None:
    root, detections = wilds
    base = root / "iwildcam_v2.0"
    metadata = base / "metadata.csv"
    text = metadata.read_text()
    metadata.write_text(text.replace("sequence_remapped", "seq"))
    with pytest.raises(
        SpeciesganError, match=r"metadata.csv: missing column\(s\) \['sequence_remapped'\]"
    ):
        read_source(root, detections)
    metadata.write_text(text)
    (base / "categories.csv").write_text("y,category_id,name\n0,0,empty\nx,1,deer\n")
    with pytest.raises(SpeciesganError, match=r"categories.csv:3: expected a label y"):
        read_source(root, detections)
    with pytest.raises(SpeciesganError, match="no metadata.csv"):
        read_source(tmp_path, detections)


def test_bad_metadata_rows_are_rejects_with_the_row_number(wilds) -> None:
    root, detections = wilds
    metadata = root / "iwildcam_v2.0" / "metadata.csv"
    lines = metadata.read_text().splitlines()
    header = lines[0].split(",")
    bad_label = lines[1].split(",")
    bad_label[header.index("y")] = "77"
    bad_split = lines[2].split(",")
    bad_split[header.index("split")] = "holdout"
    escaping = lines[4].split(",")
    escaping[header.index("filename")] = "../../secret.jpg"
    rows = [",".join(bad_label), ",".join(bad_split), lines[3], ",".join(escaping), *lines[5:]]
    metadata.write_text("\n".join([lines[0], *rows, lines[3]]) + "\n")  # deer_c twice
    records, rejects = read_source(root, detections)
    reasons = [r.reason for r in rejects if "metadata.csv" in r.reason]
    assert any(
        "label y='77' is not in categories.csv (metadata.csv, data row 1)" in r for r in reasons
    )
    assert any("unknown WILDS split 'holdout'" in r for r in reasons)
    assert any("leaves the train/ folder" in r for r in reasons)
    assert any("listed again in metadata.csv" in r for r in reasons)
    assert "deer_c" in by_name(records)  # the first listing of a repeated photo stays


def test_detections_file_problems_are_clear_errors(wilds, tmp_path: Path) -> None:
    root, _ = wilds
    bad = tmp_path / "bad.json"
    for text, message in [
        ('{"images": [{"file": "a.jpg"}, ', "not valid JSON at character"),
        ('[{"file": "a.jpg"}]', "expected one of {"),
        ('{"info": {}}', "no 'images' list"),
        ('{"images": [], "detection_categories": {"1": "person"}}', "no 'animal' category"),
    ]:
        bad.write_text(text)
        with pytest.raises(SpeciesganError, match=message) as info:
            read_source(root, bad)
        assert str(bad) in str(info.value)
    with pytest.raises(SpeciesganError, match="cannot read"):
        read_source(root, tmp_path / "nowhere.json")


def test_streamed_json_reads_values_cut_at_any_chunk_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = [
        {"id": f"p{i}", "detections": [det(0.123456789 + i, [0.1, 0.2, 0.3, 1e-3 * i])]}
        for i in range(40)
    ]
    document = {"info": {"n": 12345678}, "images": images + [7654321, "é", None]}
    path = tmp_path / "d.json"
    for chunk in (1, 3, 7, 64):
        monkeypatch.setattr(json_stream, "CHUNK_CHARS", chunk)
        for indent in (None, 1):
            path.write_text(json.dumps(document, indent=indent, ensure_ascii=False))
            seen: list[Any] = []
            rest = json_stream.read_streamed(path, "images", seen.append)
            assert seen == document["images"] and rest == {"info": {"n": 12345678}}


# ---------------------------------------------------------------- configuration


def _config(dataset: dict[str, Any]) -> dict[str, Any]:
    return {
        "results_dir": "results/x",
        "seed": 0,
        "use_datasets": ["cams"],
        "datasets": {"cams": dataset},
        "preprocess": {"image_size": 64, "small_species": "drop", "greyscale": "drop"},
        "classifier": {},
        "gan": {},
        "sample": {},
        "metrics": {},
    }


def test_config_requires_detections_and_keeps_camera_trap_keys_to_iwildcam() -> None:
    camera_trap = {"min_confidence": 0.9, "splits": {"id_val": "drop"}, "frames": "interval"}
    good = {"format": "iwildcam", "category": "mammal", "detections": "md.json"}
    validate_config(_config({**good, "camera_trap": camera_trap}))
    with pytest.raises(SpeciesganError, match="datasets.cams.detections: required"):
        validate_config(_config({"format": "iwildcam", "category": "mammal"}))
    with pytest.raises(SpeciesganError, match="datasets.cams.camera_trap.splits"):
        validate_config(_config({**good, "camera_trap": {"splits": {"val": "eval"}}}))
    with pytest.raises(SpeciesganError, match="datasets.cams.camera_trap: only for the formats"):
        validate_config(_config({"format": "cub", "category": "bird", "camera_trap": {}}))


# ---------------------------------------------------------------- the workflow
