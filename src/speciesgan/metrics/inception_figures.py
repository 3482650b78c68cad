"""The Inception Score and KID figures of the evaluation, as registered metrics.

Each is a function of the ``Evaluation`` alone (see ``speciesgan.metrics.registry``):
the balanced generated set's Inception logits and features, the matched set, and
the real split's features.  FID itself stays in ``speciesgan.metrics.evaluate``,
which writes its image counts and rank note beside it.
"""

from __future__ import annotations

from typing import Any

from speciesgan.metrics.inception_score import inception_score
from speciesgan.metrics.kid import kernel_inception_distance
from speciesgan.metrics.registry import Evaluation, metric

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


@metric("inception_score", about="Inception Score: confident and varied ImageNet predictions")
def inception_score_figure(evaluation: Evaluation) -> dict[str, Any]:
    """Mean and std over ``is_splits`` splits of the balanced set."""
    splits = int(evaluation.options["is_splits"])
    mean, std = inception_score(evaluation.generated.logits, splits)
    return {"mean": mean, "std": std, "splits": splits}


@metric("kid", about="Kernel Inception Distance, generated (mixed like the real split) vs real")
def overall_kid(evaluation: Evaluation) -> dict[str, float | int]:
    return kernel_inception_distance(
        evaluation.matched("inception"),
        evaluation.real.inception.features,
        seed=evaluation.seed,
        num_subsets=KID_SUBSETS,
        subset_size=KID_SUBSET_SIZE,
    )


@metric("kid_per_species", about="KID of each species' generated images vs its real ones")
def per_species_kid(evaluation: Evaluation) -> dict[str, dict[str, float | int] | None]:
    """KID of each species' generated images against that species' real images.

    A species with fewer than 2 real images in the split gets ``None``.
    """
    real = evaluation.real.inception
    scores: dict[str, dict[str, float | int] | None] = {}
    for species_id, name in enumerate(evaluation.species):
        real_rows = real.features[real.labels == species_id]
        generated_rows = evaluation.generated.inception[evaluation.labels == species_id]
        if min(len(real_rows), len(generated_rows)) < 2:
            scores[name] = None
            continue
        scores[name] = kernel_inception_distance(
            generated_rows,
            real_rows,
            seed=evaluation.seed + species_id,
            num_subsets=KID_SUBSETS,
        )
    return scores
