"""``speciesgan evaluate``: score a trained generator against the real crops.

One JSON file holds everything the report needs: FID against the real split,
Inception Score, KID (overall and per species: with ~50 images per species only
KID's unbiased estimator means anything), and how often the frozen species
classifier recognises the intended species in generated images.  Inputs and
seed fix the output bytes: no timings, no paths, no rounding.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.config import section_defaults
from speciesgan.generate.sample import save_png, tile
from speciesgan.metrics.feature_spaces import FeatureSpace
from speciesgan.metrics.fid import (
    RealFeatures,
    fid_from_features,
    rank_deficiency_note,
)
from speciesgan.metrics.floors import FLOOR_NOTE, equal_counts, first_rows, rows_like
from speciesgan.metrics.frequency_bins import accuracy_by_bin
from speciesgan.metrics.generated import (
    GeneratedOutputs,
    classifier_accuracy,
    generated_outputs,
    regenerate,
)
from speciesgan.metrics.headline import evaluation_headline, write_headline
from speciesgan.metrics.id_ood import OOD_SPLIT, id_ood_metrics
from speciesgan.metrics.inception import InceptionNet, inception_space, load_inception
from speciesgan.metrics.inception_score import inception_score
from speciesgan.metrics.real_side import RealSide, extra_spaces, real_side
from speciesgan.metrics.registered import registered_metrics
from speciesgan.metrics.registry import Evaluation
from speciesgan.metrics.species_mix import matched_rows
from speciesgan.runtime.device import select_device
from speciesgan.util.atomic import write_json
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.species_lists import require_same_species

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = section_defaults("metrics")
"""Every ``metrics`` setting's default, from the schema."""
MEMO_PAIRS = 8
INCEPTION_FIGURES = (
    "fid",
    "intra_class_fid",
    "kid",
    "kid_per_species",
    "inception_score",
    "over_steps",
)
"""The figures computed in Inception space: marked when its weights are placeholders."""
JUDGE_NOTE = (
    "The judge is a small CNN trained from scratch on the train crops: it shares no "
    "weights, features or pretraining with the discriminator (ImageNet Lite0 features), "
    "so its verdict cannot come from features the generator was trained to fool."
)
MEMORISATION_NOTE = (
    "Fraction of generated images whose nearest training crop (EfficientNet-Lite0 features) "
    "is closer than the given percentile of the training crops' own nearest-neighbour "
    "distances; the closest pairs are shown for a person to judge."
)
FID_SPECIES_MIX_NOTE = (
    "Overall FID and KID use generated images whose species mix follows the real split's "
    "frequencies; IS, accuracy and per-species KID use the balanced set."
)
PER_SPECIES_KID_NOTE = (
    "Per-species quality is KID, not FID: with a few dozen images per species the "
    "2048-d covariance behind FID is rank-deficient, while KID's estimator is unbiased."
)


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
    kept, extra_labels = matched_rows(labels, real_labels, num_species)
    labels = np.asarray(labels, dtype=np.int64)
    if len(extra_labels) == 0:
        return features[kept], labels[kept]
    extra = np.asarray(extra_features(extra_labels), dtype=np.float64)
    return np.concatenate([features[kept], extra]), np.concatenate([labels[kept], extra_labels])


def fidelity_diversity(
    real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int
) -> dict[str, float] | None:
    """Precision, recall, density, coverage; None when a side has too few rows for its k."""
    from speciesgan.metrics.prdc import density_coverage, precision_recall

    if min(len(real), len(fake)) <= max(k_pr, k_dc):
        return None
    return {**precision_recall(real, fake, k=k_pr), **density_coverage(real, fake, k=k_dc)}


