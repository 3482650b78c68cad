"""Precision/recall and density/coverage of generated features against real ones.

FID folds fidelity (do generated images look real?) and diversity (do they cover
the real variety?) into one number; these metrics report them separately, so a
mode-collapsed generator (high fidelity, low diversity) is told apart from a blurry
one (the reverse).

Each set's manifold is the union of balls around its features, each ball's radius
the distance to the centre's k-th nearest *other* feature of the same set.

- Precision and recall (Kynkäänniemi et al., 2019, "Improved precision and recall
  metric for assessing generative models"): the fraction of fake features inside the
  real manifold, and of real features inside the fake manifold.  As in the paper
  (and torch-fidelity) the balls are closed, distance <= radius, so a real set with
  k+1 identical crops still contains their copies.  The ``prdc`` package uses open
  balls; on continuous features the two agree (ties have probability 0).
- Density and coverage (Naeem et al., 2020, "Reliable fidelity and diversity metrics
  for generative models"): density counts how many real balls contain each fake
  feature, divided by k (1 in expectation when the distributions match, above 1
  when fakes crowd around real points); coverage is the fraction of real balls that
  contain at least one fake feature.  Balls are open, distance < radius, as in the
  authors' reference code (``prdc``): then a set compared with itself has density
  exactly 1, each ball holding its centre and k - 1 neighbours.

Distances are euclidean, in float64, computed in bounded blocks (see
:mod:`speciesgan.metrics.neighbours`).
"""

from __future__ import annotations

import numpy as np

from speciesgan.metrics.neighbours import (
    ball_hits,
    common_frame,
    kth_neighbour_distances,
    mutual_ball_hits,
    require_more_than,
)
from speciesgan.util.errors import SpeciesganError


def _check_k(k: int, metric: str) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SpeciesganError(f"{metric}: k must be a positive integer, got {k!r}")


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision and recall with k-th-neighbour radii (closed balls).

    Both sets need more than ``k`` rows: each set's radii use its own k-th neighbours.
    """
    _check_k(k, "precision/recall")
    real_t, fake_t = common_frame(real, fake, ("real", "fake"))
    require_more_than(real_t, k, "real", "precision/recall")
    require_more_than(fake_t, k, "fake", "precision/recall")
    real_radii = kth_neighbour_distances(real_t, k)
    fake_radii = kth_neighbour_distances(fake_t, k)
    in_real, in_fake = mutual_ball_hits(real_t, fake_t, real_radii, fake_radii)
    return {
        "precision": float(in_real.double().mean()),
        "recall": float(in_fake.double().mean()),
    }


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Density and coverage with the real set's k-th-neighbour radii (open balls).

    Only real radii are used: the real set needs more than ``k`` rows, the fake
    set at least one.
    """
    _check_k(k, "density/coverage")
    real_t, fake_t = common_frame(real, fake, ("real", "fake"))
    require_more_than(real_t, k, "real", "density/coverage")
    if len(fake_t) == 0:
        raise SpeciesganError("density/coverage needs at least 1 fake image, got 0")
    real_radii = kth_neighbour_distances(real_t, k)
    counts, covered = ball_hits(real_t, fake_t, real_radii, closed=False)
    return {
        "density": float(counts.sum().item() / (k * len(fake_t))),
        "coverage": float(covered.double().mean()),
    }
