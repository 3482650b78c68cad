"""Pixels and detections of one synthetic camera-trap frame (``demo_camera_traps``).

A camera trap does not move: each location has one fixed scene, drawn once.
A sequence fixes its animals (shape from the species, pattern and colour drawn
like every other species'), their start and their walk; a frame adds the step,
the sensor grain and, at night, the infrared look (one grey channel with a
faint tint, as ``greyscale.is_greyscale`` expects of real IR frames).

The "detector" reports the true visible box of what was drawn, in MegaDetector's
format (normalised ``[x, y, w, h]``, category ``"1"``/``"2"``/``"3"``), with a
confidence that says how hard the frame is, plus a few near-zero boxes of
noise as real batch output has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from speciesgan.data import demo
from speciesgan.data.greyscale import median_channel_spread

ANIMAL, PERSON, VEHICLE = "1", "2", "3"
DETECTION_CATEGORIES = {ANIMAL: "animal", PERSON: "person", VEHICLE: "vehicle"}
MIN_ANIMAL = 44  # px: the smallest animal square (its outline spans ~42 px)
MIN_SCENE_SPREAD = 16.0  # a daytime scene must never pass for an infrared frame
EDGE_FRACTION = 0.3  # single animals cut by the left or right edge

Box = tuple[int, ...]  # x0, y0, x1, y1 (x1/y1 exclusive); () when nothing is visible


@dataclass(frozen=True)
class Walker:
    """One animal of a sequence: its drawing, where it starts and how it moves per frame."""

    texture: Image.Image
    mask: Image.Image
    x: int
    y: int
    dx: int
    dy: int


def scene(location: int, width: int, height: int, seed: int, code: int) -> Image.Image:
    """The fixed background of one camera (colourful enough never to look infrared)."""
    rng = np.random.default_rng([seed, code, 1, location])
    for _ in range(50):
        photo = demo._background(width, height, rng)
        demo._add_patterned_clutter(photo, rng)
        if median_channel_spread(photo) >= MIN_SCENE_SPREAD:
            return photo
    return photo  # pragma: no cover - 50 dull draws in a row do not happen


def walkers(
    design: demo.SpeciesDesign, animals: int, width: int, height: int, rng: np.random.Generator
) -> list[Walker]:
    """The animals of one sequence, each in its own share of the frame's width.

    A lone animal is cut by a side edge in ``EDGE_FRACTION`` of sequences (up to
    a quarter of it outside), as animals entering or leaving the field of view are.
    """
    result = []
    part = width // animals
    for k in range(animals):
        size = max(MIN_ANIMAL, int(height * rng.uniform(0.3, 0.55)))
        size = min(size, height, max(MIN_ANIMAL, part))
        texture, mask = demo._animal(design, size, rng)
        if animals == 1 and rng.uniform() < EDGE_FRACTION:
            cut = int(size * rng.uniform(0.1, 0.25))
            x = -cut if rng.uniform() < 0.5 else width - size + cut
        else:
            x = int(rng.integers(k * part, max(k * part + 1, (k + 1) * part - size + 1)))
        y = int(rng.integers(int(height * 0.25), max(int(height * 0.25) + 1, height - size + 1)))
        dx = int(rng.integers(2, 6)) * (1 if rng.uniform() < 0.5 else -1)
        result.append(Walker(texture, mask, x, y, dx, int(rng.integers(-1, 2))))
    return result


def _paste(photo: Image.Image, texture: Image.Image, mask: Image.Image, x: int, y: int) -> Box:
    """Paste and return the visible box (x0, y0, x1, y1), or () when nothing shows."""
    canvas = Image.new("L", photo.size, 0)
    canvas.paste(mask, (x, y))
    photo.paste(texture, (x, y), mask)
    return canvas.getbbox() or ()


def _figure_mask(width: int, height: int, vehicle: bool) -> Image.Image:
    """A person (head, body, legs) or a vehicle (body, cabin, wheels) in a box of that size."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    w, h = width - 1, height - 1
    if vehicle:
        draw.rectangle((0, 0.45 * h, w, 0.85 * h), fill=255)
        draw.polygon([(0.2 * w, 0.45 * h), (0.3 * w, 0), (0.75 * w, 0), (0.85 * w, 0.45 * h)], 255)
        for cx in (0.2 * w, 0.8 * w):
            draw.ellipse((cx - 0.12 * w, 0.7 * h, cx + 0.12 * w, h), fill=255)
    else:
        draw.ellipse((0.3 * w, 0, 0.7 * w, 0.16 * h), fill=255)
        draw.rectangle((0.15 * w, 0.17 * h, 0.85 * w, 0.55 * h), fill=255)
        draw.rectangle((0.2 * w, 0.55 * h, 0.45 * w, h), fill=255)
        draw.rectangle((0.55 * w, 0.55 * h, 0.8 * w, h), fill=255)
    return mask