def space_metrics(
    matched: np.ndarray,
    balanced: np.ndarray,
    balanced_labels: np.ndarray,
    real: RealFeatures,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Fréchet distance, precision/recall, density/coverage and intra-class FD in one space.

    Overall figures use the generated set mixed like the real one (``matched``);
    per-species and intra-class figures use the balanced set, species by species.
    """
    from speciesgan.metrics.intra_fid import intra_class_fid

    k_pr, k_dc = int(options["precision_recall_k"]), int(options["density_coverage_k"])
    overall = fidelity_diversity(real.features, matched, k_pr, k_dc)
    per_species = {
        name: fidelity_diversity(
            real.features[real.labels == k], balanced[balanced_labels == k], k_pr, k_dc
        )
        for k, name in enumerate(real.species)
    }
    return {
        "fd": fid_from_features(matched, real.features),
        **(overall or {"precision": None, "recall": None, "density": None, "coverage": None}),
        "k": {"precision_recall": k_pr, "density_coverage": k_dc},
        "per_species": per_species,
        "intra_class_fd": intra_class_fid(
            real.features, real.labels, balanced, balanced_labels, list(real.species)
        ),
        "num_images": {"generated": len(matched), "real": len(real.features)},
    }


def closest_pairs_image(
    generator: nn.Module,
    labels: torch.Tensor,
    seed: int,
    pairs: list[dict[str, Any]],
    train_images: torch.Tensor,
) -> np.ndarray:
    """Each closest (generated, nearest training crop) pair side by side, one pair per row."""
    generated = regenerate(generator, labels, seed, [pair["generated"] for pair in pairs])
    train = train_images[[pair["train"] for pair in pairs]]
    side_by_side = torch.stack([generated, train.to(generated.device)], dim=1).flatten(0, 1)
    return tile(side_by_side.cpu(), columns=2)


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
    labels = np.repeat(np.arange(len(real.species)), per_species)
    points = []
    for step, generator in snapshots:
        balanced = generated_outputs(generator, labels, seed, batch_size, net, desc=f"step {step}")
        is_mean, is_std = inception_score(balanced.logits, int(options["is_splits"]))
        kept, extra_labels = matched_rows(labels, real.labels, len(real.species))
        matched = balanced.inception[kept]
        if len(extra_labels):
            extra = generated_outputs(generator, extra_labels, seed + 1, batch_size, net)
            matched = np.concatenate([matched, extra.inception])
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
    real: RealSide,
    net: InceptionNet,
    spaces: list[FeatureSpace],
    settings: dict[str, Any],
    seed: int,
    judge: nn.Module | None = None,
    judge_info: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """All generation metrics as a JSON-ready dict, and the closest-pairs picture (or None).

    One streamed pass over the balanced generated set feeds Inception, the
    classifier and every extra feature space; a second, smaller pass generates
    the images the real species mix needs beyond the balanced set.
    """
    options = {**DEFAULTS, **settings}
    per_species = int(options["images_per_species"])
    batch_size = int(options["batch_size"])
    labels = np.repeat(np.arange(len(species)), per_species)
    balanced = generated_outputs(
        generator, labels, seed, batch_size, net, spaces, classifier, desc="generated", judge=judge
    )
    assert balanced.correct is not None
    accuracy = {name: float(balanced.correct[labels == k].mean()) for k, name in enumerate(species)}
    bins = accuracy_by_bin(real.train_counts, species, {"generated_top1": accuracy})
    # overall figures: species mixed like the real split; the rest keeps the balanced set
    kept, extra_labels = matched_rows(labels, real.inception.labels, len(species))
    extra = (
        generated_outputs(generator, extra_labels, seed + 1, batch_size, net, spaces, desc="mix")
        if len(extra_labels)
        else None
    )
    evaluation = Evaluation(species, labels, balanced, real, options, seed, extra, kept)
    matched = evaluation.matched
    inception_matched = matched("inception")
    result: dict[str, Any] = {
        "fid": fid_from_features(inception_matched, real.inception.features),
        "fid_num_images": {
            "generated": len(inception_matched),
            "real": len(real.inception.features),
        },
        "fid_note": rank_deficiency_note(len(inception_matched), len(real.inception.features)),
        "fid_species_mix": FID_SPECIES_MIX_NOTE,
        # the registered metrics: Inception Score, KID, per-species KID and any added since
        **{name: m.compute(evaluation) for name, m in registered_metrics().items()},
        "kid_per_species_note": PER_SPECIES_KID_NOTE,
        "accuracy_per_species": accuracy,
        "accuracy_mean": float(np.mean(list(accuracy.values()))),
        "accuracy_worst": float(min(accuracy.values())),
        "accuracy_worst_species": min(accuracy, key=accuracy.__getitem__),
        "inception_figures": {
            "placeholder": not net.is_published,
            "figures": list(INCEPTION_FIGURES),
            "note": (
                "computed with the published pytorch-fid Inception weights: comparable with "
                "published FIDs"
                if net.is_published
                else "computed with placeholder (not the published) Inception weights: not "
                "image-quality figures, kept out of the headline; read FD-Lite0 instead"
            ),
        },
        "frequency_bins": bins,
        "chance": 1.0 / len(species),
        "images_per_species": per_species,
        "real_split": options["real_split"],
        "seed": seed,
        "inception_weights": dict(net.info),
    }
    all_spaces = [inception_space(net), *spaces]
    result["feature_spaces"] = {}
    for space in all_spaces:
        rows = balanced.inception if space.name == "inception" else balanced.spaces[space.name]
        entry = space_metrics(matched(space.name), rows, labels, real.spaces[space.name], options)
        result["feature_spaces"][space.name] = {
            **entry,
            "weights": dict(space.info),
            "comparable": space.comparable,
        }
    result["intra_class_fid"] = result["feature_spaces"]["inception"]["intra_class_fd"]
    result["fd_lite0"] = result["feature_spaces"]["lite0"]["fd"]
    result["headline_space"] = "lite0"
    result["comparability"] = {space.name: space.comparable for space in all_spaces}
    equal, floors = beside_floors(real, balanced, labels, classifier, judge, options, seed)
    result["fidelity_diversity"] = equal
    result["floors"] = floors
    if balanced.judge_correct is not None:
        result["judge"] = judge_verdict(
            balanced.judge_correct, labels, species, floors, judge_info or {}
        )

    pairs_png = None
    memo = memorisation_figure(balanced.spaces["lite0"], real.train_lite0, options)
    if memo is not None and memo["pairs"]:
        pairs_png = closest_pairs_image(
            generator, torch.as_tensor(labels), seed, memo["pairs"], real.train_images
        )
        for pair in memo["pairs"]:
            pair["species"] = species[int(labels[pair["generated"]])]
            pair["train_species"] = species[int(real.train_lite0.labels[pair["train"]])]
    result["memorisation"] = memo or {"skipped": "fewer than 2 training crops"}
    result["id_ood"] = _id_ood(
        generator, classifier, real, spaces, balanced, labels, result, options, seed
    )

    if result["fid_note"]:
        log.warning(result["fid_note"])
    return result, pairs_png


def judge_verdict(
    correct: np.ndarray,
    labels: np.ndarray,
    species: list[str],
    floors: dict[str, Any],
    info: dict[str, Any],
) -> dict[str, Any]:
    """Generated accuracy by the independent judge, and whether the judge is good enough to count.

    ``info`` has the judge's own ``test_top1`` on all real test crops (from its
    metrics.json), ``min_accuracy`` and what the network is.  A judge that itself
    recognises fewer real test crops than ``min_accuracy`` has no verdict worth
    reporting: ``counts`` is false and the report says so.
    """
    per_species = {name: float(correct[labels == k].mean()) for k, name in enumerate(species)}
    summary = accuracy_summary(correct, labels, len(species))
    test_top1 = info.get("test_top1")
    minimum = float(info["min_accuracy"])
    return {
        **summary,
        "per_species": per_species,
        "test_top1": test_top1,
        "min_accuracy": minimum,
        "counts": test_top1 is not None and float(test_top1) >= minimum,
        "ratio_to_real": (summary["mean"] / float(test_top1) if test_top1 else None),
        "floor": floors.get("judge_accuracy"),
        "network": info.get("network"),
        "note": JUDGE_NOTE,
    }


def lite0_figures(
    reference: RealFeatures, features: np.ndarray, labels: np.ndarray, options: dict[str, Any]
) -> dict[str, Any]:
    """FD, precision/recall, density/coverage and intra-class FD of ``features`` against ``reference``."""
    entry = space_metrics(features, features, labels, reference, options)
    return {
        "fd_lite0": entry["fd"],
        "intra_class_fd_lite0": entry["intra_class_fd"],
        **{key: entry[key] for key in ("precision", "recall", "density", "coverage")},
    }


def accuracy_summary(correct: np.ndarray, labels: np.ndarray, num_species: int) -> dict[str, Any]:
    """Mean over species of the per-species top-1, and the worst species' (species without rows skipped)."""
    by_species = [correct[labels == k] for k in range(num_species)]
    values = [float(c.mean()) for c in by_species if len(c)]
    return {"mean": float(np.mean(values)), "worst": float(min(values)), "num_images": len(labels)}


