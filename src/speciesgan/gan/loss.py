"""Adversarial losses and the frozen-classifier guidance term.

The discriminator returns one unbounded score per image (higher = "real").
Each loss kind (``gan.loss``) is a pair of functions of those scores, an
``AdversarialLoss`` in ``ADVERSARIAL_LOSSES``:

* ``hinge`` (default; SNGAN/BigGAN): D pushes real scores above +1 and fake
  scores below -1; G raises the fake scores.
* ``bce``: the original GAN loss with the non-saturating generator objective,
  written with softplus so large scores do not overflow.
* ``wgan-gp``: Wasserstein critic plus a gradient penalty on random
  interpolations between real and fake images (Gulrajani et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speciesgan.gan.batch_slice import BatchSlice
from speciesgan.util.registry import Registry

GP_WEIGHT = 10.0
"""Gradient penalty weight from the WGAN-GP paper."""


@dataclass(frozen=True)
class AdversarialLoss:
    """One ``gan.loss``: D's and G's objectives (to minimise) from D's float32 scores."""

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    """``(real_scores, fake_scores) -> D's loss``."""
    generator: Callable[[torch.Tensor], torch.Tensor]
    """``fake_scores -> G's adversarial loss``."""
    gradient_penalty: bool = False
    """D's loss also gets ``gradient_penalty`` (the training step adds it)."""


def _hinge_d(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def _bce_d(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def _bce_g(fake_scores: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_scores).mean()


def _wasserstein_d(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return fake_scores.mean() - real_scores.mean()


def _raise_fake_scores(fake_scores: torch.Tensor) -> torch.Tensor:
    """G's loss of hinge and WGAN-GP alike: the negated mean score of its images."""
    return -fake_scores.mean()


ADVERSARIAL_LOSSES: Registry[AdversarialLoss] = Registry("gan.loss")
"""Every ``gan.loss`` (the schema's enum lists the same names; a test keeps them equal)."""
ADVERSARIAL_LOSSES.add("hinge", AdversarialLoss(_hinge_d, _raise_fake_scores))
ADVERSARIAL_LOSSES.add("bce", AdversarialLoss(_bce_d, _bce_g))
ADVERSARIAL_LOSSES.add(
    "wgan-gp", AdversarialLoss(_wasserstein_d, _raise_fake_scores, gradient_penalty=True)
)


def check_loss_kind(kind: str) -> str:
    """``kind`` when it is a ``gan.loss`` of ``ADVERSARIAL_LOSSES``, else a SpeciesganError."""
    ADVERSARIAL_LOSSES.pick(kind)
    return kind


def discriminator_loss(
    kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor
) -> torch.Tensor:
    """D's loss (to minimise) from its scores on real and generated images."""
    return ADVERSARIAL_LOSSES.pick(kind).discriminator(real_scores.float(), fake_scores.float())


def generator_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss (to minimise) from D's scores on generated images."""
    return ADVERSARIAL_LOSSES.pick(kind).generator(fake_scores.float())


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
