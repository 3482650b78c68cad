"""iWildCam at full scale: time and peak memory of the index stage's parse.

1. Generates a WILDS-v2.0-shaped collection of ``--photos`` rows (default
   200,000): ``metadata.csv`` with bursts of 1-5 frames, ``--locations`` camera
   locations (a fifth of them out-of-distribution), 182 labels with a long tail
   (a quarter of the photos labelled empty); ``categories.csv``; and a
   MegaDetector batch-output file with ``--boxes`` detections per photo (one or
   two confident animals on most labelled photos, the rest low-confidence
   noise, some people), written with ``detection_categories`` last, as
   MegaDetector writes it.  Photos are files under ``train/``: empty files
   (``--photos-as empty``: the source only checks that they exist) or tiny
   JPEGs with unique bytes (``--photos-as jpeg``: needed to time the rest of
   the index step, which hashes every photo and reads its header).
2. Runs each measurement in a fresh Python process, so that its peak resident
   memory (``ru_maxrss``) is its own: the interpreter with the index's imports
   only; the iwildcam source read (metadata.csv and the detections file
   streamed, the files' existence checked; records and rejects built); the
   same with ``frames: one_per_sequence``; the whole index step (source read,
   SHA-256 and header of every photo, boxes, splits, the parquet tables), with
   ``--photos-as jpeg`` only; and, for comparison, ``json.load`` of the
   detections file.

Prints a table.  Usage::

    python benchmarks/iwildcam_index.py --work /tmp/iwc               # 200k, empty photo files
    python benchmarks/iwildcam_index.py --work /tmp/iwc --photos-as jpeg
    python benchmarks/iwildcam_index.py --photos 20000                 # quick check
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

LABELS = 182
NAME = "iwc"


def category_names() -> list[str]:
    return ["empty"] + [f"genus{y:03d} species{y:03d}" for y in range(1, LABELS)]


def tiny_jpeg() -> bytes:
    """A 64 x 36 JPEG (WILDS' 448-px-high frames, scaled down): the template of every photo."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def unique_jpeg(template: bytes, number: int) -> bytes:
    """The template with a comment segment naming ``number``: same picture, unique SHA-256."""
    text = f"photo {number}".encode()
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return template[:2] + segment + template[2:]


def generate(base: Path, photos: int, locations: int, boxes: int, as_jpeg: bool, seed: int) -> Path:
    """The WILDS layout under ``base`` and the detections file beside it; returns the latter."""
    rng = np.random.default_rng(seed)
    (base / "train").mkdir(parents=True)
    with open(base / "categories.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["y", "category_id", "name"])
        out.writerows((y, 1000 + y, name) for y, name in enumerate(category_names()))
    # long tail: Zipf-like label weights, empty on a quarter of the photos
    weights = 1.0 / np.arange(1, LABELS) ** 1.2
    weights = 0.75 * weights / weights.sum()
    probabilities = np.concatenate([[0.25], weights])
    ood_locations = set(range(0, locations, 5))
    template = tiny_jpeg()
    detections = base.parent / "detections.json"
    start = datetime(2013, 1, 1)
    with (
        open(base / "metadata.csv", "w", newline="") as meta_fh,
        open(detections, "w") as det_fh,
    ):
        meta = csv.writer(meta_fh)
        meta.writerow(
            ["", "split", "location_remapped", "location", "sequence_remapped", "y"]
            + ["category_id", "datetime", "filename", "image_id"]
        )
        det_fh.write('{"images": [\n')
        number = sequence = 0
        while number < photos:
            location = int(rng.integers(locations))
            y = int(rng.choice(LABELS, p=probabilities))
            day = int(rng.integers(0, 2000))
            if location in ood_locations:
                split = "val" if location % 2 else "test"
            else:  # WILDS splits the in-distribution photos by date
                split = ("train",) * 8 + ("id_val", "id_test")
                split = split[day % 10]
            time_0 = start + timedelta(days=day, seconds=int(rng.integers(86400)))
            for frame in range(min(int(rng.integers(1, 6)), photos - number)):
                filename = f"{number:08x}-21bc-11ea-a13a-137349068a90.jpg"
                when = (time_0 + timedelta(seconds=frame)).strftime("%Y-%m-%d %H:%M:%S.000")
                meta.writerow(
                    [number, split, location, 500 + location, sequence, y, 1000 + y]
                    + [when, filename, filename[:-4]]
                )
                path = base / "train" / filename
                path.write_bytes(unique_jpeg(template, number) if as_jpeg else b"")
                entry = {"id": filename[:-4], "detections": frame_detections(rng, y, boxes)}
                entry["max_detection_conf"] = max(
                    (d["conf"] for d in entry["detections"]), default=0.0
                )
                det_fh.write((",\n" if number else "") + json.dumps(entry))
                number += 1
            sequence += 1
        det_fh.write('\n], "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},')
        det_fh.write(' "info": {"detector": "megadetector_v3", "format_version": "1.0"}}\n')
    return detections


def frame_detections(rng: np.random.Generator, y: int, boxes: int) -> list[dict[str, Any]]:
    """``boxes`` detections: confident animals on most labelled frames, the rest noise."""
    confident = 0 if y == 0 else int(rng.choice([0, 1, 1, 1, 1, 1, 1, 2]))
    found = []
    for k in range(boxes):
        if k < confident:
            category, conf = "1", float(rng.uniform(0.8, 1.0))
        else:
            category, conf = str(rng.choice(["1", "1", "1", "2"])), float(rng.uniform(0, 0.3))
        x, w = sorted(rng.uniform(0, 1, 2))
        top, h = sorted(rng.uniform(0, 1, 2))
        bbox = [round(x, 4), round(top, 4), round(w - x + 1e-3, 4), round(h - top + 1e-3, 4)]
        found.append({"category": category, "conf": round(conf, 3), "bbox": bbox})
    return found


# ---------------------------------------------------------------- measurements (child side)


def measure(what: str, root: Path, detections: Path, out: Path) -> dict[str, Any]:
    """Run one measurement in this process; returns seconds, peak RSS and counts."""
    from speciesgan.data.index import build_index
    from speciesgan.data.sources import reader

    options = {"detections": str(detections)}
    started = time.perf_counter()
    counts: dict[str, int] = {}
    if what == "imports":
        pass
    elif what in ("source", "source_one_per_sequence"):
        if what == "source_one_per_sequence":
            options["frames"] = "one_per_sequence"
        records, rejects = reader("iwildcam")(root, NAME, "animal", options=options)
        counts = {"records": len(records), "rejects": len(rejects)}
    elif what == "index":
        build_index(
            [(NAME, "iwildcam", "animal", root)],
            out / "records.parquet",
            out / "index_rejects.parquet",
            {"min_images_per_species": 20, "small_species": "drop", "shards": 8},
            seed=0,
            options={NAME: options},
        )
        import pyarrow.parquet as pq

        counts = {
            "records": pq.read_metadata(out / "records.parquet").num_rows,
            "rejects": pq.read_metadata(out / "index_rejects.parquet").num_rows,
        }
    elif what == "json_load":
        with open(detections) as fh:
            counts = {"records": len(json.load(fh)["images"])}
    else:
        raise ValueError(what)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"what": what, "seconds": seconds, "peak_rss_mib": peak, **counts}


def run_child(what: str, root: Path, detections: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", what, "--root", str(root)]
    command += ["--detections", str(detections), "--out", str(out)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=200_000)
    parser.add_argument("--locations", type=int, default=323)
    parser.add_argument("--boxes", type=int, default=5, help="detections per photo")
    parser.add_argument("--photos-as", choices=("empty", "jpeg"), default="empty")
    parser.add_argument("--work", type=Path, default=None, help="kept afterwards when given")
    parser.add_argument(
        "--no-json-load",
        action="store_true",
        help="skip the json.load comparison (GBs with --boxes 25+)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--detections", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.root, args.detections, args.out)))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="iwildcam-bench-"))
    root = work / "extracted"
    base = root / "iwildcam_v2.0"
    if base.exists():
        shutil.rmtree(work)
    started = time.perf_counter()
    detections = generate(
        base, args.photos, args.locations, args.boxes, args.photos_as == "jpeg", args.seed
    )
    generated = time.perf_counter() - started
    size_mib = detections.stat().st_size / 2**20
    metadata_mib = (base / "metadata.csv").stat().st_size / 2**20
    print(
        f"generated {args.photos:,} photos ({args.photos_as} files), metadata.csv "
        f"{metadata_mib:.1f} MiB, detections {size_mib:.1f} MiB ({args.boxes} per photo) "
        f"in {generated:.0f} s under {work}"
    )
    steps = ["imports", "source", "source_one_per_sequence"]
    if args.photos_as == "jpeg":
        steps.append("index")
    if not args.no_json_load:
        steps.append("json_load")
    rows = []
    for step in steps:
        out = work / f"out-{step}"
        out.mkdir(exist_ok=True)
        rows.append(run_child(step, root, detections, out))
    print()
    widths = (44, 8, 12, 8, 8)
    header = ("measurement", "seconds", "peak RSS MiB", "records", "rejects")
    print("| " + " | ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|")
    labels = {
        "imports": "interpreter + index imports",
        "source": "iwildcam source read (frames: all)",
        "source_one_per_sequence": "iwildcam source read (one_per_sequence)",
        "index": "whole index step (hash + header per photo)",
        "json_load": "json.load of the detections (comparison)",
    }
    for row in rows:
        print(
            f"| {labels[row['what']]:<44} | {row['seconds']:8.1f} | {row['peak_rss_mib']:12.0f} "
            f"| {row.get('records', ''):>8} | {row.get('rejects', ''):>8} |"
        )
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
