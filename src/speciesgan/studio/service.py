"""The studio's model side, free of HTTP: species search, request checking, pictures, ZIPs.

:class:`Studio` loads the generator once (``weights_only`` loading, see
``gan.networks._read``) and draws every picture through :class:`speciesgan.generate.pictures.Renderer`,
the same path ``speciesgan generate --from`` takes.  Requests are plain dicts (parsed
JSON); every field is checked here, so the web layer only maps :class:`StudioError`
to a status code.  Nothing here takes a file path from a request: species come by name
or number, downloads are built in memory.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import logging
import math
import os
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speciesgan.generate.pictures import (
    MAX_MIX,
    MAX_SEED,
    MAX_STEP,
    Picture,
    Renderer,
    check_mix,
    file_sha256,
    make_record,
    picture_from_record,
    picture_name,
    picture_png,
    record_text,
    sidecar_json,
)
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

MAX_PICTURES = 64
DEFAULT_PICTURES = 16
DEFAULT_STEP = 0.5
MAX_SUGGESTIONS = 12
CACHE_SIZE = 1024
REQUEST_FIELDS = {"species", "mix", "seed", "n", "around", "step"}
AROUND_FIELDS = {"seed", "count", "index"}


class StudioError(Exception):
    """A request the studio refuses: an HTTP status, a message, and optional extras."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def payload(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


@dataclass(frozen=True)
class GeneratorSource:
    """Where the generator and (optionally) the run's ``metrics.json`` are."""

    generator: Path
    metrics: Path | None
    metrics_given: bool


def resolve_source(path: Path, metrics: Path | None = None) -> GeneratorSource:
    """``--generator`` may be ``generator.pt``, a run's results folder, or a DVC-pulled copy.

    A folder means ``<dir>/gan/generator.pt`` (or ``<dir>/generator.pt``) and its
    ``<dir>/metrics.json``; for a file, ``metrics.json`` of the run it sits in
    (``<run>/gan/generator.pt`` -> ``<run>/metrics.json``) is used when present.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / "gan" / "generator.pt", path / "generator.pt"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise SpeciesganError(
                f"{path} is a folder without gan/generator.pt or generator.pt: "
                "give a generator file or a run's results folder"
            )
        guess = path / "metrics.json"
        path = found
    else:
        guess = path.parent.parent / "metrics.json" if path.parent.name == "gan" else None
    if metrics is not None:
        return GeneratorSource(path, Path(metrics), True)
    return GeneratorSource(path, guess if guess is not None and guess.is_file() else None, False)


def _one_line(message: str, path: Path) -> str:
    """A loading error on one line; torch's long weights_only refusal becomes a short one."""
    if "Weights only load failed" in message:
        return (
            f"{path}: not a readable generator checkpoint (it holds Python objects, not plain "
            "data; refused without running them: weights_only loading)"
        )
    first, _, rest = message.partition("\n")
    return first + (" ..." if rest.strip() else "")


