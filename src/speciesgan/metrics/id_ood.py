"""In-distribution (ID) against out-of-distribution (OOD) camera locations.

Camera-trap manifests keep photos of locations never trained on as the ``ood``
split (``speciesgan.data.dataset``).  Two questions need it: does the eval
classifier, which scores generated images, still recognise species at new
locations (its top-1 on ood crops beside its top-1 on the ID test split), and
are the generated images closer to the training locations than to new ones
(FD-Lite0 against the ood crops beside FD-Lite0 against the real split)?

Everything here runs only when the manifest has ood crops: without them
evaluate costs what it always did.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.data.dataset import MappedSplit
from speciesgan.metrics.feature_spaces import FeatureSpace
from speciesgan.metrics.fid import RealFeatures, fid_from_features
from speciesgan.metrics.generated import generated_outputs
from speciesgan.util.progress import progress

OOD_SPLIT = "ood"
OOD_SEED_OFFSET = 3
ID_SEED_OFFSET = 4
"""Latent seed offsets of the extra generated images the ood and ID test species
mixes need (evaluate uses +1 for the real split's mix and +2 for CAS)."""
ID_OOD_NOTE = (
    "ID: the test split, from the camera locations trained on; OOD: crops from locations "
    "never trained on.  Each FD-Lite0 uses the same number of real crops (a seeded sample) "
    "and generated images mixed like that side's species."
)


def mapped_accuracy(classifier: nn.Module, split: MappedSplit, batch_size: int) -> float:
    """Top-1 of ``classifier`` on every crop of ``split``, gathered batch by batch.

    Streamed from the memory-mapped shards: an ood split can be as large as the
    training set, and needs no copy in memory.
    """
    device = next(classifier.parameters()).device
    classifier.eval()
    correct = 0
    with torch.no_grad():
        for start in progress(range(0, len(split), batch_size), desc="ood classifier"):
            rows = np.arange(start, min(start + batch_size, len(split)))
            batch = split.gather(rows).to(device).float().div(127.5).sub(1.0)
            predicted = classifier(batch).argmax(dim=1).cpu()
            correct += int((predicted == split.labels[rows]).sum())
    return correct / len(split)


def equal_count(features: RealFeatures, count: int, seed: int) -> RealFeatures:
    """A seeded random ``count`` of ``features``' rows (all of them when it has no more).

    Fréchet distance is biased by the number of images, so the ID and OOD
    figures are computed from the same number of real crops.
    """
    if len(features.features) <= count:
        return features
    rows = np.sort(np.random.default_rng(seed).permutation(len(features.features))[:count])
    return RealFeatures(
        features.features[rows], features.labels[rows], features.species, features.cache_file
    )


def held_out_fd(
    generator: nn.Module,
    balanced: np.ndarray,
    balanced_labels: np.ndarray,
    reference: RealFeatures,
    space: FeatureSpace,
    seed: int,
    batch_size: int,
) -> tuple[float | None, int]:
    """FD of generated images, mixed like ``reference``'s species, against ``reference``.

    Reuses the balanced set's rows as the real split's mix does
    (``species_mix.matched_rows``), generating only the shortfall from ``seed``.
    None when either side has fewer than 2 images.
    """
    from speciesgan.metrics.species_mix import matched_rows

    kept, extra_labels = matched_rows(balanced_labels, reference.labels, len(reference.species))
    features = balanced[kept]
    if len(extra_labels):
        extra = generated_outputs(generator, extra_labels, seed, batch_size, None, [space])
        features = np.concatenate([features, extra.spaces[space.name]])
    if min(len(features), len(reference.features)) < 2:
        return None, len(features)
    return fid_from_features(features, reference.features), len(features)


def id_ood_metrics(
    *,
    generator: nn.Module,
    classifier: nn.Module,
    ood_split: MappedSplit,
    ood_features: RealFeatures,
    id_test_top1: float | None,
    id_test_images: int,
    id_test_features: RealFeatures | None,
    balanced: np.ndarray,
    balanced_labels: np.ndarray,
    space: FeatureSpace,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """The ``id_ood`` entry of eval/metrics.json: classifier top-1 and FD-Lite0, ID and OOD.

    Both FDs compare the generated images with crops the generator never saw
    (the ID test split, the ood split), each side cut to the same number of real
    crops: FD against the training crops would flatter a generator that copies them.
    """
    fd = {"id": None, "ood": None}
    count = len(ood_features.features)
    if id_test_features is not None:
        count = min(count, len(id_test_features.features))
        id_side = equal_count(id_test_features, count, seed)
        fd["id"], _ = held_out_fd(
            generator, balanced, balanced_labels, id_side, space, seed + ID_SEED_OFFSET, batch_size
        )
    ood_side = equal_count(ood_features, count, seed)
    fd["ood"], generated = held_out_fd(
        generator, balanced, balanced_labels, ood_side, space, seed + OOD_SEED_OFFSET, batch_size
    )
    return {
        "classifier_top1": {
            "id": id_test_top1,
            "ood": mapped_accuracy(classifier, ood_split, batch_size),
        },
        "fd_lite0": fd,
        "fd_id_split": "test",
        "num_images": {
            "id_test": id_test_images,
            "ood": len(ood_split),
            "fd_real_per_side": count,
            "fd_generated_per_side": generated,
        },
        "note": ID_OOD_NOTE,
    }
