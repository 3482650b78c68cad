"""Time real GAN training steps on random crops (``speciesgan doctor`` and the benchmark).

Runs the real ``Trainer.step`` (D step, G step, EMA, DiffAugment) on random
in-memory crops, so the time is what ``train-gan`` will see for that model
size; no file is read.  ``benchmarks/train_step.py`` compares precisions with
it, ``speciesgan doctor`` proves that a bf16 step actually runs on the chosen
device and says how long it takes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from speciesgan.gan.training_loop import (
    DeviceCrops,
    Ranks,
    Trainer,
    build_trainer,
    resolve_settings,
)


@dataclass(frozen=True)
class StepShape:
    """Model and batch of a timed step (defaults: small enough for seconds on a CPU)."""

    model: str = "resnet"
    size: int = 32
    batch_size: int = 8
    g_channels: int = 16
    d_channels: int = 16
    classes: int = 4


@dataclass(frozen=True)
class StepTiming:
    """Medians over the timed steps; ``peak_gib`` only on CUDA."""

    wall_seconds: float
    cpu_seconds: float
    peak_gib: float | None

    def images_per_second(self, batch_size: int) -> float:
        return batch_size / self.wall_seconds


PROJECTED_TERMS = {"species_loss_weight": 1.0, "mode_seeking_weight": 0.03}


def make_trainer(
    shape: StepShape, precision: str, channels_last: bool | None, device: torch.device
) -> Trainer:
    """A freshly seeded trainer on 256 random crops of ``shape`` (no classifier guidance)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (256, 3, shape.size, shape.size), generator=gen, dtype=torch.uint8
    )
    labels = torch.randint(0, shape.classes, (256,), generator=gen)
    data = DeviceCrops(images, labels, [f"s{i}" for i in range(shape.classes)], device)
    cfg = resolve_settings(
        {
            "model": shape.model,
            "batch_size": shape.batch_size,
            "g_channels": shape.g_channels,
            "d_channels": shape.d_channels,
            "precision": precision,
            "classifier_loss_weight": 0.0,
            # the demo's projected recipe: the species head and mode seeking cost their passes
            **(PROJECTED_TERMS if shape.model == "projected" else {}),
        }
    )
    return build_trainer(
        data, None, cfg, seed=0, ranks=Ranks(), device=device, channels_last=channels_last
    )


def time_steps(trainer: Trainer, steps: int, warmup: int) -> StepTiming:
    """Run ``warmup + steps`` steps; median wall and CPU seconds of the last ``steps``.

    CPU seconds / threads approximates the wall time on an otherwise idle
    machine, which matters on a shared login node or CI runner.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    wall, cpu = [], []
    for step in range(warmup + steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.step(step).tolist()  # .tolist() waits for the device
        if step >= warmup:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return StepTiming(sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2], peak)
