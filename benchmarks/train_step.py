"""Time one GAN training step: fp32 eager vs the fast paths, same model and batch.

Runs the real ``Trainer.step`` (D step, G step, EMA, DiffAugment) on random
in-memory crops, so the numbers are what ``train-gan`` will see.  Prints images/s
per variant (and peak memory on CUDA).  Usage::

    python benchmarks/train_step.py                      # 64 px on CPU, 128 px on GPU
    python benchmarks/train_step.py --size 32 --compile  # also try torch.compile
"""

from __future__ import annotations

import argparse
import time

import torch

from speciesgan.gan.training_loop import (
    DeviceCrops,
    Ranks,
    Trainer,
    build_trainer,
    resolve_settings,
)


def make_trainer(
    args: argparse.Namespace, precision: str, channels_last: bool, device: torch.device
) -> Trainer:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, 3, args.size, args.size), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, args.classes, (256,), generator=gen)
    data = DeviceCrops(images, labels, [f"s{i}" for i in range(args.classes)], device)
    cfg = resolve_settings(
        {
            "model": args.model,
            "batch_size": args.batch_size,
            "g_channels": args.g_channels,
            "d_channels": args.d_channels,
            "precision": precision,
            "classifier_loss_weight": 0.0,
        }
    )
    return build_trainer(
        data, None, cfg, seed=0, ranks=Ranks(), device=device, channels_last=channels_last
    )


def time_variant(
    args: argparse.Namespace,
    precision: str,
    channels_last: bool,
    compiled: bool,
    device: torch.device,
) -> tuple[float, float, float | None]:
    """Wall and CPU seconds per step (medians) and peak CUDA memory in GiB.

    CPU seconds / threads approximates the wall time on an otherwise idle
    machine, which matters on a shared login node or CI runner.
    """
    trainer = make_trainer(args, precision, channels_last, device)
    if compiled:
        trainer.generator = torch.compile(trainer.generator)
        trainer.discriminator = torch.compile(trainer.discriminator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    wall, cpu = [], []
    for step in range(args.warmup + args.steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.step(step).tolist()  # .tolist() waits for the device
        if step >= args.warmup:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2], peak


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128 if cuda else 64)
    parser.add_argument("--model", choices=["resnet", "dcgan"], default="resnet")
    parser.add_argument("--batch-size", type=int, default=64 if cuda else 32)
    parser.add_argument("--g-channels", type=int, default=64 if cuda else 16)
    parser.add_argument("--d-channels", type=int, default=64 if cuda else 16)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (slow to build)"
    )
    parser.add_argument(
        "--variants", default="fp32,bf16,bf16-cl", help="comma list of fp32,bf16,bf16-cl"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if cuda else "cpu")

    known = {
        "fp32": ("fp32 eager", "fp32", False, False),
        "bf16": ("bf16 autocast", "bf16", False, False),
        "bf16-cl": ("bf16 + channels_last", "bf16", True, False),
    }
    variants = [known[name] for name in args.variants.split(",") if name]
    if args.compile:
        variants.append(("bf16 + channels_last + compile", "bf16", True, True))
    print(
        f"{args.model} GAN, {args.size}px, batch {args.batch_size}, G/D width {args.g_channels}/"
        f"{args.d_channels}, device {device}, threads {args.threads}"
    )
    print(f"{'variant':34s} {'s/step':>8s} {'images/s':>9s} {'cpu s/step':>10s} {'peak GiB':>9s}")
    for name, precision, channels_last, compiled in variants:
        seconds, cpu_seconds, peak = time_variant(args, precision, channels_last, compiled, device)
        memory = f"{peak:9.2f}" if peak is not None else f"{'-':>9s}"
        print(
            f"{name:34s} {seconds:8.3f} {args.batch_size / seconds:9.1f} {cpu_seconds:10.3f} {memory}",
            flush=True,
        )


if __name__ == "__main__":
    main()
