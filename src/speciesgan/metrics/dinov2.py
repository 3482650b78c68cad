"""DINOv2 CLS features for the Fréchet distance FD-DINOv2 (Stein et al., NeurIPS 2023).

Stein et al. found that the Fréchet distance in DINOv2 ViT-L/14 features agrees
with human judgement better than FID; their dgm-eval code computes it.  The
features here are meant to be dgm-eval's, so that FD-DINOv2 values can be set
beside published ones:

* weights: Meta's official checkpoint files, where torch hub keeps them
  (``$TORCH_HOME/hub/checkpoints/dinov2_vitl14_pretrain.pth``), downloaded from
  Meta's URL when missing and allowed; always read as data only
  (``weights_only=True``), so a planted pickle cannot run code;
* network: timm's ViT of the same architecture (the ``dinov2`` PyPI package
  pins an ancient torch), fed the official tensors under timm's names
  (see ``dinov2_layout``), strictly: a missing or unknown key is an error;
* position embeddings: the official model keeps 37 x 37 of them (518 px) and
  resamples them at every forward for the 16 x 16 patches of a 224 px image,
  bicubic *without* antialiasing, with a scale factor of (16 + 0.1) / 37.
  timm's ``checkpoint_filter_fn`` would resample once to exactly 16 x 16 *with*
  antialiasing, which changes every feature; the official resampling is
  therefore done here, once, at load time;
* preprocessing: dgm-eval's transform, i.e. Pillow's bicubic resize to 224 x 224
  (reproduced exactly by ``pil_resize``), scaling to [0, 1] and ImageNet
  mean/std normalisation; the feature is the CLS token after the final norm;
* float32 throughout, TF32 off (see ``feature_spaces.without_tf32``).

FD-DINOv2 is an extra metric: when timm is missing or the weights can be
neither found nor downloaded, ``load_dinov2`` says why instead of raising, and
evaluation goes on without it.  Meta publishes no checksums for these files, so
nothing is verified; the SHA-256 and size of the file used are recorded in
``info`` for the report.
"""

from __future__ import annotations

import http.client
import logging
import math
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.metrics.dinov2_layout import (
    MASK_TOKEN,
    Dinov2Arch,
    dinov2_arch,
    official_to_timm_key,
    timm_to_official_key,
)
from speciesgan.metrics.feature_spaces import FeatureSpace, without_tf32
from speciesgan.metrics.pil_resize import pil_bicubic_resize
from speciesgan.util.atomic import atomic_open
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress
from speciesgan.util.weights import cached_weights, checkpoints_dir, file_sha256

log = logging.getLogger(__name__)

INPUT_SIZE = 224
"""dgm-eval resizes every image to 224 x 224 before DINOv2."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATE_OFFSET = 0.1
"""The official ``interpolate_offset``: added to the patch grid size in the scale factor."""

DOWNLOAD_TIMEOUT_S = 20
INSTALL_HINT = "pip install 'speciesgan[dinov2]'"
KEYS_SHOWN = 5


class DINOv2Features(nn.Module):
    """uint8 images [B, 3, H, W] -> float32 DINOv2 CLS features [B, D], as dgm-eval computes them.

    Always in eval mode and without autograd: it only ever measures images.
    ``info`` says which network and weights file produced the features.
    """

    def __init__(self, vit: nn.Module, info: dict[str, Any]) -> None:
        super().__init__()
        self.vit = vit.eval().requires_grad_(False)
        self.info = info
        self.feature_dim = int(info["feature_dim"])
        # not persistent: they are constants, not weights
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        with torch.no_grad(), without_tf32():
            resized = pil_bicubic_resize(images.to(self.mean.device), (INPUT_SIZE, INPUT_SIZE))
            # torchvision's ToTensor then Normalize, in the same float32 operations
            pixels = resized.to(torch.float32).div(255).sub(self.mean).div(self.std)
            return self.vit(pixels).to(torch.float32)


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
        )


def dinov2_features(
    net: DINOv2Features, images_uint8: torch.Tensor, batch_size: int = 50, desc: str = "dinov2"
) -> np.ndarray:
    """CLS features [N, D] (float64) of uint8 images [N, 3, H, W], ``batch_size`` at a time."""
    _check_images(images_uint8)
    count = images_uint8.shape[0]
    features = np.empty((count, net.feature_dim), dtype=np.float64)
    batch_size = max(1, batch_size)
    for start in progress(range(0, count, batch_size), desc=desc, unit="batch"):
        batch = images_uint8[start : start + batch_size]
        features[start : start + len(batch)] = net(batch).cpu().double().numpy()
    return features


def _download(url: str, target: Path) -> None:
    """Fetch ``url`` into ``target`` atomically; any network failure raises OSError."""
    log.info("downloading the DINOv2 weights %s to %s", url, target)
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            atomic_open(target) as fh,
        ):
            shutil.copyfileobj(response, fh, length=1 << 20)
    except (ValueError, http.client.HTTPException) as exc:
        raise OSError(f"{url}: {exc}") from exc


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, unpickled as data only; a foreign or broken file is named."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file; name it
        raise SpeciesganError(
            f"{path}: cannot load the DINOv2 weights ({type(exc).__name__}: {exc}); "
            "delete the file and fetch it again"
        ) from exc
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise SpeciesganError(f"{path}: not a DINOv2 state dict (a dict of named tensors)")
    return state


def _listed(keys: set[str]) -> str:
    names = sorted(keys)
    more = f" and {len(names) - KEYS_SHOWN} more" if len(names) > KEYS_SHOWN else ""
    return ", ".join(names[:KEYS_SHOWN]) + more


def _check_keys(
    state: dict[str, torch.Tensor], expected: set[str], arch: Dinov2Arch, path: Path
) -> None:
    """Refuse a file whose keys are not exactly the official layout's."""
    missing, unexpected = expected - state.keys(), state.keys() - expected
    if missing or unexpected:
        problems = [f"missing {_listed(missing)}"] if missing else []
        problems += [f"unexpected {_listed(unexpected)}"] if unexpected else []
        raise SpeciesganError(
            f"{path}: not the official DINOv2 {arch.model} checkpoint "
            f"({'; '.join(problems)}); delete the file and fetch it again from {arch.url}"
        )


