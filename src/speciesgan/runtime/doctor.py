"""``speciesgan doctor``: can this node train, and on what?

Prints what decides whether a GPU works (torch, torchvision, the CUDA build and
its kernels, cuDNN, the driver, each visible GPU, bf16, the SLURM GPU
variables), makes the same device choice as the training stages, and times a
few bf16 steps of the real GAN there.  Run it on a login node and inside a GPU
job (``srun --gpus=1 speciesgan doctor``) before submitting a long training:
a mismatched torch build shows up here in seconds, with the same message the
training stage would stop with, and a non-zero exit status.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from typing import TextIO

import torch

from speciesgan.runtime import cuda_env
from speciesgan.runtime.device import (
    DEVICE_ENV,
    SLURM_GPU_VARIABLES,
    choose_device,
    device_line,
)

STAGE = "doctor"


def _torchvision_version() -> str:
    try:
        import torchvision
    except Exception as exc:  # a broken torchvision is itself a finding
        return f"not importable ({type(exc).__name__}: {exc})"
    return torchvision.__version__


def _bf16_support() -> str:
    """bf16 on the GPUs (hardware) and on the CPU (autocast always works; speed varies)."""
    parts = []
    if torch.cuda.is_available():
        try:
            parts.append(f"CUDA {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
        except Exception as exc:  # a broken GPU must not stop the report
            parts.append(f"CUDA unknown ({type(exc).__name__})")
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch has no such query
        capability = "unknown"
    parts.append(f"CPU autocast yes (CPU vector capability {capability})")
    return "; ".join(parts)


def _gpu_rows() -> list[tuple[str, str]]:
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA set-up counts as none here; cuda_problem says why
        count = 0
    if count == 0:
        return [("GPUs", "none visible to torch")]
    rows = []
    for index in range(count):
        problem = cuda_env.cuda_problem(index)
        state = "usable" if problem is None else f"NOT usable: {problem}"
        rows.append((f"GPU {index}", f"{cuda_env.describe_gpu(index)}, {state}"))
    return rows


def _slurm_rows(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    names = (*SLURM_GPU_VARIABLES, "CUDA_VISIBLE_DEVICES", DEVICE_ENV)
    shown = [f"{name}={environ[name]}" for name in names if environ.get(name, "") != ""]
    return [("GPU variables", ", ".join(shown) if shown else "none set")]


def environment_matrix(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(what, value) rows of everything that decides whether training can use a GPU."""
    archs = cuda_env.arch_list()
    return [
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("torchvision", _torchvision_version()),
        ("CUDA build", cuda_env.cuda_build()),
        ("kernels for", " ".join(archs) if archs else "none (no CUDA in this build)"),
        ("cuDNN", cuda_env.cudnn_version()),
        ("NVIDIA driver", cuda_env.driver_version()),
        *_gpu_rows(),
        ("bf16", _bf16_support()),
        *_slurm_rows(environ),
    ]


def _time_bf16_step(device: torch.device, steps: int, warmup: int, threads: int) -> str:
    from speciesgan.gan.step_timing import StepShape, make_trainer, time_steps

    shape = StepShape()
    torch.set_num_threads(threads)
    trainer = make_trainer(shape, "bf16", None, device)
    timing = time_steps(trainer, steps, warmup)
    peak = f", peak {timing.peak_gib:.2f} GiB" if timing.peak_gib is not None else ""
    return (
        f"bf16 train step ({shape.model} GAN, {shape.size} px, batch {shape.batch_size}, "
        f"G/D width {shape.g_channels}/{shape.d_channels}, {threads} thread(s)) on {device}: "
        f"{timing.wall_seconds:.3f} s/step, {timing.images_per_second(shape.batch_size):.1f} "
        f"images/s (median of {steps} after {warmup} warm-up){peak}"
    )


def run_doctor(
    option: str | None,
    *,
    steps: int = 3,
    warmup: int = 1,
    threads: int = 1,
    out: TextIO = sys.stdout,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Print the matrix, choose the device as a training stage would, time bf16 steps there.

    The matrix is printed before the choice so that a refused GPU still gets
    its report; the refusal is then raised (SpeciesganError, exit status 1).
    """
    environ = os.environ if environ is None else environ
    rows = environment_matrix(environ)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=out, flush=True)
    choice = choose_device(option, stage=STAGE, environ=environ)
    print(f"{'chosen':<{width}}  {device_line(choice)}", file=out, flush=True)
    if steps > 0:
        print(_time_bf16_step(choice.device, steps, warmup, threads), file=out, flush=True)
