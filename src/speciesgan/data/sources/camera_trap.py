"""Camera-trap sequences: keep each burst on one side of the split, and thin it.

A camera trap fires a burst of frames per trigger.  Frames of one burst are
near-duplicates, so a burst split between train and test would let the test
set score memorised pixels; and a burst of ten frames counts one animal ten
times.  Both rules work on ``Frame``s, whatever the dataset's own table.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)

FRAME_MODES = ("all", "one_per_sequence", "interval")


@dataclass(frozen=True, slots=True)
class Frame:
    """One photo of a sequence, as far as these rules are concerned."""

    key: str  # unique per photo (its file name)
    sequence: str
    split: str  # the pipeline split the dataset's own split maps to
    time: datetime | None = None  # None: not given or unreadable
    species: str = ""
    score: float = 0.0  # which frame of a sequence is best (the detector's confidence)


def _order(frame: Frame) -> tuple[bool, datetime, str]:
    """Time order, frames without a time last, then by key: deterministic."""
    return frame.time is None, frame.time or datetime.min, frame.key


def settle_sequences(frames: Iterable[Frame]) -> tuple[dict[str, str], int]:
    """The split of each frame key, with every sequence on one side; and how many moved.

    A sequence whose frames map to several splits goes wholly to the split most
    of its frames are in; on a tie, to the split of its earliest frame.  (Splits
    are usually drawn per sequence, so a straddling sequence is a labelling
    slip, and the majority is the least change.)
    """
    by_sequence: dict[str, list[Frame]] = defaultdict(list)
    for frame in frames:
        by_sequence[frame.sequence].append(frame)
    splits: dict[str, str] = {}
    moved = 0
    for sequence_frames in by_sequence.values():
        votes = Counter(f.split for f in sequence_frames)
        if len(votes) == 1:
            chosen = sequence_frames[0].split
        else:
            top = max(votes.values())
            earliest = min(sequence_frames, key=_order)
            leaders = {split for split, n in votes.items() if n == top}
            chosen = earliest.split if earliest.split in leaders else min(leaders)
            moved += sum(1 for f in sequence_frames if f.split != chosen)
        for frame in sequence_frames:
            splits[frame.key] = chosen
    return splits, moved


def thin_sequences(
    frames: Sequence[Frame], mode: str, interval_seconds: float = 0.0
) -> tuple[list[Frame], list[tuple[Frame, str]]]:
    """The frames kept under ``mode``, and each dropped frame with its reason.

    Works per (sequence, species): ``all`` keeps everything; ``one_per_sequence``
    keeps the frame with the highest score (the earliest on a tie);
    ``interval`` walks each sequence in time order and keeps a frame when at
    least ``interval_seconds`` passed since the last frame kept.  Frames with no
    time cannot be placed, so ``interval`` keeps them (their count is logged).
    """
    if mode not in FRAME_MODES:
        raise ValueError(f"frame mode must be one of {FRAME_MODES}, not {mode!r}")
    if mode == "all":
        return list(frames), []
    groups: dict[tuple[str, str], list[Frame]] = defaultdict(list)
    for frame in frames:
        groups[(frame.sequence, frame.species)].append(frame)
    kept: list[Frame] = []
    dropped: list[tuple[Frame, str]] = []
    untimed = 0
    for (sequence, _), group in groups.items():
        group = sorted(group, key=_order)
        if mode == "one_per_sequence":
            best = max(group, key=lambda f: f.score)  # max() keeps the first of equals
            kept.append(best)
            reason = (
                f"near-duplicate in sequence {sequence}: one photo per sequence kept ({best.key})"
            )
            dropped += [(f, reason) for f in group if f is not best]
            continue
        last: datetime | None = None
        for frame in group:
            if frame.time is None:
                untimed += 1
                kept.append(frame)
            elif last is None or (frame.time - last).total_seconds() >= interval_seconds:
                kept.append(frame)
                last = frame.time
            else:
                reason = (
                    f"near-duplicate in sequence {sequence}: within {interval_seconds:g} s "
                    "of a kept photo"
                )
                dropped.append((frame, reason))
    if untimed:
        log.warning("%d photos without a readable time kept unthinned", untimed)
    return kept, dropped
