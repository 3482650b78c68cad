"""The pytorch-fid Inception network: pool features for FID/KID, logits for the IS.

FID and IS values are only comparable across papers when they come from the same
network with the same preprocessing, so this module reuses pytorch-fid's
``InceptionV3`` as is (its bilinear resize to 299 and its [0, 1] -> [-1, 1]
scaling) and feeds it uint8 images, exactly what pytorch-fid reads from PNG
files.  The Inception Score needs class logits from the *same* network; they are
the pool features times the ``fc`` weights stored in the same weights file,
without the ``fc`` bias: the original IS code (its ``pool3 @ W``) and
torch-fidelity use the unbiased logits, and a bias shifts the softmax.

The weights file is fetched and read here, not by pytorch-fid: its
``fid_inception_v3()`` goes through ``torch.hub.load_state_dict_from_url``,
which unpickles with ``weights_only=False`` and checks no hash, so a pickle
planted in a shared ``TORCH_HOME`` or served by a mirror would run code.  A
download must carry pytorch-fid's SHA-256 prefix before it is kept; every
file is read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.metrics.feature_spaces import FeatureSpace, without_tf32
from speciesgan.util.atomic import atomic_open
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress
from speciesgan.util.weights import (
    FID_INCEPTION_FILE,
    cached_weights,
    checkpoints_dir,
    file_sha256,
    random_fid_inception_state,
)

log = logging.getLogger(__name__)

FEATURE_DIM = 2048
NUM_LOGITS = 1008

PUBLISHED_SHA256_PREFIX = "6726825d"
"""torch hub convention: the hex tag in the weights file name is its SHA-256 prefix."""

WEIGHTS_PUBLISHED = "pytorch-fid"
WEIGHTS_RANDOM = "random-init (offline placeholder)"
WEIGHTS_UNVERIFIED = (
    f"unverified file {FID_INCEPTION_FILE} (SHA-256 differs from pytorch-fid's published weights)"
)
"""A cached file that loads but is not pytorch-fid's (the tests' placeholder, a modified file)."""
DOWNLOAD_TIMEOUT_S = 20

INCEPTION_MODES = ("pretrained", "pretrained_or_random")


@dataclass
class InceptionNet:
    """pytorch-fid's InceptionV3 (pool3 block) plus the matching 1008-way ``fc`` layer."""

    features: nn.Module
    fc: nn.Linear
    info: dict[str, Any]
    device: torch.device

    @property
    def is_published(self) -> bool:
        """True when the weights are pytorch-fid's, so numbers match published ones."""
        return self.info["weights"] == WEIGHTS_PUBLISHED


