"""Crop geometry: the square holds the whole box and stays inside the photo when it can."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from speciesgan.data.crop import clip_box, crop_region, crop_to_box, square_crop_box


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[int, int, tuple[int, int, int, int]]:
    """An image size and a box that may stick out of it but overlaps it."""
    w = draw(st.integers(1, 2000))
    h = draw(st.integers(1, 2000))
    x0 = draw(st.integers(-50, w - 1))
    y0 = draw(st.integers(-50, h - 1))
    x1 = draw(st.integers(max(x0 + 1, 1), w + 50))
    y1 = draw(st.integers(max(y0 + 1, 1), h + 50))
    return w, h, (x0, y0, x1, y1)


@given(image_and_box())
def test_square_contains_clipped_box_and_stays_inside_when_possible(case) -> None:
    w, h, box = case
    clipped = clip_box(box, w, h)
    assert clipped is not None
    bx0, by0, bx1, by1 = clipped
    x0, y0, size = square_crop_box(box, w, h)
    assert all(isinstance(v, int) for v in (x0, y0, size))
    assert size == max(bx1 - bx0, by1 - by0)  # smallest square holding the box
    assert x0 <= bx0 and x0 + size >= bx1
    assert y0 <= by0 and y0 + size >= by1
    if size <= min(w, h):
        assert x0 >= 0 and x0 + size <= w
        assert y0 >= 0 and y0 + size <= h
    # An axis the square cannot fit in is covered completely (no wasted pixels).
    if size > w:
        assert x0 <= 0 and x0 + size >= w
    if size > h:
        assert y0 <= 0 and y0 + size >= h


def test_square_is_centred_on_the_box_when_it_fits() -> None:
    # 40 wide, 20 tall box in the middle of a large image: extend 10 up and down.
    assert square_crop_box((100, 100, 140, 120), 500, 400) == (100, 90, 40)
    # Odd difference: the centre rounds down, deterministically.
    assert square_crop_box((100, 100, 141, 120), 500, 400) == (100, 89, 41)


def test_square_is_shifted_inside_at_the_border() -> None:
    # Box at the top-left corner: centring would go negative, so shift to 0.
    assert square_crop_box((0, 0, 10, 50), 300, 200) == (0, 0, 50)
    # Box at the bottom-right corner.
    assert square_crop_box((290, 150, 300, 200), 300, 200) == (250, 150, 50)


def test_square_extends_past_border_when_box_exceeds_short_side() -> None:
    # Full-width box in a landscape photo: square of side 300 over a 200-tall image.
    assert square_crop_box((0, 0, 300, 200), 300, 200) == (0, -50, 300)


def test_clip_box_rejects_empty_inverted_and_outside_boxes() -> None:
    assert clip_box((-5, -5, 20, 30), 10, 10) == (0, 0, 10, 10)
    assert clip_box((5, 5, 5, 9), 10, 10) is None
    assert clip_box((8, 5, 3, 9), 10, 10) is None
    assert clip_box((20, 20, 30, 30), 10, 10) is None
    with pytest.raises(ValueError):
        square_crop_box((20, 20, 30, 30), 10, 10)


def test_crop_is_square_uint8_and_shows_the_box() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    image.paste((255, 255, 255), (120, 20, 180, 80))  # white 60x60 square
    crop = crop_to_box(image, (120, 20, 180, 80), 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert crop[4:-4, 4:-4].min() >= 250  # the box fills the crop


@pytest.mark.parametrize(
    ("pad_mode", "expected_top_row"),
    [("edge", 255), ("constant", 0), ("reflect", 0)],
)
def test_padding_modes(pad_mode: str, expected_top_row: int) -> None:
    # 40 wide, 20 tall: a full-image box needs 10 px of padding above and below.
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[0] = 255  # white first row; reflect mirrors the rows below it (black)
    crop = crop_to_box(Image.fromarray(pixels), (0, 0, 40, 20), 40, pad_mode=pad_mode)
    assert crop.shape == (40, 40, 3)
    assert int(crop[0, 20, 0]) == expected_top_row
    assert crop[15:25, :, 0].mean() < 10  # the original black rows stay black


def test_fractional_region_matches_whole_pixel_crop() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    whole = crop_region(image, (8, 8, 40, 40), 16)
    fractional = crop_region(image, (8.0, 8.0, 40.0, 40.0), 16)
    np.testing.assert_array_equal(whole, fractional)
    with pytest.raises(ValueError, match="pad_mode"):
        crop_region(image, (0, 0, 8, 8), 4, pad_mode="wrap")
