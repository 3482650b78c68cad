"""Scores a G-EMA snapshot for ``gan.selection``: see ``speciesgan.gan.selection`` for the rule.

Lite0 features are the packaged ImageNet weights every install has, so the
selection runs offline on a compute node.  The score is computed species by
species on validation crops that training held out of the GAN's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.gan.selection import SELECTION_K
from speciesgan.gan.standing_stats import with_standing_statistics
from speciesgan.generate.sample import generate_images
from speciesgan.metrics.feature_spaces import FeatureSpace, features_of
from speciesgan.metrics.fid import fid_from_features
from speciesgan.metrics.prdc import density_coverage, precision_recall

FEATURE_BATCH = 50


@dataclass
class SnapshotJudge:
    """Scores generators against fixed validation features with fixed latents."""

    space: FeatureSpace
    images_per_species: int
    seed: int
    validation: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    validation_labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    species: list[str] = field(default_factory=list)

    def prepare(self, crops: torch.Tensor, labels: np.ndarray, species: list[str]) -> None:
        self.validation = features_of(self.space, crops.to(self.space.device), FEATURE_BATCH)
        self.validation_labels = np.asarray(labels, dtype=np.int64)
        self.species = list(species)

    def score(self, generator: nn.Module) -> dict[str, Any]:
        """The selection score of one generator (standing statistics computed here)."""
        num_species = len(self.species)
        scored = with_standing_statistics(generator, num_species, self.seed)
        ids = torch.arange(num_species).repeat_interleave(self.images_per_species)
        images = generate_images(scored, ids, seed=self.seed)
        features = features_of(self.space, images.to(self.space.device), FEATURE_BATCH)
        labels = ids.numpy()
        per_species: dict[str, dict[str, float]] = {}
        for species_id, name in enumerate(self.species):
            real = self.validation[self.validation_labels == species_id]
            fake = features[labels == species_id]
            if len(real) <= SELECTION_K or len(fake) <= SELECTION_K:
                continue
            per_species[name] = {
                "fd": fid_from_features(fake, real),
                "precision": float(precision_recall(real, fake, k=SELECTION_K)["precision"]),
                "coverage": float(density_coverage(real, fake, k=SELECTION_K)["coverage"]),
            }
        if not per_species:
            return {"score": None, "per_species": {}}
        entries = per_species.values()
        return {
            "score": float(np.mean([entry["fd"] for entry in entries])),
            "precision": float(np.mean([entry["precision"] for entry in entries])),
            "coverage": float(np.mean([entry["coverage"] for entry in entries])),
            "worst_species": max(per_species, key=lambda name: per_species[name]["fd"]),
            "per_species": per_species,
        }


def snapshot_judge(settings: dict[str, Any] | None, seed: int) -> SnapshotJudge | None:
    """The judge ``train-gan`` passes to training when ``gan.select_every`` > 0, else None.

    Lite0 runs on the CPU: a few hundred images per snapshot, and the training
    device's memory stays the GAN's.
    """
    from speciesgan.gan.training_loop import resolve_settings
    from speciesgan.metrics.feature_spaces import lite0_space

    cfg = resolve_settings(settings or {})
    if int(cfg["select_every"]) <= 0:
        return None
    return SnapshotJudge(lite0_space("cpu"), int(cfg["select_images_per_species"]), seed)
