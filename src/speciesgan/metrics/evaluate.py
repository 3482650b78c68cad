"""``speciesgan evaluate``: score a trained generator against the real crops.

One JSON file holds everything the report needs: FID against the real split,
Inception Score, KID (overall and per species: with ~50 images per species only
KID's unbiased estimator means anything), and how often the frozen species
classifier recognises the intended species in generated images.  Inputs and
seed fix the output bytes: no timings, no paths, no rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.atomic import write_json
from speciesgan.errors import SpeciesganError
from speciesgan.metrics.fid import (
    RealFeatures,
    fid_from_features,
    rank_deficiency_note,
    real_features,
)
from speciesgan.metrics.inception import InceptionNet, inception_outputs, load_inception
from speciesgan.metrics.inception_score import inception_score
from speciesgan.metrics.kid import kernel_inception_distance
from speciesgan.progress import progress
from speciesgan.sample import generate_images
from speciesgan.species_lists import require_same_species

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "images_per_species": 50,
    "real_split": "train",
    "is_splits": 10,
    "batch_size": 50,
    "inception_weights": "pretrained",
    "real_images_per_species": None,
    "curve_images_per_species": 8,
}
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
FID_SPECIES_MIX_NOTE = (
    "Overall FID and KID use generated images whose species mix follows the real split's "
    "frequencies; IS, accuracy and per-species KID use the balanced set."
)
PER_SPECIES_KID_NOTE = (
    "Per-species quality is KID, not FID: with a few dozen images per species the "
    "2048-d covariance behind FID is rank-deficient, while KID's estimator is unbiased."
)


def classifier_accuracy(
    classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 50
) -> np.ndarray:
    """Per-image correctness (bool [N]) of the classifier's top-1 on uint8 images."""
    device = next(classifier.parameters()).device
    correct = []
    classifier.eval()
    with torch.no_grad():
        for start in progress(range(0, len(images), batch_size), desc="classifier", unit="batch"):
            batch = images[start : start + batch_size].to(device).float().div(127.5).sub(1.0)
            predicted = classifier(batch).argmax(dim=1).cpu()
            correct.append(predicted == labels[start : start + batch_size])
    return torch.cat(correct).numpy()


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


