"""Site settings for the SLURM profile: account, partitions, QoS and constraints.

What a job needs (GPUs, memory, wall time) is the workflow's business and lives in
the rules; where a cluster wants it to run is the site's, and differs from one
cluster to the next.  Each user keeps those site answers in ``slurm/site.yaml``
(copied from ``slurm/site.yaml.example``, ignored by git), and the profile
``slurm/config.yaml`` -- a YTE template -- turns them into Snakemake's
``default-resources`` and ``set-resources`` through :func:`profile_resources`.
A misspelt key stops the run before anything is submitted, naming the key,
instead of sending every job to the cluster's default partition.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speciesgan.util.errors import SpeciesganError

SITE_FILE = Path("slurm") / "site.yaml"
"""Where the profile looks, relative to the directory Snakemake runs in (the repository
root, where ``--profile slurm`` finds ``./slurm/``)."""

SITE_ENV = "SPECIESGAN_SLURM_SITE"
"""Names another site file, for a profile installed outside the repository."""

GPU_RULES = (
    "train_classifier",
    "train_gan",
    "train_gan_variant",
    "real_features",
    "evaluate",
    "cas",
    "evaluate_variant",
    "sample",
)
"""The rules that request a GPU (``resources: gpu``); they go to the GPU partition.
tests/e2e/test_cluster_profile.py checks this list against the rules' resources."""

SECTION_KEYS = {
    "cpu": {"partition": "slurm_partition", "qos": "qos", "constraint": "constraint"},
    "gpu": {
        "partition": "slurm_partition",
        "qos": "qos",
        "constraint": "constraint",
        "model": "gpu_model",
    },
}
"""Site key -> SLURM executor plugin resource (sbatch -p, --qos, -C, --gpus=MODEL:N)."""

TIME_LIMIT_SIGNAL = "--signal=USR1@300"
"""The training rules' own sbatch flag (rules/*.smk): five minutes before the time
limit SLURM sends SIGUSR1 to the job step, and training checkpoints and stops."""

TRAINING_SLURM_EXTRA = f"{TIME_LIMIT_SIGNAL} --open-mode=append"
"""The training rules' sbatch flags: the time-limit signal, and a SLURM log that a
requeued job (the next segment, speciesgan.runtime.preemption) appends to instead of
truncating, so every segment's log is kept."""

PROJECT_SLURM_EXTRA = {
    "train_classifier": TRAINING_SLURM_EXTRA,
    "train_gan": TRAINING_SLURM_EXTRA,
    "train_gan_variant": TRAINING_SLURM_EXTRA,
}
"""Each rule's ``slurm_extra`` as the rules declare it.  A ``slurm_extra`` from the
site file is *added* to these (tests/e2e/test_cluster_profile.py checks them against
the dry run): Snakemake's set-resources replaces a rule's value, so a site value
given as it is would drop the time-limit signal, and the job would be killed at
its limit without a checkpoint."""

TOP_KEYS = ("account", "slurm_extra", "cpu", "gpu", "rules")

Scalar = str | int | float


@dataclass(frozen=True)
class ProfileResources:
    """What the profile passes to Snakemake, values already in its expression syntax."""

    default_resources: dict[str, Scalar] = field(default_factory=dict)
    set_resources: dict[str, dict[str, Scalar]] = field(default_factory=dict)


def site_path() -> Path:
    return Path(os.environ.get(SITE_ENV) or SITE_FILE)


def _problem(path: Path, key: str, what: str) -> SpeciesganError:
    return SpeciesganError(f"{path}: key {key}: {what}")


def _as_expression(value: Scalar) -> Scalar:
    """Snakemake evaluates profile resource strings as Python: quote strings, so that a
    partition called ``max`` or ``gpu-a100`` stays the string it is."""
    return repr(value) if isinstance(value, str) else value


def _scalar(path: Path, key: str, value: Any) -> Scalar | None:
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        if isinstance(value, str) and not value.strip():
            raise _problem(path, key, "empty; write null (or leave the key out) for none")
        return value
    raise _problem(path, key, f"{value!r} is not a string or number")


