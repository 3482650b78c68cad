"""Stops that a retry cannot fix, recorded where the workflow's next attempt looks.

``train_gan`` has a retry budget of many segments, because a run longer than one
job's time limit is trained as one retry after another.  An error that will happen
again -- no usable GPU on the node, a setting that cannot work, a damaged
checkpoint, a run that has stalled -- must not use that budget up: measured on
the local SLURM cluster before this existed, a job on a node without a working
driver failed after about 24 s, and was resubmitted 29 more times.

Snakemake cannot see why a job failed (SLURM reports FAILED for any non-zero
status), and the rule's ``retries`` is read once, when the Snakefile is parsed.
What it does evaluate again for every attempt is the rule's resources.  So the
training command writes ``fatal.json`` beside its checkpoints when it stops on a
:class:`~speciesgan.util.errors.SpeciesganError` (a problem for a person to fix), and
removes it when it starts; the rule's ``fatal_stop`` resource
(:func:`refuse_retry_after_fatal`) reads it before each retry and raises, with the
training's own message, which makes Snakemake end that job instead of submitting
it again.  The first attempt of a new ``snakemake`` call never looks, so a fixed
cause needs no clean-up by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speciesgan.util.atomic import write_json
from speciesgan.util.errors import SpeciesganError

MARKER_NAME = "fatal.json"


def marker_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / MARKER_NAME


def _writes() -> bool:
    """Rank 0 (or a single process) owns the marker; other ranks stop with the same error."""
    return (os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "0") == "0"


def clear(checkpoint_dir: str | Path) -> None:
    """A new attempt starts: an earlier stop no longer speaks for this one."""
    if _writes():
        marker_path(checkpoint_dir).unlink(missing_ok=True)


def record(checkpoint_dir: str | Path, command: str, error: SpeciesganError) -> None:
    """Write why ``command`` stopped; the next attempt of the workflow will not start."""
    if not _writes():
        return
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    job = os.environ.get("SLURM_JOB_ID")
    write_json(
        marker_path(checkpoint_dir),
        {
            "command": command,
            "kind": type(error).__name__,
            "exit_code": error.exit_code,
            "message": str(error),
            "slurm_job": job,
        },
    )


def read(checkpoint_dir: str | Path) -> dict[str, Any] | None:
    """The recorded stop, None when the last attempt did not stop on one (or it is unreadable)."""
    try:
        data = json.loads(marker_path(checkpoint_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "message" in data else None


def refuse_retry_after_fatal(checkpoint_dir: str) -> Callable[..., int]:
    """A Snakemake resource callable (value 0) that raises instead of allowing a retry
    whose previous attempt stopped on an error a retry cannot fix.

    ``checkpoint_dir`` may name the rule's wildcards (``runs/{run}/checkpoints``).
    """

    def fatal_stop(wildcards: Any, attempt: int) -> int:
        if attempt > 1:
            checkpoints = checkpoint_dir.format(**dict(wildcards.items()))
            stop = read(checkpoints)
            if stop is not None:
                job = f" (SLURM job {stop['slurm_job']})" if stop.get("slurm_job") else ""
                raise SpeciesganError(
                    f"not retrying: attempt {attempt - 1}{job} stopped with exit status "
                    f"{stop.get('exit_code')}, which another attempt cannot change: "
                    f"{stop['message']} [recorded in {marker_path(checkpoints)}; the next "
                    "`snakemake` call tries again]"
                )
        return 0

    return fatal_stop
