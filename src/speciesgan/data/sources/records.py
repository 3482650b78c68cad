"""The records every source module returns: a usable photo with its boxes, or a reject.

Apart from the package's ``__init__`` (which finds each format's reader) so that
the source modules import these types without importing the package that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels of the stored image, x1/y1 exclusive."""
RelativeBox = tuple[float, float, float, float]
"""(x_min, y_min, width, height) as fractions of the photo's displayed width and height."""


@dataclass(frozen=True)
class SourceRecord:
    """One usable photo as the source describes it (nothing decoded yet)."""

    dataset: str
    image_path: str  # absolute path of the image file on disk
    species: str  # human-readable name, e.g. "Border collie", "Black-footed Albatross"
    category: str  # dog / bird / butterfly / ...
    boxes: tuple[Box, ...] = field(default_factory=tuple)  # empty: no box known
    split: str | None = None  # "train" / "test" (or "ood") when the dataset has an official split
    # Boxes known only relative to the photo (detector output): the index step,
    # which reads each photo's size anyway, turns them into pixel boxes.
    relative_boxes: tuple[RelativeBox, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Reject:
    """A photo (or annotation) that cannot be used, and why; counted in the report."""

    dataset: str
    image_path: str
    species: str
    reason: str
    stage: str  # "source", "index" or "crop"
