"""The official DINOv2 checkpoints: file names, URLs, key names, and timm's names for them.

FD-DINOv2 is computed with Meta's published backbones, the files that
``torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')`` puts into
``$TORCH_HOME/hub/checkpoints`` (dgm-eval loads them that way).  The network
itself is timm's ``vit_*_patch14_dinov2``, whose parameters carry the same names
except for two differences (what timm's ``_convert_dinov2`` handles):

* the official files hold ``mask_token`` (used only for masked-image training),
  which timm's ViT has no parameter for;
* the giant model's SwiGLU feed-forward layers are ``mlp.w12`` / ``mlp.w3``
  officially and ``mlp.fc1`` / ``mlp.fc2`` in timm (same tensors, same halves).

Both directions of that renaming live here so that loading a file and writing
an offline stand-in of the exact official layout cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from speciesgan.util.errors import SpeciesganError

URL_TEMPLATE = "https://dl.fbaipublicfiles.com/dinov2/dinov2_{model}/dinov2_{model}_pretrain.pth"
"""Where torch hub's ``dinov2_<model>`` entry point downloads the weights from."""

OFFICIAL_IMAGE_SIZE = 518
"""The official models are built for 518 px: their pos_embed has 37 x 37 patch positions."""

MASK_TOKEN = "mask_token"


@dataclass(frozen=True)
class Dinov2Arch:
    """One published DINOv2 backbone (without registers)."""

    model: str
    timm_name: str
    feature_dim: int
    swiglu: bool = False

    @property
    def file_name(self) -> str:
        return f"dinov2_{self.model}_pretrain.pth"

    @property
    def url(self) -> str:
        return URL_TEMPLATE.format(model=self.model)


ARCHS = {
    arch.model: arch
    for arch in (
        Dinov2Arch("vits14", "vit_small_patch14_dinov2", 384),
        Dinov2Arch("vitb14", "vit_base_patch14_dinov2", 768),
        Dinov2Arch("vitl14", "vit_large_patch14_dinov2", 1024),
        Dinov2Arch("vitg14", "vit_giant_patch14_dinov2", 1536, swiglu=True),
    )
}
"""ViT-L/14 is what Stein et al. (2023) and dgm-eval use; the smaller ones are cheaper."""

_OFFICIAL_SWIGLU = re.compile(r"(blocks\.\d+\.mlp\.)(w12|w3)(\.weight|\.bias)")
_TIMM_SWIGLU = re.compile(r"(blocks\.\d+\.mlp\.)(fc1|fc2)(\.weight|\.bias)")


def dinov2_arch(model: str) -> Dinov2Arch:
    """The backbone called ``model`` (``vits14``, ``vitb14``, ``vitl14`` or ``vitg14``)."""
    try:
        return ARCHS[model]
    except KeyError:
        raise SpeciesganError(f"DINOv2 model {model!r} is not one of {', '.join(ARCHS)}") from None


def official_to_timm_key(key: str, arch: Dinov2Arch) -> str | None:
    """timm's name for an official parameter, or None for ``mask_token`` (not in timm)."""
    if key == MASK_TOKEN:
        return None
    if arch.swiglu:
        return _OFFICIAL_SWIGLU.sub(lambda m: m[1] + {"w12": "fc1", "w3": "fc2"}[m[2]] + m[3], key)
    return key


def timm_to_official_key(key: str, arch: Dinov2Arch) -> str:
    """The official file's name for one of timm's parameters (inverse of the above)."""
    if arch.swiglu:
        return _TIMM_SWIGLU.sub(lambda m: m[1] + {"fc1": "w12", "fc2": "w3"}[m[2]] + m[3], key)
    return key
