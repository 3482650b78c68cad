"""The report's "Long tail" numbers and figure: how skewed the data is, and what it costs.

Camera-trap data has a few species with thousands of crops and many with a
handful, and many of its frames are infrared.  A reader needs that picture
before reading any mean accuracy: the species counts (a sorted bar chart),
the infrared share, accuracy by frequency bin (head, middle, tail species) and,
when the manifest has crops from camera locations never trained on, ID beside
OOD figures.  This module gathers those from the run's files; ``report`` renders
them.  Nothing here needs a network or a pass over images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from speciesgan.data.preprocess import GREYSCALE_REJECT
from speciesgan.metrics.frequency_bins import BIN_NAMES

NAMED_BARS = 40
"""Up to this many species the bar chart names each; beyond, the x axis is the rank."""
LOG_SCALE_RATIO = 20
"""Largest over smallest count from which the bars use a log scale (else the tail is invisible)."""

COUNTS_NOTE = (
    "Train crops per species, most first: the steeper the fall, the more a natural-frequency "
    "mean is about the head species."
)
GREYSCALE_NOTE = (
    "Infrared (greyscale) crops: camera traps' night frames, with no colour to tell species by."
)
BINS_NOTE = (
    "Top-1 by frequency bin: species sorted by train crops and cut into thirds; a bin's "
    "figure is the mean over its species, so a weak tail shows even when the head hides it."
)
ID_OOD_NOTE = (
    "ID: held-out crops (the test split) of camera locations trained on; OOD: locations "
    "never trained on (the manifest's ood split). Both FDs use the same number of real "
    "crops, so they can be compared with each other (not with the overall FD-Lite0)."
)


def train_counts(manifest: pd.DataFrame) -> list[tuple[str, int]]:
    """(species, train crops) for every species of the run, most first (ties: species id)."""
    table = manifest.drop_duplicates("species_id").sort_values("species_id")
    counts = manifest[manifest["split"] == "train"].groupby("species").size()
    pairs = [(name, int(counts.get(name, 0))) for name in table["species"]]
    return sorted(pairs, key=lambda pair: -pair[1])  # stable: ties keep species-id order


def greyscale_summary(
    manifest: pd.DataFrame, rejects: pd.DataFrame | None
) -> dict[str, Any] | None:
    """Infrared crops per split, their share, and photos dropped for being infrared.

    None when the manifest has no ``greyscale`` column (made before it existed,
    or by other tools): unknown is not zero.
    """
    if "greyscale" not in manifest.columns:
        return None
    flags = manifest["greyscale"].astype(bool)
    splits = {}
    for split, split_flags in flags.groupby(manifest["split"], sort=True):
        count = int(split_flags.sum())
        splits[str(split)] = {
            "crops": len(split_flags),
            "greyscale": count,
            "share": count / len(split_flags),
        }
    dropped = 0
    if rejects is not None and "reason" in rejects.columns:
        infrared = rejects[rejects["reason"] == GREYSCALE_REJECT]
        # one reject per box: a frame with several animals is still one photo
        dropped = int(infrared["file"].nunique()) if "file" in infrared else len(infrared)
    return {
        "crops": len(manifest),
        "greyscale": int(flags.sum()),
        "share": float(flags.mean()) if len(manifest) else 0.0,
        "by_split": splits,
        "dropped_photos": dropped,
    }


def bins_table(
    classifier_metrics: dict[str, Any] | None, evaluation: dict[str, Any] | None
) -> list[dict[str, Any]] | None:
    """One row per bin: species, train crops, eval classifier test top-1, generated top-1.

    The two figures come from two files that bin by the same train counts; None
    when neither has bins (results of a version before them).
    """
    classifier_bins = ((classifier_metrics or {}).get("frequency_bins") or {}).get("bins") or {}
    generated_bins = ((evaluation or {}).get("frequency_bins") or {}).get("bins") or {}
    if not classifier_bins and not generated_bins:
        return None
    rows = []
    for name in BIN_NAMES:
        either = generated_bins.get(name) or classifier_bins.get(name) or {}
        rows.append(
            {
                "bin": name,
                "species": len(either.get("species", [])),
                "train_crops_range": either.get("train_crops_range"),
                "classifier_test_top1": (classifier_bins.get(name) or {}).get("test_top1"),
                "generated_top1": (generated_bins.get(name) or {}).get("generated_top1"),
            }
        )
    return rows


def long_tail_summary(
    manifest: pd.DataFrame | None,
    rejects: pd.DataFrame | None,
    classifier_metrics: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything the report's "Long tail" section shows, JSON-ready."""
    id_ood = (evaluation or {}).get("id_ood")
    return {
        # a list, not a mapping: JSON files here sort mapping keys, and the order is the point
        "train_per_species": None
        if manifest is None
        else [{"species": name, "train": count} for name, count in train_counts(manifest)],
        "greyscale": None if manifest is None else greyscale_summary(manifest, rejects),
        "frequency_bins": bins_table(classifier_metrics, evaluation),
        "id_ood": id_ood,
    }


def needs_log_scale(values: np.ndarray) -> bool:
    """Whether the largest count is at least ``LOG_SCALE_RATIO`` times the smallest positive one."""
    positive = np.asarray(values, dtype=np.float64)
    positive = positive[positive > 0]
    return len(positive) > 0 and positive.max() / positive.min() >= LOG_SCALE_RATIO


def train_counts_png(counts: list[tuple[str, int]]) -> np.ndarray:
    """The sorted bar chart of train crops per species, as HWC uint8 (Agg, no fonts cache)."""
    names = [name for name, _ in counts]
    values = np.array([value for _, value in counts], dtype=np.float64)
    named = len(counts) <= NAMED_BARS
    figure = Figure(figsize=(8, 4.2 if named else 3.2), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(np.arange(len(values)), values, color="#4c72b0", width=0.8)
    log_scale = needs_log_scale(values)
    if log_scale:  # species without train crops get no bar on it (they exist: see the table)
        axes.set_yscale("log")
    if named:
        axes.set_xticks(np.arange(len(names)))
        axes.set_xticklabels(names, rotation=60, ha="right", fontsize="small")
    else:
        axes.set_xlabel("species, by rank")
    axes.set_ylabel("train crops (log scale)" if log_scale else "train crops")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
