"""Stability across seeds: the demo recipe trained on several seeds, each figure beside its floor.

For each seed the real workflow runs (``snakemake all`` with ``configs/demo.yaml``
and ``seed=S``, each seed in its own results folder, the data stages shared by
nothing), and the table prints, from that run's ``metrics.json``: generated
accuracy (mean and worst species) by the evaluation classifier and by the
independent judge, recall, coverage and CAS, each next to its floor (the same
figure with real test crops in the generator's place, equal class-balanced
counts), the snapshot the selection rule exported, and the wall and CPU seconds
of the GAN stage (``gan/training_time.json``) and of the whole run (the
``benchmark:`` files).  For the first seed it also scores every kept snapshot of
the last third of training with the evaluation classifier (the worst species'
generated accuracy, ``--images-per-species`` per species)::

    python benchmarks/quality.py --seeds 0 1 2
    python benchmarks/quality.py --seeds 0 --overlay configs/demo.yaml --cores 2

A seed whose results folder is complete is not trained again (Snakemake sees
nothing to do), so the table can be printed again for free.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

COLUMNS = (
    "seed",
    "acc mean (floor)",
    "acc worst (floor)",
    "judge mean (floor)",
    "judge worst (floor)",
    "recall (floor)",
    "coverage (floor)",
    "CAS (floor)",
    "step chosen",
    "GAN wall s",
    "GAN CPU s",
    "run wall s",
    "run CPU s",
)


def run_seed(overlay: Path, seed: int, cores: int, results_root: Path) -> Path:
    """Run the workflow for one seed; returns its results folder."""
    results = results_root / f"seed{seed}"
    command = [
        "snakemake", "all", "--cores", str(cores), "--configfile", str(overlay),
        "--config", f"seed={seed}", f"results_dir={results}",
    ]  # fmt: skip
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"seed {seed}: the workflow failed\n{done.stderr[-4000:]}")
    return results


def pair(value: Any, floor: Any) -> str:
    def fmt(number: Any) -> str:
        return f"{number:.3f}" if isinstance(number, (int, float)) else "-"

    return f"{fmt(value)} ({fmt(floor)})"


def seconds(results: Path) -> tuple[float, float]:
    """Wall and CPU seconds over every stage's ``benchmark:`` file."""
    wall = cpu = 0.0
    for bench in (results / "benchmarks").glob("*.tsv"):
        row = next(csv.DictReader(bench.open(), delimiter="\t"))
        wall += float(row["s"])
        cpu += float(row.get("cpu_time") or 0.0)
    return wall, cpu


def seed_row(seed: int, results: Path) -> dict[str, str]:
    metrics = json.loads((results / "metrics.json").read_text())
    generation = metrics["generation"]
    floors = generation.get("floors") or {}
    fidelity = generation.get("fidelity_diversity") or {}
    judge = generation.get("judge") or {}
    cas = generation.get("cas") or {}
    accuracy_floor = floors.get("generated_accuracy") or {}
    judge_floor = floors.get("judge_accuracy") or {}
    timing = json.loads((results / "gan" / "training_time.json").read_text())
    wall, cpu = seconds(results)
    verdict = "" if judge.get("counts") else " weak judge"
    return {
        "seed": str(seed),
        "acc mean (floor)": pair(generation.get("accuracy_mean"), accuracy_floor.get("mean")),
        "acc worst (floor)": pair(generation.get("accuracy_worst"), accuracy_floor.get("worst"))
        + f" {generation.get('accuracy_worst_species')}",
        "judge mean (floor)": pair(judge.get("mean"), judge_floor.get("mean")) + verdict,
        "judge worst (floor)": pair(judge.get("worst"), judge_floor.get("worst")),
        "recall (floor)": pair(fidelity.get("recall"), floors.get("recall")),
        "coverage (floor)": pair(fidelity.get("coverage"), floors.get("coverage")),
        "CAS (floor)": pair(cas.get("top1"), cas.get("floor")),
        "step chosen": str((metrics.get("selection") or {}).get("chosen_step")),
        "GAN wall s": f"{timing.get('wall_seconds', 0):.0f}",
        "GAN CPU s": f"{timing.get('cpu_seconds', 0):.0f}",
        "run wall s": f"{wall:.0f}",
        "run CPU s": f"{cpu:.0f}",
    }


def snapshot_curve(
    results: Path, images_per_species: int, seed: int
) -> list[tuple[int, float, str]]:
    """(step, worst species' generated accuracy, that species) for the last third's snapshots."""
    from speciesgan.classifier.model import load_classifier
    from speciesgan.gan.networks import load_snapshots
    from speciesgan.generate.sample import generate_images
    from speciesgan.metrics.evaluate import classifier_accuracy

    generators, meta = load_snapshots(results / "gan" / "snapshots.pt")
    classifier = load_classifier(results / "classifier" / "eval" / "model.pt")
    species = list(meta["species"])
    last = max(step for step, _ in generators)
    ids = torch.arange(len(species)).repeat_interleave(images_per_species)
    rows = []
    for step, generator in generators:
        if step < last * 2 / 3:
            continue
        images = generate_images(generator, ids, seed=seed)
        correct = classifier_accuracy(classifier, images, ids).reshape(len(species), -1)
        per_species = correct.mean(axis=1)
        worst = int(np.argmin(per_species))
        rows.append((step, float(per_species[worst]), species[worst]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--overlay", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--results-root", type=Path, default=Path("results/quality"))
    parser.add_argument("--images-per-species", type=int, default=40, help="for the curve")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()

    rows, curve = [], []
    for index, seed in enumerate(args.seeds):
        results = run_seed(args.overlay, seed, args.cores, args.results_root)
        rows.append(seed_row(seed, results))
        if index == 0:
            curve = snapshot_curve(results, args.images_per_species, seed)
    print(f"\n| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}")
    for row in rows:
        print("| " + " | ".join(row[column] for column in COLUMNS) + " |")
    if curve:
        print(
            f"\nseed {args.seeds[0]}: worst species' generated accuracy (eval classifier, "
            f"{args.images_per_species} per species) at each snapshot of the last third"
        )
        print("\n| step | worst accuracy | species |\n|---|---|---|")
        for step, accuracy, name in curve:
            print(f"| {step} | {accuracy:.3f} | {name} |")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "curve": curve}, indent=2) + "\n")


if __name__ == "__main__":
    main()
