"""Floors: what a perfect generator would score, at the evaluation's own sample sizes.

Precision, recall, coverage and Fréchet distances are biased by the number of
images: with the demo's few hundred crops, real test crops against real train
crops give FD-Lite0 about 58 and recall about 0.8, not 0 and 1.  A generated
figure means something only beside the same figure computed with real test
crops in the generator's place: the same species counts, the same reference (the
real train crops), the same code.  Precision and recall also depend on the ratio
of the two sets' sizes, so both comparisons use equal, class-balanced counts:
species k contributes ``n_k`` reference, ``n_k`` generated and ``n_k`` test crops
(:func:`equal_counts`).  This module draws those rows.
"""

from __future__ import annotations

import numpy as np

FLOOR_NOTE = (
    "floors: each figure again with real test crops in place of the generated images "
    "(never seen by the GAN), the same count of each species as the generated and the "
    "reference (real train) crops, the same code; the best a perfect generator could "
    "show at this sample size"
)


def rows_like(train_labels: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """Indices of train rows with ``counts[k]`` rows of species ``k``, drawn without
    replacement (capped at what species ``k`` has), in species then row order.

    Without replacement: a repeated crop would count as a perfect match of itself
    and flatter precision and coverage.
    """
    train_labels = np.asarray(train_labels, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x0F1007])
    picked = []
    for species, count in enumerate(np.asarray(counts, dtype=np.int64)):
        rows = np.flatnonzero(train_labels == species)
        take = min(int(count), len(rows))
        if take:
            picked.append(np.sort(rng.choice(rows, size=take, replace=False)))
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def equal_counts(num_species: int, *label_sets: np.ndarray) -> np.ndarray:
    """Per species, the smallest count any of the label sets has: what every set keeps."""
    counts = [
        np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_species)
        for labels in label_sets
    ]
    return np.min(np.stack(counts), axis=0)


def first_rows(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the first ``counts[k]`` rows of each species ``k``, in species order."""
    labels = np.asarray(labels, dtype=np.int64)
    picked = [np.flatnonzero(labels == k)[: int(c)] for k, c in enumerate(counts)]
    return np.concatenate(picked).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)
