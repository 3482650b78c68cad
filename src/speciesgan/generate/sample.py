"""Sample images from a trained generator: per-species grids, species mixes, pictures by name.

The core functions take the generator module itself (so the evaluation and the
report reuse them, and tests can pass a tiny stand-in); the ``sample_*`` and
``generate_pictures`` functions called by the command line load ``generator.pt``
first.  Latents come from a ``torch.Generator`` seeded with the user's seed, so the
same seed gives the same pictures, and PNGs are written without metadata so they
are byte-identical.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from speciesgan.runtime.device import select_device
from speciesgan.util.atomic import atomic_folder, atomic_path, write_json
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.names import slug_clashes, slugify

GRID_PADDING = 2
GRID_FILL = 255


def _device_of(generator: nn.Module) -> torch.device:
    parameter = next(generator.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def latents(count: int, z_dim: int, seed: int) -> torch.Tensor:
    """``count`` standard-normal latents drawn from a generator seeded with ``seed`` (on CPU)."""
    rng = torch.Generator().manual_seed(seed)
    return torch.randn(count, z_dim, generator=rng)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8, rounding exactly as torchvision's ``save_image``."""
    scaled = (images.detach().float().cpu() + 1.0) / 2.0
    return scaled.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def generate_images(
    generator: nn.Module,
    species_ids: torch.Tensor,
    seed: int,
    batch_size: int = 64,
    z_dim: int | None = None,
) -> torch.Tensor:
    """uint8 images [N, 3, S, S] for each entry of ``species_ids``, one latent each.

    All latents are drawn up front, so the images do not depend on ``batch_size``.
    """
    z_dim = z_dim or int(generator.z_dim)
    species_ids = torch.as_tensor(species_ids, dtype=torch.long)
    return images_from_latents(
        generator, latents(len(species_ids), z_dim, seed), species_ids, batch_size
    )