def _squash(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _looks_like_path(text: str) -> bool:
    return any(mark in text for mark in ("/", "\\", "\x00")) or text.strip() in (".", "..", "~")


def _int_field(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudioError(400, f"{what} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise StudioError(400, f"{what} must be between {low} and {high}, not {value}")
    return value


def read_metrics(path: Path | None, required: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The run's ``metrics.json`` and a note when it could not be read."""
    if path is None:
        return None, "no metrics.json given or found beside the generator"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        if required:
            raise SpeciesganError(f"--metrics {path}: not a readable metrics.json ({exc})") from exc
        return None, f"{path.name} beside the generator is unreadable ({exc})"
    return data, None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def metrics_panel(metrics: Mapping[str, Any] | None, note: str | None) -> dict[str, Any]:
    """Headline figures and the worst-drawn species, for the "what to expect" panel.

    Floors (the value a model with no skill would reach) are shown when the run
    computed them (``generation.floors``); generated accuracy's floor is chance.
    """
    if metrics is None:
        return {"available": False, "note": note, "headline": [], "worst": []}
    generation = metrics.get("generation") or {}
    fidelity = generation.get("fidelity_diversity") or {}
    floors = generation.get("floors") or {}
    space = fidelity.get("space") or "?"
    rows = [
        ("generated accuracy (eval classifier top-1, mean)", generation.get("accuracy_mean"),
         generation.get("chance"), "chance", "higher is better"),
        ("FD-Lite0", generation.get("fd_lite0"), floors.get("fd_lite0"), None, "lower is better"),
        (f"recall ({space} features)", fidelity.get("recall"), floors.get("recall"), None,
         "higher is better"),
        (f"coverage ({space} features)", fidelity.get("coverage"), floors.get("coverage"), None,
         "higher is better"),
    ]  # fmt: skip
    headline = [
        {
            "name": name,
            "value": _number(value),
            "floor": _number(floor),
            "floor_note": floor_name if _number(floor) is not None else "floor not computed",
            "direction": direction,
        }
        for name, value, floor, floor_name, direction in rows
    ]
    per_species = generation.get("accuracy_per_species") or {}
    ranked = sorted(
        ((name, _number(v)) for name, v in per_species.items() if _number(v) is not None),
        key=lambda item: (item[1], item[0]),
    )
    worst = [{"species": name, "accuracy": value} for name, value in ranked[:5]]
    return {"available": True, "note": note, "headline": headline, "worst": worst}


def categories_from(metrics: Mapping[str, Any] | None, species: Sequence[str]) -> list[str | None]:
    """Each species' category (dog, bird, ...) from the run's dataset summary, when present."""
    table = ((metrics or {}).get("dataset") or {}).get("species") or {}
    out: list[str | None] = []
    for name in species:
        entry = table.get(name)
        category = entry.get("category") if isinstance(entry, Mapping) else None
        out.append(str(category) if category is not None else None)
    return out


class Studio:
    """The loaded generator and everything the page asks of it (thread-safe)."""

    def __init__(self, source: GeneratorSource, workers: int | None = None) -> None:
        from speciesgan.gan.networks import load_generator

        self.source = source
        path = source.generator
        if not path.is_file():
            hint = (
                " (a published run's files come back with: speciesgan restore)"
                if Path("dvc.yaml").is_file()
                else ""
            )
            raise SpeciesganError(f"generator file not found: {path}{hint}")
        try:
            with warnings.catch_warnings():  # torch's pickle-protocol notes: the error says it
                warnings.simplefilter("ignore")
                generator, meta = load_generator(path, "cpu")
        except SpeciesganError as exc:
            raise SpeciesganError(_one_line(str(exc), path)) from exc
        except Exception as exc:  # a foreign torch file (a bare tensor, a list): say so
            raise SpeciesganError(f"{path}: not a speciesgan generator ({exc})") from exc
        self.sha256 = file_sha256(path)
        self.species: list[str] = [str(name) for name in meta["species"]]
        self.image_size = int(meta["image_size"])
        self.z_dim = int(meta["z_dim"])
        metrics, note = read_metrics(source.metrics, source.metrics_given)
        self.categories = categories_from(metrics, self.species)
        self.panel = metrics_panel(metrics, note)
        self._squashed = [_squash(name) for name in self.species]
        self.renderer = Renderer(generator, workers or min(2, os.cpu_count() or 1))
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_lock = threading.Lock()

    def close(self) -> None:
        self.renderer.close()

    # ------------------------------------------------------------ species
    def _entry(self, species_id: int) -> dict[str, Any]:
        return {
            "id": species_id,
            "name": self.species[species_id],
            "category": self.categories[species_id],
        }

    def info(self) -> dict[str, Any]:
        return {
            "generator": self.source.generator.name,
            "generator_sha256": self.sha256,
            "image_size": self.image_size,
            "species_count": len(self.species),
            "max_pictures": MAX_PICTURES,
            "default_pictures": DEFAULT_PICTURES,
            "max_mix": MAX_MIX,
            "default_step": DEFAULT_STEP,
            "metrics": self.panel,
        }

    def search(self, query: str, limit: int = MAX_SUGGESTIONS) -> list[dict[str, Any]]:
        """Species matching ``query`` as typed so far: case-insensitive, forgiving of typos.

        Whole-name and word prefixes rank first, then substrings, then names whose
        start is close to the query (typos), then close matches of the whole name.
        """
        wanted = _squash(query)
        if not wanted:
            order = sorted(range(len(self.species)), key=lambda i: self.species[i].casefold())
            return [self._entry(i) for i in order[:limit]]
        words = query.casefold().split()
        scored: list[tuple[float, str, int]] = []
        for species_id, (name, squashed) in enumerate(
            zip(self.species, self._squashed, strict=True)
        ):
            name_words = [_squash(word) for word in name.replace("_", " ").split()]
            if squashed.startswith(wanted):
                score = 0.0
            elif any(word.startswith(wanted) for word in name_words):
                score = 1.0
            elif words and all(_squash(w) in squashed for w in words):
                score = 2.0
            else:
                ratio = max(
                    difflib.SequenceMatcher(None, wanted, squashed[: len(wanted)]).ratio(),
                    difflib.SequenceMatcher(None, wanted, squashed).ratio(),
                )
                if len(wanted) < 3 or ratio < 0.7:
                    continue
                score = 4.0 - ratio
            scored.append((score, name.casefold(), species_id))
        scored.sort()
        return [self._entry(species_id) for _, _, species_id in scored[:limit]]

    def resolve(self, value: Any) -> int:
        """A species id from a name (matched as ``generate`` does) or a number."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise StudioError(400, f"species must be a name or a number, not {value!r}")
        if isinstance(value, int):
            if not 0 <= value < len(self.species):
                raise StudioError(
                    404,
                    f"no species number {value} (the generator has {len(self.species)}: "
                    f"0..{len(self.species) - 1})",
                    suggestions=[],
                )
            return value
        if value in self.species:
            return self.species.index(value)
        if _looks_like_path(value):
            raise StudioError(
                400, f"species {value!r} looks like a file path: give a species name or number"
            )
        from speciesgan.generate.sample import resolve_species

        try:
            return resolve_species(value, self.species)
        except SpeciesganError as exc:
            status = 400 if "ambiguous" in str(exc) or "cannot tell" in str(exc) else 404
            suggestions = [entry["name"] for entry in self.search(value, limit=5)]
            raise StudioError(status, str(exc), suggestions=suggestions) from exc

    # ------------------------------------------------------------ requests
    def plan(self, request: Any) -> tuple[list[Picture], list[str]]:
        """The pictures a request asks for, and messages about what was adjusted.

        Fields: ``species`` (a name or number, or a list of 1-3), ``mix`` (their
        weights, 0..1, summing to 1; default equal), ``seed``, ``n`` (1..64; other
        values are capped with a message), ``around`` ({seed, count, index} of a
        picture: "more like this") and ``step`` (how far from it, 0..4).
        """
        if not isinstance(request, Mapping):
            raise StudioError(400, "the request must be a JSON object")
        unknown = sorted(set(request) - REQUEST_FIELDS)
        if unknown:
            raise StudioError(
                400, f"unknown field(s) {unknown}; the fields are {sorted(REQUEST_FIELDS)}"
            )
        named = request.get("species")
        named = named if isinstance(named, list) else [named]
        if named == [None]:
            raise StudioError(400, "species is missing: give a species name or number")
        if not 1 <= len(named) <= MAX_MIX:
            raise StudioError(400, f"species: give 1 to {MAX_MIX} species, not {len(named)}")
        ids = tuple(self.resolve(value) for value in named)
        if len(set(ids)) != len(ids):
            raise StudioError(400, "species: the same species is named twice in the mix")
        raw_mix = request.get("mix")
        if raw_mix is None:
            mix = tuple(1.0 / len(ids) for _ in ids) if len(ids) > 1 else (1.0,)
        else:
            if not isinstance(raw_mix, list) or len(raw_mix) != len(ids):
                raise StudioError(400, f"mix: give one weight per species ({len(ids)})")
            try:
                mix = check_mix(raw_mix, "mix")
            except SpeciesganError as exc:
                raise StudioError(400, str(exc)) from exc
        seed = _int_field(request.get("seed", 0), "seed", 0, MAX_SEED)
        messages = []
        n = request.get("n", DEFAULT_PICTURES)
        if isinstance(n, bool) or not isinstance(n, int):
            raise StudioError(400, f"n must be a whole number of pictures, not {n!r}")
        if not 1 <= n <= MAX_PICTURES:
            capped = min(max(n, 1), MAX_PICTURES)
            messages.append(f"n={n} is out of range 1..{MAX_PICTURES}: drawing {capped}")
            n = capped
        around = request.get("around")
        if around is None:
            if "step" in request:
                raise StudioError(400, "step needs around (the picture to step around)")
            pictures = [Picture(ids, mix, seed, n, index) for index in range(n)]
            return pictures, messages
        if not isinstance(around, Mapping) or set(around) != AROUND_FIELDS:
            raise StudioError(400, f"around must be an object with exactly {sorted(AROUND_FIELDS)}")
        base_seed = _int_field(around["seed"], "around.seed", 0, MAX_SEED)
        count = _int_field(around["count"], "around.count", 1, MAX_PICTURES)
        index = _int_field(around["index"], "around.index", 0, count - 1)
        step = request.get("step", DEFAULT_STEP)
        if isinstance(step, bool) or not isinstance(step, int | float) or not math.isfinite(step):
            raise StudioError(400, f"step must be a number, not {step!r}")
        if not 0.0 < step <= MAX_STEP:
            raise StudioError(400, f"step must be above 0 and at most {MAX_STEP}, not {step}")
        pictures = [Picture(ids, mix, base_seed, count, index)]  # the picture itself first
        pictures += [
            Picture(ids, mix, base_seed, count, index, step_seed=(seed + j) % (MAX_SEED + 1),
                    step_size=float(step))
            for j in range(1, n)
        ]  # fmt: skip
        return pictures, messages

    def record(self, picture: Picture) -> dict[str, Any]:
        return make_record(picture, self.species, self.sha256, self.image_size)

    def pngs(self, pictures: Sequence[Picture]) -> list[bytes]:
        """PNG bytes (record in the metadata) of each picture, from the cache when drawn before."""
        records = [self.record(p) for p in pictures]
        keys = [record_text(r) for r in records]
        found: dict[int, bytes] = {}
        with self._cache_lock:
            for i, key in enumerate(keys):
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[i] = self._cache[key]
        missing = [i for i in range(len(pictures)) if i not in found]
        futures = {i: self.renderer.submit(pictures[i]) for i in missing}
        for i, future in futures.items():
            found[i] = picture_png(future.result(), records[i])
        with self._cache_lock:
            for i in missing:
                self._cache[keys[i]] = found[i]
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return [found[i] for i in range(len(pictures))]

    def pictures(self, request: Any) -> dict[str, Any]:
        """The response to a picture request: PNGs (base64) with their records and names."""
        pictures, messages = self.plan(request)
        out = []
        for picture, png in zip(pictures, self.pngs(pictures), strict=True):
            record = self.record(picture)
            out.append(
                {
                    "name": picture_name(record),
                    "png": base64.b64encode(png).decode("ascii"),
                    "record": record,
                }
            )
        return {"pictures": out, "messages": messages, "n": len(out)}

    def zip_archive(self, request: Any) -> bytes:
        """A ZIP of PNG + sidecar JSON for each record in ``{"records": [...]}`` (in memory)."""
        if not isinstance(request, Mapping) or set(request) != {"records"}:
            raise StudioError(400, 'the request must be {"records": [...]}')
        records = request["records"]
        if not isinstance(records, list) or not 1 <= len(records) <= MAX_PICTURES:
            raise StudioError(400, f"records: a list of 1 to {MAX_PICTURES} picture records")
        pictures = []
        for record in records:
            if isinstance(record, Mapping) and record.get("generator_sha256") != self.sha256:
                raise StudioError(400, "a record was drawn by another generator")
            try:
                pictures.append(picture_from_record(record, self.species, self.image_size)[0])
            except SpeciesganError as exc:
                raise StudioError(400, f"bad record: {exc}") from exc
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            seen: set[str] = set()
            for picture, png in zip(pictures, self.pngs(pictures), strict=True):
                record = self.record(picture)
                name = picture_name(record)
                if name in seen:
                    continue
                seen.add(name)
                archive.writestr(zipfile.ZipInfo(f"{name}.png", (2020, 1, 1, 0, 0, 0)), png)
                archive.writestr(
                    zipfile.ZipInfo(f"{name}.json", (2020, 1, 1, 0, 0, 0)), sidecar_json(record)
                )
        return buffer.getvalue()
