"""Where each training process sits: rank, node, GPU, CPU threads and rendezvous.

Three launchers end in the same ``Ranks``:

* **torchrun** (the rule's launcher for ``gan.gpus > 1``: one node, one SLURM
  task whose CPUs its N processes share): WORLD_SIZE, RANK, LOCAL_RANK,
  LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT come from torchrun.
* **srun** with one task per GPU, on one node or several
  (``srun speciesgan train-gan ...`` inside ``sbatch --ntasks N``): ranks come
  from SLURM_PROCID, SLURM_LOCALID and SLURM_STEP_NUM_TASKS; the rendezvous is
  derived: MASTER_ADDR is the step's first node (``scontrol show hostnames``),
  MASTER_PORT a port derived from the job id (either may be set by hand).
  SLURM_STEP_NUM_TASKS exists only inside an srun step, so a batch script of a
  ``--ntasks 2`` job that runs training without srun stays one process instead
  of waiting for a second rank forever.
* **by hand**: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (tests, other launchers).

Threads: every process used to call ``torch.set_num_threads(threads)`` with the
job's whole CPU count, so N ranks ran N times as many threads as CPUs.  A
distributed rank now takes its share of the allocation: the CPUs of its SLURM
task (SLURM_CPUS_PER_TASK, else SLURM_CPUS_ON_NODE over the tasks on the node,
else the CPUs this process may run on) divided by the processes sharing that task
(torchrun's LOCAL_WORLD_SIZE; 1 under srun), never more than ``--threads``.  A
single process keeps ``--threads`` exactly, as reproducibility on a CPU needs.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

PORT_BASE, PORT_SPAN = 10000, 20000
"""MASTER_PORT under srun: PORT_BASE + job id mod PORT_SPAN, below Linux's ephemeral
range (32768+), so jobs sharing a node differ and no client socket holds it."""


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Layout:
    """How the processes of a distributed run were started, read from the environment."""

    launcher: str  # "torchrun", "srun" or "env"
    world_size: int
    rank: int
    local_rank: int
    local_world_size: int  # processes of this run on this node
    share_task: int  # processes sharing one SLURM task's CPUs (torchrun: all on the node)


def _int(environ: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def expand_tasks_per_node(text: str) -> list[int]:
    """SLURM's compact task counts per node, ``"2(x3),1"`` -> ``[2, 2, 2, 1]``."""
    counts: list[int] = []
    for part in filter(None, text.split(",")):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match is None:
            return []
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def _tasks_on_this_node(environ: Mapping[str, str]) -> int | None:
    """Tasks of this job step (else of the job) on this node."""
    node = _int(environ, "SLURM_NODEID") or 0
    for name in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        counts = expand_tasks_per_node(environ.get(name, ""))
        if node < len(counts):
            return counts[node]
    return None


def layout_from_env(environ: Mapping[str, str] | None = None) -> Layout | None:
    """The distributed layout this process was started in; None for a single process."""
    env = os.environ if environ is None else environ
    world = _int(env, "WORLD_SIZE")
    if world is not None:
        if world <= 1:
            return None
        local_world = _int(env, "LOCAL_WORLD_SIZE") or 1
        torchrun = "TORCHELASTIC_RUN_ID" in env
        return Layout(
            launcher="torchrun" if torchrun else "env",
            world_size=world,
            rank=_int(env, "RANK") or 0,
            local_rank=_int(env, "LOCAL_RANK") or 0,
            local_world_size=local_world,
            share_task=local_world if torchrun else 1,
        )
    world = _int(env, "SLURM_STEP_NUM_TASKS")
    if world is None or world <= 1:
        return None
    return Layout(
        launcher="srun",
        world_size=world,
        rank=_int(env, "SLURM_PROCID") or 0,
        local_rank=_int(env, "SLURM_LOCALID") or 0,
        local_world_size=_tasks_on_this_node(env) or 1,
        share_task=1,
    )


def local_rank_from_env() -> int:
    """This process's index on its node (torchrun's LOCAL_RANK, srun's SLURM_LOCALID)."""
    layout = layout_from_env()
    return layout.local_rank if layout is not None else 0


