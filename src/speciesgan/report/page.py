"""``speciesgan report``: one self-contained HTML page and one metrics JSON per run.

The page is meant to be mailed or archived with a paper: every image is an
embedded data URI, so it renders with no results folder next to it.  The JSON
carries the same numbers for scripts.  Both are built only from files under the
results folder (any missing part is skipped with a note), contain no timestamps
or absolute paths, and are therefore byte-identical when rebuilt from the same run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from speciesgan.data.dataset import shard_path
from speciesgan.generate.sample import interpolation_strip, tile
from speciesgan.metrics.registered import registered_metrics
from speciesgan.metrics.registry import Metric
from speciesgan.report.long_tail import (
    BINS_NOTE,
    COUNTS_NOTE,
    GREYSCALE_NOTE,
    ID_OOD_NOTE,
    long_tail_summary,
    train_counts_png,
)
from speciesgan.report.loss_curves import loss_curves_png
from speciesgan.util.atomic import write_json, write_text

log = logging.getLogger(__name__)

REAL_PER_SPECIES = 4
STRIP_STEPS = 8
STRIP_SEED = 0
PUBLISHED_WEIGHTS = "pytorch-fid"

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; image-rendering: pixelated; }
.note { background: #fff3cd; border: 2px solid #d39e00; padding: 0.6em 1em; font-weight: bold; }
.missing { color: #888; font-style: italic; }
.pair { display: flex; gap: 1em; align-items: flex-start; margin-bottom: 1em; }
"""


