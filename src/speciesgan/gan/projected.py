"""A discriminator that judges images in the features of a frozen ImageNet network.

Projected GAN (Sauer et al., NeurIPS 2021) showed that a discriminator reading
the multi-scale features of a frozen, pretrained EfficientNet-Lite converges an
order of magnitude faster than one learning its own features from pixels.  The
reason matters here: a discriminator trained from scratch on a few thousand
crops first separates real from fake by colour statistics and texture, and the
generator learns those; ImageNet features already encode edges, parts and
outlines, so the cheapest difference left for the discriminator to find is the
shape.  That is what a species is.

Layout, following the paper at a size a CPU can afford:

* ``EfficientNetLite0`` with its packaged ImageNet weights, frozen and always in
  eval mode, gives feature maps at the end of chosen stages (strides 4, 8, 16).
* Each map goes through a fixed random 1x1 projection (the paper's cross-channel
  mixing): the discriminator cannot pick a few dominant ImageNet channels and
  ignore the rest.
* One small trainable head per scale (strided spectral-norm convolutions down
  to 4x4 or less; with ``gan.spectral_init: orthogonal`` initialised like the
  ResNet discriminator's, else torch's default init) ends
  in a projection-discriminator term ``<embed(y), h>`` for the species, plus an
  unconditional score; the scores of all scales are summed.

Only the heads and their species embeddings are trained; the backbone and the
projections are frozen parameters (kept out of the optimiser but in the state
dict), so a checkpoint restores them exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from speciesgan.classifier.efficientnet_lite import (
    STAGES,
    EfficientNetLite0,
    load_lite0_imagenet_state,
)
from speciesgan.gan.layers import SpeciesEmbedding, orthogonal_init

FEATURE_STAGES = (1, 2, 4)
"""Lite0 stages read by the heads: 24, 40 and 112 channels at strides 4, 8, 16."""
HEAD_MIN_SIZE = 4


class FrozenFeatures(nn.Module):
    """Lite0's stage outputs through fixed random 1x1 projections; never trained."""

    def __init__(self, stages: tuple[int, ...], width: int, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = EfficientNetLite0()
        if pretrained:
            self.backbone.load_state_dict(load_lite0_imagenet_state())
        self.stages = tuple(stages)
        self.projections = nn.ModuleList(
            nn.Conv2d(STAGES[s][4], width, 1, bias=False) for s in self.stages
        )
        for projection in self.projections:
            nn.init.kaiming_normal_(projection.weight, nonlinearity="linear")
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenFeatures:
        """Stay in eval mode: the ImageNet BatchNorm statistics must never be updated."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = self.backbone.stage_features(images, self.stages)
        return [projection(m) for projection, m in zip(self.projections, maps, strict=True)]


def group_spread(x: torch.Tensor, group: int) -> torch.Tensor:
    """One channel: the spread of ``x`` over each run of ``group`` consecutive images.

    The minibatch standard deviation of Karras et al. (2018), over groups of images
    of one species (the trainer draws batches so, ``gan.species_groups``): a
    discriminator that sees four images of a species can tell four copies of one
    picture from four photos, which no judgement of one image at a time can.
    """
    batch, _, height, width = x.shape
    runs = x.float().reshape(batch // group, group, -1)
    spread = (runs.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=1)
    channel = spread.repeat_interleave(group).to(x.dtype)
    return channel[:, None, None, None].expand(batch, 1, height, width)


class ScaleHead(nn.Module):
    """Strided SN convs from one feature map down to <= 4x4, then score + species projection."""

    def __init__(
        self,
        in_ch: int,
        size: int,
        channels: int,
        num_classes: int,
        spectral_init: str = "torch",
        logit_sets: int = 1,
        group: int = 0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_ch
        while size > HEAD_MIN_SIZE:
            layers += [
                spectral_norm(nn.Conv2d(ch, channels, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            ch, size = channels, size // 2
        self.group = group
        last = [
            spectral_norm(nn.Conv2d(ch + (group > 1), channels, 3, padding=1)),
            nn.LeakyReLU(0.2),
        ]
        if group > 1:  # the spread joins before the last conv
            self.body = nn.Sequential(*layers)
            self.last = nn.Sequential(*last)
        else:  # one Sequential, as checkpoints written before species_groups have it
            self.body = nn.Sequential(*layers, *last)
        self.score = spectral_norm(nn.Linear(channels, 1))
        self.embedding = SpeciesEmbedding(num_classes, channels)
        self.embedding.table = spectral_norm(self.embedding.table)
        self.species_logits = nn.Linear(channels, num_classes * logit_sets)
        if spectral_init == "orthogonal":  # every SN layer starts at gain 1
            orthogonal_init(self, spectral_init)

    def forward(
        self, features: torch.Tensor, species_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake score with the species projection, species logits) per image."""
        h = self.body(features)
        if self.group > 1:
            h = self.last(torch.cat([h, group_spread(h, self.group)], dim=1))
        h = h.mean(dim=(2, 3))
        projection = (self.embedding(species_ids).to(h.dtype) * h).sum(dim=1)
        return self.score(h).squeeze(1) + projection, self.species_logits(h)


class ProjectedDiscriminator(nn.Module):
    """Species-conditional discriminator on frozen EfficientNet-Lite0 features.

    ``input_size`` resizes images before the backbone (bilinear, differentiable),
    so a 32 or 64 px generator is judged at a scale ImageNet features suit.
    """

    def __init__(
        self,
        num_classes: int,
        image_size: int,
        channels: int = 64,
        input_size: int | None = None,
        pretrained: bool = True,
        spectral_init: str = "torch",
        species_twin: bool = False,
        species_groups: int = 0,
        pixel_head: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.species_twin = species_twin
        self.input_size = int(input_size or image_size)
        self.features = FrozenFeatures(FEATURE_STAGES, channels, pretrained)
        strides = {1: 4, 2: 8, 3: 16, 4: 16, 5: 32, 6: 32}
        self.heads = nn.ModuleList(
            ScaleHead(
                channels,
                max(1, self.input_size // strides[s]),
                channels,
                num_classes,
                spectral_init,
                2 if species_twin else 1,
                species_groups,
            )
            for s in FEATURE_STAGES
        )
        # ImageNet features are built to ignore colour; a head on the pixels sees it
        self.pixel_head = (
            ScaleHead(
                3,
                image_size,
                channels,
                num_classes,
                spectral_init,
                2 if species_twin else 1,
                species_groups,
            )
            if pixel_head
            else None
        )

    def forward(
        self, images: torch.Tensor, species_ids: torch.Tensor, with_logits: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores (higher = real); with ``with_logits`` also the heads' summed species logits.

        With ``species_twin`` the logits are [B, 2K]: the first K are the species
        classifier trained on real crops, the last K its twin trained on generated
        images (TAC-GAN, Gong et al. 2019).
        """
        pixels = images
        if images.shape[-1] != self.input_size:
            images = F.interpolate(
                images,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
            )
        maps = self.features(images)
        outputs = [head(m, species_ids) for head, m in zip(self.heads, maps, strict=True)]
        if self.pixel_head is not None:
            outputs.append(self.pixel_head(pixels, species_ids))
        scores = torch.stack([score for score, _ in outputs]).sum(0)
        if not with_logits:
            return scores
        return scores, torch.stack([logits for _, logits in outputs]).sum(0)
