"""Intra-class FID: FID within each species, and its mean over species.

The overall FID cannot see a generator that draws good images of the wrong
species, or one species' images for every label; per-species FID compares each
label's generated images with that species' real crops only (Miyato & Koyama,
2018, used it for conditional GANs).

With a few dozen images per species the 2048-d covariances are far from full
rank, so these FIDs are biased upward and only comparable between evaluations
with the same image counts (per-species KID is the unbiased companion).  A
species needs at least 2 images on both sides for a covariance; others get
``None`` and are left out of the mean.  Each species costs two 2048 x 2048
eigendecompositions, a few seconds on CPU.
"""

from __future__ import annotations

import numpy as np

from speciesgan.metrics.fid import fid_from_features
from speciesgan.util.errors import SpeciesganError

MIN_IMAGES = 2


def _labels(features: np.ndarray, labels: np.ndarray, name: str, species: list[str]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(features):
        raise SpeciesganError(
            f"intra-class FID: {name} labels have shape {labels.shape} but there are "
            f"{len(features)} {name} feature rows"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(species)):
        raise SpeciesganError(
            f"intra-class FID: {name} labels must be species ids 0..{len(species) - 1}, "
            f"found {int(labels.min())}..{int(labels.max())}"
        )
    return labels.astype(np.int64)


def intra_class_fid(
    real: np.ndarray,
    real_labels: np.ndarray,
    fake: np.ndarray,
    fake_labels: np.ndarray,
    species: list[str],
) -> dict:
    """Per-species FID (``None`` below 2 images on either side) and the mean of the rest.

    Labels are species ids indexing ``species``.  Returns ``{"mean": float | None,
    "per_species": {name: float | None}}``; ``mean`` is ``None`` when no species
    qualifies.
    """
    if len(set(species)) != len(species):
        raise SpeciesganError(f"intra-class FID: species names repeat in {species}")
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    real_ids = _labels(real, real_labels, "real", species)
    fake_ids = _labels(fake, fake_labels, "fake", species)
    per_species: dict[str, float | None] = {}
    for species_id, name in enumerate(species):
        real_rows = real[real_ids == species_id]
        fake_rows = fake[fake_ids == species_id]
        if min(len(real_rows), len(fake_rows)) < MIN_IMAGES:
            per_species[name] = None
            continue
        per_species[name] = float(fid_from_features(fake_rows, real_rows))
    scores = [score for score in per_species.values() if score is not None]
    return {"mean": float(np.mean(scores)) if scores else None, "per_species": per_species}