def _figure(photo: Image.Image, vehicle: bool, rng: np.random.Generator) -> Box:
    width, height = photo.size
    if vehicle:
        fw = int(width * rng.uniform(0.45, 0.7))
        fh = int(fw * 0.45)
    else:
        fh = int(height * rng.uniform(0.45, 0.75))
        fw = max(8, int(fh * 0.35))
    x = int(rng.integers(-fw // 5, width - 4 * fw // 5))
    y = int(rng.integers(max(0, height - fh - height // 5), max(1, height - fh + fh // 10)))
    colour = demo._colour(rng.uniform(), rng.uniform(0.1, 0.6), rng.uniform(0.15, 0.7))
    clothing = Image.new("RGB", (fw, fh), tuple(int(c) for c in colour))
    return _paste(photo, clothing, _figure_mask(fw, fh, vehicle), x, y)


def _relative(box: Box, width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0 / width, 4), round(y0 / height, 4)] + [
        round((x1 - x0) / width, 4),
        round((y1 - y0) / height, 4),
    ]


def _detection(category: str, conf: float, box: Box, width: int, height: int) -> dict[str, Any]:
    return {"category": category, "conf": round(conf, 3), "bbox": _relative(box, width, height)}


def _noise(rng: np.random.Generator) -> list[dict[str, Any]]:
    """0-2 near-zero animal boxes: the clutter a real detector also reports."""
    found = []
    for _ in range(int(rng.integers(0, 3))):
        x, y = (round(float(v), 4) for v in rng.uniform(0, 0.8, 2))
        w, h = (round(float(v), 4) for v in rng.uniform(0.05, 0.2, 2))
        found.append({"category": ANIMAL, "conf": round(float(rng.uniform(0.01, 0.12)), 3),
                      "bbox": [x, y, w, h]})  # fmt: skip
    return found


def render(
    background: Image.Image,
    kind: str,
    group: list[Walker],
    step: int,
    night: bool,
    look: Look,
    rng: np.random.Generator,
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One frame of ``kind`` and its detections (``rng``: this frame's own stream)."""
    photo = ImageEnhance.Brightness(background).enhance(look.light)
    width, height = photo.size
    found: list[dict[str, Any]] = []
    if kind == "animal":
        for walker in group:
            x, y = walker.x + walker.dx * step, walker.y + walker.dy * step
            box = _paste(photo, walker.texture, walker.mask, x, y)
            if box:
                conf = float(rng.uniform(0.85, 0.99))
                found.append(_detection(ANIMAL, conf, box, width, height))
    elif kind == "weak":  # far away: half size, a weak detection
        walker = group[0]
        half = (max(1, walker.mask.width // 2),) * 2
        texture, mask = walker.texture.resize(half), walker.mask.resize(half)
        x = int(rng.integers(0, max(1, width - half[0])))
        box = _paste(photo, texture, mask, x, walker.y)
        if box:
            found.append(_detection(ANIMAL, float(rng.uniform(0.3, 0.7)), box, width, height))
    elif kind in ("person", "vehicle"):
        box = _figure(photo, kind == "vehicle", rng)
        category = VEHICLE if kind == "vehicle" else PERSON
        found.append(_detection(category, float(rng.uniform(0.85, 0.98)), box, width, height))
    if found:
        found += _noise(rng)
    if night:
        photo = infrared(photo, look.tint)
    return grain(photo, rng), found


def infrared(photo: Image.Image, tint: tuple[int, int, int]) -> Image.Image:
    """A night frame: one grey channel, brighter in the flash's centre, faintly tinted."""
    grey = np.asarray(photo.convert("L"), dtype=np.float32)
    height, width = grey.shape
    y, x = np.ogrid[0:height, 0:width]
    falloff = np.hypot((x - width / 2) / width, (y - height / 2) / height)
    grey = grey * (1.15 - 0.6 * falloff) + 10
    pixels = np.clip(grey[..., None] + np.array(tint, dtype=np.float32), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


GRAIN = 5  # levels: half demo._add_grain's, so the frames of a burst stay near-identical


def grain(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Sensor noise, the same in every channel (an infrared frame stays grey)."""
    pixels = np.asarray(photo, dtype=np.int16)
    pixels = pixels + rng.integers(-GRAIN, GRAIN + 1, size=pixels.shape[:2] + (1,), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class Look:
    """What a sequence shares besides its animals: light (weather, hour) and the IR tint."""

    light: float
    tint: tuple[int, int, int]


def sequence_look(rng: np.random.Generator) -> Look:
    """One sequence's look: brightness 0.75-1.15 of its camera's scene, a tint of 0-4 levels."""
    light = float(math.exp(rng.uniform(math.log(0.75), math.log(1.15))))
    return Look(light, (int(rng.integers(0, 5)), 0, int(rng.integers(0, 5))))