def _official_pos_embed(pos_embed: torch.Tensor, grid: int, path: Path) -> torch.Tensor:
    """Resample [1, 1 + M*M, D] position embeddings to ``grid`` x ``grid`` the official way.

    As DINOv2's ``interpolate_pos_encoding`` does at every forward: bicubic, no
    antialiasing, scale factor (grid + 0.1) / M, the CLS position unchanged.
    """
    positions = pos_embed.shape[1] - 1 if pos_embed.ndim == 3 else -1
    side = math.isqrt(max(positions, 0))
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1 or side < 1 or side * side != positions:
        raise SpeciesganError(
            f"{path}: pos_embed has shape {tuple(pos_embed.shape)}, "
            "not [1, 1 + M*M, D] of a square patch grid"
        )
    if side == grid:
        return pos_embed
    dim = pos_embed.shape[2]
    patches = pos_embed[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = (grid + INTERPOLATE_OFFSET) / side
    resampled = nn.functional.interpolate(
        patches, scale_factor=(scale, scale), mode="bicubic", antialias=False
    )
    resampled = resampled.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat((pos_embed[:, :1].float(), resampled), dim=1)


def _build_vit(arch: Dinov2Arch, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """timm's ViT for 224 px input, holding the official tensors."""
    import timm

    # built on the meta device: no time spent on a random init that is overwritten
    with torch.device("meta"):
        vit = timm.create_model(
            arch.timm_name, pretrained=False, img_size=INPUT_SIZE, num_classes=0
        )
    timm_keys = list(vit.state_dict())
    _check_keys(
        state, {timm_to_official_key(k, arch) for k in timm_keys} | {MASK_TOKEN}, arch, path
    )
    renamed = {}
    for key, value in state.items():
        timm_key = official_to_timm_key(key, arch)
        if timm_key is not None:
            renamed[timm_key] = value.to(torch.float32)
    grid = INPUT_SIZE // vit.patch_embed.patch_size[0]
    renamed["pos_embed"] = _official_pos_embed(renamed["pos_embed"], grid, path)
    try:
        vit.load_state_dict(renamed, strict=True, assign=True)
    except RuntimeError as exc:  # tensor shapes of another architecture
        raise SpeciesganError(
            f"{path}: tensors do not fit DINOv2 {arch.model} ({exc}); "
            f"delete the file and fetch it again from {arch.url}"
        ) from exc
    return vit


def load_dinov2(
    model: str = "vitl14", device: str | torch.device = "cpu", download: bool = True
) -> tuple[DINOv2Features | None, str]:
    """The DINOv2 feature network, or None and the reason it is unavailable.

    Unavailable means: timm is not installed, or the official weights file is
    not in torch's cache and may not (``download=False``) or could not be
    downloaded.  A file that is there but broken or of another layout raises
    SpeciesganError naming it: silently skipping the metric would hide that.
    """
    arch = dinov2_arch(model)
    try:
        import timm
    except ImportError:
        return None, f"FD-DINOv2 needs timm, which is not installed: {INSTALL_HINT}"
    path = cached_weights(arch.file_name)
    source = "cache"
    if path is None:
        target = checkpoints_dir() / arch.file_name
        if not download:
            return None, (
                f"the DINOv2 {model} weights are not in torch's cache ({target} does not exist) "
                f"and downloading is off; put {arch.url} there to report FD-DINOv2"
            )
        try:
            _download(arch.url, target)
        except OSError as exc:
            return None, (
                f"the DINOv2 {model} weights are not in torch's cache ({target}) and "
                f"downloading {arch.url} failed ({type(exc).__name__}: {exc}); "
                "put the file there to report FD-DINOv2"
            )
        path, source = target, "download"
    sha256 = file_sha256(path)
    try:
        vit = _build_vit(arch, _read_state(path), path)
    except SpeciesganError as exc:
        if source != "download":
            raise
        # an error page, a cut-off body: the next run downloads again instead of failing
        path.unlink(missing_ok=True)
        raise SpeciesganError(f"downloaded from {arch.url}, then removed: {exc}") from exc
    info = {
        "network": f"DINOv2 {arch.model} (timm {timm.__version__} {arch.timm_name})",
        "model": arch.model,
        "weights": arch.file_name,
        "weights_url": arch.url,
        "weights_source": source,
        # Meta publishes no checksums: recorded so a report can tell files apart, not checked
        "weights_sha256": sha256,
        "weights_bytes": path.stat().st_size,
        "weights_verified": False,
        "input_size": INPUT_SIZE,
        "feature_dim": arch.feature_dim,
    }
    return DINOv2Features(vit, info).to(device), ""


def dinov2_space(
    model: str = "vitl14", device: str | torch.device = "cpu", download: bool = True
) -> tuple[FeatureSpace | None, str]:
    """:func:`load_dinov2` as a :class:`FeatureSpace` for ``evaluate`` (or None and why not)."""
    net, reason = load_dinov2(model, device, download)
    if net is None:
        return None, reason
    comparable = (
        f"Comparable with FD-DINOv2 figures computed with the official {model} weights and "
        "dgm-eval's preprocessing (Stein et al. 2023) at the same image count."
    )
    return FeatureSpace("dinov2", net, dict(net.info), torch.device(device), comparable), ""
