"""Synthetic archives in the exact on-disk layouts of Stanford Dogs and CUB-200-2011.

The demo pipeline must exercise the same download -> extract -> source-reader path
as the real datasets, offline, in seconds.  So instead of a toy format, this module
writes ``images.tar``/``annotation.tar``/``lists.tar`` (Stanford Dogs) or
``CUB_200_2011.tgz`` with the real member paths, annotation syntax and id
conventions; only the photos are synthetic.

The synthetic "species" differ only in shape: the outline and the layout of their
parts.  Colours, textures, backgrounds, sizes, positions and orientations are
drawn per photo from one distribution shared by every species, so neither a
classifier nor a GAN can get by on a colour or a texture, as with real species
(a Border collie can be black, brown or merle; what makes it one is its shape).
Each photo is a smooth noisy background with clutter, one (sometimes two)
animals, and the true tight box of what was drawn.

Everything is a pure function of ``seed``: tar members in a fixed order, mtime 0,
owner 0, gzip header without time or name, MAT-file headers without a timestamp.
"""

from __future__ import annotations

import colorsys
import contextlib
import gzip
import io
import logging
import math
import multiprocessing
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageChops, ImageDraw

from speciesgan.util.atomic import atomic_open
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 with x1/y1 exclusive

LAYOUTS = ("stanford_dogs", "cub")

DOG_BREEDS = (
    "Striped_hound", "Marsh_terrier", "Northern_spaniel", "Dune_mastiff",
    "Copper_setter", "Highland_collie", "Lowland_pointer", "Harbor_retriever",
    "Ash_whippet", "Meadow_beagle", "Glacier_husky", "Orchard_poodle",
)  # fmt: skip
BIRD_SPECIES = (
    "Spotted_Warbler", "Ringed_Plover", "Crested_Finch", "Marsh_Tern",
    "Golden_Sparrow", "Dusky_Heron", "Ashy_Flycatcher", "Banded_Kingfisher",
    "Veiled_Tanager", "Pale_Shrike", "Masked_Wren", "Tufted_Lark",
)  # fmt: skip
MAX_SPECIES = len(DOG_BREEDS)

TRAIN_FRACTION = 0.8
TWO_ANIMAL_FRACTION = 0.15  # Stanford Dogs only: photos with two annotated dogs
JPEG_QUALITY = 90

# --------------------------------------------------------------------------- shapes
# A silhouette is a list of (polygon, fill) drawn in order on a mask: fill 255 adds,
# fill 0 cuts a hole.  Coordinates are in a unit frame around the origin.

Polygon = np.ndarray  # float [n, 2]
Silhouette = list[tuple[Polygon, int]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> Polygon:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _poly(*points: tuple[float, float]) -> Polygon:
    return np.asarray(points, dtype=np.float64)


def _mirror(poly: Polygon) -> Polygon:
    return poly * np.array([-1.0, 1.0])


def _eared_body() -> Silhouette:
    ear = _poly((-0.55, -0.2), (-0.4, -0.95), (-0.1, -0.35))
    return [(_ellipse(0, 0.15, 0.8, 0.55), 255), (ear, 255), (_mirror(ear), 255)]


def _star() -> Silhouette:
    angles = np.arange(10) * math.pi / 5 - math.pi / 2
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), 255)]


def _wing_pair() -> Silhouette:
    wing = _poly((0.0, 0.0), (-1.0, -0.8), (-0.75, 0.65))
    return [(wing, 255), (_mirror(wing), 255), (_ellipse(0, 0, 0.12, 0.6), 255)]


def _long_body_with_tail() -> Silhouette:
    tail = _poly((0.3, -0.06), (1.0, -0.4), (1.0, -0.22), (0.3, 0.12))
    return [
        (_ellipse(-0.2, 0, 0.6, 0.26), 255),
        (tail, 255),
        (_ellipse(-0.85, -0.12, 0.2, 0.2), 255),
    ]


def _ring() -> Silhouette:
    return [(_ellipse(0, 0, 1, 1), 255), (_ellipse(0, 0, 0.55, 0.55), 0)]


