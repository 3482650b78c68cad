"""A second shape-only photo collection: font glyphs on shared random textures.

Why it exists: the built-in demo (``speciesgan.data.demo``) draws its own
polygon/ellipse silhouettes, and the GAN recipe in configs/demo.yaml was tuned on
them.  This collection is drawn a different way -- ten "species" that are the
outlines of TrueType glyphs -- so that a recipe that only works on the demo's
drawing shows it.  As in the demo, only the outline tells species apart: fill and
background textures (flat, stripes, checks, smooth noise, gradient; colours drawn
in HSV), scale, rotation, position, clutter and the outline stroke all come from
one distribution shared by every species.

The output is an ``image_folders`` source (``<out>/<Species_name>/*.jpg``, no
split folders: the index stage draws the test split, see
benchmarks/glyphs.yaml)::

    python benchmarks/glyph_species.py --out data/glyphs
    snakemake results/glyphs/data/manifest.parquet --cores 1 \\
        --configfile configs/demo.yaml benchmarks/glyphs.yaml

Every photo is a pure function of (seed, species, photo number).
"""

from __future__ import annotations

import argparse
import colorsys
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# (glyph, species folder name).  Outlines that differ clearly, with overlapping
# ink areas once the random scale (40-80% of the photo) is applied.
SPECIES: tuple[tuple[str, str], ...] = (
    ("A", "Apex_beetle"),
    ("K", "Kite_newt"),
    ("M", "Mantle_crab"),
    ("Q", "Quill_snail"),
    ("S", "Serpent_eel"),
    ("W", "Wader_gull"),
    ("&", "Ampersand_toad"),
    ("%", "Percent_owl"),
    ("#", "Lattice_frog"),
    ("@", "Spiral_ammonite"),
)
FONT_FILE = "DejaVuSans-Bold.ttf"
MARKER = ".glyph_species.json"  # hidden: the image_folders reader ignores it
TEMPLATE_PX = 480  # font size of the high-resolution glyph masks

Texture = Callable[[np.random.Generator, int], np.ndarray]


# ------------------------------------------------------------------ font
def find_font(explicit: Path | None) -> Path:
    """``--font``, else DejaVu Sans Bold from fontconfig, the system or matplotlib."""
    if explicit is not None:
        if not explicit.is_file():
            sys.exit(f"glyph_species: --font {explicit}: no such file")
        return explicit
    candidates: list[Path] = [Path("/usr/share/fonts/truetype/dejavu") / FONT_FILE]
    try:
        listing = subprocess.run(
            ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, check=False
        ).stdout.split()
    except OSError:
        listing = []
    listing = sorted(p for p in listing if p.lower().endswith(".ttf"))
    candidates += [Path(p) for p in listing if Path(p).name == FONT_FILE]
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONT_FILE)
    except ImportError:
        pass
    # Any other TrueType font: bold sans first, then whatever is there.
    candidates += [Path(p) for p in listing if "sans" in p.lower() and "bold" in p.lower()]
    candidates += [Path(p) for p in listing]
    candidates += sorted(Path("/usr/share/fonts").rglob("*.ttf"))
    for path in candidates:
        if path.is_file():
            return path
    sys.exit(
        "glyph_species: no TrueType font found (looked for DejaVuSans-Bold.ttf in "
        "/usr/share/fonts, fc-list and matplotlib's mpl-data); pass one with --font"
    )


def glyph_masks(font_path: Path) -> list[Image.Image]:
    """One tight high-resolution mask (mode L) per species glyph."""
    font = ImageFont.truetype(str(font_path), TEMPLATE_PX)
    masks = []
    for glyph, name in SPECIES:
        canvas = Image.new("L", (2 * TEMPLATE_PX, 2 * TEMPLATE_PX), 0)
        ImageDraw.Draw(canvas).text(
            (TEMPLATE_PX, TEMPLATE_PX), glyph, font=font, fill=255, anchor="mm"
        )
        box = canvas.getbbox()
        if box is None:
            sys.exit(f"glyph_species: {font_path} draws nothing for {glyph!r} ({name})")
        masks.append(canvas.crop(box))
    arrays = [np.asarray(m.resize((64, 64))) for m in masks]
    for i in range(len(arrays)):
        for j in range(i):
            if np.abs(arrays[i].astype(int) - arrays[j]).mean() < 8:
                sys.exit(
                    f"glyph_species: {font_path} draws {SPECIES[i][0]!r} and "
                    f"{SPECIES[j][0]!r} alike (missing glyphs?); pass another --font"
                )
    return masks


