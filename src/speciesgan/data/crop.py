"""Square crop geometry and the one image operation that applies it.

The GAN and the classifier want square images with the animal filling most of
the frame.  The crop is therefore the smallest square that holds the whole
bounding box, centred on it, moved inside the photo when it fits.  A box whose
long side exceeds the photo's short side cannot fit in any square inside the
photo; the square then covers the whole short side and the rest is padding.

Boxes are ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, in the
coordinates of the photo *as displayed* (after its EXIF orientation).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from speciesgan.util.schema_defaults import schema_defaults

Box = tuple[int, int, int, int]
Square = tuple[int, int, int]
"""(x0, y0, size): top-left corner and side of a square, in source pixels."""
Region = tuple[float, float, float, float]
"""(x0, y0, x1, y1) with fractional coordinates, used after a reduced-scale decode."""

PAD_MODES = ("edge", "reflect", "constant")

RESAMPLE_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}
"""Antialiased resampling filters (Pillow widens the kernel when shrinking).

LANCZOS is what stylegan2-ada's dataset tool uses and the sharpest; BILINEAR is
the filter of torchvision's ``Resize(antialias=True)`` and about 2.5x cheaper
in Pillow, which matters once a collection reaches camera-trap scale.
"""

# Pillow first shrinks by an integer factor (cheap box filter) while the image is
# more than this many times the target, then finishes with the chosen filter:
# close to a pure-filter result at a fraction of the cost on large photos.
REDUCING_GAP = 3.0


def clip_box(box: Box, w: int, h: int) -> Box | None:
    """``box`` clipped to a ``w`` x ``h`` image, or None when nothing of it is left.

    Annotations sometimes run a pixel past the border or are inverted/empty;
    clipping first means the crop never depends on pixels the box claims but the
    photo does not have.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(int(w), x1), min(int(h), y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _place(start: int, size: int, extent: int) -> int:
    """Shift a square's start on one axis so that it wastes as little as possible.

    When the square fits (``size <= extent``) it is moved inside ``[0, extent)``;
    when it does not, it is moved to cover the whole axis, so padding is only
    added where the photo has no pixels left to offer.  Either way a square that
    contained the (in-image) box still contains it.
    """
    low, high = min(0, extent - size), max(0, extent - size)
    return min(max(start, low), high)


def square_crop_box(box: Box, image_w: int, image_h: int) -> Square:
    """The square ``(x0, y0, size)`` to crop for ``box`` in an ``image_w`` x ``image_h`` photo.

    The box is clipped to the image first.  ``size`` is the box's long side; the
    square is centred on the box (rounding the centre down on odd differences,
    so the result is deterministic) and then shifted inside the image per axis
    where it fits.  Raises ValueError for a box with nothing inside the image:
    callers reject such boxes before they get here.
    """
    clipped = clip_box(box, image_w, image_h)
    if clipped is None:
        raise ValueError(f"box {box} has no area inside a {image_w}x{image_h} image")
    x0, y0, x1, y1 = clipped
    size = max(x1 - x0, y1 - y0)
    # (x0 + x1 - size) // 2 keeps the square around the box on both sides: with
    # size == width the difference is even and the start is exactly x0.
    sx = _place((x0 + x1 - size) // 2, size, image_w)
    sy = _place((y0 + y1 - size) // 2, size, image_h)
    return sx, sy, size


def crop_region(
    image: Image.Image,
    region: Region,
    size: int,
    pad_mode: str | None = None,
    resample: str | None = None,
) -> np.ndarray:
    """Resample the (possibly fractional) ``region`` of an RGB image to ``size`` x ``size``.

    Parts of the region outside the image are padded first (``edge`` repeats the
    border, ``reflect`` mirrors it, ``constant`` is black).  Fractional regions
    arise when the photo was decoded at reduced scale; Pillow's ``resize(box=...)``
    samples them exactly instead of rounding to whole pixels.  ``pad_mode`` and
    ``resample`` left out (None) are the schema's ``preprocess`` defaults.
    """
    if pad_mode is None or resample is None:
        defaults = schema_defaults("preprocess")
        pad_mode = defaults["pad_mode"] if pad_mode is None else pad_mode
        resample = defaults["resample"] if resample is None else resample
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, not {pad_mode!r}")
    if resample not in RESAMPLE_FILTERS:
        raise ValueError(f"resample must be one of {tuple(RESAMPLE_FILTERS)}, not {resample!r}")
    if image.mode != "RGB":
        raise ValueError(f"crop_region needs an RGB image, got mode {image.mode}")
    w, h = image.size
    x0, y0, x1, y1 = region
    left, top = max(0, math.ceil(-x0)), max(0, math.ceil(-y0))
    right, bottom = max(0, math.ceil(x1 - w)), max(0, math.ceil(y1 - h))
    if left or top or right or bottom:
        pixels = np.asarray(image)
        widths = ((top, bottom), (left, right), (0, 0))
        padded = (
            np.pad(pixels, widths, mode="constant", constant_values=0)
            if pad_mode == "constant"
            else np.pad(pixels, widths, mode=pad_mode)
        )
        image = Image.fromarray(padded)
        x0, x1, y0, y1 = x0 + left, x1 + left, y0 + top, y1 + top
        w, h = image.size
    # Float rounding must not push the box a hair past the edge (Pillow refuses).
    box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
    resized = image.resize(
        (size, size), RESAMPLE_FILTERS[resample], box=box, reducing_gap=REDUCING_GAP
    )
    return np.asarray(resized, dtype=np.uint8)


def crop_to_box(image: Image.Image, box: Box, size: int, pad_mode: str | None = None) -> np.ndarray:
    """uint8 ``[size, size, 3]``: the square crop around ``box``, resized with antialiasing
    (``pad_mode`` None: the schema's ``preprocess`` default)."""
    sx, sy, side = square_crop_box(box, *image.size)
    return crop_region(image, (sx, sy, sx + side, sy + side), size, pad_mode)
