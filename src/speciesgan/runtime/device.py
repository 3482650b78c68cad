"""Which device a stage runs on: the GPU it was asked for, or a clear stop.

Why this exists: "cuda if available else cpu" turns a torch build that does not
match the node's driver (or has no kernels for its GPU) into days of silent CPU
training.  Here a stage that was *asked* for a GPU gets one that works or stops
at once with a :class:`~speciesgan.util.errors.SpeciesganError` naming the torch
build's CUDA version, the driver and the fix.

A stage asked for a GPU when ``--device cuda`` (or ``SPECIESGAN_DEVICE=cuda``)
was given, or when SLURM allocated it one: sbatch/srun ``--gpus``, ``--gres=gpu``
and ``--gpus-per-node`` all set ``SLURM_GPUS_ON_NODE`` and ``SLURM_JOB_GPUS``
(seen on slurm-wlm 22.05), so the workflow's rules need no extra option.
``--device cpu`` is the way to run on the CPU on purpose inside a GPU job.
Unasked (``auto``), a working GPU is used and no GPU means the CPU; a GPU that
CUDA reports but that cannot run a kernel is an error here too, because
continuing would only fail later with a less helpful message.

Every stage logs one line saying which device it chose and why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from speciesgan.runtime import cuda_env
from speciesgan.util.errors import ConfigError, UnavailableError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cuda", "cpu")
DEVICE_ENV = "SPECIESGAN_DEVICE"
"""Default for ``--device``; exported into SLURM jobs (the profile submits with --export=ALL)."""

SLURM_GPU_COUNTS = ("SLURM_GPUS_ON_NODE", "SLURM_GPUS", "SLURM_GPUS_PER_NODE")
"""GPU counts, possibly typed ("a100:2"); "0" means none."""
SLURM_GPU_INDICES = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
"""Lists of allocated GPU indices ("0" is GPU number 0, so any value means a GPU)."""
SLURM_GPU_VARIABLES = SLURM_GPU_COUNTS + SLURM_GPU_INDICES

HOW_TO_FIX = (
    "Install a torch build that matches the driver (scripts/setup.sh with TORCH_INDEX_URL; "
    'see docs/cluster.md, "GPU builds and drivers"), check it with `speciesgan doctor`, '
    "or pass --device cpu (SPECIESGAN_DEVICE=cpu) to run on the CPU on purpose."
)


@dataclass(frozen=True)
class DeviceChoice:
    """The device a stage will use and the reason, as the log line states it."""

    device: torch.device
    reason: str


def requested_choice(option: str | None, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """``(auto|cuda|cpu, where it was said)``: ``--device`` wins over ``SPECIESGAN_DEVICE``."""
    if option is not None:
        value, source = option, f"--device {option}"
    else:
        value = environ.get(DEVICE_ENV, "").strip().lower()
        if not value:
            return "auto", None
        source = f"{DEVICE_ENV}={value}"
    if value not in DEVICE_CHOICES:
        raise ConfigError(f"{source}: the device must be one of {', '.join(DEVICE_CHOICES)}")
    return value, source


def _count_is_positive(value: str) -> bool:
    """True unless every item of a (typed) GPU count such as ``a100:2,v100:0`` is zero."""
    for item in value.split(","):
        count = item.rsplit(":", 1)[-1].strip()
        if item.strip() and (not count.isdigit() or int(count) > 0):
            return True
    return False


def slurm_gpu_request(environ: Mapping[str, str]) -> str | None:
    """``NAME=value`` of the first SLURM variable saying this job was given a GPU, else None."""
    for name in SLURM_GPU_VARIABLES:
        value = environ.get(name, "").strip()
        if not value:
            continue
        if name in SLURM_GPU_INDICES or _count_is_positive(value):
            return f"{name}={value}"
    return None


def _build() -> str:
    if torch.version.cuda:
        return f"torch {torch.__version__}, CUDA build {torch.version.cuda}"
    return f"torch {torch.__version__}, {cuda_env.cuda_build()}"


def unusable_gpu_message(stage: str, why_gpu: str, problem: str) -> str:
    """The error for a GPU that was wanted but cannot be used: what, build, driver, fix."""
    return (
        f"no usable CUDA device for {stage}, although {why_gpu}: {problem}. "
        f"{_build()}; NVIDIA driver: {cuda_env.driver_version()}. {HOW_TO_FIX}"
    )


def choose_device(
    option: str | None,
    *,
    stage: str,
    local_rank: int = 0,
    environ: Mapping[str, str] | None = None,
) -> DeviceChoice:
    """The device for ``stage`` (process ``local_rank`` of a node), or a SpeciesganError."""
    environ = os.environ if environ is None else environ
    choice, source = requested_choice(option, environ)
    slurm = slurm_gpu_request(environ)
    if choice == "cpu":
        ignored = f"; {slurm} ignored" if slurm else ""
        return DeviceChoice(torch.device("cpu"), f"requested with {source}{ignored}")
    wanted_by = source if choice == "cuda" else slurm
    problem = cuda_env.cuda_problem(local_rank)
    if problem is None:
        reason = f"requested with {wanted_by}" if wanted_by else "no GPU requested, one found"
        return DeviceChoice(torch.device("cuda", local_rank), reason)
    if wanted_by is not None:
        raise UnavailableError(
            unusable_gpu_message(stage, f"a GPU was requested ({wanted_by})", problem)
        )
    if torch.cuda.is_available():
        raise UnavailableError(unusable_gpu_message(stage, "CUDA reports one", problem))
    return DeviceChoice(torch.device("cpu"), f"no GPU requested, none found: {problem}")


def device_line(choice: DeviceChoice) -> str:
    """One log line: device (name, capability), driver, torch and its CUDA build."""
    device = choice.device
    if device.type == "cuda":
        what = f"{device} {cuda_env.describe_gpu(device.index or 0)} ({choice.reason})"
    else:
        what = f"cpu ({choice.reason})"
    return f"device {what}; NVIDIA driver {cuda_env.driver_version()}; {_build()}"


def select_device(
    option: str | None,
    *,
    stage: str,
    local_rank: int = 0,
    environ: Mapping[str, str] | None = None,
) -> torch.device:
    """:func:`choose_device`, logging the choice: what every stage that may use CUDA calls."""
    choice = choose_device(option, stage=stage, local_rank=local_rank, environ=environ)
    log.info("%s: %s", stage, device_line(choice))
    return choice.device
