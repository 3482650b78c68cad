"""Time to quality: how good the demo GAN gets for a fixed CPU budget.

Trains the demo recipe (``gan`` of configs/demo.yaml layered over config.yaml's,
as Snakemake layers them) with the real ``Trainer.step`` on the demo crops, and
every ``--every-cpu-minutes`` of training CPU time scores the EMA generator (with
the standing BatchNorm statistics the exported generator gets): top-1 accuracy
of an evaluation classifier on generated images (mean and worst species) and
FID against the real train crops.  CPU time is ``time.process_time()`` of this
process (all threads) spent in training steps; evaluation is not counted, and
"wall s" is likewise the training wall time.  Usage::

    snakemake results/demo/data/manifest.parquet --cores 2 --configfile configs/demo.yaml
    python benchmarks/time_to_quality.py                                # 45 CPU min, a row every 5
    python benchmarks/time_to_quality.py --cpu-minutes 10 --set d_channels=16 --set lr_d=4e-4 \\
        --out /tmp/d16.json

FIDs from 10 images per species are biased upwards and comparable only with
each other (same image counts, same latents at every row).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speciesgan.classifier.model import load_classifier
from speciesgan.config import load_config
from speciesgan.gan.standing_stats import with_standing_statistics
from speciesgan.gan.training_loop import (
    DeviceCrops,
    Ranks,
    Trainer,
    build_trainer,
    resolve_settings,
)
from speciesgan.generate.sample import generate_images, save_png, tile
from speciesgan.metrics.evaluate import classifier_accuracy
from speciesgan.metrics.fid import RealFeatures, fid_from_features, real_features
from speciesgan.metrics.inception import InceptionNet, inception_outputs, load_inception
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.species_lists import require_same_species

COLUMNS = (
    "steps",
    "CPU s",
    "wall s",
    "gen acc mean",
    "worst acc",
    "worst species",
    "diversity",
    "FID",
)


def within_species_spread(images: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean L1 distance between two images of the same species, averaged over species.

    Accuracy alone rewards a generator that draws one recognisable image per
    species; divided by the same figure for real crops ("diversity" column) it
    says how much of the photos' variety (colour, pose, place) G keeps:
    about 1 is as varied as the photos, near 0 is one image per species.
    """
    spreads = []
    for species_id in ids.unique():
        group = images[ids == species_id].float().flatten(1)
        if len(group) > 1:
            distances = torch.cdist(group, group, p=1) / group.shape[1]
            spreads.append(distances.sum() / (len(group) * (len(group) - 1)))
    return float(torch.stack(spreads).mean())


