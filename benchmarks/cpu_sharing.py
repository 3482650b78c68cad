"""How libgomp's idle-thread setting changes torch's speed when processes share the CPUs.

Times an EfficientNet-Lite0 forward and backward (batch 32, 64 px, the projected
discriminator's workload) in fresh processes: one alone, then two side by side,
for each setting.  ``speciesgan.runtime.cpu_sharing`` picked its default from this table.

    python benchmarks/cpu_sharing.py [--threads 2] [--iterations 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

SETTINGS = {
    "libgomp default": {},
    "GOMP_SPINCOUNT=3000 (speciesgan)": {"GOMP_SPINCOUNT": "3000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
WORKLOAD = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
from speciesgan.classifier.efficientnet_lite import efficientnet_lite0_imagenet
net = efficientnet_lite0_imagenet()
x = torch.randn(32, 3, 64, 64)
for _ in range(2):
    net(x).sum().backward()
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    net(x).sum().backward()
print((time.perf_counter() - start) / int(sys.argv[2]))
"""


def seconds_per_iteration(
    setting: dict[str, str], processes: int, args: argparse.Namespace
) -> float:
    """Mean seconds per iteration over ``processes`` copies started together."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(setting)
    # the workload imports torch before speciesgan: libgomp reads its settings when torch
    # loads it, so the package's default (speciesgan.runtime.cpu_sharing) does not blur the rows
    command = [sys.executable, "-c", WORKLOAD, str(args.threads), str(args.iterations)]
    running = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    times = [float(p.communicate()[0].strip()) for p in running]
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args()
    print(f"{'setting':36} {'alone s/it':>11} {'2 side by side s/it':>20}")
    for name, setting in SETTINGS.items():
        alone = seconds_per_iteration(setting, 1, args)
        shared = seconds_per_iteration(setting, 2, args)
        print(f"{name:36} {alone:11.3f} {shared:20.3f}")


if __name__ == "__main__":
    main()
