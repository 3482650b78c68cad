"""Memory each rank spends on the train split: 2 processes on one node, as under srun or torchrun.

Every rank used to copy the whole split into its own memory (twice over while
loading); with the split memory-mapped, the crops live once in the page cache,
shared by all ranks of a node.  Each rank here opens the split the way
``train-gan`` does (``DeviceCrops.from_manifest`` on the CPU) and then draws
three epochs' worth of training batches, so every crop has been read.  Printed
per rank, as growth over the process before loading: peak RSS while loading and
sampling (VmHWM, reset first), then private (anonymous) memory, resident
memory and PSS (shared pages split among the processes that map them).  Run
it against two checkouts to compare::

    PYTHONPATH=src python benchmarks/rank_memory.py --crops 6000 --size 64
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from speciesgan.gan.training_loop import DeviceCrops

FIELDS = ("Rss", "Pss", "Anonymous")


def write_manifest(root: Path, crops: int, size: int, species: int = 4) -> Path:
    """Random crops in two shards, every fifth one in the test split."""
    rng = np.random.default_rng(0)
    rows = []
    per_shard = (crops + 1) // 2
    (root / "shards").mkdir(parents=True)
    for shard in range(2):
        count = min(per_shard, crops - shard * per_shard)
        np.save(
            root / "shards" / f"shard-{shard:03d}.npy",
            rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
        )
        for index in range(count):
            k = shard * per_shard + index
            rows.append(
                {
                    "dataset": "bench", "file": f"/bench/{k}.jpg", "species": f"s{k % species}",
                    "species_id": k % species, "category": "animals",
                    "split": "test" if k % 5 == 0 else "train",
                    "box_x0": -1, "box_y0": -1, "box_x1": -1, "box_y1": -1,
                    "shard": shard, "index": index, "sha256": "0" * 64,
                    "crop_x0": 0, "crop_y0": 0, "crop_size": size,
                }
            )  # fmt: skip
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if frame[column].dtype == np.int64:
            frame[column] = frame[column].astype(np.int32)
    frame.to_parquet(root / "manifest.parquet")
    return root / "manifest.parquet"


def memory_kib() -> dict[str, int]:
    """Rss, Pss and Anonymous of this process (kB, /proc/self/smaps_rollup), and VmHWM."""
    values = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in FIELDS:
            values[name] = int(rest.split()[0])
    status = Path("/proc/self/status").read_text().splitlines()
    values["VmHWM"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return values


def _rank(rank: int, manifest: str, batch: int, start: Any, results: dict) -> None:
    torch.set_num_threads(1)
    data = DeviceCrops.from_manifest(Path(manifest), torch.device("cpu"))  # warm imports
    del data
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = memory_kib()
    start.wait()  # both ranks load at the same time, as they do in training
    data = DeviceCrops.from_manifest(Path(manifest), torch.device("cpu"))
    generator = torch.Generator().manual_seed(rank)
    for _ in range(3 * len(data) // batch):
        data.real_batch(batch, slice(0, batch), generator)
    start.wait()  # measured while both hold the data
    after = memory_kib()
    results[rank] = {key: after[key] - before[key] for key in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=int, default=6000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp) / "data", args.crops, args.size)
        train_mb = (args.crops - (args.crops + 4) // 5) * args.size**2 * 3 / 2**20
        manager = torch.multiprocessing.Manager()
        results, start = manager.dict(), manager.Barrier(2)
        torch.multiprocessing.spawn(
            _rank, args=(str(manifest), args.batch, start, results), nprocs=2, join=True
        )
        print(
            f"2 ranks on one node, train split {train_mb:.1f} MiB ({args.crops} crops, "
            f"{args.size} px), 3 epochs of {args.batch}-crop batches each; growth in MiB"
        )
        print("rank  peak RSS  private    RSS    PSS")
        for rank in sorted(results):
            r = {key: value / 1024 for key, value in results[rank].items()}
            print(
                f"{rank:4d}  {r['VmHWM']:8.1f}  {r['Anonymous']:7.1f}  {r['Rss']:5.1f}  "
                f"{r['Pss']:5.1f}"
            )


if __name__ == "__main__":
    main()
