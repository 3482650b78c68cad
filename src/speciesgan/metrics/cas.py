"""Classification Accuracy Score (Ravuri & Vinyals, 2019).

A classifier trained only on generated images and tested on the real test crops.
It asks more than "does the frozen classifier recognise the species?": the
generated set must carry enough of each species' variety to teach a fresh
classifier, so a generator that draws one convincing image per species scores
low.  The classifier follows the eval classifier's recipe (the config's
``classifier`` section: architecture, ImageNet start, epochs, batch, LR) on a
generated training set with the real train split's size and species mix, the
paper's protocol.

The training images are made on the fly, batch by batch, from latents fixed up
front: the set is the same every epoch, like a stored dataset, but never sits in
memory (at full scale it is the size of the real train split).

It is its own stage (``speciesgan cas``, the workflow's ``cas`` rule) because it
is a training run (306 CPU s on the demo against evaluate's 90, measured with
``benchmarks/evaluate.py --results``, docs/quality.md) that needs nothing
``evaluate`` computes, so the two run side by side once the generator exists.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from speciesgan.classifier.train import (
    CALIBRATION_IMAGES,
    Optimisation,
    epoch_order,
    new_classifier,
    optimisation_step,
    predict_logits,
    recalibrate_batchnorm,
    resolve_settings,
    species_index,
    steps_per_epoch,
)
from speciesgan.data.dataset import CropSet, load_split, open_split
from speciesgan.generate.sample import latents, quantize
from speciesgan.metrics.headline import cas_headline, write_headline
from speciesgan.util.atomic import write_json
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress

log = logging.getLogger(__name__)

CAS_NOTE = (
    "CAS: top-1 on the real test crops of a classifier trained only on generated images "
    "(the eval classifier's recipe, the real train split's size and species mix); compare "
    "with the eval classifier's own test top-1, trained on real crops."
)


def _generate(
    generator: nn.Module, z: torch.Tensor, labels: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    device = next(generator.parameters()).device
    with torch.no_grad():
        return quantize(generator(z[index].to(device), labels[index].to(device)))


def classification_accuracy_score(
    generator: nn.Module,
    train_counts: np.ndarray,
    test: CropSet,
    classifier_settings: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """CAS overall and per species; ``train_counts[k]`` generated images of species k."""
    cfg = resolve_settings(classifier_settings)
    counts = torch.as_tensor(np.asarray(train_counts, dtype=np.int64))
    if len(counts) != test.num_classes:
        raise SpeciesganError(
            f"CAS: {len(counts)} species in the train counts, {test.num_classes} in the test split"
        )
    if len(test.labels) == 0:
        raise SpeciesganError("CAS needs real test crops: the manifest's test split is empty")
    labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
    total = len(labels)
    if total < 2:
        raise SpeciesganError(f"CAS needs at least 2 generated training images, got {total}")
    generator.eval()
    device = next(generator.parameters()).device
    z = latents(total, int(generator.z_dim), seed)
    batch_size = min(int(cfg["batch_size"]), total)
    steps, epochs = steps_per_epoch(total, batch_size), int(cfg["epochs"])
    model, _, optimizer, scheduler, criterion = new_classifier(
        cfg, list(test.species), int(test.images.shape[-1]), device, seed, epochs * steps
    )
    training = Optimisation(optimizer, scheduler, criterion, device)
    augment_generator = torch.Generator(device=device).manual_seed(seed)
    labels_on_device = labels.to(device)
    balanced = species_index(cfg, labels)  # the recipe's sampling, over the generated set
    log.info("CAS: %d generated training images, %d epochs x %d steps", total, epochs, steps)
    for epoch in range(epochs):
        order = epoch_order(total, seed, epoch, balanced)
        model.train()
        for step in progress(range(steps), desc=f"CAS epoch {epoch + 1}/{epochs}", leave=False):
            index = order[step * batch_size : (step + 1) * batch_size]
            images = _generate(generator, z, labels, index)
            optimisation_step(
                model, images, labels_on_device[index.to(device)], augment_generator, training
            )
    calibration = torch.linspace(0, total - 1, min(CALIBRATION_IMAGES, total)).long()
    recalibrate_batchnorm(model, _generate(generator, z, labels, calibration), device)
    predicted = predict_logits(model, test.images, device).argmax(dim=1)
    correct = (predicted == test.labels).numpy()
    test_labels = test.labels.numpy()
    per_species = {
        name: float(correct[test_labels == k].mean())
        for k, name in enumerate(test.species)
        if (test_labels == k).any()
    }
    return {
        "top1": float(correct.mean()),
        "per_species": per_species,
        "train_images": int(total),
        "test_images": int(len(correct)),
        "epochs": epochs,
        "arch": str(cfg["arch"]),
        "note": CAS_NOTE,
    }


SEED_OFFSET = 2
"""CAS draws its latents from ``seed + 2``: the balanced evaluation set uses ``seed``
and the species-mix extras ``seed + 1``, so the three sets never share a latent."""


def write_cas(
    generator: Path,
    manifest: Path,
    classifier: Path,
    out: Path,
    classifier_settings: dict[str, Any],
    seed: int,
    threads: int,
    device: str | None = None,
) -> None:
    """``speciesgan cas``: CAS of the generator, beside its floor, into ``out`` and a headline.

    The floor is the same recipe trained on real crops of the same size and mix,
    which is the eval classifier (``classifier``) itself, on the same test crops.
    """
    from speciesgan.classifier.model import load_classifier
    from speciesgan.gan.networks import load_generator
    from speciesgan.metrics.generated import classifier_accuracy
    from speciesgan.runtime.device import select_device
    from speciesgan.util.species_lists import require_same_species

    torch.set_num_threads(threads)
    torch_device = select_device(device, stage="cas")
    model, meta = load_generator(Path(generator), torch_device, weights="ema")
    species = list(meta["species"])
    eval_classifier = load_classifier(Path(classifier), torch_device)
    require_same_species(species, generator, eval_classifier.species, classifier)
    train = open_split(manifest, "train")  # its labels only: CAS generates its training set
    require_same_species(species, generator, list(train.species), manifest)
    counts = np.bincount(train.labels.numpy(), minlength=len(train.species))
    splits = pd.read_parquet(manifest, columns=["split"])["split"]
    if not (splits == "test").any():
        result: dict[str, Any] = {"skipped": "the manifest has no test crops to test on"}
    else:
        test = load_split(manifest, "test")
        result = classification_accuracy_score(
            model, counts, test, classifier_settings, seed + SEED_OFFSET
        )
        real_correct = classifier_accuracy(eval_classifier, test.images, test.labels)
        result["floor"] = float(real_correct.mean())
    write_json(out, result)
    write_headline(out, cas_headline(result))
