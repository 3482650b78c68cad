"""One training process per GPU: ``speciesgan train-gan --gpus N`` starts torchrun itself.

The GPU count is how training runs, not what it computes (the global batch stays
``gan.batch_size``), so the workflow passes it from the job's ``gpu`` resource rather
than as a param: Snakemake reruns a job when a param changes, never when a resource
does.  The rule's command is therefore the same for one GPU or eight, and the choice
between a plain process and torchrun is made here, when the job starts.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)


def already_distributed(env: Mapping[str, str]) -> bool:
    """True inside a process group's launcher: torchrun (WORLD_SIZE) or ``srun --ntasks N``
    with MASTER_ADDR set, as ``speciesgan.gan.training_loop.init_ranks`` joins them."""
    if env.get("WORLD_SIZE"):
        return True
    tasks = env.get("SLURM_NTASKS", "")
    return bool(env.get("MASTER_ADDR")) and tasks.isdigit() and int(tasks) > 1


def torchrun_command(gpus: int, argv: Sequence[str]) -> list[str]:
    """This interpreter's torchrun (the venv's, whatever PATH says) running ``argv`` N times."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={gpus}",
        "-m",
        "speciesgan",
        *argv,
    ]


def relaunch_under_torchrun(gpus: int, argv: Sequence[str]) -> None:
    """Replace this process by torchrun with ``gpus`` copies of it when ``gpus`` > 1.

    Returns (and the caller trains in this process) for one GPU, or when this process
    already is one of the ranks.  ``exec`` rather than a child process: SLURM's signals
    (the time-limit SIGUSR1, scancel) then reach torchrun and its workers exactly as
    if the rule had called torchrun, and the exit status is theirs.
    """
    if gpus <= 1 or already_distributed(os.environ):
        return
    command = torchrun_command(gpus, argv)
    log.info("%d GPUs: starting one training process per GPU with torchrun", gpus)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