def _mapping(path: Path, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _problem(path, key, f"expected a mapping, got {value!r}")
    return value


def _section(path: Path, name: str, raw: Any) -> dict[str, Scalar]:
    """One of ``cpu``/``gpu`` as plugin resources; null values are left out."""
    known = SECTION_KEYS[name]
    out: dict[str, Scalar] = {}
    for key, value in _mapping(path, name, raw).items():
        if key not in known:
            raise _problem(path, f"{name}.{key}", f"unknown (known: {', '.join(known)})")
        checked = _scalar(path, f"{name}.{key}", value)
        if checked is not None:
            out[known[key]] = _as_expression(checked)
    return out


def _rules(path: Path, raw: Any) -> dict[str, dict[str, Scalar]]:
    out: dict[str, dict[str, Scalar]] = {}
    for rule, resources in _mapping(path, "rules", raw).items():
        values = _mapping(path, f"rules.{rule}", resources)
        out[str(rule)] = {
            str(name): _as_expression(checked)
            for name, value in values.items()
            if (checked := _scalar(path, f"rules.{rule}.{name}", value)) is not None
        }
    return out


def _options(flags: str) -> list[tuple[str, list[str]]]:
    """``--a=1 -b 2 --c`` -> [("--a", ["--a=1"]), ("-b", ["-b", "2"]), ("--c", ["--c"])]."""
    options: list[tuple[str, list[str]]] = []
    for word in shlex.split(flags):
        if word.startswith("-") or not options:
            options.append((word.split("=", 1)[0], [word]))
        else:  # the value of the option before it
            options[-1][1].append(word)
    return options


def merge_slurm_extra(*parts: str | None) -> str:
    """sbatch flags of several sources, in order, a later option replacing one of the same
    name (a site's own ``--signal=USR1@600`` replaces the rule's, anything else adds)."""
    merged: dict[str, list[str]] = {}
    for part in parts:
        for name, words in _options(part or ""):
            merged.pop(name, None)
            merged[name] = words
    return shlex.join(word for words in merged.values() for word in words)


def parse_site(data: Any, path: Path = SITE_FILE) -> ProfileResources:
    """Site settings (the parsed YAML) -> Snakemake resources.

    ``cpu`` values become every job's defaults; ``gpu`` values are set on the GPU
    rules, so a GPU value left out falls back to the ``cpu`` one (one partition for
    both is common).  ``rules`` sets any resource of a named rule, after the rest,
    except ``slurm_extra``, which is merged (:func:`merge_slurm_extra`): the rule's
    own flags, then the top-level ``slurm_extra`` (every job), then the rule's.
    Every value may be null or missing: an unchanged template gives no resources.
    """
    data = _mapping(path, "<top level>", data)
    for key in data:
        if key not in TOP_KEYS:
            raise _problem(path, str(key), f"unknown (known: {', '.join(TOP_KEYS)})")
    defaults = _section(path, "cpu", data.get("cpu"))
    account = _scalar(path, "account", data.get("account"))
    if account is not None:
        defaults["slurm_account"] = _as_expression(account)
    extra = _scalar(path, "slurm_extra", data.get("slurm_extra"))
    if extra is not None:
        defaults["slurm_extra"] = _as_expression(str(extra))
    gpu = _section(path, "gpu", data.get("gpu"))
    per_rule: dict[str, dict[str, Scalar]] = {rule: dict(gpu) for rule in GPU_RULES if gpu}
    site_rules = _rules(path, data.get("rules"))
    for rule, resources in site_rules.items():
        per_rule.setdefault(rule, {}).update(resources)
    # slurm_extra adds up: the rule's own flags, the cluster-wide ones, the rule's site ones
    raw_rules = _mapping(path, "rules", data.get("rules"))
    for rule in sorted(set(PROJECT_SLURM_EXTRA) | set(site_rules)):
        own = _mapping(path, f"rules.{rule}", raw_rules.get(rule)).get("slurm_extra")
        own = None if own is None else str(own)
        if extra is None and own is None:
            continue
        flags = merge_slurm_extra(
            PROJECT_SLURM_EXTRA.get(rule), None if extra is None else str(extra), own
        )
        per_rule.setdefault(rule, {})["slurm_extra"] = _as_expression(flags)
    return ProfileResources(defaults, {rule: res for rule, res in per_rule.items() if res})


def profile_resources(path: Path | None = None) -> ProfileResources:
    """Read the site file for the profile; a missing file says how to make one."""
    path = Path(path) if path is not None else site_path()
    if not path.is_file():
        named_by = f" (named by ${SITE_ENV})" if os.environ.get(SITE_ENV) else ""
        raise SpeciesganError(
            f"{path}{named_by} not found: copy slurm/site.yaml.example to slurm/site.yaml and "
            "fill in your cluster's account and partitions (docs/cluster.md, 'Running on a SLURM "
            "cluster')"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpeciesganError(f"{path}: not valid YAML: {exc}") from None
    return parse_site(data, path)
