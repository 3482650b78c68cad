"""``speciesgan ablation-table``: one row per GAN variant, from its evaluation file.

The rows say what each variant changed (model, EMA, DiffAugment, classifier
term), what it cost (wall and CPU seconds of the training run it came from,
summed over every job segment: ``training_time.json``, see ``gan.segments``;
Snakemake's benchmark file would hold the last segment only) and how it scored,
with the same metric settings and evaluation classifier as the main model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from speciesgan.util.atomic import write_json
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

NOTE = (
    "Every variant trains on the same crops with the same seed and is scored with the "
    "same evaluation classifier (never used in any GAN's loss) and the same metric "
    "settings.  'train s' and 'train CPU s' are the wall and CPU time of the training "
    "run that produced it, summed over all its job segments (CPU time is the steadier "
    "budget on a shared machine); "
    "variants that differ only in EMA share one training run."
)


def train_seconds(timing: Path, key: str = "wall_seconds") -> float | None:
    """A run's training seconds (``wall_seconds`` or ``cpu_seconds``) from its ``training_time.json``.

    CPU seconds are the fairer budget on a shared machine: a neighbour's job
    stretches wall time far more than the CPU time a run consumes.  A missing or
    unreadable file (a run trained before the file existed) leaves the cell blank.
    """
    try:
        value = json.loads(Path(timing).read_text())[key]
        return float(value)
    except FileNotFoundError:
        log.warning("%s: not found; training time left blank", timing)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("%s: no %r value; training time left blank", timing, key)
    return None


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SpeciesganError(f"ablation: evaluation file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise SpeciesganError(f"ablation: {path} is not valid JSON ({exc})") from exc


def ablation_row(variant: dict[str, Any]) -> dict[str, Any]:
    """One table row from a variant spec (see ``rules/ablation.smk``) and its metrics file."""
    gan = variant["gan"]
    metrics = _read_metrics(Path(variant["metrics"]))
    uses_ema = variant.get("weights", "ema") == "ema" and float(gan.get("ema_decay", 0)) > 0
    return {
        "variant": variant["name"],
        "description": variant.get("description", ""),
        "model": gan.get("model"),
        "ema": "yes" if uses_ema else "no",
        "diffaugment": gan.get("diffaugment") or "off",
        "classifier_loss_weight": gan.get("classifier_loss_weight"),
        "steps": gan.get("steps"),
        "train_seconds": train_seconds(Path(variant["train_time"])),
        "train_cpu_seconds": train_seconds(Path(variant["train_time"]), "cpu_seconds"),
        "fid": metrics.get("fid"),
        "inception_score": (metrics.get("inception_score") or {}).get("mean"),
        "kid": (metrics.get("kid") or {}).get("mean"),
        "accuracy_mean": metrics.get("accuracy_mean"),
        "chance": metrics.get("chance"),
    }


def write_ablation_table(spec: list[dict[str, Any]], out: Path) -> None:
    """Write ``table.json``: the rows in config order and the note on how they compare."""
    if not spec:
        raise SpeciesganError("ablation: no variants given (ablation.variants is empty)")
    write_json(out, {"rows": [ablation_row(variant) for variant in spec], "note": NOTE})
