"""Head, middle and tail species: accuracy by how many train crops a species has.

A long-tailed collection's mean accuracy is mostly its head species'.  Splitting
the species into thirds by train-crop count shows whether the tail (the species
with a handful of crops) is learnt at all, by the classifier on real test crops
and by the generator.  The bins are the same wherever they are computed (the
classifier's metrics, evaluate's), because they depend only on the train counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BIN_NAMES = ("head", "middle", "tail")
BINS_NOTE = (
    "Species sorted by train crops (most first, ties by species id) and split into thirds "
    "(head, middle, tail; the first thirds take the remainder); a bin's accuracy is the "
    "mean of its species' accuracies, so every species counts once."
)


def species_bins(
    train_counts: Sequence[int] | np.ndarray, species: Sequence[str]
) -> dict[str, list[str]]:
    """Bin name -> its species, head first.

    Under 3 species the middle bin is empty (and with one species, the tail too):
    the rarest species is always the tail, the figure a long-tail reader looks for.
    """
    counts = np.asarray(train_counts, dtype=np.int64)
    if len(counts) != len(species):
        raise ValueError(f"{len(counts)} train counts for {len(species)} species")
    order = [species[k] for k in sorted(range(len(species)), key=lambda k: (-int(counts[k]), k))]
    if len(order) < len(BIN_NAMES):  # 2 species: head and tail, not head and middle
        return {"head": order[:1], "middle": [], "tail": order[1:]}
    sizes = [len(part) for part in np.array_split(np.arange(len(order)), len(BIN_NAMES))]
    ends = np.cumsum(sizes).tolist()
    return {
        name: order[end - size : end]
        for name, size, end in zip(BIN_NAMES, sizes, ends, strict=True)
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def accuracy_by_bin(
    train_counts: Sequence[int] | np.ndarray,
    species: Sequence[str],
    accuracies: Mapping[str, Mapping[str, float | None]],
) -> dict[str, Any]:
    """Each bin's species, train crops and mean accuracy per named accuracy table.

    ``accuracies`` maps a result key (``"generated_top1"``) to per-species
    accuracies; species missing from a table (no test crops) are left out of
    that mean, and a bin with none of them gets None.
    """
    counts = dict(zip(species, np.asarray(train_counts, dtype=np.int64).tolist(), strict=True))
    bins: dict[str, Any] = {}
    for name, members in species_bins(train_counts, species).items():
        entry: dict[str, Any] = {
            "species": members,
            "train_crops": int(sum(counts[s] for s in members)),
            "train_crops_range": [min(counts[s] for s in members), max(counts[s] for s in members)]
            if members
            else None,
        }
        for key, table in accuracies.items():
            entry[key] = _mean([float(table[s]) for s in members if table.get(s) is not None])
        bins[name] = entry
    return {"bins": bins, "note": BINS_NOTE}
