"""Load and validate the run configuration.

The same schema is used by the Snakefile (at start, before any job) and by the
command-line tool, so a bad value is caught once, with a message that names the
key path (``gan.steps``) rather than a jsonschema dump.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from speciesgan.data import sources
from speciesgan.data.sources import DEMO_DETECTIONS, demo_url
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.schema_defaults import raw_schema, schema_defaults

DIFFAUGMENT_OPS = ("color", "translation", "cutout")
"""DiffAugment op names (``speciesgan.gan.augment.OPS``; a test keeps them equal).
Repeated here because importing the GAN package would load torch in every
Snakemake start."""

STAGE_DEFAULT = "x-stage-default"
"""Schema keyword of a default that the stage applies but validation does not write
into the config (settings added after runs existed: their params stay as they were)."""


REGISTRY_KEY = "x-registry"
"""Schema keyword of a list of names that a registry holds (the dataset formats): the
schema names the list and ``load_schema`` fills in its ``enum``, so a new source is
allowed without an edit here."""


def registered_names(which: str) -> list[str]:
    """The names an ``x-registry`` schema entry allows, from the registry they live in."""
    found = sources.registered()
    names = {
        "dataset formats": sources.formats,
        "local formats": lambda: [name for name, s in found.items() if s.local],
        "detection formats": lambda: [name for name, s in found.items() if s.detections],
    }
    return names[which]()


def load_schema() -> dict[str, Any]:
    """The config schema with every ``x-registry`` list filled in (a fresh copy: callers
    may change theirs)."""
    schema = copy.deepcopy(raw_schema())

    def fill(node: Any) -> None:
        if isinstance(node, dict):
            if REGISTRY_KEY in node:
                node["enum"] = registered_names(node[REGISTRY_KEY])
            for value in node.values():
                fill(value)
        elif isinstance(node, list):
            for value in node:
                fill(value)

    fill(schema)
    return schema


def section_defaults(section: str) -> dict[str, Any]:
    """The schema's default of every setting of config section ``section`` that has one.

    The one source of defaults: each stage fills the settings its caller left out
    from here (its ``resolve_settings``), never from values of its own.  Includes
    the ``x-stage-default`` ones, which validation leaves out of the config.  Read
    by ``speciesgan.util.schema_defaults``, which the data stages (below this layer)
    ask directly.
    """
    return schema_defaults(section)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            parts.append(extra[0])
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        parts.append(missing)
    return ".".join(parts) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        return (
            f"config key {key!s}: unknown key (check the spelling; see the schema for allowed keys)"
        )
    if error.validator == "required":
        return f"config key {key}: required but missing"
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"config key {key}: {error.instance!r} is not one of {allowed}"
    if error.validator == "type":
        return f"config key {key}: {error.instance!r} is not of type {error.validator_value}"
    return f"config key {key}: {error.message}"


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Every integer setting must fit a signed 64-bit integer: torch, numpy and parquet
store them so, and a larger one fails deep inside a stage instead of at load."""

MAX_CONFIG_NODES = 100_000
"""Values (mappings, lists, scalars) a config may expand to.  A real config has a
few hundred; YAML aliases can make a few lines expand to billions ("billion
laughs"), which would exhaust memory when the config is copied or printed."""


