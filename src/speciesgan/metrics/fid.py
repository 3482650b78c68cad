"""Fréchet Inception Distance, with the real-data features cached on disk.

Extracting Inception features of thousands of real crops costs far more than the
generated side of one evaluation, and the real data does not change between
models.  The features (not only mean/covariance: KID needs them too) are cached
under a key made of everything that determines them, so any change of manifest,
split, crop size or weights file gives a new cache entry instead of stale numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from speciesgan.data.dataset import load_split
from speciesgan.metrics.feature_spaces import FeatureSpace, features_of
from speciesgan.metrics.inception import InceptionNet, inception_space
from speciesgan.util.atomic import atomic_path
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.weights import file_sha256

log = logging.getLogger(__name__)

FULL_RANK_IMAGES = 2048
"""Below this many images the 2048-d covariance is rank-deficient and FID is biased upward."""


@dataclass
class RealFeatures:
    """Features of a real split (Inception pool or another space), with each image's species id."""

    features: np.ndarray  # float64 [N, dim]
    labels: np.ndarray  # int64 [N]
    species: list[str]
    cache_file: Path


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance as pytorch-fid computes them (``np.cov``, rows are samples)."""
    if features.shape[0] < 2:
        raise SpeciesganError(f"FID needs at least 2 images, got {features.shape[0]}")
    features = np.asarray(features, dtype=np.float64)  # float32 outputs are kept as such
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """FID between two Gaussians: |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

    Same formula as pytorch-fid's ``calculate_frechet_distance``, but the trace
    term is computed as the sum of square roots of the eigenvalues of
    sqrt(S1) S2 sqrt(S1), a symmetric PSD matrix similar to S1 S2, with two
    symmetric eigendecompositions in float64 (torch's LAPACK).  scipy's general
    ``sqrtm`` of the 2048x2048 product took 60-90 s per FID on a 2-core node; this
    takes a few seconds and agrees with it to ~1e-5 (tests compare both, and the
    whole pipeline against ``python -m pytorch_fid``).
    """
    s1 = torch.as_tensor(np.asarray(sigma1, dtype=np.float64))
    s2 = torch.as_tensor(np.asarray(sigma2, dtype=np.float64))
    diff = torch.as_tensor(np.atleast_1d(mu1) - np.atleast_1d(mu2), dtype=torch.float64)
    eigvals, eigvecs = torch.linalg.eigh(s1)
    root1 = (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T
    product = root1 @ s2 @ root1
    trace_covmean = torch.linalg.eigvalsh((product + product.T) / 2).clamp(min=0).sqrt().sum()
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * trace_covmean)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of features (Inception pool or another space).

    With fewer images than feature dimensions on one side (every per-species FID,
    and most evaluations below full scale) the trace term is taken from the
    images instead of the dimensions; see ``_frechet_distance_few_images``.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    for side in (a, b):
        if len(side) < 2:
            raise SpeciesganError(f"FID needs at least 2 images, got {side.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise SpeciesganError(f"FID of features of {a.shape[1]} and {b.shape[1]} dimensions")
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    return _frechet_distance_few_images(a, b)


def _frechet_distance_few_images(a: np.ndarray, b: np.ndarray) -> float:
    """The same distance as ``frechet_distance`` of the two sets' statistics, in n x n.

    With centred rows Xa (na x d) and Xb, S_a = Xa^T Xa / (na - 1) and
    S_b = Xb^T Xb / (nb - 1).  The non-zero eigenvalues of S_a S_b are those of
    C C^T with C = Xa Xb^T / sqrt((na - 1)(nb - 1)), so tr(sqrt(S_a S_b)) is the
    sum of C's singular values, and tr(S) is the summed squares over (n - 1).
    Exact, not an approximation: it skips the d x d eigendecompositions (about
    3 s per FID at d = 2048 on a 2-core node, twelve of them for intra-class FID
    over twelve species) when one side has fewer images than dimensions.
    """
    xa = torch.as_tensor(a - a.mean(axis=0))
    xb = torch.as_tensor(b - b.mean(axis=0))
    diff = torch.as_tensor(a.mean(axis=0) - b.mean(axis=0))
    na, nb = len(a), len(b)
    cross = (xa @ xb.T) / float(np.sqrt((na - 1) * (nb - 1)))
    trace_covmean = torch.linalg.svdvals(cross).sum()
    trace_a = (xa * xa).sum() / (na - 1)
    trace_b = (xb * xb).sum() / (nb - 1)
    return float(diff @ diff + trace_a + trace_b - 2 * trace_covmean)


def rank_deficiency_note(num_generated: int, num_real: int) -> str | None:
    """A warning text when either side has fewer images than feature dimensions."""
    smallest = min(num_generated, num_real)
    if smallest >= FULL_RANK_IMAGES:
        return None
    return (
        f"FID from {num_generated} generated and {num_real} real images: with fewer than "
        f"{FULL_RANK_IMAGES} images the covariance is rank-deficient, so the FID is biased "
        f"upward and only comparable with FIDs computed from the same number of images"
    )


def _manifest_image_size(manifest: Path) -> int | None:
    metadata = pq.read_schema(manifest).metadata or {}
    value = metadata.get(b"speciesgan.image_size")
    return int(value) if value is not None else None


def real_features_key(
    manifest: Path,
    split: str,
    weights_sha256: str,
    device_type: str = "cpu",
    per_species: int | None = None,
    space: str = "inception",
) -> str:
    """Cache key: SHA-256 of (manifest content, split, crop size, feature space and weights, device).

    The device type is part of it because GPU and CPU convolutions differ in the last
    bits: a cache filled on a GPU node must not break byte-identical CPU reruns.
    """
    try:
        manifest_sha = file_sha256(manifest)
        image_size = _manifest_image_size(manifest)
    except FileNotFoundError as exc:
        raise SpeciesganError(f"manifest not found: {manifest}") from exc
    identity = {
        "manifest_sha256": manifest_sha,
        "split": split,
        "image_size": image_size,
        "inception_weights_sha256": weights_sha256,
        "device": device_type,
        "per_species": per_species,
    }
    if space != "inception":  # Inception keys stay as they were: existing caches remain valid
        identity["feature_space"] = space
    if per_species is not None:  # the sample, so caches of the old first-N choice are not reused
        identity["per_species_sample"] = f"random, seed {REAL_SAMPLE_SEED}"
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def sample_per_species(labels: torch.Tensor, limit: int | None, seed: int) -> torch.Tensor:
    """Indices (ascending) of a seeded random sample of ``limit`` images of each species.

    Random, not the first ones: manifest order follows the source files, so the
    first crops of a species tend to come from one source, photographer or site
    and would give FID/KID a real side narrower than the species.  Species with
    fewer images keep all of them; ``limit=None`` keeps everything.
    """
    if limit is None:
        return torch.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [
        index
        for species in labels.unique(sorted=True).tolist()
        for index in rng.permutation((labels == species).nonzero().flatten().numpy())[:limit]
    ]
    return torch.tensor(sorted(int(index) for index in keep), dtype=torch.long)


REAL_SAMPLE_SEED = 0
"""Fixed, so every evaluation of the same data shares one capped real sample (and cache)."""


def real_features(
    manifest: Path,
    split: str,
    net: InceptionNet | FeatureSpace,
    cache_dir: Path,
    batch_size: int = 50,
    per_species: int | None = None,
    read_only: bool = False,
) -> RealFeatures:
    """Features of the real ``split`` in ``net``'s space, loaded from ``cache_dir`` when present.

    ``read_only``: ``cache_dir`` was filled by ``speciesgan real-features`` (the
    workflow's ``real_features`` rule, an input of ``evaluate``): a missing entry
    means other settings or data than that run's, an error rather than a silent
    recomputation into another rule's output.

    ``net`` is the Inception network (FID's space) or any :class:`FeatureSpace`.
    ``per_species`` caps the real images per species (a seeded random sample, see
    :func:`sample_per_species`): on CPU the Inception pass costs ~0.2 s per image, and FIDs are only
    comparable at equal image counts anyway.
    """
    space = inception_space(net) if isinstance(net, InceptionNet) else net
    manifest = Path(manifest)
    key = real_features_key(
        manifest, split, space.weights_sha256, space.device.type, per_species, space.name
    )
    prefix = "real" if space.name == "inception" else f"real-{space.name}"
    cache_file = Path(cache_dir) / f"{prefix}-{key[:32]}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file) as cached:
                species = [str(name) for name in cached["species"]]
                return RealFeatures(cached["features"], cached["labels"], species, cache_file)
        except (OSError, KeyError, ValueError) as exc:
            if read_only:
                raise SpeciesganError(f"{cache_file}: unreadable real features ({exc})") from exc
            log.warning("%s: unreadable feature cache (%s); recomputing", cache_file, exc)
    if read_only:
        raise SpeciesganError(
            f"{cache_file}: no {space.name} features of the real {split} split in {cache_dir} "
            f"for this manifest, crop count and device ({space.device.type}); it was made for "
            "other settings or data: rerun `speciesgan real-features` with the same --settings "
            "and --manifest (the workflow's real_features rule)"
        )
    crops = load_split(manifest, split)
    chosen = sample_per_species(crops.labels, per_species, REAL_SAMPLE_SEED)
    log.info("computing %s features of %d real %s images", space.name, len(chosen), split)
    features = features_of(space, crops.images[chosen], batch_size, desc=f"real {split}")
    labels = crops.labels[chosen].numpy().astype(np.int64)
    with atomic_path(cache_file) as tmp:
        np.savez(tmp, features=features, labels=labels, species=np.array(crops.species))
    return RealFeatures(features, labels, list(crops.species), cache_file)
