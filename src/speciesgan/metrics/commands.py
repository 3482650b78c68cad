"""The metrics' subcommands: the real side, the evaluation, CAS, and headlines of old runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speciesgan.subcommand import Subcommand, add_device_argument, add_stage_arguments


def _real_features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    add_stage_arguments(p, seed=False)
    add_device_argument(p)


def _real_features(args: argparse.Namespace) -> None:
    from speciesgan.metrics.real_side import write_real_features

    write_real_features(args.manifest, args.out_dir, args.settings, args.threads, args.device)


REAL_FEATURES = Subcommand(
    "real-features",
    _real_features_arguments,
    _real_features,
    help="the real crops' features in every metric space, read by evaluate",
)


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--weights",
        choices=("ema", "raw"),
        default="ema",
        help="score the EMA generator (default) or the generator as trained",
    )
    p.add_argument(
        "--snapshots", type=Path, default=None, help="also score these snapshots (FID/IS by step)"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="real-image feature cache (default: fid_cache beside --out)",
    )
    p.add_argument(
        "--real-features",
        type=Path,
        default=None,
        help="the folder `speciesgan real-features` wrote with the same --settings (read "
        "only; instead of --cache-dir)",
    )
    p.add_argument(
        "--out-pairs",
        type=Path,
        default=None,
        help="PNG of the memorisation check's closest (generated, training crop) pairs",
    )
    p.add_argument(
        "--judge",
        type=Path,
        default=None,
        help="the independent judge's model.pt (its metrics.json beside it): generated "
        "accuracy by a classifier that shares nothing with the discriminator",
    )
    p.add_argument(
        "--judge-min-accuracy",
        type=float,
        default=None,
        help="the judge's own real test top-1 below which its verdict does not count "
        "(default: the config schema's judge.min_accuracy)",
    )
    add_stage_arguments(p)
    add_device_argument(p)


def _evaluate(args: argparse.Namespace) -> None:
    from speciesgan.metrics.evaluate import evaluate

    evaluate(
        args.generator,
        args.manifest,
        args.classifier,
        args.out,
        settings=args.settings,
        seed=args.seed,
        threads=args.threads,
        weights=args.weights,
        snapshots=args.snapshots,
        cache_dir=args.cache_dir,
        real_features_dir=args.real_features,
        out_pairs=args.out_pairs,
        device=args.device,
        judge=args.judge,
        judge_min_accuracy=args.judge_min_accuracy,
    )


EVALUATE = Subcommand(
    "evaluate",
    _evaluate_arguments,
    _evaluate,
    help="FID, Inception Score and per-species accuracy",
)


def _cas_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument(
        "--classifier",
        type=Path,
        required=True,
        help="the eval classifier: its top-1 on the same test crops is CAS's floor",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--classifier-settings",
        type=json.loads,
        required=True,
        help="the config's classifier section as JSON: the recipe CAS trains with",
    )
    add_stage_arguments(p, settings=False)
    add_device_argument(p)


def _cas(args: argparse.Namespace) -> None:
    from speciesgan.metrics.cas import write_cas

    write_cas(
        args.generator,
        args.manifest,
        args.classifier,
        args.out,
        args.classifier_settings,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )


CAS = Subcommand(
    "cas",
    _cas_arguments,
    _cas,
    help="CAS: a classifier trained on generated images, tested on real test crops",
)


def _headline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("metrics", nargs="+", type=Path, metavar="METRICS_JSON")


def _headline(args: argparse.Namespace) -> None:
    from speciesgan.metrics.headline import headline_from_metrics_file

    for path in args.metrics:
        print(f"wrote {headline_from_metrics_file(path)}")


HEADLINE = Subcommand(
    "headline",
    _headline_arguments,
    _headline,
    help="write headline.json beside existing metrics.json files (runs made before it)",
)