# ---------------------------------------------------------------- small helpers
def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with open(path) as fh:
        return json.load(fh)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _png_uri(array: np.ndarray) -> str:
    """HWC uint8 -> data URI of a metadata-free PNG."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _missing(what: str) -> str:
    return f'<p class="missing">{html.escape(what)} not found in this results folder.</p>'


# ---------------------------------------------------------------- dataset
def dataset_summary(manifest: pd.DataFrame, rejects: pd.DataFrame | None) -> dict[str, Any]:
    """Per-species train/test/reject counts and reject reasons."""
    table = manifest.drop_duplicates("species_id").sort_values("species_id")
    counts = manifest.groupby(["species", "split"]).size()
    reject_counts = (
        rejects.groupby("species").size() if rejects is not None else pd.Series(dtype=int)
    )
    species = {}
    for row in table.itertuples():
        species[row.species] = {
            "species_id": int(row.species_id),
            "category": row.category,
            "dataset": getattr(row, "dataset", None),
            "train": int(counts.get((row.species, "train"), 0)),
            "test": int(counts.get((row.species, "test"), 0)),
            "rejects": int(reject_counts.get(row.species, 0)),
        }
    by_reason = rejects.groupby("reason").size() if rejects is not None else pd.Series(dtype=int)
    return {
        "species": species,
        "images": {split: int((manifest["split"] == split).sum()) for split in ("train", "test")},
        "rejects": {
            "total": 0 if rejects is None else len(rejects),
            "by_reason": {str(k): int(v) for k, v in sorted(by_reason.items())},
        },
    }


def _dataset_section(summary: dict[str, Any]) -> str:
    rows = [
        [name, s["category"], s["train"], s["test"], s["rejects"]]
        for name, s in summary["species"].items()
    ]
    reasons = [[reason, count] for reason, count in summary["rejects"]["by_reason"].items()]
    return (
        _table(["species", "category", "train", "test", "rejects"], rows)
        + f"<p>{summary['images']['train']} train and {summary['images']['test']} test crops; "
        f"{summary['rejects']['total']} photos rejected.</p>"
        + (_table(["reject reason", "photos"], reasons) if reasons else "")
    )


def real_crops(
    manifest_path: Path, manifest: pd.DataFrame, species_id: int, count: int
) -> np.ndarray:
    """The first ``count`` stored crops of a species, uint8 [n, 3, S, S] (memory-mapped read)."""
    rows = manifest[manifest["species_id"] == species_id].head(count)
    crops = [
        np.load(shard_path(manifest_path, int(row.shard)), mmap_mode="r")[int(row.index)]
        for row in rows.itertuples()
    ]
    return np.stack(crops).transpose(0, 3, 1, 2) if crops else np.empty((0, 3, 1, 1), np.uint8)


# ---------------------------------------------------------------- long tail
def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f} %"


def _greyscale_part(greyscale: dict[str, Any] | None) -> str:
    if greyscale is None:
        return (
            '<p class="missing">The manifest has no greyscale column: infrared share unknown.</p>'
        )
    rows = [
        [split, entry["crops"], entry["greyscale"], _percent(entry["share"])]
        for split, entry in greyscale["by_split"].items()
    ]
    dropped = greyscale["dropped_photos"]
    return (
        f"<p>{greyscale['greyscale']} of {greyscale['crops']} crops are infrared (greyscale): "
        f"{_percent(greyscale['share'])}"
        + (f"; {dropped} infrared photos dropped (preprocess.greyscale: drop)" if dropped else "")
        + ".</p>"
        + _table(["split", "crops", "infrared", "share"], rows)
        + f"<p>{html.escape(GREYSCALE_NOTE)}</p>"
    )


def _bins_part(rows: list[dict[str, Any]] | None) -> str:
    if not rows:
        return _missing("frequency_bins in classifier/eval/metrics.json and eval/metrics.json")
    table = [
        [
            row["bin"],
            row["species"],
            "–" if row["train_crops_range"] is None else "{}–{}".format(*row["train_crops_range"]),
            row["classifier_test_top1"],
            row["generated_top1"],
        ]
        for row in rows
    ]
    header = ["bin", "species", "train crops", "eval classifier test top-1", "generated top-1"]
    return _table(header, table) + f"<p>{html.escape(BINS_NOTE)}</p>"


def _id_ood_part(id_ood: dict[str, Any] | None) -> str:
    if not id_ood:
        return _missing("id_ood in eval/metrics.json")
    if "skipped" in id_ood:
        return f"<p>ID against OOD: not computed ({html.escape(str(id_ood['skipped']))}).</p>"
    top1, fd = id_ood.get("classifier_top1") or {}, id_ood.get("fd_lite0") or {}
    counts = id_ood.get("num_images") or {}
    per_side = counts.get("fd_real_per_side")
    rows = [
        ["eval classifier top-1 on real crops", top1.get("id"), top1.get("ood")],
        ["real crops it was scored on", counts.get("id_test"), counts.get("ood")],
        [f"FD-Lite0 of generated images to {per_side} real crops", fd.get("id"), fd.get("ood")],
    ]
    return _table(["figure", "ID", "OOD"], rows) + f"<p>{html.escape(ID_OOD_NOTE)}</p>"


def _long_tail_section(summary: dict[str, Any]) -> str:
    counts = summary.get("train_per_species")
    bars = (
        _img(
            _png_uri(train_counts_png([(row["species"], row["train"]) for row in counts])),
            "train crops per species",
        )
        + f"<p>{html.escape(COUNTS_NOTE)}</p>"
        if counts
        else _missing("data/manifest.parquet")
    )
    return (
        "<h3>Train crops per species</h3>"
        + bars
        + "<h3>Infrared crops</h3>"
        + (_greyscale_part(summary.get("greyscale")) if counts else "")
        + "<h3>Accuracy by frequency bin</h3>"
        + _bins_part(summary.get("frequency_bins"))
        + "<h3>In and out of distribution</h3>"
        + _id_ood_part(summary.get("id_ood"))
    )


# ---------------------------------------------------------------- classifier, training
CLASSIFIER_ROLES = {
    "guide": "frozen classifier in the GAN's loss",
    "eval": "fine-tuned classifier (another seed) that scores generated images",
    "judge": "independent judge: a small CNN trained from scratch, sharing nothing with the "
    "discriminator",
}


CLASSIFIER_WEIGHT_KEYS = ("arch", "init", "weights", "weights_sha256")
"""What a classifier was started from (its metrics.json); shown as a sentence, not table rows."""


def _classifier_weights(metrics: dict[str, Any]) -> str:
    """Name the weights a classifier was fine-tuned from; flag unverified ones."""
    weights = metrics.get("weights")
    if weights is None:
        return (
            '<p class="missing">initial weights not recorded (metrics.json of an older version)</p>'
        )
    details = [f"architecture {metrics.get('arch', '?')}", f"init {metrics.get('init', '?')}"]
    if metrics.get("weights_sha256"):
        details.append(f"sha256 {str(metrics['weights_sha256'])[:16]}…")
    text = f"Initial weights: {html.escape(str(weights))} ({html.escape(', '.join(details))})."
    if metrics.get("init") == "unverified":
        return (
            f'<p class="note">{text} The file is not torchvision\'s published one (an offline '
            "placeholder or a modified file): the classifier may not have started from "
            "ImageNet features.</p>"
        )
    return f"<p>{text}</p>"


def _classifier_section(metrics: dict[str, Any]) -> str:
    scalars = [
        [k, v]
        for k, v in sorted(metrics.items())
        if not isinstance(v, (dict, list)) and k not in CLASSIFIER_WEIGHT_KEYS
    ]
    parts = [_classifier_weights(metrics)]
    parts += [_table(["metric", "value"], scalars)] if scalars else []
    for key, value in sorted(metrics.items()):
        if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            parts.append(f"<h3>{html.escape(key)}</h3>")
            parts.append(_table(["", key], [[k, v] for k, v in value.items()]))
    return "".join(parts)


def metrics_over_steps_png(points: list[dict[str, Any]]) -> np.ndarray:
    """FID and Inception Score of the training snapshots against the step, as HWC uint8."""
    steps = [p["step"] for p in points]
    figure = Figure(figsize=(8, 3.2), dpi=100)
    canvas = FigureCanvasAgg(figure)
    fid_axes, is_axes = figure.subplots(1, 2)
    fid_axes.plot(steps, [p["fid"] for p in points], marker="o")
    fid_axes.set_title("FID (lower is better)")
    means = np.array([p["inception_score"]["mean"] for p in points])
    stds = np.array([p["inception_score"]["std"] for p in points])
    is_axes.errorbar(steps, means, yerr=stds, marker="o", capsize=3)
    is_axes.set_title("Inception Score")
    for axes in (fid_axes, is_axes):
        axes.set_xlabel("training step")
        axes.grid(alpha=0.3)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _over_steps_section(over_steps: dict[str, Any] | None) -> str:
    if not over_steps or not over_steps.get("points"):
        return _missing("over_steps in eval/metrics.json (gan.snapshot_every)")
    points = over_steps["points"]
    rows = [[p["step"], p["fid"], p["inception_score"]["mean"]] for p in points]
    return (
        _img(_png_uri(metrics_over_steps_png(points)), "FID and IS over training steps")
        + _table(["step", "FID", "Inception Score"], rows)
        + f"<p>{over_steps['images_per_species']} images per species at every step, the same "
        "latents each time: the points compare with each other, not with the final "
        "evaluation above (FID is biased upwards at small sample sizes).</p>"
    )


ABLATION_COLUMNS = (
    ("variant", "variant"),
    ("model", "model"),
    ("ema", "EMA"),
    ("diffaugment", "DiffAugment"),
    ("classifier_loss_weight", "classifier term"),
    ("steps", "steps"),
    ("train_seconds", "train s"),
    ("train_cpu_seconds", "train CPU s"),
    ("fid", "FID"),
    ("inception_score", "IS"),
    ("kid", "KID"),
    ("accuracy_mean", "generated top-1"),
)


def _ablation_section(table: dict[str, Any] | None) -> str:
    if not table:
        return _missing("ablation/table.json (enable with configs/ablation.yaml)")
    rows = [[row.get(key) for key, _ in ABLATION_COLUMNS] for row in table["rows"]]
    return (
        _table([title for _, title in ABLATION_COLUMNS], rows)
        + f"<p>{html.escape(table.get('note', ''))}</p>"
    )


# ---------------------------------------------------------------- generation metrics
SUMMARY_KEYS = (
    "fid", "fid_num_images", "fid_note", "inception_score", "kid", "kid_per_species",
    "accuracy_mean", "accuracy_per_species", "chance", "headline_space", "fd_lite0",
    "fd_dinov2", "fd_dinov2_skipped", "intra_class_fid", "fidelity_diversity", "cas",
    "memorisation", "comparability", "frequency_bins", "id_ood", "floors", "judge",
    "accuracy_worst", "accuracy_worst_species", "inception_figures",
)  # fmt: skip
"""The figures of ``eval/metrics.json`` the report's sections show."""


