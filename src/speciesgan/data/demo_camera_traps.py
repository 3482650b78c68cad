"""A synthetic camera-trap collection in WILDS' iWildCam v2.0 layout, with MegaDetector output.

The camera-trap demo must run the same download -> extract -> index path as the
real iWildCam2020 (``sources.iwildcam``), offline and in seconds, and meet what
makes camera traps hard: labels per sequence rather than per frame, frames with
no animal in them, people and vehicles, weak detections, several animals per
frame, bursts of near-identical frames, sequences a split runs through,
infrared night frames, camera locations seen only at evaluation, and a long
tail of rare species.  So this module writes ``iwildcam_v2.0.tar.gz`` (the
archive's ``metadata.csv``, ``categories.csv`` and ``train/``) and a batch-output
JSON as MegaDetector writes it; only the photos and the detector are synthetic.

As in ``demo``, species differ only in shape (``demo.SILHOUETTES``): colours and
textures are drawn per sequence from one shared distribution.  Each camera
location has its own fixed scene (a camera does not move), so frames of one
burst differ only by the animal's step and the sensor grain.  Animals are small
and often cut by the frame edge, as on real traps, yet at least ~40 px long so
that a crop still shows the outline.

The planner (``plan_collection``) is cheap and decides everything but pixels;
the ``SHOWCASE`` sequences guarantee every case at least once whatever the seed
and settings.  Everything is a pure function of ``seed``: fixed tar member order,
mtime 0, gzip without name or time, JSON in a fixed key order.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from speciesgan.data import camera_scenes, demo
from speciesgan.data.sources.iwildcam import ARCHIVE  # iwildcam_v2.0.tar.gz
from speciesgan.util.atomic import write_text

log = logging.getLogger(__name__)

DETECTIONS = "megadetector_results.json"
LAYOUT_CODE = 3  # RNG stream tag; demo.py uses 0 (dogs), 1 (birds) and 2 (scale)

SPECIES = (  # y = index + 1; fictional binomials, lower case as WILDS writes them
    "umbravulpes silvestris", "cornicervus palustris", "stellamys nocturna",
    "alatherium vagans", "longicauda riparia", "anulifelis montana",
    "crucimeles obscura", "lunatragus minor", "rhombolagus agilis",
    "hexadasypus rufus", "sagittaria velox", "guttatapir lenta",
)  # fmt: skip
CATEGORY_IDS = (  # WILDS keeps iWildCam's sparse category ids beside y
    3, 8, 17, 24, 42, 71, 96, 101, 150, 209, 317, 372,
)  # fmt: skip
ID_LOCATIONS = 6  # cameras of the in-distribution splits (train, id_val, id_test)
OOD_LOCATIONS = {"val": (6, 7), "test": (8,)}  # cameras seen only in WILDS val / test
T0 = datetime(2013, 1, 1)

TAIL_EXPONENT = 1.0  # photos of the k-th commonest species ~ head / k (Zipf)
OOD_SEQUENCE_FRACTION = 0.15
NIGHT_FRACTION = 0.3
GROUP_FRACTIONS = (0.12, 0.05)  # sequences with 2, 3 animals in every animal frame
STRADDLE_FRACTION = 0.05  # sequences whose last frame is labelled with another split
FRAME_KINDS = {  # the kinds of frame of an animal sequence, and their shares
    "animal": 0.8,
    "weak": 0.07,  # the animal far or half out of frame: detected below 0.8 only
    "gone": 0.05,  # the burst outlasted the animal: no detection at all
    "person": 0.04,
    "vehicle": 0.04,
}
EMPTY_SEQUENCES_PER_LOCATION = 2  # labelled "empty" (y=0), detector finds nothing


@dataclass(frozen=True)
class Shot:
    """One frame: its metadata.csv row and what is in it (pixels are drawn later)."""

    filename: str
    location: int
    sequence: int
    split: str  # WILDS split
    y: int  # 0: empty
    time: datetime
    kind: str  # a FRAME_KINDS key, or "empty"
    animals: int  # animals in the sequence's group
    step: int  # frame number within the burst (how far the animals have moved)
    night: bool  # infrared


@dataclass(frozen=True)
class Camera:
    """A location and its frame size (``OOD_LOCATIONS`` says which WILDS holds out)."""

    number: int
    width: int
    height: int


def tail_counts(species: int, head: int) -> list[int]:
    """Photos per species, Zipf-like from ``head`` down (at least 3 each)."""
    return [max(3, round(head / (k + 1) ** TAIL_EXPONENT)) for k in range(species)]


def _burst_lengths(total: int, rng: np.random.Generator) -> list[int]:
    """Split ``total`` frames into bursts of 1-5 (camera traps fire 3 or 5 on a trigger);
    two bursts at least when ``total`` >= 2, so that a rare species can be tested."""
    lengths: list[int] = []
    while total > 0:
        cap = total - 1 if not lengths and total >= 2 else total
        n = min(cap, int(rng.choice([1, 2, 3, 3, 5])))
        lengths.append(n)
        total -= n
    return lengths


TEST_SHARE, VAL_SHARE = 0.2, 0.1  # of a species' in-distribution frames: id_test, id_val


def _id_splits(lengths: list[int], rng: np.random.Generator) -> list[str]:
    """WILDS splits of one species' in-distribution sequences (``lengths``: their frames).

    Whole sequences, in random order, go to id_test until it holds about
    ``TEST_SHARE`` of the frames, then to id_val; the rest train.  With two or
    more sequences, id_test gets at least the shortest one, so every species
    can be tested, and train keeps the most frames.
    """
    splits = ["train"] * len(lengths)
    if len(lengths) < 2:
        return splits
    total = sum(lengths)
    budgets = {"id_test": TEST_SHARE * total, "id_val": VAL_SHARE * total}
    for i in rng.permutation(len(lengths)):
        for split, budget in budgets.items():
            if lengths[i] <= budget:
                splits[i] = split
                budgets[split] -= lengths[i]
                break
    if "id_test" not in splits:
        splits[min(range(len(lengths)), key=lambda i: (lengths[i], i))] = "id_test"
    return splits


@dataclass(frozen=True)
class _Sequence:
    y: int
    location: int
    split: str
    frames: tuple[str, ...]  # kinds
    animals: int = 1
    night: bool = False
    straddles: bool = False


SHOWCASE = (  # species 1 (the commonest): every case at least once, whatever the draws
    _Sequence(1, 0, "train", ("animal", "animal", "animal", "animal", "animal")),  # burst
    _Sequence(1, 1, "train", ("animal", "person", "vehicle", "weak", "gone")),
    _Sequence(1, 2, "train", ("animal", "animal"), animals=2),
    _Sequence(1, 3, "train", ("animal",), animals=3),
    _Sequence(1, 4, "train", ("animal", "animal", "animal"), night=True),
    _Sequence(1, 5, "train", ("animal", "animal", "animal"), straddles=True),
    _Sequence(1, 0, "id_test", ("animal", "animal")),
    _Sequence(1, OOD_LOCATIONS["val"][0], "val", ("animal", "animal")),
    _Sequence(1, OOD_LOCATIONS["test"][0], "test", ("animal",)),
    _Sequence(0, 2, "train", ("empty", "empty")),
)


def _species_sequences(y: int, photos: int, rng: np.random.Generator) -> list[_Sequence]:
    kinds, shares = list(FRAME_KINDS), np.array(list(FRAME_KINDS.values()))
    sequences = []
    for length in _burst_lengths(photos, rng):
        frames = ["animal"] + list(rng.choice(kinds, size=length - 1, p=shares / shares.sum()))
        u = rng.uniform()
        animals = 2 if u < GROUP_FRACTIONS[0] else 3 if u < sum(GROUP_FRACTIONS) else 1
        ood = rng.uniform() < OOD_SEQUENCE_FRACTION
        wilds = str(rng.choice(["val", "test"])) if ood else ""
        location = int(rng.choice(OOD_LOCATIONS[wilds])) if ood else int(rng.integers(ID_LOCATIONS))
        sequences.append(
            _Sequence(
                y, location, wilds, tuple(str(k) for k in frames), animals,
                night=bool(rng.uniform() < NIGHT_FRACTION),
                straddles=bool(length >= 3 and rng.uniform() < STRADDLE_FRACTION),
            )
        )  # fmt: skip
    if sum(not s.split for s in sequences) < 2:  # too rare to hold out a camera for
        sequences = [
            replace(s, split="", location=i % ID_LOCATIONS) for i, s in enumerate(sequences)
        ]
    in_dist = [i for i, s in enumerate(sequences) if not s.split]
    lengths = [len(sequences[i].frames) for i in in_dist]
    for i, split in zip(in_dist, _id_splits(lengths, rng), strict=True):
        sequences[i] = replace(sequences[i], split=split)
    return sequences


def _other_split(split: str) -> str:
    return "id_test" if split in ("train", "id_val") else "train"


def plan_collection(
    seed: int, species: int, head: int, min_size: int, max_size: int
) -> tuple[list[Camera], list[Shot]]:
    """Every camera and frame of the collection, in metadata.csv order (by file name)."""
    rng = np.random.default_rng([seed, LAYOUT_CODE, 0])
    cameras = []
    for number in range(ID_LOCATIONS + sum(len(v) for v in OOD_LOCATIONS.values())):
        width = int(rng.integers(min_size, max_size + 1))
        cameras.append(Camera(number, width, width * 3 // 4))
    sequences = list(SHOWCASE)
    for k, photos in enumerate(tail_counts(species, head)):
        sequences += _species_sequences(k + 1, photos, rng)
    for location in range(ID_LOCATIONS):
        for _ in range(EMPTY_SEQUENCES_PER_LOCATION):
            split = str(rng.choice(["train", "train", "id_val", "id_test"]))
            sequences.append(_Sequence(0, location, split, ("empty",) * int(rng.integers(1, 4))))
    shots = []
    for number, seq in enumerate(sequences):
        start = T0 + timedelta(days=int(rng.integers(0, 365)))
        hour = int(rng.integers(20, 29)) % 24 if seq.night else int(rng.integers(7, 18))
        start += timedelta(hours=hour, minutes=int(rng.integers(60)), seconds=int(rng.integers(60)))
        for step, kind in enumerate(seq.frames):
            last = step == len(seq.frames) - 1
            split = _other_split(seq.split) if seq.straddles and last else seq.split
            name = str(uuid.UUID(bytes=rng.bytes(16), version=4)) + ".jpg"
            shots.append(
                Shot(
                    name, seq.location, number, split, seq.y, start + timedelta(seconds=step),
                    kind, seq.animals, step, seq.night,
                )
            )  # fmt: skip
    return cameras, sorted(shots, key=lambda s: s.filename)


# --------------------------------------------------------------------------- files

METADATA_COLUMNS = (  # WILDS' metadata.csv: an unnamed index column first
    "", "split", "location_remapped", "location", "sequence_remapped", "datetime",
    "y", "category_id", "filename", "image_id",
)  # fmt: skip


def _csv(rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def metadata_csv(shots: list[Shot]) -> bytes:
    """metadata.csv: one row per frame, WILDS' columns (datetime to the millisecond)."""
    rows: list[list[object]] = [list(METADATA_COLUMNS)]
    for i, s in enumerate(shots):
        category = 0 if s.y == 0 else CATEGORY_IDS[s.y - 1]
        time = s.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        rows.append(
            [i, s.split, s.location, 100 + 7 * s.location, s.sequence, time,
             s.y, category, s.filename, s.filename.removesuffix(".jpg")]
        )  # fmt: skip
    return _csv(rows)