def _key_name(parts: Sequence[str | int]) -> str:
    """``gan.lr_g`` or ``use_datasets[0]``: the key path as the messages write it."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


def config_size_problem(data: Any, source: str) -> str | None:
    """A message when ``data`` expands to more than ``MAX_CONFIG_NODES`` values, else None.

    Counted over the object graph with each shared value counted once per place it
    appears (as a copy would), memoised by identity so an alias bomb costs no more
    to measure than to parse.
    """
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_CONFIG_NODES + 1  # a cycle counts as too big
        if isinstance(node, dict):
            total = 1 + sum(size(k) + size(v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            total = 1 + sum(size(v) for v in node)
        else:
            total = 1
        sizes[id(node)] = min(total, MAX_CONFIG_NODES + 1)
        return sizes[id(node)]

    if size(data) > MAX_CONFIG_NODES:
        return (
            f"{source}: expands to more than {MAX_CONFIG_NODES:,} values (YAML aliases "
            "repeated inside each other?); write the settings out instead"
        )
    return None


def number_problems(config: Any) -> dict[str, str]:
    """Non-finite floats and integers beyond 64 bits anywhere in ``config``.

    JSON Schema's ``number`` admits NaN and infinity and its ``integer`` has no
    size, so these are checked for every key, whatever its schema says.  Returns
    the message for each offending key, by its dotted path (as ``_key_path``).
    """
    found: dict[str, str] = {}

    def visit(node: Any, parts: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, (*parts, str(key)))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, (*parts, i))
        elif isinstance(node, float) and not math.isfinite(node):
            found[".".join(map(str, parts))] = (
                f"config key {_key_name(parts)}: {node!r} is not a finite number"
            )
        elif (
            isinstance(node, int)
            and not isinstance(node, bool)
            and not INT64_MIN <= node <= INT64_MAX
        ):
            found[".".join(map(str, parts))] = (
                f"config key {_key_name(parts)}: {node} does not fit in a 64-bit integer "
                f"({INT64_MIN} to {INT64_MAX})"
            )

    visit(config, ())
    return found


def _fill_defaults(schema: dict[str, Any], data: Any) -> None:
    """Fill ``default`` values of object properties in place (jsonschema does not)."""
    if not isinstance(data, dict) or schema.get("type") not in ("object", None):
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in data and "default" in sub and not sub.get(STAGE_DEFAULT):
            data[name] = copy.deepcopy(sub["default"])
        if name in data:
            _fill_defaults(sub, data[name])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in data.items():
            if name not in schema.get("properties", {}):
                _fill_defaults(extra, value)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled in.

    Raises SpeciesganError naming every offending key.
    """
    too_big = config_size_problem(config, "configuration")
    if too_big:
        raise SpeciesganError(too_big)
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    # a number check's message is the useful one: the schema may also complain of
    # inf (e.g. "inf is greater than the maximum"), so those keys are reported once
    bad_numbers = number_problems(config)
    lines = [f"  - {message}" for message in bad_numbers.values()]
    lines += [f"  - {_describe(e)}" for e in errors if _key_path(e) not in bad_numbers]
    if lines:
        raise SpeciesganError("invalid configuration:\n" + "\n".join(lines))
    result = copy.deepcopy(config)
    _fill_defaults(schema, result)
    _fill_demo_detections(result)
    problems = [
        f"  - config key use_datasets[{i}]: unknown dataset {name!r} "
        f"(defined in datasets: {', '.join(sorted(result['datasets']))})"
        for i, name in enumerate(result["use_datasets"])
        if name not in result["datasets"]
    ]
    problems += _variant_problems(schema, result)
    problems += _archive_problems(result)
    problems += _detections_problems(result)
    problems += _gan_problems("gan", result["gan"])
    gpus = result["gan"]["gpus"]
    batch = result["gan"]["batch_size"]
    if batch % gpus:
        problems.append(
            f"  - config key gan.gpus: {gpus} GPUs do not divide gan.batch_size {batch} "
            "(each GPU trains on an equal share of the batch)"
        )
    if problems:
        raise SpeciesganError("invalid configuration:\n" + "\n".join(problems))
    return result


def demo_key(config: dict[str, Any], name: str) -> str | None:
    """The key of dataset ``name``'s demo files: the run's, None for real data.

    Demo archives depend on the seed and the ``demo`` settings, so runs of other
    configs must not share them: they live under a folder keyed by the run (its
    ``results_dir``), and so does their downloaded copy.  Keyed by the run rather
    than by the settings so that a changed seed reruns the run's own demo stage in
    place, which is what DVC's fixed stage paths (``dvc exp run -S seed=1``) need.
    """
    if not config["datasets"][name]["format"].startswith("demo_"):
        return None
    return run_key(config["results_dir"])


def run_key(results_dir: str) -> str:
    """``demo-1a2b3c4d`` for ``results/demo``: the folder's name (for people) and a hash
    of the whole path (so ``a/demo`` and ``b/demo`` differ)."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", Path(results_dir).name).strip("_") or "run"
    digest = hashlib.sha256(results_dir.rstrip("/").encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def demo_key_pattern() -> str:
    """Regular expression of a demo key (Snakemake wildcard constraint)."""
    return "[A-Za-z0-9_]+-[0-9a-f]{8}"


def _fill_demo_detections(config: dict[str, Any]) -> None:
    """A demo_iwildcam dataset's detections are the file its demo rule writes, fetched
    through the download rule like a real detections URL (so that path is what runs)."""
    for name, spec in config["datasets"].items():
        if spec["format"] == "demo_iwildcam":
            key = demo_key(config, name)
            assert key is not None
            spec.setdefault("detections", demo_url(name, DEMO_DETECTIONS, key))


def _variant_problems(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Each ablation variant's gan settings (main settings + overrides) must be valid gan settings."""
    variants = (config.get("ablation") or {}).get("variants") or {}
    gan_schema = jsonschema.Draft202012Validator(schema["properties"]["gan"])
    problems = []
    for name, variant in variants.items():
        key = f"ablation.variants.{name}.gan"
        if "gpus" in variant.get("gan", {}):
            problems.append(
                f"  - config key {key}.gpus: variants train in one process on one GPU; "
                "remove it (gan.gpus sets the main model's GPUs)"
            )
        merged = {**config["gan"], **variant.get("gan", {})}
        errors = list(gan_schema.iter_errors(merged))
        for error in errors:
            described = _describe(error).removeprefix("config key ")
            problems.append(f"  - config key {key}.{described}")
        if not errors:
            problems += _gan_problems(key, merged)
    return problems