def _cross() -> Silhouette:
    return [
        (_poly((-1, -0.25), (1, -0.25), (1, 0.25), (-1, 0.25)), 255),
        (_poly((-0.25, -1), (0.25, -1), (0.25, 1), (-0.25, 1)), 255),
    ]


def _crescent() -> Silhouette:
    return [(_ellipse(0, 0, 1, 1), 255), (_ellipse(0.45, -0.25, 0.85, 0.85), 0)]


def _finned_diamond() -> Silhouette:
    fin = _poly((-0.3, 0.3), (-0.95, 0.9), (-0.15, 0.6))
    return [(_poly((0, -1), (0.55, 0), (0, 1), (-0.55, 0)), 255), (fin, 255), (_mirror(fin), 255)]


def _hexagon() -> Silhouette:
    angles = np.arange(6) * math.pi / 3
    return [(np.stack([np.cos(angles), 0.8 * np.sin(angles)], axis=1), 255)]


def _arrow() -> Silhouette:
    return [
        (
            _poly((-1, -0.2), (0.2, -0.2), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.2), (-1, 0.2)),
            255,
        )
    ]


def _teardrop() -> Silhouette:
    return [(_ellipse(0, 0.3, 0.6, 0.6), 255), (_poly((-0.55, 0.1), (0, -1), (0.55, 0.1)), 255)]


def _clover() -> Silhouette:
    lobes = [
        (_ellipse(0.5 * math.cos(a), 0.5 * math.sin(a), 0.45, 0.45), 255)
        for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
    ]
    return [*lobes, (_ellipse(0, 0, 0.3, 0.3), 255)]


SILHOUETTES: tuple[Callable[[], Silhouette], ...] = (
    _eared_body, _star, _wing_pair, _long_body_with_tail, _ring, _cross,
    _crescent, _finned_diamond, _hexagon, _arrow, _teardrop, _clover,
)  # fmt: skip

# --------------------------------------------------------------------------- textures


def _texture(
    kind: int, size: int, c1: np.ndarray, c2: np.ndarray, rng: np.random.Generator
) -> Image.Image:
    """A ``size`` x ``size`` RGB texture of family ``kind`` mixing colours c1 and c2.

    Only the 0/255 pattern is computed in numpy; mixing and shading are PIL
    composites, which keeps a 400 px animal at about a millisecond.
    """
    y, x = (v.astype(np.float32) for v in np.ogrid[0:size, 0:size])
    period = size * rng.uniform(0.08, 0.16) + 3.0
    angle = rng.uniform(0, math.pi)
    if kind == 0:  # stripes
        t = (x * math.cos(angle) + y * math.sin(angle)) / period
        weight = (t % 1.0) < 0.5
    elif kind == 1:  # dots
        ox, oy = rng.uniform(0, period, 2)
        dx, dy = (x + ox) % period - period / 2, (y + oy) % period - period / 2
        weight = dx * dx + dy * dy < (0.3 * period) ** 2
    elif kind == 2:  # checker
        weight = ((x // period + y // period) % 2) == 0
    elif kind == 3:  # solid
        weight = np.zeros((1, 1), dtype=bool)
    elif kind == 4:  # gradient (continuous blend)
        t = x * math.cos(angle) + y * math.sin(angle)
        weight = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    else:  # scales: concentric arcs in each cell
        d = np.hypot(x % period - period / 2, y % period)
        weight = ((d / (period / 3)) % 1.0) < 0.5
    pattern = np.broadcast_to((weight * 255).astype(np.uint8), (size, size))
    tex = Image.composite(
        _solid(c2, size), _solid(c1, size), Image.fromarray(np.ascontiguousarray(pattern))
    )
    ramp = (200 + np.arange(size) * 55 // max(size - 1, 1)).astype(np.uint8)[:, None]
    shade = Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp, (size, size)))).convert(
        "RGB"
    )
    return ImageChops.multiply(tex, shade)  # darker towards the top, like light from below


def _solid(colour: np.ndarray, size: int) -> Image.Image:
    return Image.new("RGB", (size, size), tuple(int(c) for c in np.clip(colour, 0, 255)))