def categories_csv(species: int) -> bytes:
    """categories.csv: y, category_id, name; y=0 is "empty" as in WILDS."""
    rows: list[list[object]] = [["y", "category_id", "name"], [0, 0, "empty"]]
    rows += [[k + 1, CATEGORY_IDS[k], SPECIES[k]] for k in range(species)]
    return _csv(rows)


def detections_json(found: list[tuple[Shot, list[dict[str, object]]]]) -> str:
    """MegaDetector batch output: images first, then the category table and info."""
    images = [
        {
            "file": f"train/{shot.filename}",
            "max_detection_conf": max((float(d["conf"]) for d in dets), default=0.0),
            "detections": dets,
        }
        for shot, dets in found
    ]
    document = {
        "images": images,
        "detection_categories": dict(camera_scenes.DETECTION_CATEGORIES),
        "info": {"detector": "synthetic (speciesgan demo-data --layout iwildcam)",
                 "format_version": "1.1"},
    }  # fmt: skip
    return json.dumps(document, indent=1) + "\n"


def _frames(
    cameras: list[Camera], shots: list[Shot], seed: int, found: list
) -> Iterator[tuple[str, bytes]]:
    """JPEG members in file-name order; each frame's detections are appended to ``found``."""
    scenes: dict[int, Image.Image] = {}
    groups: dict[int, tuple[list[camera_scenes.Walker], camera_scenes.Look]] = {}
    designs = [demo.SpeciesDesign(silhouette=k) for k in range(len(SPECIES))]
    for shot in shots:
        camera = cameras[shot.location]
        if shot.location not in scenes:
            scenes[shot.location] = camera_scenes.scene(
                shot.location, camera.width, camera.height, seed, LAYOUT_CODE
            )
        if shot.sequence not in groups:  # every frame of a sequence: the same animals
            rng = np.random.default_rng([seed, LAYOUT_CODE, 2, shot.sequence])
            design = designs[max(shot.y, 1) - 1]
            group = camera_scenes.walkers(design, shot.animals, camera.width, camera.height, rng)
            groups[shot.sequence] = (group, camera_scenes.sequence_look(rng))
        group, look = groups[shot.sequence]
        rng = np.random.default_rng([seed, LAYOUT_CODE, 3, shot.sequence, shot.step])
        photo, dets = camera_scenes.render(
            scenes[shot.location], shot.kind, group, shot.step, shot.night, look, rng
        )
        found.append((shot, dets))
        yield f"train/{shot.filename}", demo._jpeg(photo)


