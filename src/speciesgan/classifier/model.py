"""The species classifier: torchvision's EfficientNet-B0 behind a GAN-friendly interface.

The classifier is used twice after training: as a frozen critic while the GAN
trains and as the judge of per-species accuracy in the evaluation.  Both feed it
generator output, which lives in [-1, 1], so the module takes that range and does
the ImageNet normalisation itself; callers never have to remember the constants.

Weights are stored as plain data (state dict + metadata) and read back with
``torch.load(weights_only=True)``: a results folder copied from a cluster must
never be able to run code when it is opened.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import EfficientNet_B0_Weights, efficientnet_b0

from speciesgan.atomic import save_torch
from speciesgan.errors import SpeciesganError
from speciesgan.weights import (
    EFFICIENTNET_B0_FILE,
    cached_weights,
    checkpoints_dir,
    file_sha256,
)

log = logging.getLogger(__name__)

ARCH = "efficientnet_b0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRETRAINED_CHOICES = ("imagenet", "none")


def uint8_to_model_range(images: torch.Tensor) -> torch.Tensor:
    """Map uint8 crops to float [-1, 1], the range the generator produces."""
    return images.float() / 127.5 - 1.0


def _new_head(in_features: int, num_classes: int) -> nn.Linear:
    """A fresh species layer, scaled by its input width.

    torchvision scales its head by 1/sqrt(out_features), sensible for 1000 ImageNet
    classes but giving huge initial logits (and a loss near 8) for a handful of
    species; PyTorch's default 1/sqrt(in_features) range starts training calmly.
    """
    head = nn.Linear(in_features, num_classes)
    bound = 1.0 / in_features**0.5
    nn.init.uniform_(head.weight, -bound, bound)
    nn.init.zeros_(head.bias)
    return head


def build_efficientnet_b0(num_classes: int, pretrained: str) -> tuple[nn.Module, dict[str, Any]]:
    """EfficientNet-B0 with a ``num_classes`` head, from ImageNet weights when they are cached.

    Nothing is ever downloaded here: compute nodes are often offline, and a silent
    download attempt would hang until a network timeout.  Without the cached file
    the network starts from scratch and a warning says how to pre-fetch it.
    Random initialisation draws from torch's global generator: seed it first.

    Returns ``(network, info)`` with ``info = {"init": "imagenet"|"scratch",
    "weights_sha256": sha256 of the loaded file or None}``.
    """
    if num_classes < 2:
        raise SpeciesganError(f"classifier needs at least 2 species, got {num_classes}")
    if pretrained not in PRETRAINED_CHOICES:
        raise SpeciesganError(
            f"classifier.pretrained must be one of {PRETRAINED_CHOICES}, got {pretrained!r}"
        )
    if pretrained == "imagenet":
        cached = cached_weights(EFFICIENTNET_B0_FILE)
        if cached is not None:
            try:
                # torchvision's normal path: it finds the file in torch's hub cache
                network = efficientnet_b0(weights=EfficientNet_B0_Weights.IMAGENET1K_V1)
            except Exception as exc:  # a truncated or foreign file; name it for the user
                raise SpeciesganError(
                    f"{cached}: cannot load the EfficientNet-B0 ImageNet weights ({exc}); "
                    "delete the file and fetch it again"
                ) from exc
            network.classifier[-1] = _new_head(network.classifier[-1].in_features, num_classes)
            return network, {"init": "imagenet", "weights_sha256": file_sha256(cached)}
        log.warning(
            "EfficientNet-B0 ImageNet weights not found in torch's cache (%s); training "
            "from scratch. Pre-fetch them on a node with internet (see README) to fine-tune.",
            checkpoints_dir() / EFFICIENTNET_B0_FILE,
        )
    network = efficientnet_b0(weights=None, num_classes=num_classes)
    network.classifier[-1] = _new_head(network.classifier[-1].in_features, num_classes)
    return network, {"init": "scratch", "weights_sha256": None}


class SpeciesClassifier(nn.Module):
    """Logits over species for float RGB images in [-1, 1].

    ``min_size`` upsamples smaller inputs (bilinear) before the network; it is off
    by default because EfficientNet-B0 already works on 64 px crops and resizing
    would make the classifier see something other than what it was trained on.
    """

    def __init__(
        self, network: nn.Module, species: list[str], image_size: int, min_size: int | None = None
    ) -> None:
        super().__init__()
        self.network = network
        self.species = list(species)
        self.image_size = int(image_size)
        self.min_size = min_size
        # not persistent: constants, so the saved state dict is exactly torchvision's
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return len(self.species)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images + 1.0) * 0.5  # [-1, 1] -> [0, 1], ImageNet's pixel range
        if self.min_size is not None and min(x.shape[-2:]) < self.min_size:
            height, width = x.shape[-2:]
            scale = self.min_size / min(height, width)
            size = (round(height * scale), round(width * scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return self.network(x)


def save_classifier(
    path: str | Path,
    model: SpeciesClassifier | nn.Module,
    species: list[str],
    image_size: int,
    info: dict[str, Any],
) -> None:
    """Write the classifier as plain data (see docs/architecture.md), atomically.

    ``model`` may be the :class:`SpeciesClassifier` or the bare network.
    """
    network = model.network if isinstance(model, SpeciesClassifier) else model
    state = {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}
    payload = {
        "arch": ARCH,
        "state_dict": state,
        "species": [str(name) for name in species],
        "image_size": int(image_size),
        "info": {str(key): value for key, value in info.items()},
    }
    save_torch(payload, path)


def _read_payload(path: Path) -> dict[str, Any]:
    """``torch.load`` with the failure modes a user can cause turned into messages."""
    if not path.is_file():
        raise SpeciesganError(f"{path}: classifier file not found (run the train_classifier rule)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise SpeciesganError(f"{path}: not a readable classifier file ({exc})") from exc
    if not isinstance(payload, dict):
        raise SpeciesganError(f"{path}: not a classifier file (top level is not a dict)")
    missing = [key for key in ("arch", "state_dict", "species", "image_size") if key not in payload]
    if missing:
        raise SpeciesganError(f"{path}: not a classifier file (missing keys {missing})")
    if payload["arch"] != ARCH:
        raise SpeciesganError(f"{path}: unsupported classifier arch {payload['arch']!r}")
    return payload


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> SpeciesClassifier:
    """Read a saved classifier: eval mode, frozen, on ``device``."""
    path = Path(path)
    payload = _read_payload(path)
    species = list(payload["species"])
    network = efficientnet_b0(weights=None, num_classes=len(species))
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise SpeciesganError(
            f"{path}: weights do not fit EfficientNet-B0 with {len(species)} species ({exc})"
        ) from exc
    model = SpeciesClassifier(network, species, int(payload["image_size"]))
    model.eval().requires_grad_(False)
    return model.to(device)


def classifier_info(path: str | Path) -> dict[str, Any]:
    """The metadata stored with a classifier (init, weights hash), for reports."""
    payload = _read_payload(Path(path))
    return dict(payload.get("info", {}))
