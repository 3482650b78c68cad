"""The generated set's species mix matched to the real set's (the selection FID and KID use).

Shared by ``evaluate`` (overall FID/KID) and ``id_ood`` (the ID and OOD
references); it sits below both so that neither imports the other.
"""

from __future__ import annotations

import numpy as np

from speciesgan.util.errors import SpeciesganError


def matched_species_counts(real_labels: np.ndarray, num_species: int, total: int) -> np.ndarray:
    """How many of ``total`` generated images each species gets so the mix matches the real one.

    FID and KID compare two distributions; a generated set balanced per species
    against real crops at natural frequencies differs even for a perfect
    generator.  stylegan2-ada draws the generated labels from the dataset's label
    distribution; the counts here are its expectation rounded by largest
    remainder (ties to the lower species id), so they are deterministic and sum to
    ``total``.
    """
    real_labels = np.asarray(real_labels, dtype=np.int64)
    if len(real_labels) == 0:
        raise SpeciesganError("matching the species mix needs at least one real image")
    expected = np.bincount(real_labels, minlength=num_species) * total / len(real_labels)
    counts = np.floor(expected).astype(np.int64)
    order = np.argsort(-(expected - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def matched_rows(
    labels: np.ndarray, real_labels: np.ndarray, num_species: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the balanced set to keep, species of the images still to generate).

    The selection behind :func:`fid_features`, shared by every feature space.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = matched_species_counts(real_labels, num_species, len(labels))
    kept = np.concatenate(
        [np.flatnonzero(labels == k)[: counts[k]] for k in range(num_species)]
    ).astype(np.int64)
    shortfall = counts - np.bincount(labels[kept], minlength=num_species)
    return kept, np.repeat(np.arange(num_species), shortfall).astype(np.int64)
