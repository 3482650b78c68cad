"""Is a photo greyscale?  Camera traps' infrared night frames are.

At night a camera trap lights the scene with infrared and stores a
monochrome picture in an RGB JPEG: the three channels are equal up to JPEG
rounding (a few levels), or nearly so with a faint tint on some models.  A GAN
trained on a mix learns both looks per species, so the manifest flags these
frames and ``preprocess.greyscale`` may drop them.

The test runs on a small box-filtered copy of the whole frame (not the crop: a
grey animal on grey rock is still a colour photo) and looks at the median
pixel's channel spread (max - min of R, G, B): a coloured logo or timestamp
strip on an infrared frame does not move the median, while a daylight photo's
median pixel has tens of levels of spread.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMBNAIL_SIDE = 64
"""The short side the frame is reduced to (box filter) before the test."""
MAX_MEDIAN_SPREAD = 8
"""Median channel spread (0..255 levels) up to which a frame counts as greyscale:
JPEG chroma rounding and the tint of infrared cameras stay below it; daylight
scenes, even overcast or at dusk, are well above it."""


def median_channel_spread(image: Image.Image) -> float:
    """The median over pixels of max(R, G, B) - min(R, G, B), on a reduced copy."""
    if image.mode != "RGB":
        raise ValueError(f"median_channel_spread needs an RGB image, got mode {image.mode}")
    factor = max(1, min(image.size) // THUMBNAIL_SIDE)
    small = image.reduce(factor) if factor > 1 else image
    pixels = np.asarray(small, dtype=np.int16)
    return float(np.median(pixels.max(axis=2) - pixels.min(axis=2)))


def is_greyscale(image: Image.Image) -> bool:
    """True for a frame whose channels are (nearly) equal: monochrome or infrared."""
    return median_channel_spread(image) <= MAX_MEDIAN_SPREAD
