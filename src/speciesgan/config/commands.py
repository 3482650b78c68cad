"""``speciesgan check-config``: the config check the workflow does at start, by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

from speciesgan.subcommand import Subcommand


def _check_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("configs", type=Path, nargs="+", metavar="CONFIG")
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--base",
        type=Path,
        default=Path("config.yaml"),
        help="the config the files are layered over (default: config.yaml here)",
    )
    base.add_argument(
        "--alone", action="store_true", help="check the files by themselves, over no base"
    )


def _check_config(args: argparse.Namespace) -> None:
    from speciesgan.config import load_config

    base = None if args.alone else args.base
    load_config(args.configs, base=base)
    print(f"{' + '.join(map(str, ([base] if base else []) + args.configs))}: OK")


CHECK_CONFIG = Subcommand(
    "check-config",
    _check_config_arguments,
    _check_config,
    help="validate config files, layered over config.yaml as the workflow layers them",
    description="Layer CONFIG files in order over the workflow's config.yaml (as "
    "`snakemake --configfile CONFIG...` does) and validate the result against the schema.",
)
