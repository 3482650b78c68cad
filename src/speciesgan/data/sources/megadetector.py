"""MegaDetector batch output: which photos show an animal, and where.

The format (MegaDetector's batch-processing JSON, as published with the
iWildCam competitions)::

    {"images": [{"file": "train/ab12.jpg",            # or "id": "ab12"
                 "detections": [{"category": "1", "conf": 0.93,
                                 "bbox": [x_min, y_min, width, height]}, ...]},
                {"file": "...", "failure": "..."}, ...],
     "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
     "info": {...}}

``bbox`` is normalised to the image (0..1 of its width and height), so the
boxes hold for any resized copy of the photo, such as WILDS' 448-px-high one.
``detection_categories`` may come after ``images`` (MegaDetector writes it
there), so each photo's detections are kept with their raw category ids and
read against the table once the file has been read.

Memory: only the photos asked for are kept, and of their detections only those
at or above the confidence threshold (camera-trap files list up to a hundred
boxes per photo, nearly all of them noise); below it, each category's best
confidence is all that is remembered (it explains a reject).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speciesgan.data.json_stream import read_streamed
from speciesgan.data.sources.records import RelativeBox
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

DEFAULT_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
"""MegaDetector's fixed category ids, used when a file lacks ``detection_categories``."""
ANIMAL = "animal"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_key(name: str) -> str:
    """How a photo is matched between a dataset's table and the detections.

    The base name without an image extension: detector files name photos by
    path (``train/ab12.jpg``), by file name or by id (``ab12``, as in the
    iWildCam 2020 file), while WILDS' metadata.csv gives ``ab12.jpg``.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, suffix = os.path.splitext(base)
    return stem if suffix.lower() in IMAGE_SUFFIXES else base


@dataclass(frozen=True, slots=True)
class Detection:
    """One detection at or above the threshold."""

    category: str  # the file's category id, e.g. "1"
    conf: float
    box: RelativeBox


@dataclass(slots=True)
class FrameDetections:
    """What the detector said about one photo."""

    kept: list[Detection] = field(default_factory=list)  # conf >= threshold, file order
    best_below: dict[str, float] = field(default_factory=dict)  # category id -> best conf
    malformed: int = 0  # detections without a usable bbox/conf/category
    failure: str | None = None  # the detector could not process the photo


@dataclass(frozen=True)
class DetectionsFile:
    """The detections of the photos asked for, with the file's category names."""

    path: Path
    frames: dict[str, FrameDetections]  # image_key -> detections
    categories: dict[str, str]  # category id -> name ("animal", "person", ...)

    def animal_boxes(self, frame: FrameDetections) -> list[tuple[float, RelativeBox]]:
        """(conf, box) of the photo's animal detections at or above the threshold."""
        return [(d.conf, d.box) for d in frame.kept if self.categories.get(d.category) == ANIMAL]

    def why_no_animal(self, frame: FrameDetections, threshold: float) -> tuple[str, str]:
        """(kind, reason) for a photo with no animal detection at or above ``threshold``.

        The kind is the reason without its numbers, for counting.
        """
        if frame.failure is not None:
            return "detector failed", f"the detector failed on this photo ({frame.failure})"
        names = {self.categories.get(d.category, f"category {d.category}") for d in frame.kept}
        if names:
            return (
                "only people/vehicles",
                f"only {' and '.join(sorted(names))} detections, no animal",
            )
        animal_below = [
            conf for cat, conf in frame.best_below.items() if self.categories.get(cat) == ANIMAL
        ]
        if animal_below:
            return "low confidence only", (
                f"animal detections below confidence {threshold:g} only "
                f"(best {max(animal_below):.3f})"
            )
        if frame.malformed:
            return "malformed detections", (
                f"no usable animal detection ({frame.malformed} malformed detection(s))"
            )
        return "no animal detection", "no animal detection"


def _box(value: Any) -> RelativeBox | None:
    if not isinstance(value, list) or len(value) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    x, y, w, h = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    return x, y, w, h


def _add_detection(
    frame: FrameDetections, item: Any, threshold: float, ids: dict[str, str]
) -> None:
    """File ``item`` under ``frame``; ``ids`` shares one string per category id."""
    if not isinstance(item, dict):
        frame.malformed += 1
        return
    category, conf = item.get("category"), item.get("conf")
    if type(category) is int:
        category = str(category)
    if type(conf) is int:
        conf = float(conf)
    if not isinstance(category, str) or type(conf) is not float or not math.isfinite(conf):
        frame.malformed += 1
        return
    category = ids.setdefault(category, category)
    if conf < threshold:  # nearly every detection: remember the best per category only
        if conf > frame.best_below.get(category, -1.0):
            frame.best_below[category] = conf
        return
    box = _box(item.get("bbox"))
    if box is None:
        frame.malformed += 1
        return
    frame.kept.append(Detection(category, conf, box))


def _frame(image: dict[str, Any], threshold: float, ids: dict[str, str]) -> FrameDetections:
    frame = FrameDetections()
    failure = image.get("failure")
    if failure:
        frame.failure = str(failure)
        return frame
    detections = image.get("detections")
    if detections is None:
        return frame
    if not isinstance(detections, list):
        frame.malformed += 1
        return frame
    for item in detections:
        _add_detection(frame, item, threshold, ids)
    return frame


def _categories(path: Path, members: dict[str, Any]) -> dict[str, str]:
    table = members.get("detection_categories")
    if table is None:
        log.warning(
            "%s: no detection_categories; using MegaDetector's %s", path, DEFAULT_CATEGORIES
        )
        return dict(DEFAULT_CATEGORIES)
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise SpeciesganError(
            f"{path}: detection_categories must map category ids to names, got {table!r:.200}"
        )
    names = {str(k): v.strip().lower() for k, v in table.items()}
    if ANIMAL not in names.values():
        raise SpeciesganError(
            f"{path}: detection_categories {table} has no 'animal' category; "
            "is this MegaDetector output?"
        )
    return names


def read_detections(path: Path, wanted: Collection[str], threshold: float) -> DetectionsFile:
    """The detections of the photos whose ``image_key`` is in ``wanted``.

    A photo listed twice keeps its first entry (the count is logged).  Entries
    without ``file`` or ``id`` are counted and skipped: they cannot belong to
    any photo.
    """
    path = Path(path)
    frames: dict[str, FrameDetections] = {}
    counts = {"entries": 0, "unnamed": 0, "repeated": 0, "other": 0}
    ids: dict[str, str] = {}

    def on_image(image: Any) -> None:
        counts["entries"] += 1
        name = image.get("file", image.get("id")) if isinstance(image, dict) else None
        if not isinstance(name, str) or not name:
            counts["unnamed"] += 1
            return
        key = image_key(name)
        if key not in wanted:
            counts["other"] += 1
        elif key in frames:
            counts["repeated"] += 1
        else:
            frames[key] = _frame(image, threshold, ids)

    members = read_streamed(path, "images", on_image)
    categories = _categories(path, members)
    if counts["unnamed"]:
        log.warning("%s: %d entries without file/id ignored", path, counts["unnamed"])
    if counts["repeated"]:
        log.warning("%s: %d photos listed again; first entry used", path, counts["repeated"])
    malformed = sum(f.malformed for f in frames.values())
    if malformed:
        log.warning("%s: %d malformed detections ignored", path, malformed)
    log.info(
        "%s: %d entries: %d for the photos in play, %d for others (not in the dataset, "
        "or already rejected)",
        path,
        counts["entries"],
        len(frames),
        counts["other"],
    )
    return DetectionsFile(path, frames, categories)