TEXTURE_COUNT = 6


@dataclass(frozen=True)
class SpeciesDesign:
    """How one synthetic species looks: its silhouette, and nothing else.

    Texture and colours are deliberately not part of a species: ``_animal`` draws
    them per photo from the distribution every species shares.
    """

    silhouette: int


def species_designs(layout: str, count: int) -> list[SpeciesDesign]:
    """Designs of the first ``count`` species of ``layout``.

    Dogs use silhouettes 0.., birds start at 6, so the default 6 + 6 demo species
    are 12 different shapes.
    """
    offset = 0 if layout == "stanford_dogs" else 6
    return [SpeciesDesign(silhouette=(offset + i) % len(SILHOUETTES)) for i in range(count)]


def _colour(hue: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, sat, val), dtype=np.float32) * 255.0


# --------------------------------------------------------------------------- photos


def _background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Smooth random gradient + low-frequency blotches + clutter shapes (grain comes last).

    The smooth part is computed at 1/8 resolution and upsampled.
    """
    small_w, small_h = max(2, width // 8), max(2, height // 8)
    a = _colour(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.9))
    b = _colour(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.3, 0.9))
    angle = rng.uniform(0, 2 * math.pi)
    y, x = np.ogrid[0:small_h, 0:small_w]
    t = x * math.cos(angle) + y * math.sin(angle)
    t = ((t - t.min()) / max(float(np.ptp(t)), 1.0))[..., None]
    smooth = a * (1 - t) + b * t
    coarse = rng.normal(0.0, 25.0, (int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3))
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize(
        (small_w, small_h), Image.Resampling.BICUBIC
    )
    smooth += np.asarray(coarse_img, dtype=np.float32) - 128.0
    photo = Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    draw = ImageDraw.Draw(photo)
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(
            int(c) for c in _colour(rng.uniform(), rng.uniform(0, 0.4), rng.uniform(0.2, 0.9))
        )
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, 2) * width)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, 2) * height)
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 10)))
    return photo


def _animal(
    design: SpeciesDesign, size: int, rng: np.random.Generator
) -> tuple[Image.Image, Image.Image]:
    """An RGB texture and its L mask (``size`` square) for one animal of ``design``."""
    angle = rng.uniform(-math.pi / 4, math.pi / 4)
    mirror = -1.0 if rng.uniform() < 0.5 else 1.0
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stretch = np.array([mirror * rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)])
    parts = [(poly * stretch @ rot.T, fill) for poly, fill in SILHOUETTES[design.silhouette]()]
    every = np.concatenate([p for p, _ in parts])
    lo, hi = every.min(axis=0), every.max(axis=0)
    scale = (size - 2) / float(np.max(hi - lo))
    centre = (size - 1) / 2.0 - (lo + hi) / 2.0 * scale
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for poly, fill in parts:
        draw.polygon([tuple(p) for p in (poly * scale + centre).tolist()], fill=fill)
    return _surface(size, rng), mask


def _surface(size: int, rng: np.random.Generator) -> Image.Image:
    """A patterned ``size`` square: the draws every species shares (family, hue pair, saturation, value)."""
    texture = int(rng.integers(TEXTURE_COUNT))
    hue = rng.uniform()
    c1 = _colour(hue, rng.uniform(0.35, 0.9), rng.uniform(0.45, 0.95))
    c2 = _colour(hue + rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.9))
    return _texture(texture, size, c1, c2, rng)


PATTERNED_CLUTTER = (1, 4)
"""Patterned rectangles and ellipses per photo (low, high exclusive), behind the animal."""


def _add_patterned_clutter(photo: Image.Image, rng: np.random.Generator) -> None:
    """Rectangles and ellipses in the animals' own patterns, so that how much of a crop
    is patterned (a shape's fill) or how many pattern edges it has says nothing of
    the species: the animal has to be told from the clutter by its outline."""
    width, height = photo.size
    short = min(width, height)
    for _ in range(int(rng.integers(*PATTERNED_CLUTTER))):
        size = max(8, int(short * rng.uniform(0.25, 0.7)))
        x = int(rng.integers(-size // 3, width - 2 * size // 3))
        y = int(rng.integers(-size // 3, height - 2 * size // 3))
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        w, h = size * rng.uniform(0.4, 1.0), size * rng.uniform(0.4, 1.0)
        box = ((size - w) / 2, (size - h) / 2, (size + w) / 2, (size + h) / 2)
        (draw.rectangle if rng.uniform() < 0.5 else draw.ellipse)(box, fill=255)
        photo.paste(_surface(size, rng), (x, y), mask)


def render_photo(
    design: SpeciesDesign, width: int, height: int, animals: int, rng: np.random.Generator
) -> tuple[Image.Image, list[Box]]:
    """One synthetic photo with ``animals`` (1 or more) animals and their tight boxes.

    One animal spans 35-80 % of the short side; two or more are 35-50 % each
    (at most 1/``animals`` of the long side), one in each equal part of the long
    side, so their boxes never overlap.
    """
    photo = _background(width, height, rng)
    _add_patterned_clutter(photo, rng)
    short, long_ = min(width, height), max(width, height)
    boxes: list[Box] = []
    for k in range(animals):
        size = int(short * (rng.uniform(0.35, 0.8) if animals == 1 else rng.uniform(0.35, 0.5)))
        if animals > 2:
            size = max(1, min(size, long_ // animals))
        if animals == 1:
            along = int(rng.integers(0, long_ - size + 1))
        else:
            part = long_ // animals
            along = int(rng.integers(k * part, k * part + part - size + 1))
        across = int(rng.integers(0, short - size + 1))
        x, y = (along, across) if width >= height else (across, along)
        tex, mask = _animal(design, size, rng)
        photo.paste(tex, (x, y), mask)
        left, top, right, bottom = mask.getbbox()
        boxes.append((x + left, y + top, x + right, y + bottom))
    return _add_grain(photo, rng), boxes


def _add_grain(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Sensor-like noise over everything (animal included), in int16 for speed."""
    pixels = np.asarray(photo, dtype=np.int16)
    grain = rng.integers(-9, 10, size=pixels.shape[:2] + (1,), dtype=np.int16)
    pixels = pixels + grain
    np.clip(pixels, 0, 255, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8))