def images_from_latents(
    generator: nn.Module, z: torch.Tensor, species_ids: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """uint8 images [N, 3, S, S] for latents ``z`` and ``species_ids``, ``batch_size`` at a time."""
    device = _device_of(generator)
    generator.eval()
    batches = []
    with torch.no_grad():
        for start in range(0, len(species_ids), batch_size):
            batch_z = z[start : start + batch_size].to(device)
            batch_ids = species_ids[start : start + batch_size].to(device)
            batches.append(quantize(generator(batch_z, batch_ids)))
    return torch.cat(batches)


def mix_images(
    generator: nn.Module, a_id: int, b_id: int, alpha: float, seed: int, n: int = 8
) -> torch.Tensor:
    """uint8 images from the embedding (1 - alpha) * e(a) + alpha * e(b), ``n`` latents."""
    return mixed_images_from_latents(
        generator, a_id, b_id, alpha, latents(n, int(generator.z_dim), seed)
    )


def mixed_images_from_latents(
    generator: nn.Module, a_id: int, b_id: int, alpha: float, z: torch.Tensor
) -> torch.Tensor:
    """``mix_images`` for given latents ``z`` (one forward pass for all of them)."""
    device = _device_of(generator)
    z = z.to(device)
    generator.eval()
    with torch.no_grad():
        ids = torch.tensor([a_id, b_id], device=device)
        embedding_a, embedding_b = generator.embedding(ids)
        mixed = (1.0 - alpha) * embedding_a + alpha * embedding_b
        return quantize(generator.generate(z, mixed.unsqueeze(0).expand(len(z), -1)))


def interpolation_strip(
    generator: nn.Module, a_id: int, b_id: int, steps: int = 8, seed: int = 0
) -> np.ndarray:
    """One row of images (HWC uint8) morphing species a into b with a single fixed latent."""
    device = _device_of(generator)
    z = latents(1, int(generator.z_dim), seed).to(device).expand(steps, -1)
    alphas = torch.linspace(0.0, 1.0, steps, device=device).unsqueeze(1)
    generator.eval()
    with torch.no_grad():
        embedding_a, embedding_b = generator.embedding(torch.tensor([a_id, b_id], device=device))
        mixed = (1.0 - alphas) * embedding_a + alphas * embedding_b
        images = quantize(generator.generate(z, mixed))
    return tile(images, columns=steps)


def tile(images: torch.Tensor, columns: int, padding: int = GRID_PADDING) -> np.ndarray:
    """uint8 images [N, 3, S, S] -> one HWC uint8 grid, ``columns`` per row, white gaps."""
    count, _, height, width = images.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    grid = np.full(
        (padding + rows * (height + padding), padding + columns * (width + padding), 3),
        GRID_FILL,
        dtype=np.uint8,
    )
    pixels = images.permute(0, 2, 3, 1).numpy()
    for index in range(count):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = pixels[index]
    return grid


def save_png(array: np.ndarray, path: Path) -> None:
    """Write an HWC uint8 array as PNG atomically, with no metadata (deterministic bytes)."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _words(name: str) -> str:
    """``name`` lowercased, each run of spaces, punctuation and underscores one space."""
    return re.sub(r"[\W_]+", " ", name.casefold()).strip()


def _squash(name: str) -> str:
    """``name`` lowercased with everything but letters and digits dropped."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


# How a typed name is compared with the generator's species, strictest first: exact,
# ignoring case, ignoring case and punctuation (any run of it counts as one gap),
# ignoring case, punctuation and spaces altogether.  The first rule that matches
# decides.  (Unlike slugify, these keep non-ASCII letters, so no two names collapse
# into slugify's "species" fallback.)
_NAME_RULES = (
    ("exactly", lambda name: name),
    ("ignoring case", str.casefold),
    ("ignoring case and punctuation", _words),
    ("ignoring case, punctuation and spaces", _squash),
)


def resolve_species(name: str, species: list[str]) -> int:
    """Species id of ``name``: case, punctuation, spaces and underscores do not matter.

    "border collie" finds "Border_collie" and "painted-bunting" finds "Painted
    Bunting".  A name that matches several species under the first rule that
    matches at all is refused as ambiguous; unknown names list close matches.
    """
    for how, key in _NAME_RULES:
        wanted = key(name)
        if not wanted:
            continue
        matches = [index for index, known in enumerate(species) if key(known) == wanted]
        if len(matches) == 1:
            return matches[0]
        if matches and how == "exactly":
            raise SpeciesganError(
                f"the generator has {len(matches)} species named {name!r} "
                "and cannot tell them apart by name"
            )
        if matches:
            listing = ", ".join(repr(species[index]) for index in matches)
            raise SpeciesganError(
                f"species name {name!r} is ambiguous: it matches {listing} ({how}); "
                "type the name exactly as the generator spells it"
            )
    squashed = [_squash(known) for known in species]
    close = difflib.get_close_matches(_squash(name), squashed, n=5, cutoff=0.5)
    hint = ", ".join(repr(species[squashed.index(c)]) for c in close) or "none"
    raise SpeciesganError(
        f"unknown species {name!r} (the generator knows {len(species)} species; close matches: {hint})"
    )


def write_sample_grids(
    generator: nn.Module,
    species: list[str],
    out_dir: Path,
    seed: int,
    per_species: int = 16,
    grid_columns: int = 8,
) -> None:
    """overview.png (one row per species), species/<slug>.png grids and index.json.

    Species whose names share a slug would share a grid file; they are refused
    (the index stage refuses them too, so only an older generator can have them).
    """
    clashes = slug_clashes(species)
    if clashes:
        listing = "; ".join(
            f"{' and '.join(map(repr, names))} -> species/{slug}.png"
            for slug, names in clashes.items()
        )
        raise SpeciesganError(
            f"species names that differ only in case or punctuation would share a sample file: "
            f"{listing}. Rename them in the data and rerun from the index stage."
        )
    out_dir = Path(out_dir)
    ids = torch.arange(len(species)).repeat_interleave(per_species)
    flat = generate_images(generator, ids, seed)
    images = flat.view(len(species), per_species, *flat.shape[1:])
    row_length = min(per_species, grid_columns)
    overview = torch.cat([images[k, :row_length] for k in range(len(species))])
    save_png(tile(overview, columns=row_length), out_dir / "overview.png")
    index: dict[str, Any] = {"overview": "overview.png", "species": {}}
    for species_id, (name, slug) in enumerate(zip(species, map(slugify, species), strict=True)):
        relative = f"species/{slug}.png"
        save_png(tile(images[species_id], columns=grid_columns), out_dir / relative)
        index["species"][name] = relative
    write_json(out_dir / "index.json", index)


def _load(
    generator_path: Path, weights: str = "ema", *, device: str | None = None, stage: str = "sample"
) -> tuple[nn.Module, dict[str, Any]]:
    from speciesgan.gan.networks import load_generator

    torch_device = select_device(device, stage=stage)
    generator, meta = load_generator(Path(generator_path), torch_device, weights=weights)
    generator.eval()
    return generator, meta


def sample_grids(
    generator: Path,
    out_dir: Path,
    seed: int,
    per_species: int = 16,
    grid_columns: int = 8,
    device: str | None = None,
) -> None:
    """``speciesgan sample``: load ``generator.pt`` and write the grids into ``out_dir``.

    The grids are written into a temporary folder that becomes ``out_dir`` only when
    all of them and ``index.json`` are there: a killed or failed job leaves no
    folder that looks finished.
    """
    model, meta = _load(generator, device=device)
    with atomic_folder(out_dir) as staging:
        write_sample_grids(model, list(meta["species"]), staging, seed, per_species, grid_columns)


def sample_mix(
    generator: Path,
    species_a: str,
    species_b: str,
    alpha: float,
    out: Path,
    seed: int,
    n: int = 8,
    device: str | None = None,
) -> None:
    """``speciesgan sample --mix A B``: one PNG row of ``n`` images of a blended species."""
    model, meta = _load(generator, device=device)
    species = list(meta["species"])
    a_id, b_id = resolve_species(species_a, species), resolve_species(species_b, species)
    save_png(tile(mix_images(model, a_id, b_id, alpha, seed, n), columns=n), Path(out))


GENERATE_LIMIT = 10_000
"""Most pictures one ``speciesgan generate`` writes unless ``--max-pictures`` says more:
a typo of a few zeros should not fill a disk."""

GRID_LIMIT = 1_024
"""Most pictures one ``--grid`` image holds (the grid is built in memory)."""

GENERATE_CHUNK = 1_024
"""Pictures made and written at a time: memory does not grow with ``-n``.  Up to this
many, the pictures are exactly those of one batch of latents drawn up front."""

MIX_BATCH = 64
"""Mixed pictures per forward pass (up to this many, one pass, as ``mix_images``)."""


def _picture_chunks(
    model: nn.Module, n: int, seed: int, species_id: int | None, mix: tuple[int, int, float] | None
) -> Iterator[torch.Tensor]:
    """uint8 pictures [k, 3, S, S], ``GENERATE_CHUNK`` at a time, latents from one seeded stream."""
    rng = torch.Generator().manual_seed(seed)
    z_dim = int(model.z_dim)
    for start in range(0, n, GENERATE_CHUNK):
        count = min(GENERATE_CHUNK, n - start)
        z = torch.randn(count, z_dim, generator=rng)
        if mix is None:
            ids = torch.full((count,), int(species_id or 0), dtype=torch.long)
            yield images_from_latents(model, z, ids)
        else:
            batches = range(0, count, MIX_BATCH)
            yield torch.cat(
                [mixed_images_from_latents(model, *mix, z[i : i + MIX_BATCH]) for i in batches]
            )


def generate_pictures(
    generator: Path,
    out: Path,
    *,
    name: str | None = None,
    mix: Sequence[str] | None = None,
    alpha: float = 0.5,
    n: int = 16,
    grid: bool = False,
    seed: int = 0,
    weights: str = "ema",
    device: str | None = None,
    max_pictures: int | None = None,
) -> list[Path]:
    """``speciesgan generate``: ``n`` pictures of one species (``name``) or of a mix of two.

    Separate files ``<slug>-000.png``, ``<slug>-001.png``, ... go into the folder
    ``out``; with ``grid`` one tiled image goes to ``out/<slug>.png``, or to ``out``
    itself when it ends in ``.png``.  The slug comes from the generator's spelling of
    the species (a mix is ``<a>-x-<b>-<alpha>``), so any accepted spelling of a name
    gives the same files.  Pictures are made and written ``GENERATE_CHUNK`` at a
    time, so memory does not depend on ``n``; if writing fails (a full disk, a
    signal), the files this call wrote are removed again.  Returns the paths written.
    """
    if (name is None) == (mix is None):
        raise SpeciesganError("give exactly one of a species NAME or --mix A B")
    if mix is not None and len(mix) != 2:
        raise SpeciesganError(f"--mix takes two species, got {len(mix)}")
    if mix is not None and not 0.0 <= alpha <= 1.0:
        raise SpeciesganError(f"--alpha must be between 0 and 1, not {alpha}")
    if n < 1:
        raise SpeciesganError(f"-n must be at least 1, not {n}")
    max_pictures = GENERATE_LIMIT if max_pictures is None else max_pictures
    if n > max_pictures:
        raise SpeciesganError(
            f"-n {n:,} is more than {max_pictures:,} pictures in one call; if you mean it, "
            f"raise the limit with --max-pictures {n}"
        )
    if grid and n > GRID_LIMIT:
        raise SpeciesganError(
            f"--grid holds at most {GRID_LIMIT:,} pictures (it is built in memory), not {n:,}; "
            "write separate files instead (no --grid)"
        )
    out = Path(out)
    single_file = grid and out.suffix.lower() == ".png" and not out.is_dir()
    if not grid and out.suffix.lower() == ".png":
        raise SpeciesganError(f"--out {out} names a PNG file: use --grid, or give a folder")
    if not single_file and out.exists() and not out.is_dir():
        raise SpeciesganError(f"--out {out} exists and is not a folder")

    model, meta = _load(generator, weights, device=device, stage="generate")
    species = list(meta["species"])
    species_id: int | None = None
    mixed: tuple[int, int, float] | None = None
    if mix is None:
        assert name is not None
        species_id = resolve_species(name, species)
        slug = slugify(species[species_id])
    else:
        a_id, b_id = (resolve_species(known, species) for known in mix)
        mixed = (a_id, b_id, alpha)
        slug = f"{slugify(species[a_id])}-x-{slugify(species[b_id])}-{alpha:g}"
    chunks = _picture_chunks(model, n, seed, species_id, mixed)

    if grid:
        path = out if single_file else out / f"{slug}.png"
        save_png(tile(torch.cat(list(chunks)), columns=math.ceil(math.sqrt(n))), path)
        return [path]
    digits = max(3, len(str(n - 1)))
    paths = [out / f"{slug}-{index:0{digits}d}.png" for index in range(n)]
    written: list[Path] = []
    try:
        for chunk in chunks:
            for image in chunk:
                path = paths[len(written)]
                save_png(image.permute(1, 2, 0).numpy(), path)
                written.append(path)
    except BaseException as exc:
        size = sum(p.stat().st_size for p in written if p.is_file())
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(exc, SpeciesganError) and "no space left" in str(exc) and written:
            need = size / len(written) * n / 1e6
            raise SpeciesganError(
                f"{exc} ({n:,} pictures need about {need:,.1f} MB; the {len(written):,} "
                "written before were removed)"
            ) from exc
        raise
    return paths
