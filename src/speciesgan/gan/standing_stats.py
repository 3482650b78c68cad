"""BatchNorm statistics recomputed for the weights a generator actually has.

During training a generator's BatchNorm layers normalise with batch statistics
and keep running averages of them.  Those averages describe the *raw*
generator's activations.  The EMA generator's weights are an average over the
last few hundred steps, so its activations have different statistics; copying
the raw generator's running averages into it (what the training loop does)
normalises with the wrong mean and variance, and sampling in eval mode then
shifts colours and weakens the species conditioning.  BigGAN's remedy,
"standing statistics", is applied here: run the finished generator in
BatchNorm-training mode over many fresh batches and store the plain average of
their statistics.  The result depends only on the weights and the seed, so a
resumed run still writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

STANDING_BATCHES = 16
"""Batches averaged per generator (BigGAN used 16)."""
STANDING_BATCH_SIZE = 64


@torch.no_grad()
def with_standing_statistics(
    generator: nn.Module,
    num_classes: int,
    seed: int,
    batches: int = STANDING_BATCHES,
    batch_size: int = STANDING_BATCH_SIZE,
) -> nn.Module:
    """An eval-mode copy of ``generator`` whose BatchNorm running stats fit its own weights.

    Species are drawn in a balanced cycle so every species' conditional gains
    contribute equally.  Only the BatchNorm layers switch to training mode:
    spectral norm must not run a power iteration (that would change the
    weights), and the statistics are computed in this process alone, even in
    a distributed run (the copy lives on one rank).
    """
    copied = copy.deepcopy(generator).eval()
    device = next(copied.parameters()).device
    norms = [m for m in copied.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return copied
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
        norm.train()
        norm.local_statistics = True
    rng = torch.Generator(device).manual_seed(int(seed))
    cycle = torch.arange(batches * batch_size, device=device) % num_classes
    cycle = cycle[torch.randperm(cycle.numel(), generator=rng, device=device)]
    for species in cycle.split(batch_size):
        z = torch.randn(species.numel(), copied.z_dim, generator=rng, device=device)
        copied(z, species)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
        norm.eval()
        norm.local_statistics = False
    return copied
