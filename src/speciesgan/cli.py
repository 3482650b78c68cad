"""The ``speciesgan`` command: one subcommand per pipeline stage.

Snakemake rules call these subcommands (rules stay thin); each can also be run
by hand, which is how a stage is debugged on a cluster login node.  Stage
settings arrive as one JSON object (``--settings``), the config section the rule
passes as a param, so Snakemake reruns a stage exactly when its section changes.

Each subcommand's arguments and its handler live beside the stage's code, in its
package's ``commands`` module (``speciesgan.subcommand.Subcommand``); this module
lists them, in the order ``speciesgan --help`` shows them, and runs one.
"""

from __future__ import annotations

import argparse
import logging
import sys

from speciesgan.classifier import commands as classifier
from speciesgan.config import commands as config
from speciesgan.data import commands as data
from speciesgan.gan import commands as gan
from speciesgan.generate import commands as generate
from speciesgan.metrics import commands as metrics
from speciesgan.report import commands as report
from speciesgan.runtime import commands as runtime
from speciesgan.studio import commands as studio
from speciesgan.subcommand import Subcommand
from speciesgan.util.errors import SpeciesganError
from speciesgan.workflow import commands as workflow

log = logging.getLogger("speciesgan")

SUBCOMMANDS: tuple[Subcommand, ...] = (
    config.CHECK_CONFIG,
    data.DEMO_DATA,
    data.DOWNLOAD,
    data.EXTRACT,
    data.INDEX,
    data.CROP_SHARD,
    data.MANIFEST,
    classifier.TRAIN_CLASSIFIER,
    gan.TRAIN_GAN,
    gan.SEGMENTS,
    generate.SAMPLE,
    generate.GENERATE,
    studio.STUDIO,
    metrics.REAL_FEATURES,
    metrics.EVALUATE,
    metrics.CAS,
    report.REPORT,
    runtime.DOCTOR,
    report.ABLATION_TABLE,
    workflow.DVC_EXPORT,
    workflow.PUBLISH,
    workflow.RESTORE,
    metrics.HEADLINE,
    workflow.DVC_STAGE,
)
"""Every subcommand: a new stage's is one more line here."""
BY_NAME = {command.name: command for command in SUBCOMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speciesgan", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_to(sub)
    return parser


def run(args: argparse.Namespace) -> None:
    """Run the subcommand ``args`` were parsed for."""
    if args.command not in BY_NAME:  # pragma: no cover - argparse rejects unknown commands
        raise SpeciesganError(f"unknown command {args.command}")
    BY_NAME[args.command].run(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train-gan"]:
        from speciesgan.runtime.preemption import remember_time_limit_signal

        remember_time_limit_signal()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "train-gan":
        from speciesgan.runtime.launch import relaunch_under_torchrun

        relaunch_under_torchrun(args.gpus, argv)  # returns when this process is to train
    from speciesgan.runtime import fatal
    from speciesgan.runtime.preemption import (
        EXIT_PREEMPTED,
        StageTerminated,
        TrainingInterrupted,
        requeue_own_job,
        restore_sigterm,
        stop_stage_on_sigterm,
    )

    training = args.command == "train-gan"
    previous = stop_stage_on_sigterm()
    try:
        if training:
            fatal.clear(args.checkpoint_dir)
        run(args)
    except SpeciesganError as exc:
        print(f"speciesgan {args.command}: error: {exc}", file=sys.stderr)
        if training:  # the workflow's next attempt reads it and does not start
            fatal.record(args.checkpoint_dir, args.command, exc)
        return exc.exit_code
    except StageTerminated as exc:
        print(
            f"speciesgan {args.command}: stopped by {exc}; the outputs it was writing were "
            "removed, so nothing partial is left (rerun the stage to make them)",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except TrainingInterrupted as exc:
        print(
            f"speciesgan {args.command}: stopped early, checkpoint saved ({exc}); rerun to resume",
            file=sys.stderr,
        )
        print(f"speciesgan {args.command}: {requeue_own_job(exc)}", file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    finally:
        restore_sigterm(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
