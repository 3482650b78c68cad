"""``speciesgan real-features``: the real crops' features, computed once per data.

Every figure of ``evaluate`` compares generated images with real crops in some
feature space (Inception, EfficientNet-Lite0, DINOv2 when present).  The real
side depends only on the manifest and the metrics settings, never on the
generator, so it is its own stage: the workflow runs it beside GAN training,
and ``evaluate`` then reads it instead of computing it (on the demo 204 CPU s,
against 90 for the rest of evaluate: ``benchmarks/evaluate.py --results``,
docs/quality.md).  The files are the
content-keyed cache of :func:`speciesgan.metrics.fid.real_features`, so a
stage rerun on the same data with the same settings finds them all.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from speciesgan.config import section_defaults
from speciesgan.data.dataset import CropSet, MappedSplit, load_split, open_split
from speciesgan.metrics.feature_spaces import FeatureSpace, lite0_space
from speciesgan.metrics.fid import RealFeatures, real_features
from speciesgan.metrics.id_ood import OOD_SPLIT
from speciesgan.metrics.inception import InceptionNet, inception_space, load_inception
from speciesgan.runtime.device import select_device

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = section_defaults("metrics")
"""Every ``metrics`` setting's default, from the schema."""


@dataclass
class RealSide:
    """Everything evaluate reads from the real crops, in every feature space."""

    spaces: dict[str, RealFeatures]  # the (capped) real split, per space incl. "inception"
    train_lite0: RealFeatures  # the whole train split in Lite0 space: memorisation
    train_counts: np.ndarray  # real train crops per species: CAS's training set
    test: CropSet | None  # real test crops: CAS's test set (None: no test split)
    train_images: torch.Tensor  # uint8 train crops, for the closest-pairs picture
    ood: MappedSplit | None = None  # crops of camera locations never trained on, if any
    ood_lite0: RealFeatures | None = None  # their Lite0 features (capped like the real split)
    test_lite0: RealFeatures | None = None  # the test crops' (capped like the real split)

    @property
    def inception(self) -> RealFeatures:
        return self.spaces["inception"]


def extra_spaces(options: dict[str, Any], device: torch.device) -> tuple[list[FeatureSpace], str]:
    """Lite0 always; DINOv2 when configured and its weights can be had (else the reason)."""
    spaces = [lite0_space(device)]
    if options.get("dinov2") is None:
        return spaces, "metrics.dinov2 is null"
    try:
        from speciesgan.metrics.dinov2 import dinov2_space
    except ImportError:
        return spaces, "FD-DINOv2 is not built into this version"
    space, reason = dinov2_space(str(options["dinov2"]), device, bool(options["dinov2_download"]))
    if space is not None:
        spaces.append(space)
    return spaces, reason


def real_side(
    manifest: Path,
    net: InceptionNet,
    spaces: list[FeatureSpace],
    cache_dir: Path,
    options: dict[str, Any],
    read_only: bool = False,
) -> RealSide:
    """The real crops' features in every space, from ``cache_dir`` (computed there if missing,
    unless ``read_only``), and the crops themselves that CAS and the pictures need."""
    limit = options["real_images_per_species"]
    per_species = None if limit is None else int(limit)
    batch_size = int(options["batch_size"])
    split = options["real_split"]

    def features(split: str, space: InceptionNet | FeatureSpace, cap: int | None) -> RealFeatures:
        return real_features(manifest, split, space, cache_dir, batch_size, cap, read_only)

    real_spaces = {
        space.name: features(split, space, per_species) for space in [inception_space(net), *spaces]
    }
    lite0 = next(space for space in spaces if space.name == "lite0")
    train_lite0 = features("train", lite0, None)
    train = load_split(manifest, "train")
    counts = np.bincount(train.labels.numpy(), minlength=train.num_classes)
    splits = pd.read_parquet(manifest, columns=["split"])["split"]
    test = load_split(manifest, "test") if (splits == "test").any() else None
    # the floors' stand-ins, and the ID side of ID/OOD
    test_lite0 = features("test", lite0, per_species) if test is not None else None
    if not (splits == OOD_SPLIT).any():  # no ood crops: no extra pass over any data
        return RealSide(real_spaces, train_lite0, counts, test, train.images, test_lite0=test_lite0)
    ood_lite0 = features(OOD_SPLIT, lite0, per_species)
    ood = open_split(manifest, OOD_SPLIT)
    return RealSide(
        real_spaces, train_lite0, counts, test, train.images, ood, ood_lite0, test_lite0
    )


def write_real_features(
    manifest: Path, out_dir: Path, settings: dict, threads: int, device: str | None = None
) -> None:
    """Fill ``out_dir`` with every real feature file ``evaluate`` reads for these settings.

    Written into a temporary folder beside ``out_dir`` and renamed at the end: a
    killed job leaves no folder that looks finished.
    """
    torch.set_num_threads(threads)
    torch_device = select_device(device, stage="real-features")
    options = {**DEFAULTS, **settings}
    net = load_inception(options["inception_weights"], torch_device)
    spaces, dinov2_reason = extra_spaces(options, torch_device)
    if dinov2_reason:
        log.info("FD-DINOv2 skipped: %s", dinov2_reason)
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    real_side(Path(manifest), net, spaces, partial, options)
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    log.info("wrote %d real feature files to %s", len(list(out_dir.iterdir())), out_dir)
