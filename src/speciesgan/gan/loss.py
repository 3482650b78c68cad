"""Adversarial losses and the frozen-classifier guidance term.

The discriminator returns one unbounded score per image (higher = "real").
Each loss kind is a pair of functions of those scores:

* ``hinge`` (default; SNGAN/BigGAN): D pushes real scores above +1 and fake
  scores below -1; G raises the fake scores.
* ``bce``: the original GAN loss with the non-saturating generator objective,
  written with softplus so large scores do not overflow.
* ``wgan-gp``: Wasserstein critic plus a gradient penalty on random
  interpolations between real and fake images (Gulrajani et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from speciesgan.gan.batch_slice import BatchSlice
from speciesgan.util.errors import SpeciesganError

LOSS_KINDS = ("hinge", "bce", "wgan-gp")
GP_WEIGHT = 10.0
"""Gradient penalty weight from the WGAN-GP paper."""


def check_loss_kind(kind: str) -> str:
    if kind not in LOSS_KINDS:
        raise SpeciesganError(f"gan.loss must be one of {list(LOSS_KINDS)}, got {kind!r}")
    return kind


def discriminator_loss(
    kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor
) -> torch.Tensor:
    """D's loss (to minimise) from its scores on real and generated images."""
    real_scores = real_scores.float()
    fake_scores = fake_scores.float()
    if kind == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    if kind == "bce":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    if kind == "wgan-gp":
        return fake_scores.mean() - real_scores.mean()
    raise SpeciesganError(f"gan.loss must be one of {list(LOSS_KINDS)}, got {kind!r}")


def generator_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss (to minimise) from D's scores on generated images."""
    fake_scores = fake_scores.float()
    if kind in ("hinge", "wgan-gp"):
        return -fake_scores.mean()
    if kind == "bce":
        return F.softplus(-fake_scores).mean()
    raise SpeciesganError(f"gan.loss must be one of {list(LOSS_KINDS)}, got {kind!r}")


def gradient_penalty(
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    species_ids: torch.Tensor,
    generator: torch.Generator,
    rows: BatchSlice | None = None,
) -> torch.Tensor:
    """``GP_WEIGHT * E[(||grad_x D(x)|| - 1)^2]`` at random real/fake interpolations.

    The mixing weights come from ``generator`` so that a resumed run draws the
    same ones as an uninterrupted run; ``rows`` (default: the whole batch) says
    which rows of the global batch ``real`` and ``fake`` are, so data-parallel
    ranks each take their own weights from one global draw.
    """
    rows = BatchSlice(real.shape[0]) if rows is None else rows
    rows.check(real)
    alpha = rows.rand(generator, real.device)[:, None, None, None]
    mixed = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(
        True
    )
    scores = discriminator(mixed, species_ids)
    (grad,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return GP_WEIGHT * ((norms - 1) ** 2).mean()


def classifier_guidance_loss(
    classifier: nn.Module, fake: torch.Tensor, species_ids: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the requested species under a frozen classifier.

    Pushes G towards images an independent species classifier recognises as the
    species asked for.  ``classifier`` must be frozen (eval mode, no grad on its
    weights); gradients still flow through it into ``fake``.
    """
    logits = classifier(fake)
    return F.cross_entropy(logits.float(), species_ids)


def mode_seeking_loss(
    fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor
) -> torch.Tensor:
    """Mode-seeking term (Mao et al., CVPR 2019): small when two noises give different images.

    A conditional generator pushed hard towards being recognised (the species
    terms) tends to draw one image per species whatever the noise; this term
    is ``1 / (mean|G(z_a) - G(z_b)| / mean|z_a - z_b|)`` for pairs asking for
    the same species, so collapsing the pairs onto one image costs G.
    """
    images = (fake_a.float() - fake_b.float()).abs().flatten(1).mean(1)
    noises = (z_a.float() - z_b.float()).abs().flatten(1).mean(1)
    return 1.0 / ((images / noises).mean() + 1e-5)
