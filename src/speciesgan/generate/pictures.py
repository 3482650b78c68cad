"""One picture, described well enough to be made again bit for bit: records and rendering.

The studio (``speciesgan studio``) and ``speciesgan generate --from`` both draw
pictures through :class:`Renderer`, so a PNG downloaded from the page and the PNG
rebuilt from its record are the same bytes.  Two things would otherwise break that
on a CPU, both measured: a picture's floats depend on the batch it was drawn in
(batch 16 and batch 1 differ in the last bits, which can flip a rounded pixel), and
on the number of intra-op threads.  So every picture is drawn alone (batch 1) in a
worker thread that uses exactly one torch thread; several workers draw different
pictures side by side.  Batch 1 is also the faster choice on a small CPU.

A picture's latent is ``latents(count, z_dim, seed)[index]`` (picture ``index`` of
``speciesgan generate -n count --seed seed``), optionally moved by
``step_size * latents(1, z_dim, step_seed)`` ("more like this").  Its class
embedding is the species' own, or ``sum(weight_k * embedding_k)`` for a mix of two or
three species (for two, the same formula as ``generate --mix``).
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import nn

from speciesgan.generate.sample import latents, quantize
from speciesgan.util.atomic import atomic_open
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.names import slugify
from speciesgan.util.weights import file_sha256  # the generator's identity in every record

RECORD_FORMAT = "speciesgan-picture"
RECORD_VERSION = 1
PNG_TEXT_KEY = "speciesgan"
"""The PNG text chunk that carries the record (the sidecar JSON carries the same)."""
MAX_MIX = 3
MAX_COUNT = 4096
"""Largest ``count`` a record may name (the studio uses at most 64); bounds the latent draw."""
MAX_SEED = 2**63 - 1
MAX_STEP = 4.0
RENDER_THREADS = 1
"""Torch threads per rendering worker: fixed, because the thread count changes the bits."""
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Picture:
    """What decides a picture's pixels (with the generator and its weights)."""

    species_ids: tuple[int, ...]
    mix: tuple[float, ...]
    seed: int
    count: int
    index: int
    step_seed: int | None = None
    step_size: float = 0.0


def picture_latent(z_dim: int, picture: Picture) -> torch.Tensor:
    """The [1, z_dim] latent of ``picture`` (on CPU)."""
    z = latents(picture.count, z_dim, picture.seed)[picture.index : picture.index + 1]
    if picture.step_seed is not None:
        z = z + picture.step_size * latents(1, z_dim, picture.step_seed)
    return z


def picture_embedding(generator: nn.Module, picture: Picture) -> torch.Tensor:
    """The [1, embed_dim] class embedding: one species' own, or the weighted sum of a mix."""
    table = generator.embedding(torch.tensor(picture.species_ids, dtype=torch.long))
    if len(picture.species_ids) == 1:
        return table[0:1]
    mixed = picture.mix[0] * table[0]
    for weight, embedding in zip(picture.mix[1:], table[1:], strict=True):
        mixed = mixed + weight * embedding
    return mixed.unsqueeze(0)


def render_picture(generator: nn.Module, picture: Picture) -> np.ndarray:
    """HWC uint8 pixels of ``picture``, drawn alone (call it from a :class:`Renderer` worker)."""
    with torch.no_grad():
        z = picture_latent(int(generator.z_dim), picture)
        image = generator.generate(z, picture_embedding(generator, picture))
    return quantize(image)[0].permute(1, 2, 0).numpy()


def _one_torch_thread() -> None:
    # torch sets a thread's count lazily from its global default on the thread's first
    # parallel call: make that call first, or it would undo the setting later
    torch.get_num_threads()
    torch.set_num_threads(RENDER_THREADS)


class Renderer:
    """Draws pictures on ``workers`` threads of one torch thread each, one picture at a time.

    The executor's queue is shared by every caller, so concurrent requests are served
    in arrival order without ever drawing two pictures in one batch (which would make
    the pixels depend on what else was asked at the same moment).
    """

    def __init__(self, generator: nn.Module, workers: int = 1) -> None:
        self.generator = generator.cpu().eval()
        self.workers = max(1, int(workers))
        previous = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="speciesgan-render", initializer=_one_torch_thread
        )
        # start every worker now, then restore the default that torch hands to threads
        # started later (set_num_threads in a worker changes it): the workers keep one
        started = threading.Barrier(self.workers)
        for future in [self._pool.submit(started.wait) for _ in range(self.workers)]:
            future.result()
        torch.set_num_threads(previous)

    def threads(self) -> list[int]:
        """Torch threads of each worker (all :data:`RENDER_THREADS`)."""
        started = threading.Barrier(self.workers)

        def count() -> int:
            started.wait()
            return torch.get_num_threads()

        return [f.result() for f in [self._pool.submit(count) for _ in range(self.workers)]]

    def submit(self, picture: Picture) -> Future[np.ndarray]:
        return self._pool.submit(render_picture, self.generator, picture)

    def render(self, pictures: Sequence[Picture]) -> list[np.ndarray]:
        """Pixels of each picture (blocking)."""
        return [future.result() for future in [self.submit(p) for p in pictures]]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# ---------------------------------------------------------------- records


