"""Pretrained weight files: where torch's cache keeps them, and offline stand-ins.

The pipeline loads ImageNet EfficientNet-B0 and the pytorch-fid Inception from
torch's hub cache (``$TORCH_HOME/hub/checkpoints``), exactly as on an online
cluster.  On a machine with no internet (this project's CI, an offline demo) a
state dict of *randomly initialised* weights of the exact architecture can be put
there instead, so the real loading path still runs.  Numbers computed with those
stand-ins (FID, IS) are not comparable with published ones; every consumer
records the SHA-256 of the file it loaded so the report can say which it was.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from speciesgan.atomic import atomic_path

FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
"""pytorch-fid 0.3.0's weights file name (FID_WEIGHTS_URL's basename)."""

EFFICIENTNET_B0_FILE = "efficientnet_b0_rwightman-7f5810bc.pth"
"""torchvision's EfficientNet_B0_Weights.IMAGENET1K_V1 file name."""


def checkpoints_dir() -> Path:
    """torch's hub checkpoint folder, honouring TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights(file_name: str) -> Path | None:
    """The cached weights file if present, else None."""
    path = checkpoints_dir() / file_name
    return path if path.is_file() else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for pytorch-fid's FIDInceptionA/C/E network with random weights."""
    from pytorch_fid.inception import fid_inception_v3

    torch.manual_seed(seed)
    # fid_inception_v3 would download the real weights: build the same graph without them
    import pytorch_fid.inception as fid_inc

    original = fid_inc.load_state_dict_from_url
    fid_inc.load_state_dict_from_url = lambda *a, **k: fid_inc._inception_v3(
        num_classes=1008, aux_logits=False, weights=None
    ).state_dict()
    try:
        model = fid_inception_v3()
    finally:
        fid_inc.load_state_dict_from_url = original
    return model.state_dict()


def random_efficientnet_b0_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for torchvision's EfficientNet-B0 (1000 classes) with random weights."""
    from torchvision.models import efficientnet_b0

    torch.manual_seed(seed)
    return efficientnet_b0(weights=None).state_dict()


def write_placeholder_weights(seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Put random-init stand-ins for both weight files into torch's cache.

    Existing files (for instance the real weights) are left alone unless
    ``overwrite`` is set.  Returns the paths written.
    """
    written = []
    for name, make in (
        (FID_INCEPTION_FILE, random_fid_inception_state),
        (EFFICIENTNET_B0_FILE, random_efficientnet_b0_state),
    ):
        target = checkpoints_dir() / name
        if target.exists() and not overwrite:
            continue
        with atomic_path(target) as tmp:
            torch.save(make(seed), tmp)
        written.append(target)
    return written
