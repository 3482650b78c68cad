"""Pretrained weight files: where torch's cache keeps them, and offline stand-ins.

The pipeline loads ImageNet EfficientNet-B0, the pytorch-fid Inception and
(when present) a DINOv2 backbone from torch's hub cache (``$TORCH_HOME/hub/checkpoints``), exactly as on an online
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

from speciesgan.util.atomic import save_torch

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


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for pytorch-fid's FID Inception network with random weights.

    Random convolutions alone make activations vanish through 90-odd layers
    (eval-mode BatchNorm with unit statistics normalises nothing), so every
    feature would be ~0 and every FID ~0.  The BatchNorm running statistics are
    therefore calibrated on seeded noise images, which keeps features at a
    useful scale: FIDs are then meaningful for comparing runs with each other,
    never with published numbers.
    """
    import pytorch_fid.inception as fid_inception

    torch.manual_seed(seed)
    # fid_inception_v3() would download the real weights: let it load a fresh state instead
    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = lambda *a, **k: fid_inception._inception_v3(
        num_classes=1008, aux_logits=False, weights=None, init_weights=True
    ).state_dict()
    try:
        model = fid_inception.fid_inception_v3()
    finally:
        fid_inception.load_state_dict_from_url = original
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batches
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            coarse = torch.rand(8, 3, 19, 19, generator=generator) * 2 - 1
            images = torch.nn.functional.interpolate(coarse, size=(299, 299), mode="bilinear")
            model(images + 0.1 * torch.randn(images.shape, generator=generator))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
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
        save_torch(make(seed), target)
        written.append(target)
    return written