# -------------------------------------------------------------- textures
def random_colour(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.12, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255


def _coords(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pixel coordinates projected on a random direction."""
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x * np.cos(angle) + y * np.sin(angle)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a * (1 - t[..., None]) + b * t[..., None]


def flat(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.broadcast_to(random_colour(rng), (size, size, 3)).copy()


def stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    period = rng.uniform(5, 40)
    phase = np.sin(2 * np.pi * _coords(rng, size) / period + rng.uniform(0, 2 * np.pi))
    t = (phase > 0).astype(np.float32) if rng.random() < 0.6 else (phase + 1) / 2
    return _mix(random_colour(rng), random_colour(rng), t)


def checks(rng: np.random.Generator, size: int) -> np.ndarray:
    cell = rng.uniform(6, 40)
    u = _coords(rng, size)
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    v = -x * np.sin(angle) + y * np.cos(angle)
    t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    return _mix(random_colour(rng), random_colour(rng), t)


def noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise: a coarse random field upsampled, plus fine grain."""
    coarse = int(rng.integers(3, 17))
    field = rng.random((coarse, coarse), dtype=np.float32)
    t = np.asarray(
        Image.fromarray((field * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
        dtype=np.float32,
    )
    out = _mix(random_colour(rng), random_colour(rng), t / 255)
    return out + rng.normal(0, rng.uniform(0, 18), (size, size, 3)).astype(np.float32)


def gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    u = _coords(rng, size)
    t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    return _mix(random_colour(rng), random_colour(rng), t)


TEXTURES: tuple[Texture, ...] = (flat, stripes, checks, noise, gradient)


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A texture from the distribution every species' fill and background share."""
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    return np.clip(kind(rng, size), 0, 255)


# ----------------------------------------------------------------- photo
def background(rng: np.random.Generator, size: int) -> Image.Image:
    """A random texture with a few random rectangles, ellipses and lines on it."""
    image = Image.fromarray(texture(rng, size).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 8))):
        colour = tuple(int(c) for c in random_colour(rng))
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * size
        w, h = rng.uniform(0.04, 0.4, 2) * size
        box = [x0, y0, x0 + w, y0 + h]
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle(box, fill=colour)
        elif kind == 1:
            draw.ellipse(box, fill=colour)
        else:
            ends = (rng.uniform(0, 1, 4) * size).tolist()
            draw.line(ends, fill=colour, width=int(rng.integers(1, 7)))
    return image


def place_glyph(rng: np.random.Generator, template: Image.Image, size: int) -> Image.Image:
    """The glyph mask scaled to 40-80% of the photo, rotated by up to 30 degrees and
    placed at a random position fully inside a ``size`` square (mode L)."""
    rotated = template.rotate(rng.uniform(-30, 30), resample=Image.BICUBIC, expand=True)
    rotated = rotated.crop(rotated.getbbox())
    factor = rng.uniform(0.4, 0.8) * size / max(template.size)
    # Rotation can make the box larger than the photo: shrink to fit with a margin.
    factor = min(factor, (size - 4) / max(rotated.size))
    w = max(1, round(rotated.width * factor))
    h = max(1, round(rotated.height * factor))
    glyph = rotated.resize((w, h), Image.LANCZOS)
    x = int(rng.integers(0, size - w + 1))
    y = int(rng.integers(0, size - h + 1))
    mask = Image.new("L", (size, size), 0)
    mask.paste(glyph, (x, y))
    return mask


def photo(rng: np.random.Generator, template: Image.Image, size: int) -> Image.Image:
    back = background(rng, size)
    mask = place_glyph(rng, template, size)
    alpha = np.asarray(mask, dtype=np.float32) / 255
    inside = alpha > 0.5
    back_arr = np.asarray(back, dtype=np.float32)
    # Redraw a fill that would vanish into the background (same rule for all species).
    fill = texture(rng, size)
    for _ in range(8):
        gap = np.linalg.norm(fill[inside].mean(0) - back_arr[inside].mean(0))
        if gap >= 60:
            break
        fill = texture(rng, size)
    out = _mix(back_arr, fill, alpha)
    if rng.random() < 0.5:  # thin outline stroke in a random colour
        width = int(rng.choice([3, 5]))
        grown = np.asarray(mask.filter(ImageFilter.MaxFilter(width)), dtype=np.float32) / 255
        ring = np.clip(grown - alpha, 0, 1)
        out = _mix(out, np.broadcast_to(random_colour(rng), out.shape), ring)
    return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8))


# ------------------------------------------------------------------ main
def write_dataset(out: Path, per_species: int, size: int, seed: int, font: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        sys.exit(f"glyph_species: {out} is not empty and was not written by this script")
    masks = glyph_masks(font)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for index, ((glyph, folder), template) in enumerate(zip(SPECIES, masks, strict=True)):
        target = staging / folder
        target.mkdir(parents=True)
        for number in range(per_species):
            rng = np.random.default_rng([seed, index, number])
            image = photo(rng, template, size)
            image.save(target / f"{folder.lower()}_{number:04d}.jpg", quality=90)
        print(f"{folder} ({glyph!r}): {per_species} photos", flush=True)
    settings = {
        "seed": seed,
        "per_species": per_species,
        "size": size,
        "font": str(font),
        "species": {folder: glyph for glyph, folder in SPECIES},
    }
    (staging / MARKER).write_text(json.dumps(settings, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    print(f"wrote {per_species * len(SPECIES)} photos to {out} (font {font})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/glyphs"))
    parser.add_argument("--per-species", type=int, default=160)
    parser.add_argument("--size", type=int, default=256, help="photo side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--font", type=Path, default=None, help="a .ttf (default: DejaVu Sans Bold)"
    )
    args = parser.parse_args()
    if args.per_species < 1 or args.size < 32 or args.seed < 0:
        parser.error("need --per-species >= 1, --size >= 32 and --seed >= 0")
    write_dataset(args.out, args.per_species, args.size, args.seed, find_font(args.font))


if __name__ == "__main__":
    main()
