"""What a ``speciesgan`` subcommand is, and the arguments many stages share.

Each stage's subcommand is declared beside the stage's code, in its package's
``commands`` module: a ``Subcommand`` with the function that declares its
arguments and the one that runs it.  ``speciesgan.cli`` lists them and
dispatches; ``speciesgan.workflow.code_version`` reads each ``run`` function's
imports (without importing anything) to know which code a stage runs.

Building the parser must stay cheap (every job of the workflow does it), so a
``commands`` module imports its stage's code inside its ``run`` functions, never
at its top, and nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Subcommand:
    """``speciesgan NAME``: its arguments, what it runs, and its ``--help`` texts."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
    """Imports the stage's code itself (see the module docstring) and runs it; a
    SpeciesganError it raises becomes a message and the error's exit status."""
    help: str
    description: str | None = None

    def add_to(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        """This subcommand's parser, with its arguments, among ``subparsers``."""
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description)
        self.add_arguments(parser)
        return parser


def settings_json(text: str) -> dict[str, Any]:
    """``--settings``: a JSON object of finite numbers (a stage's config section)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--settings is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--settings must be a JSON object")
    from speciesgan.config import number_problems

    problems = number_problems(value)
    if problems:  # JSON admits NaN and Infinity; a stage run by hand must not
        raise argparse.ArgumentTypeError(
            "--settings: " + "; ".join(m.removeprefix("config key ") for m in problems.values())
        )
    return value


def seed_number(text: str) -> int:
    """A seed: a whole number from 0 to 2**63 - 1 (what every RNG here accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be a whole number, not {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"--seed must be from 0 to 2**63 - 1, not {value}")
    return value


def add_stage_arguments(
    p: argparse.ArgumentParser, *, seed: bool = True, threads: bool = True, settings: bool = True
) -> None:
    """``--settings``, ``--seed`` and ``--threads``, as every workflow stage takes them."""
    if settings:
        p.add_argument("--settings", type=settings_json, default={}, help="stage settings as JSON")
    if seed:
        p.add_argument("--seed", type=seed_number, default=0)
    if threads:
        p.add_argument(
            "--threads", type=int, default=1, help="torch/numpy threads (fixed for reproducibility)"
        )


DEVICE_CHOICES = ("auto", "cuda", "cpu")
"""``speciesgan.runtime.device.DEVICE_CHOICES``, repeated so that building the parser imports no torch."""


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """``--device`` for every stage that may use CUDA (see ``speciesgan.runtime.device``)."""
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default=None,
        help="cuda: a working GPU or stop with an error; cpu: the CPU even in a GPU job; "
        "auto: a GPU if SLURM allocated one (then it must work) or if one works, else the "
        "CPU (default: $SPECIESGAN_DEVICE, else auto)",
    )
