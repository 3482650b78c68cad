"""Versioning with DVC (see docs/dvc.md): export the stages, run one, publish and restore.

All run in the repository root.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from speciesgan.subcommand import Subcommand


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """The run a DVC command is about: its config files and the workflow folder."""
    p.add_argument(
        "--configfile",
        action="append",
        default=[],
        metavar="FILE",
        help="as given to snakemake (repeat for several)",
    )
    p.add_argument("--workdir", type=Path, default=Path("."))


def _remote_arguments(p: argparse.ArgumentParser) -> None:
    _run_arguments(p)
    p.add_argument(
        "--remote",
        default=None,
        metavar="NAME_OR_PATH",
        help="a DVC remote's name, or a folder/URL (default: $SPECIESGAN_DVC_REMOTE, "
        "else DVC's default remote)",
    )


def _restore_arguments(p: argparse.ArgumentParser) -> None:
    _remote_arguments(p)
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="STAGE_OR_PATH",
        help="pull only what this needs: a stage (train_gan, smoke-train_gan), a rule, "
        "or an output path (repeat for several; default: the whole run)",
    )


def _dvc_export(args: argparse.Namespace) -> None:
    from speciesgan.workflow.dvc_export import export_dvc

    export = export_dvc(args.workdir, args.configfile)
    print(
        f"wrote {len(export.stages)} stages of run {export.run!r} in {export.dvc_yaml} "
        f"and {export.params_file}"
    )


def _publish(args: argparse.Namespace) -> None:
    from speciesgan.workflow.dvc_sync import publish

    publish(args.workdir, args.configfile, remote=args.remote)


def _restore(args: argparse.Namespace) -> None:
    from speciesgan.workflow.dvc_sync import restore

    restore(args.workdir, args.configfile, remote=args.remote, targets=args.target)


DVC_EXPORT = Subcommand(
    "dvc-export",
    _run_arguments,
    _dvc_export,
    help="write this config's stages in dvc.yaml and params/<run>.yaml",
)
PUBLISH = Subcommand(
    "publish",
    _remote_arguments,
    _publish,
    help="commit an up-to-date run's outputs to DVC and push them",
)
RESTORE = Subcommand(
    "restore",
    _restore_arguments,
    _restore,
    help="pull published outputs; rerun nothing that is current",
)


def _dvc_stage_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="OUTPUT")
    p.add_argument("--rule", required=True)
    p.add_argument("--configfile", required=True, metavar="FILE")


def _dvc_stage(args: argparse.Namespace) -> None:
    from speciesgan.workflow.dvc_export import PROFILE_ENV, stage_snakemake_argv

    argv = stage_snakemake_argv(args.targets, args.rule, args.configfile)
    where = f" (${PROFILE_ENV})" if "--profile" in argv else f" (local; ${PROFILE_ENV} unset)"
    print(f"speciesgan dvc-stage: {shlex.join(argv)}{where}", file=sys.stderr, flush=True)
    # this environment's Snakemake, whatever PATH says; its exit status is the stage's
    os.execv(sys.executable, [sys.executable, "-m", *argv])


DVC_STAGE = Subcommand(
    "dvc-stage",
    _dvc_stage_arguments,
    _dvc_stage,
    help="run one dvc.yaml stage through Snakemake (its cmd; --profile from $SPECIESGAN_PROFILE)",
)
