"""The GAN's subcommands: its training stage, and a training's job segments.

``speciesgan.cli.main`` gives ``train-gan`` what a long training needs around
it: the SLURM time-limit signal, the restart under torchrun for several GPUs, and
the record of a fatal error beside the checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speciesgan.subcommand import Subcommand, add_device_argument, add_stage_arguments
from speciesgan.util.errors import SpeciesganError


def _train_gan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--classifier", type=Path, default=None)
    p.add_argument("--out-generator", type=Path, required=True)
    p.add_argument("--out-log", type=Path, required=True)
    p.add_argument("--checkpoint-dir", type=Path, required=True)
    p.add_argument(
        "--out-snapshots", type=Path, default=None, help="G-EMA by step (gan.snapshot_every)"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="start at step 0 even if CHECKPOINT_DIR/last.pt could be continued or is damaged "
        "(it is moved aside, not deleted)",
    )
    p.add_argument(
        "--out-timing",
        type=Path,
        default=None,
        help="JSON with the wall and CPU seconds of the whole run, summed over its job segments",
    )
    p.add_argument(
        "--out-selection",
        type=Path,
        default=None,
        help="JSON with the snapshot selection rule, every snapshot's score and the step "
        "exported (gan.select_every)",
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="data-parallel processes, one per GPU: above 1 this command restarts itself under "
        "torchrun (same global batch; gloo on CPUs)",
    )
    add_stage_arguments(p)
    add_device_argument(p)


def _train_gan(args: argparse.Namespace) -> None:
    from speciesgan.gan.training_loop import train_gan
    from speciesgan.metrics.selection import snapshot_judge

    train_gan(
        args.manifest,
        args.classifier,
        args.out_generator,
        args.out_log,
        args.checkpoint_dir,
        settings=args.settings,
        seed=args.seed,
        threads=args.threads,
        out_snapshots=args.out_snapshots,
        restart=args.restart,
        device=args.device,
        out_timing=args.out_timing,
        scorer=snapshot_judge(args.settings, args.seed),
        out_selection=args.out_selection,
    )


TRAIN_GAN = Subcommand(
    "train-gan",
    _train_gan_arguments,
    _train_gan,
    help="train the conditional GAN (resumes automatically)",
)


def _segments_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_dir", type=Path, metavar="CHECKPOINT_DIR")
    p.add_argument("--retry", action="store_true", help="let training start again after a stall")


def _segments(args: argparse.Namespace) -> None:
    from speciesgan.gan import segments

    try:
        ledger = (
            segments.allow_retry(args.checkpoint_dir)
            if args.retry
            else segments.read_ledger(args.checkpoint_dir)
        )
    except ValueError as exc:  # a damaged ledger: say which file
        raise SpeciesganError(str(exc)) from exc
    if ledger is None:
        raise SpeciesganError(f"no {segments.LEDGER_NAME} in {args.checkpoint_dir}")
    print(segments.format_ledger(ledger))
    if args.retry:
        print("the next attempt will train again")


SEGMENTS = Subcommand(
    "segments",
    _segments_arguments,
    _segments,
    help="list a GAN run's job segments (time, steps, how each ended); --retry after a stall",
    description="Training writes CHECKPOINT_DIR/segments.json; after two attempts in a row "
    "without progress it refuses to start.  --retry lets the next attempt train again.",
)