def make_record(
    picture: Picture,
    species: Sequence[str],
    generator_sha256: str,
    image_size: int,
    weights: str = "ema",
) -> dict[str, Any]:
    """The JSON-ready record of ``picture`` (what a PNG's metadata and sidecar carry)."""
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "generator_sha256": generator_sha256,
        "weights": weights,
        "image_size": int(image_size),
        "species": [
            {"id": species_id, "name": species[species_id], "weight": weight}
            for species_id, weight in zip(picture.species_ids, picture.mix, strict=True)
        ],
        "seed": picture.seed,
        "count": picture.count,
        "index": picture.index,
        "step": None
        if picture.step_seed is None
        else {"seed": picture.step_seed, "size": picture.step_size},
        "render": {"device": "cpu", "batch": 1, "threads": RENDER_THREADS},
    }


def record_text(record: Mapping[str, Any]) -> str:
    """Canonical one-line JSON of a record (ASCII, sorted keys): equal records, equal bytes."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpeciesganError(f"{what} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise SpeciesganError(f"{what} must be between {low} and {high}, not {value}")
    return value


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpeciesganError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def check_mix(weights: Sequence[Any], what: str = "mix weights") -> tuple[float, ...]:
    """Weights of a mix: 1 to 3 numbers, each 0..1, summing to 1."""
    values = tuple(_float(w, what) for w in weights)
    if not 1 <= len(values) <= MAX_MIX:
        raise SpeciesganError(f"{what}: give 1 to {MAX_MIX} weights, not {len(values)}")
    if any(not 0.0 <= w <= 1.0 for w in values) or abs(sum(values) - 1.0) > WEIGHT_TOLERANCE:
        raise SpeciesganError(f"{what} must each be 0..1 and sum to 1, not {list(values)}")
    return values


def picture_from_record(
    record: Any, species: Sequence[str], image_size: int
) -> tuple[Picture, dict[str, Any]]:
    """Check a record against the generator's species; returns the picture and the record.

    Everything is checked, so a record typed by hand gets a clear message, never a
    traceback: names must match the ids, numbers must be in range.  The record
    returned is rebuilt from the checked values, so one that went through another
    JSON writer (a browser writes the weight 1.0 as 1) gives the same PNG bytes.
    """
    if not isinstance(record, Mapping) or record.get("format") != RECORD_FORMAT:
        raise SpeciesganError(f'not a speciesgan picture record (no "format": {RECORD_FORMAT!r})')
    if record.get("version") != RECORD_VERSION:
        raise SpeciesganError(
            f"picture record version {record.get('version')!r} is not supported "
            f"(this speciesgan reads version {RECORD_VERSION})"
        )
    if record.get("weights", "ema") not in ("ema", "raw"):
        raise SpeciesganError(f"record weights must be 'ema' or 'raw', not {record['weights']!r}")
    if record.get("image_size") != image_size:
        raise SpeciesganError(
            f"the record is a {record.get('image_size')!r} px picture; the generator draws "
            f"{image_size} px"
        )
    entries = record.get("species")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_MIX:
        raise SpeciesganError(f"record species: a list of 1 to {MAX_MIX} entries")
    ids = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise SpeciesganError(f"record species entry {entry!r} is not an object")
        species_id = _int(entry.get("id"), "species id", 0, len(species) - 1)
        if entry.get("name") != species[species_id]:
            raise SpeciesganError(
                f"record species {species_id} is {entry.get('name')!r}, "
                f"but the generator's species {species_id} is {species[species_id]!r}"
            )
        ids.append(species_id)
    mix = check_mix([entry.get("weight") for entry in entries])
    count = _int(record.get("count"), "count", 1, MAX_COUNT)
    step = record.get("step")
    step_seed, step_size = None, 0.0
    if step is not None:
        if not isinstance(step, Mapping):
            raise SpeciesganError(f"record step must be null or an object, not {step!r}")
        step_seed = _int(step.get("seed"), "step seed", 0, MAX_SEED)
        step_size = _float(step.get("size"), "step size")
        if not 0.0 <= step_size <= MAX_STEP:
            raise SpeciesganError(f"step size must be between 0 and {MAX_STEP}, not {step_size}")
    picture = Picture(
        species_ids=tuple(ids),
        mix=mix,
        seed=_int(record.get("seed"), "seed", 0, MAX_SEED),
        count=count,
        index=_int(record.get("index"), "index", 0, count - 1),
        step_seed=step_seed,
        step_size=step_size,
    )
    sha = record.get("generator_sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise SpeciesganError(f"record generator_sha256 is not a SHA-256 hex digest: {sha!r}")
    weights = record.get("weights", "ema")
    return picture, make_record(picture, species, sha, image_size, weights)


def picture_name(record: Mapping[str, Any]) -> str:
    """File name (no suffix) of a record's picture: species, mix, seed, index, step."""
    entries = record["species"]
    if len(entries) == 1:
        name = slugify(entries[0]["name"])
    else:
        name = "-x-".join(f"{slugify(e['name'])}-{e['weight']:.3g}" for e in entries)
    name += f"-seed{record['seed']}-{record['index']}of{record['count']}"
    step = record.get("step")
    if step is not None:
        name += f"-step{step['seed']}x{step['size']:g}"
    return re.sub(r"[^a-z0-9.-]+", "-", name)[:200]