def beside_floors(
    real: RealSide,
    balanced: GeneratedOutputs,
    labels: np.ndarray,
    classifier: nn.Module,
    judge: nn.Module | None,
    options: dict[str, Any],
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the generated figures, their floors) at equal, class-balanced counts in Lite0 space.

    Species k keeps ``n_k`` = the smallest of its reference (real split), generated
    and test counts in all three sets: the first ``n_k`` reference and generated
    rows, and ``n_k`` test crops drawn without replacement.  The floor puts the
    test crops where the generated images were.  Generated accuracy (by the
    evaluation classifier and by the judge) is set beside the same classifier's
    top-1 on real test crops, as many per species as were generated.
    """
    reference = real.spaces["lite0"]
    num_species = len(reference.species)
    generated = balanced.spaces["lite0"]
    test = real.test_lite0
    sets = [reference.labels, labels] + ([test.labels] if test is not None else [])
    counts = equal_counts(num_species, *sets)
    ref_rows = first_rows(reference.labels, counts)
    shared = RealFeatures(
        reference.features[ref_rows], reference.labels[ref_rows], reference.species,
        reference.cache_file,
    )  # fmt: skip
    gen_rows = first_rows(labels, counts)
    figures: dict[str, Any] = {
        "space": "lite0",
        **lite0_figures(shared, generated[gen_rows], labels[gen_rows], options),
        "k": {
            "precision_recall": int(options["precision_recall_k"]),
            "density_coverage": int(options["density_coverage_k"]),
        },
        "num_images": {
            "generated": len(gen_rows),
            "real": len(ref_rows),
            "per_species": counts.tolist(),
        },
    }
    floors: dict[str, Any] = {"space": "lite0", "note": FLOOR_NOTE}
    if test is None or len(test.labels) == 0:
        floors["skipped"] = "the manifest has no test crops"
        return figures, floors
    test_rows = rows_like(test.labels, counts, seed)
    floors.update(lite0_figures(shared, test.features[test_rows], test.labels[test_rows], options))
    floors["num_images"] = {
        "stand_ins": len(test_rows),
        "real": len(ref_rows),
        "per_species": np.bincount(test.labels[test_rows], minlength=num_species).tolist(),
    }
    assert real.test is not None  # test_lite0 is computed from it
    per_species = np.bincount(labels, minlength=num_species)
    test_labels = real.test.labels.numpy()
    rows = rows_like(test_labels, per_species, seed + 2)
    images, row_labels = real.test.images[rows], real.test.labels[rows]
    correct = classifier_accuracy(classifier, images, row_labels)
    floors["generated_accuracy"] = accuracy_summary(correct, test_labels[rows], num_species)
    if judge is not None:
        judged = classifier_accuracy(judge, images, row_labels)
        floors["judge_accuracy"] = accuracy_summary(judged, test_labels[rows], num_species)
    return figures, floors


def _id_ood(
    generator: nn.Module,
    classifier: nn.Module,
    real: RealSide,
    spaces: list[FeatureSpace],
    balanced: GeneratedOutputs,
    labels: np.ndarray,
    result: dict[str, Any],
    options: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """ID against OOD figures (``metrics.id_ood``), or why there are none."""
    if real.ood is None or real.ood_lite0 is None:
        return {
            "skipped": f"the manifest has no {OOD_SPLIT} split (camera locations never trained on)"
        }
    batch_size = int(options["batch_size"])
    id_top1 = None
    if real.test is not None and len(real.test.labels):
        correct = classifier_accuracy(classifier, real.test.images, real.test.labels, batch_size)
        id_top1 = float(correct.mean())
    return id_ood_metrics(
        generator=generator,
        classifier=classifier,
        ood_split=real.ood,
        ood_features=real.ood_lite0,
        id_test_top1=id_top1,
        id_test_images=0 if real.test is None else len(real.test.labels),
        id_test_features=real.test_lite0,
        balanced=balanced.spaces["lite0"],
        balanced_labels=labels,
        space=next(space for space in spaces if space.name == "lite0"),
        seed=seed,
        batch_size=batch_size,
    )


def memorisation_figure(
    generated: np.ndarray, train: RealFeatures, options: dict[str, Any]
) -> dict[str, Any] | None:
    """The memorisation fraction in Lite0 space against the whole train split (None: too few)."""
    from speciesgan.metrics.memorisation import memorisation

    if len(train.features) < 2:
        return None
    percentile = float(options["memorisation_percentile"])
    result = memorisation(train.features, generated, percentile=percentile, pairs=MEMO_PAIRS)
    return {"space": "lite0", "percentile": percentile, **result, "note": MEMORISATION_NOTE}


def judge_facts(model: Path, min_accuracy: float) -> dict[str, Any]:
    """The judge's own test top-1 and network, from the ``metrics.json`` beside its model."""
    metrics_file = model.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError) as exc:
        raise SpeciesganError(
            f"{metrics_file}: the judge's metrics are unreadable ({exc})"
        ) from exc
    return {
        "test_top1": metrics.get("top1"),
        "min_accuracy": float(min_accuracy),
        "network": metrics.get("weights"),
    }


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
    real_features_dir: Path | None = None,
    out_pairs: Path | None = None,
    device: str | None = None,
    judge: Path | None = None,
    judge_min_accuracy: float | None = None,
) -> None:
    """Load the generator and the classifier, score them, write ``out`` (JSON).

    ``weights`` picks the EMA generator (what sampling uses) or the raw one;
    ``snapshots`` adds FID/IS by training step; ``cache_dir`` is where real
    features are cached (shared between evaluations of the same data);
    ``real_features_dir`` is ``speciesgan real-features``' output, read only;
    ``out_pairs`` receives the memorisation check's closest pairs as a PNG; ``device``
    is ``--device`` (auto, cuda, cpu; see ``speciesgan.runtime.device``); ``judge`` is the
    independent judge's ``model.pt`` (its ``metrics.json`` beside it gives its own
    test top-1, which must reach ``judge_min_accuracy`` for its verdict to count).
    """
    from speciesgan.classifier.model import load_classifier
    from speciesgan.gan.networks import load_generator, load_snapshots

    torch.set_num_threads(threads)
    torch_device = select_device(device, stage="evaluate")
    options = {**DEFAULTS, **settings}
    cache = Path(cache_dir) if cache_dir is not None else Path(out).parent / "fid_cache"
    model, meta = load_generator(Path(generator), torch_device, weights=weights)
    species = list(meta["species"])
    # checked before any Inception work: a classifier with the species in another
    # order would score every generated image against the wrong species
    classifier_net = load_classifier(Path(classifier), torch_device)
    require_same_species(species, generator, classifier_net.species, classifier)
    judge_net, judge_info = None, None
    if judge is not None:
        judge_net = load_classifier(Path(judge), torch_device)
        require_same_species(species, generator, judge_net.species, judge)
        if judge_min_accuracy is None:  # the schema's judge.min_accuracy
            judge_min_accuracy = float(section_defaults("judge")["min_accuracy"])
        judge_info = judge_facts(Path(judge), judge_min_accuracy)
    net = load_inception(options["inception_weights"], torch_device)
    spaces, dinov2_reason = extra_spaces(options, torch_device)
    if dinov2_reason:
        log.info("FD-DINOv2 skipped: %s", dinov2_reason)
    if real_features_dir is not None:
        real = real_side(Path(manifest), net, spaces, Path(real_features_dir), options, True)
    else:
        real = real_side(Path(manifest), net, spaces, cache, options)
    require_same_species(species, generator, real.inception.species, manifest)
    result, pairs_png = evaluate_generator(
        model, species, classifier_net, real, net, spaces, settings, seed,
        judge_net, judge_info,
    )  # fmt: skip
    result["fd_dinov2"] = result["feature_spaces"].get("dinov2", {}).get("fd")
    result["fd_dinov2_skipped"] = dinov2_reason or None
    result["generator_weights"] = weights
    if snapshots is not None:
        generators, snapshot_meta = load_snapshots(Path(snapshots), torch_device)
        require_same_species(species, generator, list(snapshot_meta["species"]), snapshots)
        result["over_steps"] = metrics_over_steps(generators, real.inception, net, settings, seed)
    if out_pairs is not None:
        if pairs_png is None:  # an empty picture keeps the output contract
            pairs_png = np.full((8, 8, 3), 255, dtype=np.uint8)
        save_png(pairs_png, Path(out_pairs))
    write_json(out, result)
    write_headline(out, evaluation_headline(result))
