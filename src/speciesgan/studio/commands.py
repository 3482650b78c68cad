"""``speciesgan studio``: serve the studio page for a trained generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from speciesgan.subcommand import Subcommand


def _studio_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--generator", type=Path, required=True, help="generator.pt or a run's results folder"
    )
    p.add_argument(
        "--metrics", type=Path, default=None, help="the run's metrics.json (default: beside it)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    p.add_argument(
        "--workers", type=int, default=None, help="drawing threads (default: 2, or 1 on 1 core)"
    )


def _studio(args: argparse.Namespace) -> None:
    from speciesgan.studio.server import serve

    serve(args.generator, args.metrics, args.host, args.port, args.workers)


STUDIO = Subcommand(
    "studio",
    _studio_arguments,
    _studio,
    help="a local web page to find, see, mix and keep a generator's pictures",
    description="Serve the studio page (docs/studio.md) for a generator: GENERATOR.pt, "
    "or a run's results folder (its gan/generator.pt and metrics.json).",
)
