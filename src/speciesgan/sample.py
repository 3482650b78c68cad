"""Sample images from a trained generator: per-species grids and species mixes.

The core functions take the generator module itself (so the evaluation and the
report reuse them, and tests can pass a tiny stand-in); the ``sample_*``
functions called by the command line load ``generator.pt`` first.  Latents come
from a ``torch.Generator`` seeded with the user's seed, so the same seed gives the
same pictures, and PNGs are written without metadata so they are byte-identical.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from speciesgan.atomic import atomic_path, write_json
from speciesgan.errors import SpeciesganError

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
    z = latents(len(species_ids), z_dim, seed)
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
    device = _device_of(generator)
    z = latents(n, int(generator.z_dim), seed).to(device)
    generator.eval()
    with torch.no_grad():
        ids = torch.tensor([a_id, b_id], device=device)
        embedding_a, embedding_b = generator.embedding(ids)
        mixed = (1.0 - alpha) * embedding_a + alpha * embedding_b
        return quantize(generator.generate(z, mixed.unsqueeze(0).expand(n, -1)))


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


def slugify(name: str) -> str:
    """File-name form of a species: lowercase, runs of non-alphanumerics -> '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "species"


def unique_slugs(names: list[str]) -> list[str]:
    """Slugs for all species; a clash gets the species id appended so no grid is overwritten."""
    slugs = [slugify(name) for name in names]
    return [
        f"{slug}-{index}" if slugs.count(slug) > 1 else slug for index, slug in enumerate(slugs)
    ]


def resolve_species(name: str, species: list[str]) -> int:
    """Species id of ``name`` (case-insensitive); unknown names list close matches."""
    lowered = [s.lower() for s in species]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    close = difflib.get_close_matches(name.lower(), lowered, n=5, cutoff=0.5)
    hint = ", ".join(repr(species[lowered.index(c)]) for c in close) or "none"
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
    """overview.png (one row per species), species/<slug>.png grids and index.json."""
    out_dir = Path(out_dir)
    ids = torch.arange(len(species)).repeat_interleave(per_species)
    flat = generate_images(generator, ids, seed)
    images = flat.view(len(species), per_species, *flat.shape[1:])
    row_length = min(per_species, grid_columns)
    overview = torch.cat([images[k, :row_length] for k in range(len(species))])
    save_png(tile(overview, columns=row_length), out_dir / "overview.png")
    index: dict[str, Any] = {"overview": "overview.png", "species": {}}
    for species_id, (name, slug) in enumerate(zip(species, unique_slugs(species), strict=True)):
        relative = f"species/{slug}.png"
        save_png(tile(images[species_id], columns=grid_columns), out_dir / relative)
        index["species"][name] = relative
    write_json(out_dir / "index.json", index)


def _load(generator_path: Path) -> tuple[nn.Module, dict[str, Any]]:
    from speciesgan.gan.networks import load_generator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator, meta = load_generator(Path(generator_path), device)
    generator.eval()
    return generator, meta


def sample_grids(
    generator: Path, out_dir: Path, seed: int, per_species: int = 16, grid_columns: int = 8
) -> None:
    """``speciesgan sample``: load ``generator.pt`` and write the grids into ``out_dir``."""
    model, meta = _load(generator)
    write_sample_grids(model, list(meta["species"]), out_dir, seed, per_species, grid_columns)


def sample_mix(
    generator: Path, species_a: str, species_b: str, alpha: float, out: Path, seed: int, n: int = 8
) -> None:
    """``speciesgan sample --mix A B``: one PNG row of ``n`` images of a blended species."""
    model, meta = _load(generator)
    species = list(meta["species"])
    a_id, b_id = resolve_species(species_a, species), resolve_species(species_b, species)
    save_png(tile(mix_images(model, a_id, b_id, alpha, seed, n), columns=n), Path(out))
