"""Pillow's bicubic resize in torch: byte-identical to Pillow, as dgm-eval's DINOv2 input needs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from speciesgan.metrics.pil_resize import pil_bicubic_resize


def _pillow(images: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """What torchvision's Resize(size, BICUBIC) gives for PIL images: Image.resize."""
    height, width = size
    return np.stack(
        [
            np.asarray(
                Image.fromarray(image.permute(1, 2, 0).numpy()).resize(
                    (width, height), Image.Resampling.BICUBIC
                )
            ).transpose(2, 0, 1)
            for image in images
        ]
    )


def _test_images(shape: tuple[int, int], seed: int) -> torch.Tensor:
    """Noise (maximal overshoot, clipped between Pillow's passes) and smooth photos-like images."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (3, 3, *shape), dtype=torch.uint8, generator=generator)
    coarse = torch.rand(3, 3, 6, 6, generator=generator) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=shape, mode="bilinear")
    return torch.cat([noise, smooth.round().clamp(0, 255).to(torch.uint8)])


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [
        ((128, 128), (224, 224)),  # this project's crops into DINOv2
        ((100, 150), (224, 224)),
        ((37, 61), (224, 100)),
        ((224, 224), (224, 224)),
        ((300, 64), (224, 64)),  # one axis shrinking (Pillow's antialiasing kernel)
        ((64, 300), (64, 150)),
    ],
)
def test_resize_equals_pillow_byte_for_byte(
    in_size: tuple[int, int], out_size: tuple[int, int]
) -> None:
    images = _test_images(in_size, seed=sum(in_size) + sum(out_size))
    resized = pil_bicubic_resize(images, out_size)
    assert resized.dtype == torch.uint8 and tuple(resized.shape) == (6, 3, *out_size)
    np.testing.assert_array_equal(resized.numpy(), _pillow(images, out_size))


def test_resize_rejects_float_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        pil_bicubic_resize(torch.zeros(1, 3, 8, 8), (16, 16))
