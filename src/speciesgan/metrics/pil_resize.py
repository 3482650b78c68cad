"""Pillow's 8-bit bicubic resize, reproduced in torch on whole batches.

dgm-eval (Stein et al. 2023), whose FD-DINOv2 numbers this project reports
alongside, resizes every image with ``torchvision.transforms.Resize(...,
BICUBIC)`` on a PIL image, i.e. Pillow's ``Image.resize``.  Pillow does not
compute what ``torch.nn.functional.interpolate`` does: its cubic kernel has
``a = -0.5`` (torch's plain bicubic uses -0.75), its weights are rounded to
22-bit fixed point, and it resizes rows first into a uint8 image (rounded and
clipped) before resizing columns.  Overshoot clipped between the two passes
alone moves pixels of noisy images by up to 25 grey levels.

This module builds Pillow's integer weight matrices and applies them as two
float64 matrix products, in which every sum is an exact integer (well below
2**53), so the output equals Pillow's byte for byte, on any device, and images
held in memory give the same features as the same images saved as PNG and
read by dgm-eval.  The algorithm follows Pillow's ``Resample.c``
(``precompute_coeffs``, ``normalize_coeffs_8bpc``, ``ImagingResampleInner``).

Enlarging (this project's 128 px crops to DINOv2's 224 px) and resizing one
axis only match Pillow 13.0 byte for byte (tests/test_pil_resize.py).  When an
image shrinks along one axis and the other also changes, Pillow 13.0 sometimes
resizes columns first (its source up to 12.x always does rows first, as here),
so the outputs can then differ by a few grey levels.
"""

from __future__ import annotations

from functools import lru_cache

import torch

PRECISION_BITS = 32 - 8 - 2
"""Pillow's fixed-point precision for 8-bit images."""

BICUBIC_A = -0.5
BICUBIC_SUPPORT = 2.0


def _bicubic(x: float) -> float:
    """Keys' cubic convolution kernel with Pillow's ``a = -0.5``."""
    x = abs(x)
    if x < 1.0:
        return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * BICUBIC_A
    return 0.0


def _fixed_point(weight: float) -> int:
    """A normalised weight as Pillow stores it: scaled by 2**22, rounded half away from 0."""
    scaled = weight * (1 << PRECISION_BITS)
    return int(scaled - 0.5) if weight < 0 else int(scaled + 0.5)


@lru_cache(maxsize=16)
def _weight_rows(in_size: int, out_size: int) -> tuple[tuple[int, ...], ...]:
    """Pillow's integer weights resampling ``in_size`` pixels to ``out_size``: [out][in].

    When shrinking, the kernel is stretched by the scale (Pillow's antialiasing);
    near the borders the weights inside the image are renormalised to sum to 1.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filter_scale
    # Pillow multiplies by the reciprocal; dividing could differ in the last bit
    reciprocal = 1.0 / filter_scale
    rows = []
    for out_index in range(out_size):
        center = (out_index + 0.5) * scale
        # C casts truncate toward zero, as int() does
        first = max(int(center - support + 0.5), 0)
        stop = min(int(center + support + 0.5), in_size)
        taps = [_bicubic((i - center + 0.5) * reciprocal) for i in range(first, stop)]
        total = 0.0
        for tap in taps:  # summed in order, not math.fsum: the weights must round as Pillow's do
            total += tap
        row = [0] * in_size
        for offset, tap in enumerate(taps):
            row[first + offset] = _fixed_point(tap / total if total != 0.0 else tap)
        rows.append(tuple(row))
    return tuple(rows)


def _weights(in_size: int, out_size: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(_weight_rows(in_size, out_size), dtype=torch.float64, device=device)


def _to_uint8_range(sums: torch.Tensor) -> torch.Tensor:
    """Pillow's ``clip8``: add half, shift right by the precision, clip to 0..255."""
    return torch.floor((sums + (1 << (PRECISION_BITS - 1))) / (1 << PRECISION_BITS)).clamp_(0, 255)


def pil_bicubic_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 images [B, C, H, W] to ``size`` = (height, width) like Pillow's BICUBIC.

    Returns uint8 [B, C, height, width] on the images' device, equal to
    ``Image.fromarray(...).resize((width, height), Image.BICUBIC)`` per image.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images [B, C, H, W], got {images.dtype} {images.shape}")
    out_height, out_width = size
    in_height, in_width = images.shape[-2:]
    pixels = images.to(torch.float64)
    # rows first, as Pillow does; a pass whose size does not change is skipped there too
    if in_width != out_width:
        pixels = _to_uint8_range(pixels @ _weights(in_width, out_width, images.device).T)
    if in_height != out_height:
        pixels = _to_uint8_range(_weights(in_height, out_height, images.device) @ pixels)
    return pixels.to(torch.uint8)