def _state_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of an in-memory state dict (for weights that never touched a file)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@contextmanager
def _fid_loader_returning(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """Make pytorch-fid's constructor use ``state`` instead of fetching its URL.

    pytorch-fid builds the network and loads the weights in one call with no way
    to pass a state dict; swapping its loader keeps its exact architecture code.
    """
    import pytorch_fid.inception as fid_inception

    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        yield
    finally:
        fid_inception.load_state_dict_from_url = original


def _download_published(target: Path) -> None:
    """Fetch pytorch-fid's weights file into torch's cache at ``target``.

    The file is kept only when its SHA-256 starts with the prefix in its name
    (torch hub's convention), checked before anything reads it; otherwise it is
    removed and a SpeciesganError says why.  Network failures raise OSError.
    """
    from pytorch_fid.inception import FID_WEIGHTS_URL

    try:
        with (
            urllib.request.urlopen(FID_WEIGHTS_URL, timeout=DOWNLOAD_TIMEOUT_S) as response,
            atomic_open(target) as fh,
        ):
            shutil.copyfileobj(response, fh)
    except (ValueError, http.client.HTTPException) as exc:
        raise OSError(f"{FID_WEIGHTS_URL}: {exc}") from exc
    digest = file_sha256(target)
    if not digest.startswith(PUBLISHED_SHA256_PREFIX):
        target.unlink(missing_ok=True)
        raise SpeciesganError(
            f"{target}: the file downloaded from {FID_WEIGHTS_URL} has SHA-256 {digest[:12]}..., "
            f"not pytorch-fid's published {PUBLISHED_SHA256_PREFIX}...; removed unread"
        )


def _weights_state(mode: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The Inception state dict to use and the info the report shows about it."""
    if mode not in INCEPTION_MODES:
        raise SpeciesganError(
            f"metrics.inception_weights: {mode!r} is not one of {', '.join(INCEPTION_MODES)}"
        )
    path = cached_weights(FID_INCEPTION_FILE)
    if path is None:
        try:
            _download_published(checkpoints_dir() / FID_INCEPTION_FILE)
        except (OSError, SpeciesganError) as exc:  # offline, or not the published file
            if mode == "pretrained":
                raise SpeciesganError(
                    f"the pytorch-fid Inception weights are missing and could not be downloaded "
                    f"({type(exc).__name__}: {exc}). Put {FID_INCEPTION_FILE} (from "
                    f"https://github.com/mseitzer/pytorch-fid/releases) into {checkpoints_dir()}, "
                    f"or set metrics.inception_weights: pretrained_or_random for an offline demo"
                ) from exc
            log.warning(
                "!!! pytorch-fid Inception weights unavailable (%s): using RANDOM weights. "
                "FID/IS/KID values are NOT comparable with published numbers. !!!",
                exc,
            )
            state = random_fid_inception_state(seed=0)
            return state, {"weights": WEIGHTS_RANDOM, "weights_sha256": _state_sha256(state)}
        path = cached_weights(FID_INCEPTION_FILE)
        if path is None:
            raise SpeciesganError(
                f"download did not produce {checkpoints_dir() / FID_INCEPTION_FILE}"
            )
    sha256 = file_sha256(path)
    try:
        # data only: a planted pickle in a shared TORCH_HOME must not run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file; name it
        raise SpeciesganError(
            f"{path}: cannot load the pytorch-fid Inception weights ({exc}); "
            "delete the file and fetch it again"
        ) from exc
    # as for EfficientNet-B0: a cached file that is not the published one is used,
    # labelled unverified in the log, eval/metrics.json and the report
    kind = WEIGHTS_PUBLISHED if sha256.startswith(PUBLISHED_SHA256_PREFIX) else WEIGHTS_UNVERIFIED
    if kind != WEIGHTS_PUBLISHED:
        log.warning(
            "%s: SHA-256 %s... is not pytorch-fid's (%s...): unverified weights (an offline "
            "placeholder or a modified file); metric values are not comparable with "
            "published numbers",
            path,
            sha256[:12],
            PUBLISHED_SHA256_PREFIX,
        )
    return state, {"weights": kind, "weights_sha256": sha256}


def load_inception(mode: str = "pretrained", device: str | torch.device = "cpu") -> InceptionNet:
    """Build pytorch-fid's ``InceptionV3([3])`` and its ``fc`` layer, in eval mode.

    ``mode`` is the ``metrics.inception_weights`` setting (see the config schema).
    """
    from pytorch_fid.inception import InceptionV3

    state, info = _weights_state(mode)
    try:
        with _fid_loader_returning(state):
            features = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]])
        fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)
        fc.load_state_dict({"weight": state["fc.weight"], "bias": state["fc.bias"]})
    except (RuntimeError, KeyError) as exc:
        raise SpeciesganError(
            f"{FID_INCEPTION_FILE}: weights do not fit pytorch-fid's Inception ({exc})"
        ) from exc
    device = torch.device(device)
    return InceptionNet(features.to(device).eval(), fc.to(device).eval(), info, device)


def inception_outputs(
    net: InceptionNet, images: torch.Tensor, batch_size: int = 50, desc: str = "inception"
) -> tuple[np.ndarray, np.ndarray]:
    """Pool features [N, 2048] and logits [N, 1008] (float64) of uint8 images [N, 3, H, W].

    The logits are ``pool @ fc.weight.T`` without the bias (see the module docstring).
    TF32 is off while the network runs (see ``without_tf32``).

    uint8 input is required so that in-memory images and the same images saved as
    PNG (what ``python -m pytorch_fid`` reads) give identical features.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
        )
    count = images.shape[0]
    features = np.empty((count, FEATURE_DIM), dtype=np.float64)
    logits = np.empty((count, NUM_LOGITS), dtype=np.float64)
    starts = range(0, count, max(1, batch_size))
    with torch.no_grad(), without_tf32():
        for start in progress(starts, desc=desc, unit="batch"):
            batch = images[start : start + batch_size].to(net.device).float().div(255)
            pool = net.features(batch)[0].flatten(1)
            features[start : start + len(batch)] = pool.cpu().double().numpy()
            logits[start : start + len(batch)] = (pool @ net.fc.weight.T).cpu().double().numpy()
    return features, logits


def inception_space(net: InceptionNet) -> FeatureSpace:
    """pytorch-fid's pool3 features as a :class:`FeatureSpace` (what FID is computed in)."""

    def pool(images: torch.Tensor) -> torch.Tensor:
        return net.features(images.float().div(255))[0].flatten(1)

    comparable = (
        "Comparable with published FIDs computed with pytorch-fid at the same image count "
        "(its weights, verified by SHA-256)."
        if net.is_published
        else "Not comparable with anything: placeholder Inception weights (offline), so "
        "FID, IS and KID here are noise; use FD-Lite0 instead."
    )
    return FeatureSpace("inception", pool, dict(net.info), net.device, comparable)
