"""The headline figures of a run, numbers only, for ``dvc metrics show`` and ``dvc metrics diff``.

``metrics.json`` holds everything a stage measured -- per-species tables, curves
over training steps, notes in prose that say why a figure is missing -- and the
report, the studio and the benchmarks read it.  Given to DVC as a metric, that
file became one table of about 300 columns with lines of up to 6,645 characters.
So each stage that writes a ``metrics.json`` also writes ``headline.json`` beside
it: a few finite numbers under short names, which DVC shows as a table that fits
160 columns and diffs between runs.  Its figures are copies, never computed
here: the two files cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from speciesgan.util.atomic import write_json

HEADLINE_NAME = "headline.json"


def headline_path(metrics_path: str | Path) -> Path:
    """``.../metrics.json`` -> ``.../headline.json`` (the rules declare both)."""
    return Path(metrics_path).with_name(HEADLINE_NAME)


def _number(value: Any) -> float | None:
    """A finite number, the ``mean`` of a ``{mean, std}`` entry, or None (left out)."""
    if isinstance(value, Mapping):
        value = value.get("mean")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # five significant digits: what a comparison needs, and short table columns
    return float(f"{value:.5g}") if math.isfinite(value) else None


def _numbers(pairs: Mapping[str, Any]) -> dict[str, float]:
    return {key: number for key, value in pairs.items() if (number := _number(value)) is not None}


def evaluation_headline(result: Mapping[str, Any]) -> dict[str, float]:
    """FD-Lite0, precision, recall and coverage at equal counts, generated accuracy (mean,
    worst species; the judge's mean when its verdict counts), and FID/KID/IS/
    intra-class FID only when computed with the published Inception weights.  Few
    enough columns that ``dvc metrics show`` fits 160 characters; the rest is in
    ``metrics.json``."""
    fidelity = result.get("fidelity_diversity") or {}
    judge = result.get("judge") or {}
    placeholder = bool((result.get("inception_figures") or {}).get("placeholder"))
    inception = (
        {}
        if placeholder
        else {  # placeholder-weight figures are no headline
            "fid": result.get("fid"),
            "kid": result.get("kid"),
            "is": result.get("inception_score"),
            "intra_fid": result.get("intra_class_fid"),
        }
    )
    return _numbers(
        {
            **inception,
            "fd_lite0": fidelity.get("fd_lite0"),
            "acc": result.get("accuracy_mean"),
            "acc_min": result.get("accuracy_worst"),
            "judge": judge.get("mean") if judge.get("counts") else None,
            "fd_dinov2": result.get("fd_dinov2"),
            "precision": fidelity.get("precision"),
            "recall": fidelity.get("recall"),
            "coverage": fidelity.get("coverage"),
        }
    )


def cas_headline(result: Mapping[str, Any]) -> dict[str, float]:
    """CAS top-1, the cas stage's headline.  Its floor is the eval classifier's own test
    top-1, already the ``top1`` of that classifier's headline: ``dvc metrics show`` stays
    within 160 columns."""
    return _numbers({"cas_top1": result.get("top1")})


def classifier_headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Test top-1 and top-5 accuracy of a species classifier."""
    return _numbers({"top1": metrics.get("top1"), "top5": metrics.get("top5")})


def write_headline(metrics_path: str | Path, headline: Mapping[str, float]) -> Path:
    """Write ``headline.json`` beside ``metrics_path``; returns its path."""
    path = headline_path(metrics_path)
    write_json(path, dict(headline))
    return path


def headline_from_metrics_file(metrics_path: str | Path) -> Path:
    """Write ``headline.json`` for an existing ``metrics.json`` (a run made before the
    headline existed), so Snakemake does not retrain to make the new output: a
    classifier's has ``top1``, an evaluation's ``fid``."""
    import json

    from speciesgan.util.errors import DataError

    path = Path(metrics_path)
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable metrics.json ({exc})") from None
    if not isinstance(metrics, Mapping) or not ({"top1", "fid"} & set(metrics)):
        raise DataError(f"{path}: neither a classifier's (top1) nor an evaluation's (fid) metrics")
    headline = classifier_headline(metrics) if "top1" in metrics else evaluation_headline(metrics)
    return write_headline(path, headline)