def other_metrics() -> dict[str, Metric]:
    """Registered metrics that no section of the report shows: the ones added since
    (docs/extending.md); the report lists them in a table of their own."""
    return {name: m for name, m in registered_metrics().items() if name not in SUMMARY_KEYS}


def generation_summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The numbers of ``eval/metrics.json`` that belong in the run summary."""
    keys = SUMMARY_KEYS + tuple(other_metrics())
    summary = {key: evaluation.get(key) for key in keys}
    summary["feature_spaces"] = {
        name: {key: space.get(key) for key in SPACE_KEYS}
        for name, space in (evaluation.get("feature_spaces") or {}).items()
    }
    return summary


SPACE_KEYS = ("fd", "precision", "recall", "density", "coverage", "intra_class_fd", "num_images")
SPACE_TITLES = {"inception": "Inception (FID)", "lite0": "EfficientNet-Lite0", "dinov2": "DINOv2"}
EXPLAIN = {
    "FID": "Fréchet distance between Gaussians fitted to Inception features of real and "
    "generated images; lower is better.",
    "IS": "Inception Score: confident and varied ImageNet predictions; higher is better, "
    "blind to the real data.",
    "KID": "Kernel Inception Distance: unbiased at small sample sizes; lower is better.",
    "top1": "How often the eval classifier (trained on real crops) recognises the species "
    "that was asked for.",
    "CAS": "Top-1 on real test crops of a classifier trained only on generated images; "
    "low when a species' variety is missing.",
    "judge": "How often a small CNN trained from scratch on the train crops (sharing nothing "
    "with the discriminator) recognises the species asked for.",
    "intra": "Mean over species of each species' own Fréchet distance; catches species "
    "that are drawn as another one.",
    "fd": "Fréchet distance in the space's features; lower is better.",
    "precision": "Share of generated images that fall inside the real images' k-NN manifold "
    "(fidelity).",
    "recall": "Share of real images that fall inside the generated images' manifold (diversity).",
    "density": "How many real neighbourhoods contain each generated image, on average "
    "(fidelity, robust to outliers; 1 for matching distributions).",
    "coverage": "Share of real images with a generated image in their neighbourhood "
    "(diversity, robust to outliers).",
    "memorisation": "Share of generated images closer to a training crop than almost any "
    "training crop is to another: possible copies.",
}


def _explained(rows: list[tuple[str, Any, str]]) -> str:
    return _table(
        ["metric", "value", "what it says"],
        [[name, value, EXPLAIN[key]] for name, value, key in rows],
    )


def _spaces_section(generation: dict[str, Any]) -> str:
    spaces = generation.get("feature_spaces") or {}
    if not spaces:
        return ""
    rows = []
    for name, space in spaces.items():
        intra = (space.get("intra_class_fd") or {}).get("mean")
        rows.append(
            [SPACE_TITLES.get(name, name), space.get("fd"), space.get("precision"),
             space.get("recall"), space.get("density"), space.get("coverage"), intra]
        )  # fmt: skip
    floors = generation.get("floors") or {}
    floor_note = ""
    if floors:
        title = SPACE_TITLES.get(str(floors.get("space")), str(floors.get("space")))
        intra = (floors.get("intra_class_fd_lite0") or {}).get("mean")
        rows.append(
            [f"{title}: floor (real test crops as the generator, equal counts)", floors.get("fd_lite0"),
             floors.get("precision"), floors.get("recall"), floors.get("density"),
             floors.get("coverage"), intra]
        )  # fmt: skip
        floor_note = f"<p>{html.escape(str(floors.get('note', '')))}.</p>"
    comparability = generation.get("comparability") or {}
    notes = "".join(
        f"<li><b>{html.escape(SPACE_TITLES.get(name, name))}</b>: {html.escape(text)}</li>"
        for name, text in comparability.items()
    )
    skipped = generation.get("fd_dinov2_skipped")
    dinov2 = f"<p>FD-DINOv2 not computed: {html.escape(str(skipped))}</p>" if skipped else ""
    return (
        "<h3>Feature spaces</h3>"
        + _table(
            [
                "space",
                "Fréchet distance",
                "precision",
                "recall",
                "density",
                "coverage",
                "intra-class FD",
            ],
            rows,
        )  # fmt: skip
        + floor_note
        + _table(
            ["figure", "what it says"],
            [[key, EXPLAIN[key]] for key in ("fd", "precision", "recall", "density", "coverage")],
        )
        + f"<p>Which figures compare with published numbers:</p><ul>{notes}</ul>{dinov2}"
    )


def _memorisation_section(generation: dict[str, Any], pairs_png: Path | None) -> str:
    memo = generation.get("memorisation") or {}
    if "fraction" not in memo:
        return _missing(f"memorisation in eval/metrics.json ({memo.get('skipped', 'absent')})")
    rows = [
        [pair.get("species"), pair.get("train_species"), pair.get("distance")]
        for pair in memo.get("pairs", [])
    ]
    picture = (
        "<p>Closest pairs, one per row: generated (left), nearest training crop (right).</p>"
        + _img(_file_uri(pairs_png), "closest pairs")
        if pairs_png is not None and pairs_png.is_file()
        else ""
    )
    return (
        "<h3>Memorisation</h3>"
        + _explained([("memorised fraction", memo.get("fraction"), "memorisation")])
        + f"<p>Threshold: {_fmt(memo.get('threshold'))} (the {_fmt(memo.get('percentile'))}th "
        "percentile of the training crops' nearest-neighbour distances, "
        f"{html.escape(str(memo.get('space')))} features).</p>"
        + _table(["generated species", "training crop species", "distance"], rows)
        + picture
    )


def _beside_floors_rows(generation: dict[str, Any]) -> list[list[Any]]:
    """The headline: each figure, its floor (real test crops in the generator's place), and why."""
    fidelity = generation.get("fidelity_diversity") or {}
    floors = generation.get("floors") or {}
    judge = generation.get("judge") or {}
    cas = generation.get("cas") or {}
    accuracy_floor = floors.get("generated_accuracy") or {}
    judge_floor = floors.get("judge_accuracy") or {}

    def intra(entry: dict[str, Any]) -> Any:
        return (entry.get("intra_class_fd_lite0") or {}).get("mean")

    rows: list[list[Any]] = [
        ["FD-Lite0", fidelity.get("fd_lite0"), floors.get("fd_lite0"), EXPLAIN["fd"]],
        ["intra-class FD-Lite0 (mean over species)", intra(fidelity), intra(floors),
         EXPLAIN["intra"]],
    ]  # fmt: skip
    for key in ("precision", "recall", "density", "coverage"):
        rows.append([f"{key} (Lite0)", fidelity.get(key), floors.get(key), EXPLAIN[key]])
    rows += [
        ["generated top-1, eval classifier: mean", generation.get("accuracy_mean"),
         accuracy_floor.get("mean"), EXPLAIN["top1"]],
        ["generated top-1, eval classifier: worst species",
         f"{_fmt(generation.get('accuracy_worst'))} ({generation.get('accuracy_worst_species')})",
         accuracy_floor.get("worst"), EXPLAIN["top1"]],
    ]  # fmt: skip
    if judge:
        verdict = "" if judge.get("counts") else " (judge too weak: does not count)"
        rows += [
            [f"generated top-1, independent judge: mean{verdict}", judge.get("mean"),
             judge_floor.get("mean"), EXPLAIN["judge"]],
            [f"generated top-1, independent judge: worst species{verdict}", judge.get("worst"),
             judge_floor.get("worst"), EXPLAIN["judge"]],
        ]  # fmt: skip
    rows.append(["CAS top-1", cas.get("top1", cas.get("skipped", "off")), cas.get("floor"),
                 EXPLAIN["CAS"]])  # fmt: skip
    return rows


def _inception_rows(generation: dict[str, Any]) -> tuple[list[tuple[str, Any, str]], str]:
    """FID, IS, KID and intra-class FID, and whether their weights are placeholders."""
    inception = generation.get("inception_score") or {}
    kid = generation.get("kid") or {}
    rows: list[tuple[str, Any, str]] = [
        ("FID", generation.get("fid"), "FID"),
        ("Inception Score (mean ± std)",
         f"{_fmt(inception.get('mean'))} ± {_fmt(inception.get('std'))}", "IS"),
        ("KID (mean ± std)", f"{_fmt(kid.get('mean'))} ± {_fmt(kid.get('std'))}", "KID"),
        ("intra-class FID (mean over species)",
         (generation.get("intra_class_fid") or {}).get("mean"), "intra"),
    ]  # fmt: skip
    if generation.get("fd_dinov2") is not None:
        rows.append(("FD-DINOv2", generation.get("fd_dinov2"), "fd"))
    marking = generation.get("inception_figures") or {}
    return rows, str(marking.get("note", ""))


def _generation_section(generation: dict[str, Any], pairs_png: Path | None = None) -> str:
    cas = generation.get("cas") or {}
    floors = generation.get("floors") or {}
    counts = (generation.get("fidelity_diversity") or {}).get("num_images") or {}
    headline = (
        _table(["figure", "generated", "floor", "what it says"], _beside_floors_rows(generation))
        + f"<p>chance: {_fmt(generation.get('chance'))}. Floors: "
        f"{html.escape(str(floors.get('note', 'not computed')))}. Equal counts: "
        f"{_fmt(counts.get('generated'))} generated and {_fmt(counts.get('real'))} reference "
        "crops, class-balanced.</p>"
    )
    inception_rows, inception_note = _inception_rows(generation)
    placeholder = bool((generation.get("inception_figures") or {}).get("placeholder"))
    headline += (
        f"<h3>Inception figures{' (placeholder weights)' if placeholder else ''}</h3>"
        + _explained(inception_rows)
        + (f"<p>{html.escape(inception_note)}.</p>" if inception_note else "")
    )
    note = f"<p>{html.escape(generation['fid_note'])}</p>" if generation.get("fid_note") else ""
    kid_species = generation.get("kid_per_species") or {}
    cas_species = cas.get("per_species") or {}
    judge_species = (generation.get("judge") or {}).get("per_species") or {}
    rows_species = [
        [name, accuracy, judge_species.get(name), cas_species.get(name),
         (kid_species.get(name) or {}).get("mean")]
        for name, accuracy in (generation.get("accuracy_per_species") or {}).items()
    ]  # fmt: skip
    per_species = _table(
        ["species", "generated top-1", "judge top-1", "CAS top-1", "KID vs real"], rows_species
    )
    return (
        headline
        + note
        + "<h3>Per species</h3>"
        + per_species
        + _spaces_section(generation)
        + _memorisation_section(generation, pairs_png)
        + _other_metrics_section(generation)
    )


def _other_metrics_section(generation: dict[str, Any]) -> str:
    """One row per metric of ``other_metrics``; nothing when there is none."""

    def shown(value: Any) -> Any:
        return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value

    rows = [[name, shown(generation.get(name)), m.about] for name, m in other_metrics().items()]
    if not rows:
        return ""
    return "<h3>Other metrics</h3>" + _table(["metric", "value", "what it says"], rows)


def _weights_note(weights: dict[str, Any] | None) -> str:
    if not weights or weights.get("weights") == PUBLISHED_WEIGHTS:
        return ""
    return (
        '<p class="note">Inception weights: '
        f"{html.escape(str(weights.get('weights')))} (sha256 "
        f"{html.escape(str(weights.get('weights_sha256', ''))[:16])}…). FID, IS and KID were "
        "computed with placeholder or unverified weights and are NOT comparable with published numbers.</p>"
    )


# ---------------------------------------------------------------- samples
def _samples_section(samples_dir: Path, manifest_path: Path, manifest: pd.DataFrame | None) -> str:
    index = _read_json(samples_dir / "index.json")
    if index is None:
        return _missing("samples/index.json")
    parts = []
    overview = samples_dir / index.get("overview", "overview.png")
    if overview.is_file():
        parts.append(
            "<h3>Overview (one row per species)</h3>" + _img(_file_uri(overview), "overview")
        )
    parts.append("<h3>Real crops (left) and generated samples (right)</h3>")
    species_ids = {}
    if manifest is not None:
        species_ids = dict(zip(manifest["species"], manifest["species_id"], strict=True))
    for name, relative in index.get("species", {}).items():
        grid = samples_dir / relative
        real_html = ""
        if name in species_ids:
            crops = real_crops(manifest_path, manifest, int(species_ids[name]), REAL_PER_SPECIES)
            if len(crops):
                real_html = _img(_png_uri(tile(torch.from_numpy(crops), columns=2)), f"real {name}")
        generated = _img(_file_uri(grid), f"generated {name}") if grid.is_file() else ""
        parts.append(
            f"<h4>{html.escape(name)}</h4><div class='pair'><div>{real_html}</div>"
            f"<div>{generated}</div></div>"
        )
    return "".join(parts)


def _strip_section(generator: nn.Module | None, species: list[str]) -> str:
    if generator is None or len(species) < 2:
        return _missing("a loadable gan/generator.pt with two species")
    strip = interpolation_strip(generator, 0, 1, steps=STRIP_STEPS, seed=STRIP_SEED)
    title = f"{species[0]} → {species[1]}"
    return f"<p>{html.escape(title)}, one fixed latent</p>" + _img(_png_uri(strip), title)


# ---------------------------------------------------------------- snapshot selection
def _selection_summary(selection: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rule and the step exported, for the run summary (scores stay in gan/selection.json)."""
    if selection is None:
        return None
    chosen = selection.get("chosen_step")
    score = (selection.get("scores") or {}).get(str(chosen), {}).get("score")
    return {"rule": selection.get("rule"), "chosen_step": chosen, "score": score,
            "final_step": selection.get("final_step")}  # fmt: skip


def _selection_section(selection: dict[str, Any] | None) -> str:
    if selection is None:
        return _missing("gan/selection.json")
    rows = [
        [int(step), entry.get("score"), entry.get("precision"), entry.get("coverage"),
         entry.get("worst_species"), "exported" if int(step) == selection.get("chosen_step") else ""]
        for step, entry in sorted((selection.get("scores") or {}).items(), key=lambda i: int(i[0]))
    ]  # fmt: skip
    text = (
        f"<p>Rule: {html.escape(str(selection.get('rule')))}. Exported: step "
        f"{html.escape(str(selection.get('chosen_step')))}.</p>"
    )
    if not rows:
        return text
    return text + _table(["step", "score", "precision", "coverage", "weakest species", ""], rows)


# ---------------------------------------------------------------- assembly
def write_report(
    results_dir: Path,
    out_html: Path,
    out_json: Path,
    generator: nn.Module | None,
    generator_species: list[str],
) -> None:
    """Build both files from ``results_dir``; ``generator`` (may be None) draws the strip."""
    results_dir = Path(results_dir)
    manifest_path = results_dir / "data" / "manifest.parquet"
    rejects_path = results_dir / "data" / "rejects.parquet"
    manifest = pd.read_parquet(manifest_path) if manifest_path.is_file() else None
    rejects = pd.read_parquet(rejects_path) if rejects_path.is_file() else None
    dataset = dataset_summary(manifest, rejects) if manifest is not None else None
    # "guide" shaped the GAN's loss; "eval" (another seed) scores generated images
    classifier = {
        role: metrics
        for role in CLASSIFIER_ROLES
        if (metrics := _read_json(results_dir / "classifier" / role / "metrics.json")) is not None
    }
    evaluation = _read_json(results_dir / "eval" / "metrics.json")
    cas = _read_json(results_dir / "eval" / "cas" / "metrics.json")  # its own stage
    if evaluation is not None:
        evaluation["cas"] = cas if cas is not None else {"skipped": "metrics.cas is false"}
    generation = generation_summary(evaluation) if evaluation is not None else None
    weights = evaluation.get("inception_weights") if evaluation is not None else None
    log_path = results_dir / "gan" / "training_log.csv"
    over_steps = evaluation.get("over_steps") if evaluation is not None else None
    ablation = _read_json(results_dir / "ablation" / "table.json")
    selection = _read_json(results_dir / "gan" / "selection.json")
    long_tail = long_tail_summary(manifest, rejects, classifier.get("eval"), evaluation)

    sections = [
        ("Dataset", _dataset_section(dataset) if dataset else _missing("data/manifest.parquet")),
        ("Long tail", _long_tail_section(long_tail)),
        ("Species classifiers", "".join(f"<h3>{role}: {html.escape(CLASSIFIER_ROLES[role])}</h3>{_classifier_section(metrics)}" for role, metrics in classifier.items()) or _missing("classifier/*/metrics.json")),
        ("GAN training", _img(_png_uri(loss_curves_png(pd.read_csv(log_path))), "loss curves") if log_path.is_file() else _missing("gan/training_log.csv")),
        ("Snapshot selection", _selection_section(selection)),
        ("Samples", _samples_section(results_dir / "samples", manifest_path, manifest)),
        ("Species interpolation", _strip_section(generator, generator_species)),
        ("Generation metrics", _weights_note(weights) + (_generation_section(generation, results_dir / "eval" / "closest_pairs.png") if generation else _missing("eval/metrics.json"))),
        ("Metrics over training steps", _over_steps_section(over_steps)),
        ("Ablation", _ablation_section(ablation)),
    ]  # fmt: skip
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>speciesgan report: {html.escape(results_dir.name)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>speciesgan report: {html.escape(results_dir.name)}</h1>"
        f"{_weights_note(weights)}{body}</body></html>\n"
    )
    write_text(out_html, page)
    write_json(
        out_json,
        {
            "dataset": dataset,
            "classifier": classifier,
            "generation": generation,
            "over_steps": over_steps,
            "ablation": ablation,
            "selection": _selection_summary(selection),
            "inception_weights": weights,
            "long_tail": long_tail,
        },
    )


def _strip_generator(path: Path) -> tuple[nn.Module | None, list[str]]:
    """The trained generator for the interpolation strip, or None when it cannot be loaded."""
    if not path.is_file():
        return None, []
    try:
        from speciesgan.gan.networks import load_generator

        generator, meta = load_generator(path, "cpu")
    except Exception as exc:  # noqa: BLE001 - the report must still be written without the strip
        log.warning("%s: cannot load the generator for the interpolation strip (%s)", path, exc)
        return None, []
    return generator, list(meta["species"])


def build_report(results_dir: Path, out_html: Path, out_json: Path) -> None:
    """``speciesgan report``: write ``report.html`` and ``metrics.json`` for a results folder."""
    generator, species = _strip_generator(Path(results_dir) / "gan" / "generator.pt")
    write_report(Path(results_dir), Path(out_html), Path(out_json), generator, species)