def gpu_index(local_rank: int, environ: Mapping[str, str] | None = None) -> int:
    """The CUDA device of local rank ``local_rank``.

    With all the node's GPUs visible (torchrun, ``--gpus-per-node``) it is the
    local rank; ``srun --gpus-per-task 1`` shows each task only its own GPU,
    which is then device 0 whatever the local rank.
    """
    env = os.environ if environ is None else environ
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if visible and local_rank >= len(visible):
        return local_rank % len(visible)
    return local_rank


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (``node[03-05,9],gpu1`` -> ``node03``).

    ``scontrol show hostnames`` is asked first (it knows every syntax); without
    it the first entry is expanded here.
    """
    try:
        done = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        hosts = done.stdout.split() if done.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        hosts = []
    if hosts:
        return hosts[0]
    match = re.match(r"([^,\[]+)(?:\[(\d+))?", nodelist.strip())
    if match is None:
        return nodelist
    return match.group(1) + (match.group(2) or "")


def srun_rendezvous(environ: Mapping[str, str]) -> dict[str, str]:
    """MASTER_ADDR and MASTER_PORT for an srun-launched run (values already set win)."""
    result = {}
    if not environ.get("MASTER_ADDR"):
        nodelist = (
            environ.get("SLURM_STEP_NODELIST")
            or environ.get("SLURM_JOB_NODELIST")
            or environ.get("SLURM_NODELIST")
            or "localhost"
        )
        result["MASTER_ADDR"] = first_host(nodelist)
    if not environ.get("MASTER_PORT"):
        job = _int(environ, "SLURM_JOB_ID") or 0
        result["MASTER_PORT"] = str(PORT_BASE + job % PORT_SPAN)
    return result


def _affinity_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpus_per_rank(layout: Layout, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """CPUs this rank may use, and where that number came from (for the log)."""
    env = os.environ if environ is None else environ
    usable = _affinity_count()
    per_task = _int(env, "SLURM_CPUS_PER_TASK")
    on_node = _int(env, "SLURM_CPUS_ON_NODE")
    if per_task:
        cpus, source = per_task, f"SLURM_CPUS_PER_TASK={per_task}"
    elif on_node:
        tasks = _tasks_on_this_node(env) or 1
        cpus, source = max(1, on_node // tasks), f"SLURM_CPUS_ON_NODE={on_node} / {tasks} task(s)"
    else:
        cpus, source = usable, f"{usable} CPUs usable"
    cpus = min(cpus, usable)
    if layout.share_task > 1:
        source += f" / {layout.share_task} processes per task"
    return max(1, cpus // layout.share_task), source


def threads_for_rank(requested: int, layout: Layout | None) -> int:
    """Torch threads of this process: ``requested`` alone, its share of the allocation when distributed."""
    if layout is None:
        return int(requested)
    cpus, source = cpus_per_rank(layout)
    threads = max(1, min(int(requested), cpus))
    log.info(
        "rank %d of %d (%s, local %d of %d on this node): %d torch thread(s) (%s, --threads %d)",
        layout.rank,
        layout.world_size,
        layout.launcher,
        layout.local_rank,
        layout.local_world_size,
        threads,
        source,
        requested,
    )
    return threads


def init_ranks(device: torch.device, layout: Layout | None = None) -> Ranks:
    """Join the process group of a distributed run (see the module docstring for launchers).

    NCCL for processes on GPUs, gloo on CPUs; ``device`` was chosen (and checked) first,
    so a broken CUDA set-up stops with its own message, not inside NCCL.
    """
    layout = layout if layout is not None else layout_from_env()
    if layout is None:
        return Ranks()
    owns = False
    if not dist.is_initialized():
        if layout.launcher == "srun":
            for name, value in srun_rendezvous(os.environ).items():
                os.environ[name] = value
        os.environ.setdefault("RANK", str(layout.rank))
        os.environ.setdefault("WORLD_SIZE", str(layout.world_size))
        os.environ.setdefault("LOCAL_RANK", str(layout.local_rank))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if layout.rank == 0:
            log.info(
                "%d ranks (%s, %s) meet at %s:%s",
                layout.world_size,
                layout.launcher,
                "nccl" if device.type == "cuda" else "gloo",
                os.environ.get("MASTER_ADDR"),
                os.environ.get("MASTER_PORT"),
            )
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Ranks(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=layout.local_rank,
        owns_group=owns,
    )
