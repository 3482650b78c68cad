"""Generated images streamed through every network the metrics need, batch by batch.

At full scale an evaluation scores tens of thousands of generated images.
Keeping them (uint8, 128 px: 49 kB each) plus Inception's float inputs would
need gigabytes; instead each batch is generated, passed through Inception (pool
features and logits), the species classifier and every extra feature space, and
dropped.  Only the per-image outputs are kept, in float32 as the networks
produce them (statistics convert to float64), written into arrays allocated
once (no list of batches concatenated at the end), so peak memory is the
outputs plus one batch.  On CPU the batch is capped at ``CPU_BATCH_CAP``: larger
batches are no faster there and their activations (a 128 px generator's and
Inception's 299 px maps) would dominate host memory.  The latents are drawn up front from ``seed`` exactly as
:func:`speciesgan.sample.generate_images` draws them, so any image can be made
again from its index (the memorisation report does that for its closest pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from speciesgan.generate.sample import latents, quantize
from speciesgan.metrics.feature_spaces import FeatureSpace, without_tf32
from speciesgan.metrics.inception import FEATURE_DIM, NUM_LOGITS, InceptionNet
from speciesgan.util.progress import progress


@dataclass
class GeneratedOutputs:
    """Per-image outputs of one generated set (row i is the image of ``labels[i]``)."""

    labels: np.ndarray  # int64 [N]
    inception: np.ndarray  # float32 [N, 2048] pool features
    logits: np.ndarray  # float32 [N, 1008], unbiased (see inception.py)
    correct: np.ndarray | None  # bool [N]: classifier top-1 == labels (None without classifier)
    judge_correct: np.ndarray | None = None  # bool [N]: the independent judge's top-1 == labels
    spaces: dict[str, np.ndarray] = field(default_factory=dict)  # name -> float32 [N, dim]


CPU_BATCH_CAP = 25
"""Images per batch on CPU (see the module docstring): measured peak RSS at 100 images,
128 px, the main config's generator: 2.70 GiB at batch 50, 2.19 GiB at 25."""


def working_batch_size(batch_size: int, device: torch.device) -> int:
    """``batch_size`` on a GPU; at most ``CPU_BATCH_CAP`` on CPU (host memory, same speed)."""
    return max(1, batch_size if device.type == "cuda" else min(batch_size, CPU_BATCH_CAP))


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def generated_outputs(
    generator: nn.Module,
    species_ids: torch.Tensor | np.ndarray,
    seed: int,
    batch_size: int,
    inception: InceptionNet | None,
    spaces: list[FeatureSpace] = (),  # type: ignore[assignment]
    classifier: nn.Module | None = None,
    desc: str = "generated",
    judge: nn.Module | None = None,
) -> GeneratedOutputs:
    """Generate one image per entry of ``species_ids`` and keep only what the metrics read.

    ``inception`` None skips the Inception pass (its arrays are then zero-wide):
    figures in another space alone need no 299-px Inception forward.
    """
    species_ids = torch.as_tensor(species_ids, dtype=torch.long)
    count = len(species_ids)
    z = latents(count, int(generator.z_dim), seed)
    device = _device_of(generator)
    batch_size = working_batch_size(batch_size, device)
    out = GeneratedOutputs(
        labels=species_ids.numpy().astype(np.int64),
        inception=np.empty((count, FEATURE_DIM if inception else 0), dtype=np.float32),
        logits=np.empty((count, NUM_LOGITS if inception else 0), dtype=np.float32),
        correct=None if classifier is None else np.empty(count, dtype=bool),
        judge_correct=None if judge is None else np.empty(count, dtype=bool),
    )
    generator.eval()
    for network in (classifier, judge):
        if network is not None:
            network.eval()
    starts = range(0, count, max(1, batch_size))
    with torch.no_grad(), without_tf32():
        for start in progress(starts, desc=desc, unit="batch"):
            rows = slice(start, min(start + batch_size, count))
            ids = species_ids[rows].to(device)
            images = quantize(generator(z[rows].to(device), ids))
            if inception is not None:
                pool = inception.features(images.to(inception.device).float().div(255))[0]
                pool = pool.flatten(1)
                out.inception[rows] = pool.float().cpu().numpy()
                out.logits[rows] = (pool @ inception.fc.weight.T).float().cpu().numpy()
            if classifier is not None and out.correct is not None:
                out.correct[rows] = _top1_correct(classifier, images, ids)
            if judge is not None and out.judge_correct is not None:
                out.judge_correct[rows] = _top1_correct(judge, images, ids)
            for space in spaces:
                values = space.extract(images.to(space.device)).float().cpu().numpy()
                if space.name not in out.spaces:
                    out.spaces[space.name] = np.empty((count, values.shape[1]), dtype=np.float32)
                out.spaces[space.name][rows] = values
    return out


def _top1_correct(classifier: nn.Module, images: torch.Tensor, ids: torch.Tensor) -> np.ndarray:
    """bool [n]: the classifier's top-1 on uint8 ``images`` equals ``ids``."""
    device = _device_of(classifier)
    predicted = classifier(images.to(device).float().div(127.5).sub(1.0)).argmax(dim=1)
    return (predicted == ids.to(device)).cpu().numpy()


def regenerate(
    generator: nn.Module, species_ids: torch.Tensor, seed: int, indices: list[int]
) -> torch.Tensor:
    """uint8 images of the given rows of a set made by :func:`generated_outputs` (same seed)."""
    species_ids = torch.as_tensor(species_ids, dtype=torch.long)
    if not indices:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    z = latents(len(species_ids), int(generator.z_dim), seed)[indices]
    device = _device_of(generator)
    generator.eval()
    with torch.no_grad():
        return quantize(generator(z.to(device), species_ids[indices].to(device))).cpu()


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