def picture_png(pixels: np.ndarray, record: Mapping[str, Any]) -> bytes:
    """PNG bytes of ``pixels`` with the record in a text chunk (deterministic)."""
    info = PngInfo()
    info.add_text(PNG_TEXT_KEY, record_text(record))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def sidecar_json(record: Mapping[str, Any]) -> bytes:
    """The sidecar ``.json`` of a picture: the record, indented for people."""
    return (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def read_record(path: Path) -> dict[str, Any]:
    """The record in a sidecar ``.json`` or in a studio PNG's metadata."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            with Image.open(path) as image:
                text = image.text.get(PNG_TEXT_KEY)  # type: ignore[attr-defined]
            if text is None:
                raise SpeciesganError(f"{path}: this PNG carries no speciesgan picture record")
        else:
            text = path.read_text(encoding="utf-8")
        record = json.loads(text)
    except FileNotFoundError as exc:
        raise SpeciesganError(f"picture record not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise SpeciesganError(f"{path}: not a readable picture record ({exc})") from exc
    if not isinstance(record, dict):
        raise SpeciesganError(f"{path}: a picture record is a JSON object")
    return record


def generate_from_record(generator_path: Path, record_path: Path, out: Path) -> list[Path]:
    """``speciesgan generate --from``: the picture of a record, as the studio drew it.

    ``out`` is a folder (``<name>.png`` and ``<name>.json`` go into it) or a ``.png``
    file (its sidecar gets the same name with ``.json``).  Refuses a generator whose
    content hash differs from the record's: other weights would give other pixels.
    """
    from speciesgan.gan.networks import load_generator

    record = read_record(record_path)
    wanted = record.get("generator_sha256")
    have = file_sha256(generator_path) if Path(generator_path).is_file() else None
    if have is not None and wanted != have:
        raise SpeciesganError(
            f"{record_path} was drawn by generator sha256 {str(wanted)[:16]}..., but "
            f"{generator_path} has sha256 {have[:16]}...: use the generator that made it"
        )
    generator, meta = load_generator(generator_path, "cpu", weights=record.get("weights", "ema"))
    picture, record = picture_from_record(record, list(meta["species"]), int(meta["image_size"]))
    renderer = Renderer(generator, workers=1)
    try:
        (pixels,) = renderer.render([picture])
    finally:
        renderer.close()
    out = Path(out)
    if out.suffix.lower() == ".png":
        png_path = out
    else:
        if out.exists() and not out.is_dir():
            raise SpeciesganError(f"--out {out} exists and is not a folder")
        png_path = out / f"{picture_name(record)}.png"
    json_path = png_path.with_suffix(".json")
    for path, data in ((png_path, picture_png(pixels, record)), (json_path, sidecar_json(record))):
        with atomic_open(path) as fh:
            fh.write(data)
    return [png_path, json_path]
