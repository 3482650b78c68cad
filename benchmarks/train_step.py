"""Time one GAN training step: fp32 eager vs the fast paths, same model and batch.

Runs the real ``Trainer.step`` (D step, G step, EMA, DiffAugment) on random
in-memory crops, so the numbers are what ``train-gan`` will see.  Prints images/s
per variant (and peak memory on CUDA).  Usage::

    python benchmarks/train_step.py                      # 64 px on CPU, 128 px on GPU
    python benchmarks/train_step.py --size 32 --compile  # also try torch.compile
"""

from __future__ import annotations

import argparse

import torch

from speciesgan.gan.step_timing import StepShape, StepTiming, make_trainer, time_steps


def time_variant(
    args: argparse.Namespace,
    precision: str,
    channels_last: bool,
    compiled: bool,
    device: torch.device,
) -> StepTiming:
    """Median wall and CPU seconds per step and peak CUDA memory of one variant."""
    shape = StepShape(
        model=args.model,
        size=args.size,
        batch_size=args.batch_size,
        g_channels=args.g_channels,
        d_channels=args.d_channels,
        classes=args.classes,
    )
    trainer = make_trainer(shape, precision, channels_last, device)
    if compiled:
        trainer.generator = torch.compile(trainer.generator)
        trainer.discriminator = torch.compile(trainer.discriminator)
    return time_steps(trainer, args.steps, args.warmup)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128 if cuda else 64)
    parser.add_argument("--model", choices=["resnet", "dcgan", "projected"], default="resnet")
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
        timing = time_variant(args, precision, channels_last, compiled, device)
        peak = timing.peak_gib
        memory = f"{peak:9.2f}" if peak is not None else f"{'-':>9s}"
        print(
            f"{name:34s} {timing.wall_seconds:8.3f} "
            f"{timing.images_per_second(args.batch_size):9.1f} {timing.cpu_seconds:10.3f} {memory}",
            flush=True,
        )


if __name__ == "__main__":
    main()
