"""A GAN recipe's scores over training steps, each beside its real-vs-real floor.

Trains a recipe (``gan`` of configs/demo.yaml over config.yaml's, plus ``--set``
overrides) with the real ``Trainer.step`` on a workflow's crops, and every
``--every`` steps from ``--start`` scores the G-EMA (with the standing BatchNorm
statistics the exported generator gets):

* generated top-1 by the evaluation classifier, mean and worst species
  (``--accuracy-per-species`` images each), for G-EMA and for the raw generator;
* diversity: the mean L1 distance between two generated images of one species
  over the same for two real train crops (1 = as varied as the photos);
* precision/recall (k=3) and density/coverage (k=5) in EfficientNet-Lite0
  features of ``--per`` generated images per species against as many real train
  crops, beside the floor: real test crops in the generator's place, same counts.

It writes an 8-per-species grid of G-EMA and of the raw generator at each scored
step, and ``rows.json``, into ``--out``.  Usage (the demo's crops and eval
classifier first)::

    snakemake results/demo/classifier/eval/model.pt --cores 2 --configfile configs/demo.yaml
    python benchmarks/recipe_steps.py --out /tmp/groups4 --set species_groups=4
    python benchmarks/recipe_steps.py --out /tmp/s1 --seed 1 --start 1000 --set colour_style=true

Unlike the workflow, no validation crops are held out and no snapshot is
chosen: every scored step is shown, so a recipe is judged over its run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from time_to_quality import load_recipe, within_species_spread

from speciesgan.classifier.model import load_classifier
from speciesgan.data.dataset import load_split
from speciesgan.gan.standing_stats import with_standing_statistics
from speciesgan.gan.training_loop import DeviceCrops, Ranks, build_trainer
from speciesgan.generate.sample import generate_images, save_png, tile
from speciesgan.metrics.evaluate import classifier_accuracy
from speciesgan.metrics.feature_spaces import features_of, lite0_space
from speciesgan.metrics.prdc import density_coverage, precision_recall

GRID_PER_SPECIES = 8


def balanced_rows(labels: torch.Tensor, per: int, species: int) -> torch.Tensor:
    """The first ``per`` row indices of each species, species by species."""
    return torch.cat([(labels == k).nonzero()[:per, 0] for k in range(species)])


def prdc(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, float]:
    """Precision/recall at k=3 and density/coverage at k=5 (Naeem et al. 2020's k)."""
    scores = {**precision_recall(reference, candidate, k=3)}
    scores.update(density_coverage(reference, candidate, k=5))
    return {name: float(value) for name, value in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--start", type=int, default=750)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--per", type=int, default=20, help="images per species for PRDC")
    parser.add_argument("--accuracy-per-species", type=int, default=40)
    parser.add_argument("--results", type=Path, default=Path("results/demo"))
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--overlay", type=Path, default=Path("configs/demo.yaml"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    settings, _ = load_recipe(args.config, args.overlay, args.overrides)
    settings["steps"] = args.steps
    device = torch.device("cpu")
    manifest = args.results / "data" / "manifest.parquet"
    data = DeviceCrops.from_manifest(manifest, device)
    species = len(data.species)
    classifier = load_classifier(args.results / "classifier" / "eval" / "model.pt", device)
    space = lite0_space(device)
    train, test = load_split(manifest, "train"), load_split(manifest, "test")
    per = min(args.per, int(np.bincount(test.labels.numpy(), minlength=species).min()))
    train_rows = balanced_rows(train.labels, per, species)
    reference = features_of(space, train.images[train_rows], 50)
    test_rows = balanced_rows(test.labels, per, species)
    floor = prdc(reference, features_of(space, test.images[test_rows], 50))
    real_spread = within_species_spread(train.images[train_rows], train.labels[train_rows])
    print(f"{per} images per species; floor {json.dumps(floor)}", flush=True)

    trainer = build_trainer(data, None, settings, seed=args.seed, ranks=Ranks(), device=device)
    trainer.raw_g.train()
    trainer.raw_d.train()
    count = args.accuracy_per_species
    ids = torch.arange(species).repeat_interleave(count)
    position = torch.arange(len(ids)) % count
    rows, start = [], time.perf_counter()
    for step in range(args.steps):
        trainer.step(step)
        done = step + 1
        if done < args.start or (done % args.every and done != args.steps):
            continue
        ema = with_standing_statistics(trainer.generator_ema, species, args.seed)
        images = generate_images(ema, ids, seed=args.seed)
        correct = classifier_accuracy(classifier, images, ids).reshape(species, -1).mean(1)
        row = {
            "step": done,
            "wall": round(time.perf_counter() - start),
            "acc": float(correct.mean()),
            "worst": float(correct.min()),
            "worst_species": data.species[int(correct.argmin())],
            "diversity": within_species_spread(images, ids) / real_spread,
            **prdc(reference, features_of(space, images[position < per], 50)),
        }
        save_png(
            tile(images[position < GRID_PER_SPECIES], columns=8), args.out / f"step-{done}.png"
        )
        trainer.raw_g.eval()
        raw = generate_images(trainer.raw_g, ids, seed=args.seed)
        trainer.raw_g.train()
        row["raw_diversity"] = within_species_spread(raw, ids) / real_spread
        row["raw_acc"] = float(classifier_accuracy(classifier, raw, ids).mean())
        save_png(tile(raw[position < GRID_PER_SPECIES], columns=8), args.out / f"raw-{done}.png")
        rows.append(row)
        print(
            " ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ),
            flush=True,
        )
    summary = {"settings": settings, "seed": args.seed, "per": per, "floor": floor, "rows": rows}
    (args.out / "rows.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
