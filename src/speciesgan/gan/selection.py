"""Which G-EMA snapshot to export: chosen by a rule on validation crops, not by hand.

A GAN's quality moves from snapshot to snapshot: on the demo the worst
species' generated accuracy swung between 0.0 and 0.97 from one 100-step
snapshot to the next (docs/quality.md).  Exporting whatever the last step
holds, or a step count read off such a table, is luck.  PyTorch-StudioGAN keeps
the checkpoint with the best FID; here each snapshot of the selection window is
scored against *validation* crops (train-split crops held out of GAN training,
never the test split the report grades) and the best one is exported.

The score rewards fidelity and variety together, species by species: the
Fréchet distance between the generated images of a species and its validation
crops in EfficientNet-Lite0 features (intra-class FD, lower is better), averaged
over species.  A Fréchet distance grows when the means differ (wrong or
unconvincing images) and when the spreads differ (a species collapsed to one
image has almost no spread), and unlike precision or coverage it still ranks
snapshots whose images are all far from the real ones, early in a run or on a
hard dataset.  Precision and coverage (Naeem et al. 2020) are recorded beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

SELECTION_K = 3
"""Nearest neighbours for the recorded precision and coverage: ~16 validation crops a species."""
RULE = (
    "the G-EMA snapshot with the lowest mean over species of the Fréchet distance in "
    "EfficientNet-Lite0 features between {n} generated images of the species and its "
    "validation crops (train-split crops held out of GAN training; never the test split); "
    "snapshots from step {start} on, every {every} steps, and the last"
)


def validation_rows(labels: np.ndarray, per_species: int, seed: int) -> np.ndarray:
    """Rows of the train split held out of GAN training for snapshot selection (sorted).

    Up to ``per_species`` crops of each species, but never more than a quarter of
    its crops, so a rare species keeps most of its photos for training.  Drawn
    with a generator seeded by ``seed``, so the same run holds out the same crops
    after a resume.
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for species_id in np.unique(labels):
        rows = np.flatnonzero(labels == species_id)
        take = min(per_species, len(rows) // 4)
        if take > 0:
            held.append(rng.choice(rows, size=take, replace=False))
    if not held:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(held)).astype(np.int64)


def selection_steps(total: int, every: int, start_fraction: float) -> list[int]:
    """The steps whose snapshots are scored: every ``every`` steps from the window's start, and the last."""
    if every <= 0:
        return []
    start = int(np.ceil(total * start_fraction))
    steps = [step for step in range(every, total + 1, every) if step >= start]
    if total not in steps:
        steps.append(total)
    return steps


class SnapshotScorer(Protocol):
    """What training needs to score snapshots (``metrics.selection.SnapshotJudge``).

    Passed in by the caller, so the training loop imports no metric code.
    """

    def prepare(self, crops: torch.Tensor, labels: np.ndarray, species: list[str]) -> None:
        """Take the validation crops (uint8 [M, 3, S, S]) once, before training."""

    def score(self, generator: nn.Module) -> dict[str, Any]:
        """``{"score": float | None, ...}`` of one G-EMA snapshot (lower is better)."""


def choose(scores: Mapping[int, Mapping[str, Any]]) -> int | None:
    """The step with the lowest score (the later one on a tie); None when nothing was scored."""
    scored = [
        (entry["score"], -step) for step, entry in scores.items() if entry.get("score") is not None
    ]
    if not scored:
        return None
    return -min(scored)[1]


def describe_rule(settings: Mapping[str, Any]) -> str:
    """The selection rule in words, for the report and ``selection.json``."""
    total = int(settings["steps"])
    start = int(np.ceil(total * float(settings["select_from"])))
    return RULE.format(
        n=int(settings["select_images_per_species"]),
        start=start,
        every=int(settings["select_every"]),
    )
