"""Throughput and peak host memory of the evaluate stage's generated side at full scale.

Generates ``--images`` images (default 10,000) at ``--size`` px with the main
config's generator (random weights: the cost does not depend on training) and
streams them through everything ``speciesgan evaluate`` runs per image:
Inception (pool features and logits), the species classifier and the
EfficientNet-Lite0 feature space, plus DINOv2 when ``--dinov2`` names a cached
model.  Then times the distribution metrics on those features (the first half
standing in for the real side).  Prints one table: images/s, seconds, and the
peak resident memory of the process (``ru_maxrss``), which is what a SLURM
``--mem`` limit is measured against.  Usage::

    python benchmarks/evaluate.py                       # 10,000 images, CPU (or GPU if present)
    python benchmarks/evaluate.py --images 2000 --threads 2

With ``--results DIR`` it times the workflow's evaluation stages instead, on a
finished run (its manifest, generator, snapshots and classifiers), each as the
workflow runs it: ``real-features`` (beside GAN training), then ``evaluate`` and
``cas`` (beside each other once the generator exists).  The last rows are what
one job doing all three costs (how ``evaluate`` ran before the split) and what
is left on the path after the generator: the slower of evaluate and cas::

    python benchmarks/evaluate.py --results results/demo --configfile configs/demo.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from speciesgan.classifier.model import SpeciesClassifier, build_classifier_network
from speciesgan.gan.networks import build_networks
from speciesgan.metrics.feature_spaces import FeatureSpace, lite0_space
from speciesgan.metrics.fid import fid_from_features
from speciesgan.metrics.generated import generated_outputs
from speciesgan.metrics.inception import load_inception
from speciesgan.metrics.memorisation import memorisation
from speciesgan.metrics.prdc import density_coverage, precision_recall

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


def run_stage(argv: list[str], log: Path) -> tuple[float, float]:
    """Wall and CPU seconds (children's user + system) of one ``speciesgan`` command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(["speciesgan", *argv], stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"speciesgan {argv[0]} failed: see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def time_stages(results: Path, configfiles: list[Path], threads: int) -> None:
    """Time real-features, evaluate and cas on a finished run, as the workflow calls them."""
    from speciesgan.config import load_config

    config = load_config(configfiles)
    metrics, seed = json.dumps(config["metrics"]), str(config["seed"])
    manifest = results / "data" / "manifest.parquet"
    common = ["--threads", str(threads)]
    env_note = f"SPECIESGAN_PROGRESS={os.environ.get('SPECIESGAN_PROGRESS', '')}"
    with tempfile.TemporaryDirectory(prefix="evaluate-stages-") as tmp:
        out = Path(tmp)
        stages = {
            "real-features": [
                "real-features", "--manifest", str(manifest),
                "--out-dir", str(out / "real_features"), "--settings", metrics, *common,
            ],
            "evaluate": [
                "evaluate", "--generator", str(results / "gan" / "generator.pt"),
                "--snapshots", str(results / "gan" / "snapshots.pt"),
                "--manifest", str(manifest),
                "--classifier", str(results / "classifier" / "eval" / "model.pt"),
                "--judge", str(results / "classifier" / "judge" / "model.pt"),
                "--real-features", str(out / "real_features"),
                "--out", str(out / "eval" / "metrics.json"),
                "--out-pairs", str(out / "eval" / "closest_pairs.png"),
                "--seed", seed, "--settings", metrics, *common,
            ],
            "cas": [
                "cas", "--generator", str(results / "gan" / "generator.pt"),
                "--manifest", str(manifest),
                "--classifier", str(results / "classifier" / "eval" / "model.pt"),
                "--out", str(out / "cas" / "metrics.json"), "--seed", seed,
                "--classifier-settings", json.dumps(config["classifier"]), *common,
            ],
        }  # fmt: skip
        times = {name: run_stage(argv, out / f"{name}.log") for name, argv in stages.items()}
    print(
        f"\nevaluation stages on {results} ({threads} thread(s), {env_note}, torch {torch.__version__})"
    )
    print(f"{'stage':<52} {'wall s':>8} {'CPU s':>8}")
    for name, (wall, cpu) in times.items():
        print(f"{name:<52} {wall:8.1f} {cpu:8.1f}")
    total = [sum(t[i] for t in times.values()) for i in (0, 1)]
    print(
        f"{'all three in one job (evaluate before the split)':<52} {total[0]:8.1f} {total[1]:8.1f}"
    )
    tail = max(times["evaluate"][0], times["cas"][0])
    print(f"{'after the generator: slower of evaluate and cas':<52} {tail:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--species", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--dinov2", default=None, help="e.g. vitl14, when its weights are cached")
    parser.add_argument(
        "--results", type=Path, default=None, help="time the evaluation stages on this run"
    )
    parser.add_argument(
        "--configfile", type=Path, nargs="+", default=[], help="the run's config (with --results)"
    )
    args = parser.parse_args()
    if args.results is not None:
        time_stages(args.results, args.configfile, args.threads)
        return
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gan = yaml.safe_load(args.config.read_text())["gan"]
    generator, _ = build_networks(gan, args.species, args.size, seed=0)
    generator = generator.to(device).eval()
    network, info = build_classifier_network("efficientnet_lite0", args.species, "none")
    species = [f"species {k}" for k in range(args.species)]
    classifier = SpeciesClassifier(network, species, args.size, info["arch"]).to(device).eval()
    inception = load_inception("pretrained_or_random", device)
    spaces: list[FeatureSpace] = [lite0_space(device)]
    if args.dinov2:
        from speciesgan.metrics.dinov2 import dinov2_space

        space, reason = dinov2_space(args.dinov2, device, download=False)
        if space is None:
            raise SystemExit(reason)
        spaces.append(space)
    labels = np.arange(args.images) % args.species
    baseline = peak_rss_gib()

    outputs, seconds = timed(
        lambda: generated_outputs(
            generator, labels, 0, args.batch_size, inception, spaces, classifier
        )
    )
    rows = [
        (
            "generate + Inception + classifier + " + " + ".join(s.name for s in spaces),
            args.images / seconds,
            seconds,
            peak_rss_gib(),
        )
    ]
    half = args.images // 2
    for name, feats in [("inception", outputs.inception), *outputs.spaces.items()]:
        real, fake = feats[:half], feats[half:]
        for metric, fn in [
            ("FD", lambda r=real, f=fake: fid_from_features(f, r)),
            ("precision/recall k=3", lambda r=real, f=fake: precision_recall(r, f, k=3)),
            ("density/coverage k=5", lambda r=real, f=fake: density_coverage(r, f, k=5)),
            ("memorisation", lambda r=real, f=fake: memorisation(r, f)),
        ]:
            _, seconds = timed(fn)
            rows.append((f"{metric} ({name}, {half} vs {half})", None, seconds, peak_rss_gib()))

    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"\nevaluate at scale: {args.images} images, {args.size} px, {args.species} species, "
        f"batch {args.batch_size}, {device_name}, {args.threads} threads, torch {torch.__version__}"
    )
    print(f"peak RSS before generating: {baseline:.2f} GiB")
    print(f"{'step':<62} {'images/s':>9} {'seconds':>9} {'peak RSS GiB':>13}")
    for step, rate, seconds, rss in rows:
        rate_text = f"{rate:9.1f}" if rate is not None else f"{'':>9}"
        print(f"{step:<62} {rate_text} {seconds:9.1f} {rss:13.2f}")


if __name__ == "__main__":
    main()