def _gan_problems(key: str, gan: dict[str, Any]) -> list[str]:
    """Checks of one gan section that the schema cannot express."""
    problems = []
    policy = gan.get("diffaugment", "")
    unknown = [op for op in policy.split(",") if op and op not in DIFFAUGMENT_OPS]
    if unknown:
        problems.append(
            f"  - config key {key}.diffaugment: unknown DiffAugment policy "
            f"{', '.join(repr(op) for op in unknown)} (known: {', '.join(DIFFAUGMENT_OPS)})"
        )
    model = gan.get("model", section_defaults("gan")["model"])
    if gan.get("colour_style") and model == "dcgan":
        problems.append(
            f"  - config key {key}.colour_style: the dcgan generator has no style layer; "
            "set it to false or use model resnet or projected"
        )
    if (gan.get("species_loss_weight") or 0) > 0 and model != "projected":
        problems.append(
            f"  - config key {key}.species_loss_weight: needs model projected (the "
            f"discriminator with a species head), got model {model!r}; set it to 0"
        )
    group, batch = gan.get("species_groups") or 0, gan.get("batch_size")
    if group > 1 and isinstance(batch, int) and batch % group:
        problems.append(
            f"  - config key {key}.species_groups: {group} does not divide "
            f"{key}.batch_size {batch} (each batch is runs of {group} images of one species)"
        )
    return problems


def _archive_problems(config: dict[str, Any]) -> list[str]:
    """``files`` may override only the archives the dataset's format consists of.

    The workflow looks the overrides up by the format's archive names, so an
    entry under any other name would be ignored and the official URL fetched
    unpinned instead.
    """
    problems = []
    for name, spec in sorted(config["datasets"].items()):
        fmt = spec["format"]
        source = sources.source(fmt)
        known = tuple(source.archives)
        for archive in spec.get("files", {}):
            if archive in known:
                continue
            if source.local:
                why = f"format {fmt} is read in place from `path` and has no archives"
            else:
                why = f"format {fmt} has no archive {archive!r} (its archives: {', '.join(known)})"
            problems.append(f"  - config key datasets.{name}.files.{archive}: {why}")
    return problems


DETECTION_KEYS = ("detections", "detections_sha256", "camera_trap")


def _detections_problems(config: dict[str, Any]) -> list[str]:
    """Detector settings belong to formats boxed by a detector (else they would be ignored)."""
    problems = []
    detection_formats = registered_names("detection formats")
    for name, spec in sorted(config["datasets"].items()):
        if sources.source(spec["format"]).detections:
            continue
        for key in DETECTION_KEYS:
            if key in spec:
                problems.append(
                    f"  - config key datasets.{name}.{key}: only for the formats "
                    f"{', '.join(sorted(detection_formats))} (format {spec['format']} has its "
                    "own boxes or none)"
                )
    return problems


BASE_CONFIG = Path("config.yaml")
"""The Snakefile's ``configfile:``, read from the workflow folder (the working directory)."""


def layer_config(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base`` as Snakemake layers a ``--configfile`` over ``configfile:``.

    Mappings merge key by key, recursively; any other value (a list such as
    ``use_datasets``, a scalar, null) replaces what was there.  Returns a new
    mapping and leaves both arguments alone.
    """
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict):
            below = result.get(key)
            result[key] = layer_config(below if isinstance(below, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def read_config_file(path: str | Path) -> dict[str, Any]:
    """One YAML config file as a mapping (not validated: it may be a partial overlay)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpeciesganError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise SpeciesganError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpeciesganError(f"config file {path} must hold a mapping of keys")
    too_big = config_size_problem(data, f"config file {path}")
    if too_big:
        raise SpeciesganError(too_big)
    return data


def load_config(
    paths: Sequence[str | Path], base: str | Path | None = BASE_CONFIG
) -> dict[str, Any]:
    """The validated configuration the workflow would run with for ``--configfile paths``.

    ``paths`` are layered in order over ``base`` (the workflow's ``config.yaml``),
    so an overlay such as ``configs/ablation.yaml`` is judged with the settings it
    completes; ``base=None`` checks the files by themselves.  Errors name the
    files and the key.
    """
    if base is not None and not Path(base).is_file():
        raise SpeciesganError(
            f"base config {base} not found in {Path.cwd()}: the workflow layers --configfile "
            "files over it; run in the workflow folder, give --base FILE, or check the "
            "files by themselves with --alone"
        )
    files = ([Path(base)] if base is not None else []) + [Path(p) for p in paths]
    config: dict[str, Any] = {}
    for path in files:
        config = layer_config(config, read_config_file(path))
    try:
        return validate_config(config)
    except SpeciesganError as exc:
        raise SpeciesganError(f"{' + '.join(map(str, files))}: {exc}") from None
