"""Memorisation check: generated images that sit on top of a training crop.

A GAN trained on a few hundred crops per species can reproduce training images,
which FID rewards.  A generated image is flagged when its nearest training crop
(euclidean, in the given features) is at most as far as the ``percentile``-th
percentile of the training set's own nearest-neighbour distances: closer than
all but that share of training crops are to their nearest *other* crop.  A fresh
sample from the training distribution is flagged about ``percentile`` % of the
time; a memorising generator far more often.

Exact duplicates in the training set count: a duplicated crop's nearest other crop
is its copy, at distance 0.  If more than ``percentile`` % of the crops are
duplicated the threshold is 0, and then only exact copies of training crops are
flagged; that is why the test is "at most as far" and not "closer than".

The percentile is numpy's default (linear interpolation between order statistics).
The closest (generated, training) pairs, one per generated image, come back too,
so a report can show them side by side.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from speciesgan.metrics.neighbours import (
    common_frame,
    kth_neighbour_distances,
    nearest_neighbours,
)
from speciesgan.util.errors import SpeciesganError


def memorisation(
    train: np.ndarray, generated: np.ndarray, percentile: float = 1.0, pairs: int = 8
) -> dict:
    """Fraction of generated images flagged, the distance threshold, the ``pairs`` closest pairs.

    Returns ``{"fraction": float, "threshold": float, "pairs": [{"generated": int,
    "train": int, "distance": float}, ...]}``, pairs sorted by distance (ties by
    generated index), at most one per generated image.
    """
    if not (isinstance(percentile, (int, float)) and math.isfinite(percentile)) or not (
        0.0 <= percentile <= 100.0
    ):
        raise SpeciesganError(f"memorisation: percentile must be in [0, 100], got {percentile!r}")
    if isinstance(pairs, bool) or not isinstance(pairs, (int, np.integer)) or pairs < 0:
        raise SpeciesganError(f"memorisation: pairs must be an integer >= 0, got {pairs!r}")
    train_t, generated_t = common_frame(train, generated, ("training", "generated"))
    if len(train_t) < 2:
        raise SpeciesganError(
            f"memorisation needs at least 2 training images, got {len(train_t)}: the "
            f"threshold comes from each training image's nearest other training image"
        )
    if len(generated_t) == 0:
        raise SpeciesganError("memorisation needs at least 1 generated image, got 0")
    own = kth_neighbour_distances(train_t, 1).numpy()
    threshold = float(np.percentile(own, percentile))
    distances, indices = nearest_neighbours(generated_t, train_t)
    order = torch.argsort(distances, stable=True)[:pairs].tolist()
    return {
        "fraction": float((distances <= threshold).double().mean()),
        "threshold": threshold,
        "pairs": [
            {
                "generated": int(g),
                "train": int(indices[g]),
                "distance": float(distances[g]),
            }
            for g in order
        ],
    }
