"""``speciesgan doctor``: what torch sees of this machine, and a timed GAN step on it."""

from __future__ import annotations

import argparse

from speciesgan.subcommand import Subcommand, add_device_argument


def _doctor_arguments(p: argparse.ArgumentParser) -> None:
    add_device_argument(p)
    p.add_argument("--steps", type=int, default=3, help="timed steps (0: no timing)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")


def _doctor(args: argparse.Namespace) -> None:
    from speciesgan.runtime.doctor import run_doctor

    run_doctor(args.device, steps=args.steps, warmup=args.warmup, threads=args.threads)


DOCTOR = Subcommand(
    "doctor",
    _doctor_arguments,
    _doctor,
    help="report torch/CUDA/driver/GPUs and time a bf16 GAN step on the chosen device",
    description="Print torch, torchvision, the CUDA build, cuDNN, the NVIDIA driver, each "
    "visible GPU, bf16 support and the SLURM GPU variables; choose the device as the "
    "training stages do and time a few bf16 GAN training steps on it. Exits 1 when a GPU "
    "was requested (--device cuda or a SLURM GPU allocation) but cannot be used.",
)