def load_recipe(
    config: Path, overlay: Path, overrides: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(gan settings, metrics settings) of ``overlay`` over ``config``, then ``--set`` overrides."""
    merged = load_config([overlay], base=config)  # as the workflow layers --configfile
    gan = {key: value for key, value in merged["gan"].items() if key != "gpus"}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set wants key=value, got {item!r}")
        try:
            gan[key] = json.loads(text)
        except json.JSONDecodeError:
            gan[key] = text  # a bare word: --set model=resnet
    return resolve_settings(gan), merged["metrics"]


def evaluate(
    trainer: Trainer,
    classifier: torch.nn.Module,
    net: InceptionNet | None,
    real: RealFeatures | None,
    args: argparse.Namespace,
    step: int,
    real_spread: float,
) -> dict[str, Any]:
    """Accuracy per species and FID of the EMA generator, on the same latents every time."""
    species = trainer.data.species
    generator = with_standing_statistics(trainer.generator_ema, len(species), args.seed)
    ids = torch.arange(len(species)).repeat_interleave(args.images_per_species)
    images = generate_images(generator, ids, seed=args.seed)
    correct = classifier_accuracy(classifier, images, ids)
    diversity = within_species_spread(images, ids) / real_spread
    per_species = correct.reshape(len(species), -1).mean(axis=1)
    worst = int(np.argmin(per_species))
    if args.grid_dir is not None:  # to look at, not only count: 8 per species, a row each
        first = (torch.arange(len(ids)) % args.images_per_species) < 8
        save_png(tile(images[first], columns=8), args.grid_dir / f"step-{step}.png")
    fid = None
    if net is not None and real is not None:
        first = (torch.arange(len(ids)) % args.images_per_species) < args.fid_images_per_species
        features, _ = inception_outputs(net, images[first])
        fid = fid_from_features(features, real.features)
    return {
        "accuracy_mean": float(per_species.mean()),
        "accuracy_per_species": dict(zip(species, per_species.tolist(), strict=True)),
        "worst_species": species[worst],
        "worst_accuracy": float(per_species[worst]),
        "diversity": diversity,
        "fid": fid,
    }


def table_row(row: dict[str, Any]) -> str:
    fid = f"{row['fid']:.1f}" if row["fid"] is not None else "-"
    cells = (
        str(row["steps"]),
        f"{row['cpu_s']:.0f}",
        f"{row['wall_s']:.0f}",
        f"{row['accuracy_mean']:.3f}",
        f"{row['worst_accuracy']:.3f}",
        row["worst_species"],
        f"{row['diversity']:.2f}",
        fid,
    )
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=Path("results/demo/data/manifest.parquet"))
    parser.add_argument(
        "--classifier", type=Path, default=Path("results/demo/classifier/eval/model.pt")
    )
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--overlay", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a gan setting (value parsed as JSON); repeatable",
    )
    parser.add_argument("--cpu-minutes", type=float, default=45.0)
    parser.add_argument("--every-cpu-minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images-per-species", type=int, default=40, help="for the accuracy")
    parser.add_argument("--fid-images-per-species", type=int, default=10)
    parser.add_argument("--no-fid", action="store_true", help="skip FID (Inception ~0.2 s/image)")
    parser.add_argument("--cache-dir", type=Path, help="real-feature cache (default: the demo's)")
    parser.add_argument("--grid-dir", type=Path, help="write a sample grid (8 per species) per row")
    parser.add_argument("--out", type=Path, help="also write the rows and settings as JSON")
    args = parser.parse_args()
    if not args.no_fid and args.fid_images_per_species > args.images_per_species:
        parser.error("--fid-images-per-species cannot exceed --images-per-species")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device("cpu")

    cfg, metrics = load_recipe(args.config, args.overlay, args.overrides)
    data = DeviceCrops.from_manifest(args.manifest, device)
    classifier = load_classifier(args.classifier, device)
    require_same_species(data.species, args.manifest, classifier.species, args.classifier)
    net = real = None
    if not args.no_fid:
        net = load_inception(metrics["inception_weights"], device)
        cache = args.cache_dir or args.manifest.parent.parent / "eval" / "fid_cache"
        real = real_features(
            args.manifest, "train", net, cache, per_species=args.fid_images_per_species
        )
    trainer = build_trainer(data, None, cfg, seed=args.seed, ranks=Ranks(), device=device)
    picks = torch.cat(
        [(data.labels == k).nonzero()[: args.images_per_species, 0] for k in data.labels.unique()]
    )  # uint8, as generate_images returns
    real_spread = within_species_spread(data.crops(picks), data.labels[picks])
    trainer.raw_g.train()
    trainer.raw_d.train()

    print(json.dumps(cfg, sort_keys=True))
    print(f"\n| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}", flush=True)
    budget, every = args.cpu_minutes * 60.0, args.every_cpu_minutes * 60.0
    step, cpu_s, wall_s, next_eval, rows = 0, 0.0, 0.0, every, []
    while cpu_s < budget:
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        trainer.step(step)
        cpu_s += time.process_time() - start_cpu
        wall_s += time.perf_counter() - start_wall
        step += 1
        if cpu_s >= next_eval or cpu_s >= budget:
            while next_eval <= cpu_s:
                next_eval += every
            eval_start = time.perf_counter()
            row = {"steps": step, "cpu_s": cpu_s, "wall_s": wall_s}
            row |= evaluate(trainer, classifier, net, real, args, step, real_spread)
            row["eval_wall_s"] = time.perf_counter() - eval_start
            rows.append(row)
            print(table_row(row), flush=True)
    if args.out:
        summary = {
            "gan": cfg,
            "seed": args.seed,
            "threads": args.threads,
            "manifest": str(args.manifest),
            "classifier": str(args.classifier),
            "images_per_species": args.images_per_species,
            "fid_images_per_species": None if args.no_fid else args.fid_images_per_species,
            "inception_weights": dict(net.info) if net is not None else None,
            "rows": rows,
        }
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    try:
        main()
    except SpeciesganError as exc:
        raise SystemExit(f"error: {exc}") from None