def fid_features(
    features: np.ndarray,
    labels: np.ndarray,
    real_labels: np.ndarray,
    num_species: int,
    extra_features: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Generated features (and their species) for the overall FID/KID, mixed like the real set.

    ``features``/``labels`` are the balanced set that the accuracy and per-species
    KID use.  Of the same total, each species takes its first balanced images
    up to its :func:`matched_species_counts` share; species whose share exceeds
    the balanced count get the rest from ``extra_features(labels)`` (new images).
    Reusing the balanced images costs nothing, and generating only the shortfall
    keeps every image distinct: resampling the balanced pool with replacement
    would repeat images and shrink the covariance FID measures.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = matched_species_counts(real_labels, num_species, len(labels))
    kept = np.concatenate(
        [np.flatnonzero(labels == k)[: counts[k]] for k in range(num_species)]
    ).astype(np.int64)
    shortfall = counts - np.bincount(labels[kept], minlength=num_species)
    extra_labels = np.repeat(np.arange(num_species), shortfall)
    if len(extra_labels) == 0:
        return features[kept], labels[kept]
    extra = np.asarray(extra_features(extra_labels), dtype=np.float64)
    return np.concatenate([features[kept], extra]), np.concatenate([labels[kept], extra_labels])


def _matched_generated_features(
    generator: nn.Module,
    net: InceptionNet,
    features: np.ndarray,
    labels: torch.Tensor,
    real: RealFeatures,
    seed: int,
    batch_size: int,
) -> np.ndarray:
    """:func:`fid_features` with the shortfall generated from latents seeded ``seed + 1``.

    ``seed + 1`` keeps the extra latents apart from the balanced set's (seeded
    ``seed``), whose images stay exactly as they were.
    """

    def generate_more(extra_labels: np.ndarray) -> np.ndarray:
        extra_images = generate_images(
            generator, torch.as_tensor(extra_labels), seed + 1, batch_size
        )
        return inception_outputs(net, extra_images, batch_size, desc="generated (mix)")[0]

    matched, _ = fid_features(
        features, labels.numpy(), real.labels, len(real.species), generate_more
    )
    return matched


def per_species_kid(
    real: np.ndarray,
    real_labels: np.ndarray,
    generated: np.ndarray,
    generated_labels: np.ndarray,
    species: list[str],
    seed: int,
) -> dict[str, dict[str, float | int] | None]:
    """KID of each species' generated images against that species' real images.

    A species with fewer than 2 real images in the split gets ``None``.
    """
    scores: dict[str, dict[str, float | int] | None] = {}
    for species_id, name in enumerate(species):
        real_rows = real[real_labels == species_id]
        generated_rows = generated[generated_labels == species_id]
        if min(len(real_rows), len(generated_rows)) < 2:
            scores[name] = None
            continue
        scores[name] = kernel_inception_distance(
            generated_rows, real_rows, seed=seed + species_id, num_subsets=KID_SUBSETS
        )
    return scores


def _real(
    manifest: Path, net: InceptionNet, cache_dir: Path, options: dict[str, Any]
) -> RealFeatures:
    limit = options["real_images_per_species"]
    return real_features(
        manifest,
        options["real_split"],
        net,
        cache_dir,
        int(options["batch_size"]),
        per_species=None if limit is None else int(limit),
    )


def metrics_over_steps(
    snapshots: list[tuple[int, nn.Module]],
    real: RealFeatures,
    net: InceptionNet,
    settings: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """FID and IS of each training snapshot, on ``curve_images_per_species`` images each.

    Every point uses the same latents and the same number of images, so the
    points are comparable with each other; with few images FID is biased
    upwards, so they are not comparable with the final, larger evaluation.
    """
    options = {**DEFAULTS, **settings}
    per_species = int(options["curve_images_per_species"])
    batch_size = int(options["batch_size"])
    labels = torch.arange(len(real.species)).repeat_interleave(per_species)
    points = []
    for step, generator in snapshots:
        images = generate_images(generator, labels, seed, batch_size)
        features, logits = inception_outputs(net, images, batch_size, desc=f"step {step}")
        is_mean, is_std = inception_score(logits, int(options["is_splits"]))
        matched = _matched_generated_features(
            generator, net, features, labels, real, seed, batch_size
        )
        points.append(
            {
                "step": step,
                "fid": fid_from_features(matched, real.features),
                "inception_score": {"mean": is_mean, "std": is_std},
            }
        )
    return {"images_per_species": per_species, "points": points}


def evaluate_generator(
    generator: nn.Module,
    species: list[str],
    classifier: nn.Module,
    real: RealFeatures,
    net: InceptionNet,
    settings: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """All generation metrics as a JSON-ready dict (see the module docstring)."""
    options = {**DEFAULTS, **settings}
    per_species = int(options["images_per_species"])
    batch_size = int(options["batch_size"])
    labels = torch.arange(len(species)).repeat_interleave(per_species)
    images = generate_images(generator, labels, seed, batch_size)
    features, logits = inception_outputs(net, images, batch_size, desc="generated")
    correct = classifier_accuracy(classifier, images, labels, batch_size)
    accuracy = {name: float(correct[labels.numpy() == k].mean()) for k, name in enumerate(species)}
    is_mean, is_std = inception_score(logits, int(options["is_splits"]))
    # overall FID/KID: species mixed like the real split; the rest keeps the balanced set
    matched = _matched_generated_features(generator, net, features, labels, real, seed, batch_size)
    result: dict[str, Any] = {
        "fid": fid_from_features(matched, real.features),
        "fid_num_images": {"generated": len(features), "real": len(real.features)},
        "fid_note": rank_deficiency_note(len(features), len(real.features)),
        "inception_score": {"mean": is_mean, "std": is_std, "splits": int(options["is_splits"])},
        "fid_species_mix": FID_SPECIES_MIX_NOTE,
        "kid": kernel_inception_distance(
            matched, real.features, seed=seed, num_subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE
        ),
        "kid_per_species": per_species_kid(
            real.features, real.labels, features, labels.numpy(), species, seed
        ),
        "kid_per_species_note": PER_SPECIES_KID_NOTE,
        "accuracy_per_species": accuracy,
        "accuracy_mean": float(np.mean(list(accuracy.values()))),
        "chance": 1.0 / len(species),
        "images_per_species": per_species,
        "real_split": options["real_split"],
        "seed": seed,
        "inception_weights": dict(net.info),
    }
    if result["fid_note"]:
        log.warning(result["fid_note"])
    return result


def evaluate(
    generator: Path,
    manifest: Path,
    classifier: Path,
    out: Path,
    settings: dict,
    seed: int,
    threads: int,
    weights: str = "ema",
    snapshots: Path | None = None,
    cache_dir: Path | None = None,
) -> None:
    """Load the generator and the classifier, score them, write ``out`` (JSON).

    ``weights`` picks the EMA generator (what sampling uses) or the raw one;
    ``snapshots`` adds FID/IS by training step; ``cache_dir`` is where real
    features are cached (shared between evaluations of the same data).
    """
    from speciesgan.classifier.model import load_classifier
    from speciesgan.gan.networks import load_generator, load_snapshots

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cache = Path(cache_dir) if cache_dir is not None else Path(out).parent / "fid_cache"
    model, meta = load_generator(Path(generator), device, weights=weights)
    species = list(meta["species"])
    # checked before any Inception work: a classifier with the species in another
    # order would score every generated image against the wrong species
    classifier_net = load_classifier(Path(classifier), device)
    require_same_species(species, generator, classifier_net.species, classifier)
    net = load_inception(settings.get("inception_weights", DEFAULTS["inception_weights"]), device)
    real = _real(Path(manifest), net, cache, {**DEFAULTS, **settings})  # once, for both
    require_same_species(species, generator, real.species, manifest)
    result = evaluate_generator(model, species, classifier_net, real, net, settings, seed)
    result["generator_weights"] = weights
    if snapshots is not None:
        generators, snapshot_meta = load_snapshots(Path(snapshots), device)
        require_same_species(species, generator, list(snapshot_meta["species"]), snapshots)
        result["over_steps"] = metrics_over_steps(generators, real, net, settings, seed)
    write_json(out, result)
