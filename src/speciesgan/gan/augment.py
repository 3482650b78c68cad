"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for small datasets.

With a few hundred photos per species the discriminator memorises the real set
and training collapses.  DiffAugment applies the same kinds of random,
differentiable transforms to real *and* generated images right before D, so D
never sees the un-augmented reals and G still gets gradients through the
transforms.  Every random draw comes from an explicit ``torch.Generator`` on the
images' device, whose state is checkpointed, so a resumed run augments exactly
like an uninterrupted one.  Under data parallelism each rank passes its
``BatchSlice``: the parameters are drawn for the whole global batch and each
rank applies its own rows, so ranks do not repeat each other's augmentations.

Policy: comma-separated names from ``color``, ``translation``, ``cutout``
(applied in that order); ``""`` switches augmentation off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speciesgan.gan.batch_slice import BatchSlice
from speciesgan.util.errors import SpeciesganError

TRANSLATION_RATIO = 0.125
"""Largest shift, as a fraction of the image size (the paper's value)."""
CUTOUT_RATIO = 0.5
"""Side of the erased square, as a fraction of the image size (the paper's value)."""


def parse_policy(policy: str) -> tuple[str, ...]:
    """Validated op names in application order."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = sorted(set(names) - set(OPS))
    if unknown:
        raise SpeciesganError(
            f"gan.diffaugment: unknown augmentation {', '.join(unknown)} (known: {', '.join(OPS)})"
        )
    return tuple(name for name in OPS if name in names)


def _uniform(x: torch.Tensor, generator: torch.Generator, rows: BatchSlice) -> torch.Tensor:
    """One U(0, 1) per image, shaped to broadcast over C, H, W."""
    return rows.rand(generator, x.device).to(x.dtype)[:, None, None, None]


def color(x: torch.Tensor, generator: torch.Generator, rows: BatchSlice) -> torch.Tensor:
    """Random brightness, saturation and contrast, per image."""
    x = x + (_uniform(x, generator, rows) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator, rows) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator, rows) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator, rows: BatchSlice) -> torch.Tensor:
    """Shift each image by up to 1/8 of its size in x and y, filling with zeros."""
    batch, _, height, width = x.shape
    shift = max(1, int(height * TRANSLATION_RATIO + 0.5))
    offsets = rows.randint(-shift, shift + 1, generator, x.device, count=2)  # [2, B]: dy, dx
    padded = F.pad(x, [shift, shift, shift, shift])
    rows = torch.arange(height, device=x.device)[None, :] + shift + offsets[0][:, None]  # [B, H]
    cols = torch.arange(width, device=x.device)[None, :] + shift + offsets[1][:, None]  # [B, W]
    index = torch.arange(batch, device=x.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return shifted.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator: torch.Generator, rows: BatchSlice) -> torch.Tensor:
    """Zero a random square of half the image size in each image (it may stick out)."""
    _, _, height, width = x.shape
    size_y = int(height * CUTOUT_RATIO + 0.5)
    size_x = int(width * CUTOUT_RATIO + 0.5)
    (centre_y,) = rows.randint(0, height + (1 - size_y % 2), generator, x.device)
    (centre_x,) = rows.randint(0, width + (1 - size_x % 2), generator, x.device)
    top = centre_y - size_y // 2
    left = centre_x - size_x // 2
    ys = torch.arange(height, device=x.device)[None, :]
    xs = torch.arange(width, device=x.device)[None, :]
    inside_y = (ys >= top[:, None]) & (ys < top[:, None] + size_y)
    inside_x = (xs >= left[:, None]) & (xs < left[:, None] + size_x)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return x * keep[:, None].to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(
    x: torch.Tensor,
    policy: str | tuple[str, ...],
    generator: torch.Generator,
    rows: BatchSlice | None = None,
) -> torch.Tensor:
    """Apply the policy's transforms to a batch in [-1, 1] (roughly; colour may leave it).

    ``rows`` says which rows of the global batch ``x`` is (default: all of it).
    """
    names = parse_policy(policy) if isinstance(policy, str) else policy
    rows = BatchSlice(x.shape[0]) if rows is None else rows
    rows.check(x)
    for name in names:
        x = OPS[name](x, generator, rows)
    return x