def write_camera_trap_demo(
    out_dir: Path,
    seed: int,
    species_per_dataset: int = 8,
    images_per_species: int = 60,
    min_size: int = 192,
    max_size: int = 256,
) -> list[Path]:
    """Write ``iwildcam_v2.0.tar.gz`` and ``megadetector_results.json``; return their paths.

    ``images_per_species`` is the commonest species' photo count; the k-th
    species has about 1/k of it (``tail_counts``).  Each camera's frames are
    ``min_size``..``max_size`` wide, 4:3.  Same arguments -> byte-identical files.
    """
    demo.check_demo_settings(
        species_per_dataset,
        (2, len(SPECIES)),
        images_per_species,
        4,
        (min_size, max_size),
        128,
        what="camera-trap demo",
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cameras, shots = plan_collection(
        seed, species_per_dataset, images_per_species, min_size, max_size
    )
    found: list[tuple[Shot, list[dict[str, object]]]] = []

    def members() -> Iterator[tuple[str, bytes]]:
        yield "categories.csv", categories_csv(species_per_dataset)
        yield "metadata.csv", metadata_csv(shots)
        yield from _frames(cameras, shots, seed, found)

    archive, detections = out_dir / ARCHIVE, out_dir / DETECTIONS
    demo._write_tar(archive, members(), gzipped=True)
    write_text(detections, detections_json(found))
    log.info(
        "wrote %d camera-trap frames (%d cameras, %d sequences; WILDS iwildcam_v2.0 layout) "
        "and their detections to %s",
        len(shots),
        len(cameras),
        len({s.sequence for s in shots}),
        out_dir,
    )
    return [archive, detections]
