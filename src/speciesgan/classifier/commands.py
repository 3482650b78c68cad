"""``speciesgan train-classifier``: the species classifiers' training stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from speciesgan.subcommand import Subcommand, add_device_argument, add_stage_arguments


def _train_classifier_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out-model", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)
    p.add_argument(
        "--restart",
        action="store_true",
        help="start at epoch 1 even if OUT_MODEL.resume.pt could be continued or is damaged "
        "(it is moved aside, not deleted)",
    )
    add_stage_arguments(p)
    add_device_argument(p)


def _train_classifier(args: argparse.Namespace) -> None:
    from speciesgan.classifier.train import train_classifier

    train_classifier(
        args.manifest,
        args.out_model,
        args.out_metrics,
        settings=args.settings,
        seed=args.seed,
        threads=args.threads,
        restart=args.restart,
        device=args.device,
    )


TRAIN_CLASSIFIER = Subcommand(
    "train-classifier",
    _train_classifier_arguments,
    _train_classifier,
    help="fine-tune EfficientNet-B0 on the crops",
)