def _jpeg(photo: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# --------------------------------------------------------------------------- archives


class _DeterministicTar:
    """Adds members with fixed metadata so equal content gives equal archive bytes."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.dirs: set[str] = set()

    def _dir(self, name: str) -> None:
        if not name or name in self.dirs:
            return
        self._dir(name.rpartition("/")[0])
        info = self._info(name, tarfile.DIRTYPE, 0o755)
        self.tar.addfile(info)
        self.dirs.add(name)

    @staticmethod
    def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def add(self, name: str, data: bytes) -> None:
        self._dir(name.rpartition("/")[0])
        info = self._info(name, tarfile.REGTYPE, 0o644)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))


def _write_tar(path: Path, members: Iterator[tuple[str, bytes]], gzipped: bool = False) -> None:
    """Stream ``members`` into a tar (gzip without name or time when ``gzipped``), atomically."""
    with atomic_open(path) as raw, contextlib.ExitStack() as stack:
        sink = raw
        if gzipped:
            sink = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0))
        tar = stack.enter_context(tarfile.open(fileobj=sink, mode="w", format=tarfile.GNU_FORMAT))
        writer = _DeterministicTar(tar)
        for name, data in members:
            writer.add(name, data)


def _mat_bytes(variables: dict[str, np.ndarray]) -> bytes:
    """A MATLAB v5 file whose 116-byte description has no creation time in it."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, format="5", oned_as="column")
    data = bytearray(buf.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by speciesgan demo-data".ljust(116, b" ")
    return bytes(data)


def _cell_column(strings: list[str]) -> np.ndarray:
    """Strings as an N x 1 MATLAB cell array (how the real lists store paths)."""
    cells = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cells[i, 0] = np.array([s])
    return cells


@dataclass(frozen=True)
class _Photo:
    species: int
    stem: str  # file name without .jpg
    folder: str  # species folder name
    split: str
    width: int
    height: int
    animals: int


SizeSampler = Callable[[np.random.Generator], tuple[int, int]]


def uniform_size(min_size: int, max_size: int) -> SizeSampler:
    """Width and height drawn independently from ``min_size..max_size`` (the demo's sizes)."""

    def draw(rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.integers(min_size, max_size + 1)), int(rng.integers(min_size, max_size + 1))

    return draw


def _default_train_count(count: int) -> int:
    return max(1, round(TRAIN_FRACTION * count))


def _animal_count(u: float, fractions: tuple[float, ...]) -> int:
    """1, or 2, 3, ... when ``u`` falls in that many animals' share (``fractions[0]`` is 2)."""
    edge = 0.0
    for animals, fraction in enumerate(fractions, 2):
        edge += fraction
        if u < edge:
            return animals
    return 1


def _plan_photos(
    layout: str, names: list[str], folders: list[str], counts: list[int],
    size_of: SizeSampler, rng: np.random.Generator,
    animal_fractions: tuple[float, ...] = (TWO_ANIMAL_FRACTION,),
    train_count: Callable[[int], int] = _default_train_count,
) -> list[_Photo]:  # fmt: skip
    """Decide every photo's name, split, size and animal count (cheap, done first).

    ``counts`` is the number of photos per species; ``animal_fractions`` the
    share of (Stanford Dogs) photos with 2, 3, ... animals.
    """
    photos = []
    for s, (name, folder, count) in enumerate(zip(names, folders, counts, strict=True)):
        n_train = train_count(count)
        numbers = np.sort(rng.choice(np.arange(100, 20000), size=count, replace=False))
        is_train = np.zeros(count, dtype=bool)
        is_train[rng.permutation(count)[:n_train]] = True
        for j, number in enumerate(numbers):
            if layout == "stanford_dogs":
                stem = f"{folder.split('-')[0]}_{number}"
                animals = _animal_count(float(rng.uniform()), animal_fractions)
            else:
                stem = f"{name}_{int(rng.integers(1, 10000)):04d}_{number}"
                animals = 1
            width, height = size_of(rng)
            photos.append(
                _Photo(
                    species=s,
                    stem=stem,
                    folder=folder,
                    split="train" if is_train[j] else "test",
                    width=width,
                    height=height,
                    animals=animals,
                )
            )
    # The real lists and images.txt are in path order; labels follow folder order.
    return sorted(photos, key=lambda p: (p.folder, p.stem))


def _render_one(
    job: tuple[SpeciesDesign, int, int, int, int, int, int, int],
) -> tuple[bytes, list[Box]]:
    """Photo number ``i`` as JPEG bytes and boxes (module level: runs in worker processes)."""
    design, width, height, animals, seed, layout_code, i, quality = job
    rng = np.random.default_rng([seed, layout_code, 1, i])
    photo, boxes = render_photo(design, width, height, animals, rng)
    return _jpeg(photo, quality), boxes


def _draw_all(
    photos: list[_Photo], designs: list[SpeciesDesign], seed: int, layout_code: int,
    workers: int = 1, quality: int = JPEG_QUALITY,
) -> Iterator[tuple[_Photo, bytes, list[Box]]]:  # fmt: skip
    """Render each planned photo from its own RNG stream (order-independent).

    With ``workers`` > 1 the photos are rendered by that many processes; the
    output (order and bytes) is the same.
    """
    jobs = (
        (designs[p.species], p.width, p.height, p.animals, seed, layout_code, i, quality)
        for i, p in enumerate(photos)
    )
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.get_context().Pool(workers))
            rendered = pool.imap(_render_one, jobs, chunksize=16)
        else:
            rendered = map(_render_one, jobs)
        for p, (jpeg, boxes) in zip(
            progress(photos, desc="demo photos", unit="img"), rendered, strict=True
        ):
            yield p, jpeg, boxes


def _voc_xml(p: _Photo, breed: str, boxes: list[Box]) -> bytes:
    """A Stanford Dogs annotation: PASCAL-VOC, boxes 1-based inclusive (see sources)."""
    objects = "".join(
        "\t<object>\n"
        f"\t\t<name>{breed}</name>\n"
        "\t\t<pose>Unspecified</pose>\n"
        "\t\t<truncated>0</truncated>\n"
        "\t\t<difficult>0</difficult>\n"
        "\t\t<bndbox>\n"
        f"\t\t\t<xmin>{x0 + 1}</xmin>\n"
        f"\t\t\t<ymin>{y0 + 1}</ymin>\n"
        f"\t\t\t<xmax>{x1}</xmax>\n"
        f"\t\t\t<ymax>{y1}</ymax>\n"
        "\t\t</bndbox>\n"
        "\t</object>\n"
        for x0, y0, x1, y1 in boxes
    )
    text = (
        "<annotation>\n"
        f"\t<folder>{p.folder.split('-')[0][1:]}</folder>\n"
        f"\t<filename>{p.stem}</filename>\n"
        "\t<source>\n\t\t<database>ImageNet database</database>\n\t</source>\n"
        f"\t<size>\n\t\t<width>{p.width}</width>\n\t\t<height>{p.height}</height>\n"
        "\t\t<depth>3</depth>\n\t</size>\n"
        "\t<segment>0</segment>\n"
        f"{objects}"
        "</annotation>\n"
    )
    return text.encode()


def _write_stanford_dogs(out_dir: Path, photos: list[_Photo], names: list[str],
                         designs: list[SpeciesDesign], seed: int, workers: int = 1,
                         quality: int = JPEG_QUALITY) -> list[Path]:  # fmt: skip
    annotations: list[tuple[str, bytes]] = []

    def image_members() -> Iterator[tuple[str, bytes]]:
        for p, jpeg, boxes in _draw_all(photos, designs, seed, 0, workers, quality):
            annotations.append(
                (f"Annotation/{p.folder}/{p.stem}", _voc_xml(p, names[p.species], boxes))
            )
            yield f"Images/{p.folder}/{p.stem}.jpg", jpeg

    images, annotation, lists = (out_dir / n for n in ("images.tar", "annotation.tar", "lists.tar"))
    _write_tar(images, image_members())
    _write_tar(annotation, iter(annotations))

    def mat_for(subset: list[_Photo]) -> bytes:
        return _mat_bytes({
            "file_list": _cell_column([f"{p.folder}/{p.stem}.jpg" for p in subset]),
            "annotation_list": _cell_column([f"{p.folder}/{p.stem}" for p in subset]),
            "labels": np.array([[p.species + 1] for p in subset], dtype=np.float64),
        })  # fmt: skip

    _write_tar(lists, iter([
        ("file_list.mat", mat_for(photos)),
        ("train_list.mat", mat_for([p for p in photos if p.split == "train"])),
        ("test_list.mat", mat_for([p for p in photos if p.split == "test"])),
    ]))  # fmt: skip
    return [images, annotation, lists]


def _write_cub(out_dir: Path, photos: list[_Photo], folders: list[str],
               designs: list[SpeciesDesign], seed: int) -> list[Path]:  # fmt: skip
    root = "CUB_200_2011"
    tables: dict[str, list[str]] = {
        "images.txt": [], "image_class_labels.txt": [], "bounding_boxes.txt": [], "train_test_split.txt": [],
    }  # fmt: skip

    def members() -> Iterator[tuple[str, bytes]]:
        for image_id, (p, jpeg, boxes) in enumerate(
            _draw_all(photos, designs, seed, layout_code=1), 1
        ):
            x0, y0, x1, y1 = boxes[0]
            tables["images.txt"].append(f"{image_id} {p.folder}/{p.stem}.jpg")
            tables["image_class_labels.txt"].append(f"{image_id} {p.species + 1}")
            tables["bounding_boxes.txt"].append(
                f"{image_id} {float(x0)} {float(y0)} {float(x1 - x0)} {float(y1 - y0)}"
            )
            tables["train_test_split.txt"].append(f"{image_id} {1 if p.split == 'train' else 0}")
            yield f"{root}/images/{p.folder}/{p.stem}.jpg", jpeg
        classes = "".join(f"{i} {folder}\n" for i, folder in enumerate(folders, 1))
        yield f"{root}/classes.txt", classes.encode()
        for name, lines in tables.items():
            yield f"{root}/{name}", "".join(line + "\n" for line in lines).encode()
        yield (
            f"{root}/README",
            b"Synthetic demo data in the CUB-200-2011 layout (speciesgan demo-data).\n",
        )

    archive = out_dir / "CUB_200_2011.tgz"
    _write_tar(archive, members(), gzipped=True)
    return [archive]


def check_demo_settings(
    species_per_dataset: int,
    species_range: tuple[int, int],
    images_per_species: int,
    least_images: int,
    sizes: tuple[int, int],
    least_size: int,
    what: str = "demo",
) -> None:
    """A user error naming the ``demo`` config key whose value the writer cannot draw."""
    low, high = species_range
    if not low <= species_per_dataset <= high:
        raise SpeciesganError(
            f"demo species_per_dataset={species_per_dataset} must be {low}..{high}"
        )
    if images_per_species < least_images:
        raise SpeciesganError(
            f"demo images_per_species={images_per_species} must be at least {least_images}"
        )
    min_size, max_size = sizes
    if not least_size <= min_size <= max_size:
        raise SpeciesganError(
            f"{what} sizes need {least_size} <= min_size ({min_size}) <= max_size ({max_size})"
        )


def write_demo_archives(
    out_dir: Path,
    layout: str,
    seed: int,
    species_per_dataset: int = 6,
    images_per_species: int = 60,
    min_size: int = 300,
    max_size: int = 500,
) -> list[Path]:
    """Write synthetic archives of ``layout`` into ``out_dir``; return their paths.

    ``stanford_dogs`` gives ``images.tar``, ``annotation.tar`` and ``lists.tar``;
    ``cub`` gives ``CUB_200_2011.tgz``.  Same arguments -> byte-identical files.
    """
    if layout not in LAYOUTS:
        raise SpeciesganError(
            f"demo layout {layout!r} is unknown; choose one of {', '.join(LAYOUTS)}"
        )
    check_demo_settings(
        species_per_dataset, (1, MAX_SPECIES), images_per_species, 2, (min_size, max_size), 64
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layout_code = LAYOUTS.index(layout)
    rng = np.random.default_rng([seed, layout_code, 0])
    designs = species_designs(layout, species_per_dataset)
    if layout == "stanford_dogs":
        names = list(DOG_BREEDS[:species_per_dataset])
        wnids = [f"n9{1000000 + 104729 * i:07d}" for i in range(species_per_dataset)]  # ascending
        folders = [f"{w}-{n}" for w, n in zip(wnids, names, strict=True)]
    else:
        names = list(BIRD_SPECIES[:species_per_dataset])
        folders = [f"{i:03d}.{n}" for i, n in enumerate(names, 1)]
    counts = [images_per_species] * species_per_dataset
    photos = _plan_photos(layout, names, folders, counts, uniform_size(min_size, max_size), rng)
    if layout == "stanford_dogs":
        written = _write_stanford_dogs(out_dir, photos, names, designs, seed)
    else:
        written = _write_cub(out_dir, photos, folders, designs, seed)
    log.info("wrote %d demo photos (%s layout) to %s", len(photos), layout, out_dir)
    return written


# --------------------------------------------------------------------------- full-scale collection
# A Stanford-Dogs-shaped collection for scale benchmarks: as many breeds and
# photos as the real dataset (120, 20,580), per-breed counts in its range
# (148-252), 100 training photos per breed as in its lists, real photo sizes
# and ~1.08 boxes per photo.  Same writers as the demo.

STANFORD_DOGS_PHOTOS = 20580
STANFORD_DOGS_BREEDS = 120
STANFORD_DOGS_TRAIN_PER_BREED = 100
SCALE_ANIMAL_FRACTIONS = (0.06, 0.012, 0.003)  # photos with 2, 3, 4 dogs
SCALE_JPEG_QUALITY = 85  # ~40 KiB at 500x375, ~43 KiB on average (real: ~37 KiB)


def breed_names(count: int) -> list[str]:
    """``count`` distinct breed names; the first 12 are the demo's ``DOG_BREEDS``."""
    if not 1 <= count <= MAX_SPECIES * MAX_SPECIES:
        raise SpeciesganError(f"breed count {count} must be 1..{MAX_SPECIES * MAX_SPECIES}")
    adjectives = [name.split("_")[0] for name in DOG_BREEDS]
    nouns = [name.split("_")[1] for name in DOG_BREEDS]
    n = len(DOG_BREEDS)
    return [f"{adjectives[i % n]}_{nouns[(i % n + i // n) % n]}" for i in range(count)]


def stanford_dogs_wnids(count: int) -> list[str]:
    """Ascending ImageNet-style ids in the real dogs' range (``n02085620``...)."""
    return [f"n0{2085620 + 263 * i:07d}" for i in range(count)]


def stanford_dogs_photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """A (width, height) with the shape of Stanford Dogs' size distribution.

    Most photos are ImageNet's 500 px on the long side (500x375, 500x333,
    500x500, ...), about a quarter of them portrait; some are smaller; a 4 %
    tail is larger, up to the 3264 px of the real collection's biggest photos.
    """
    u = rng.uniform()
    if u < 0.84:
        long_side = 500
    elif u < 0.96:
        long_side = int(rng.integers(200, 500))
    elif u < 0.995:
        long_side = int(round(math.exp(rng.uniform(math.log(501), math.log(1200)))))
    else:
        long_side = int(round(math.exp(rng.uniform(math.log(1200), math.log(3264)))))
    v = rng.uniform()
    if v < 0.55:
        ratio = 0.75
    elif v < 0.77:
        ratio = 2 / 3
    elif v < 0.82:
        ratio = 1.0
    else:
        ratio = float(rng.uniform(0.56, 0.95))
    short_side = max(64, int(round(long_side * ratio)))
    portrait = rng.uniform() < 0.25
    return (short_side, long_side) if portrait else (long_side, short_side)


def _breed_counts(photos: int, breeds: int, rng: np.random.Generator) -> list[int]:
    """Photos per breed summing to ``photos``, spread like the real 148-252."""
    raw = rng.integers(148, 253, size=breeds).astype(np.float64)
    counts = np.floor(raw * photos / raw.sum()).astype(np.int64)
    for i in np.argsort(-(raw * photos / raw.sum() - counts), kind="stable")[
        : photos - counts.sum()
    ]:
        counts[i] += 1
    return [int(c) for c in counts]


def write_stanford_dogs_scale(
    out_dir: Path,
    seed: int = 0,
    photos: int = STANFORD_DOGS_PHOTOS,
    breeds: int = STANFORD_DOGS_BREEDS,
    workers: int = 2,
    quality: int = SCALE_JPEG_QUALITY,
) -> list[Path]:
    """``images.tar``, ``annotation.tar`` and ``lists.tar`` of a Stanford-Dogs-sized set.

    Breeds are named by ``breed_names``; photos are rendered by ``workers``
    processes.  Same arguments -> byte-identical files, whatever ``workers``.
    """
    if breeds < 1 or photos < 2 * breeds:
        raise SpeciesganError(
            f"need at least 2 photos per breed ({photos} photos, {breeds} breeds)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0, 2])
    names = breed_names(breeds)
    folders = [f"{w}-{n}" for w, n in zip(stanford_dogs_wnids(breeds), names, strict=True)]
    plan = _plan_photos(
        "stanford_dogs", names, folders, _breed_counts(photos, breeds, rng),
        stanford_dogs_photo_size, rng, animal_fractions=SCALE_ANIMAL_FRACTIONS,
        train_count=lambda count: min(STANFORD_DOGS_TRAIN_PER_BREED, count - 1),
    )  # fmt: skip
    designs = species_designs("stanford_dogs", breeds)
    written = _write_stanford_dogs(out_dir, plan, names, designs, seed, workers, quality)
    log.info("wrote %d photos of %d breeds (Stanford Dogs layout) to %s", photos, breeds, out_dir)
    return written
