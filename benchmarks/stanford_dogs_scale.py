"""Preprocessing at Stanford Dogs scale, through Snakemake, and the dry-run time after it.

1. Generates a Stanford-Dogs-shaped collection (default 20,580 JPEGs of real
   sizes in 120 breeds) as the three published archives, ``images.tar``,
   ``annotation.tar`` and ``lists.tar`` (``speciesgan.data.demo``'s writers,
   rendered by ``--workers`` processes).
2. Copies the workflow into ``WORK/workflow``, writes a config overlay whose
   ``stanford_dogs`` entry fetches those archives from ``file://`` URLs, and
   builds the manifest with ``snakemake --cores N``: download -> extract ->
   index -> crop_shard (``--shards``) -> manifest, all real code.  Per-stage
   seconds and peak RSS come from the rules' ``benchmark:`` files.
3. Times ``snakemake -n all`` (plans the training jobs that were not run) and
   ``snakemake -n <manifest>`` (nothing to do) ``--repeats`` times each.

Where a SLURM client is installed but no controller answers (a dev machine with
the slurm-client package, e.g. after tests/slurm/cluster.sh install),
Snakemake's SLURM executor plugin runs ``scontrol show config`` while it is
imported, on *every* snakemake call, and that waits ~9 s for the controller.
The dry runs are then timed a second time with ``SLURM_CONF=/dev/null``, which
makes scontrol fail at once, as it would on a machine without SLURM (or answer
at once on a cluster whose controller is up).

Prints a table.  Timing targets live here, never in tests::

    python benchmarks/stanford_dogs_scale.py --work /tmp/sdscale             # full size
    python benchmarks/stanford_dogs_scale.py --photos 600 --breeds 12        # quick check
"""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from workflow import copy_workflow, env, planned_jobs  # noqa: E402

from speciesgan.data.demo import (  # noqa: E402
    STANFORD_DOGS_BREEDS,
    STANFORD_DOGS_PHOTOS,
    write_stanford_dogs_scale,
)

RESULTS = "results/scale"
DATASET = "stanford_dogs"
ARCHIVES = ("images.tar", "annotation.tar", "lists.tar")


def snakemake_command() -> list[str]:
    exe = Path(sys.executable).parent / "snakemake"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]


def count_boxes(annotation_tar: Path) -> int:
    boxes = 0
    with tarfile.open(annotation_tar, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                boxes += tar.extractfile(member).read().count(b"<object>")
    return boxes


def write_overlay(workflow: Path, archives: Path, shards: int, cores: int) -> Path:
    files = "\n".join(
        f"      {name}:\n        url: file://{(archives / name).resolve()}" for name in ARCHIVES
    )
    overlay = workflow / "configs" / "scale.yaml"
    overlay.write_text(
        "# Stanford-Dogs-sized synthetic collection (benchmarks/stanford_dogs_scale.py).\n"
        f"results_dir: {RESULTS}\n"
        f"threads: {cores}\n"
        f"use_datasets: [{DATASET}]\n"
        "datasets:\n"
        f"  {DATASET}:\n"
        "    format: stanford_dogs\n"
        "    category: dog\n"
        "    files:\n"
        f"{files}\n"
        "preprocess:\n"
        f"  shards: {shards}\n"
    )
    return overlay


def run(
    workflow: Path, args: list[str], extra_env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(
        snakemake_command() + args,
        cwd=workflow,
        env={**env(), **(extra_env or {})},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(f"snakemake {' '.join(args)} failed (exit {done.returncode})")
    return seconds, done


def bench(path: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) from a Snakemake benchmark TSV."""
    with open(path, newline="") as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))

    def number(key: str) -> float:
        try:
            return float(row.get(key, "nan"))
        except ValueError:
            return float("nan")

    return number("s"), number("max_rss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a new temp dir)")
    parser.add_argument("--photos", type=int, default=STANFORD_DOGS_PHOTOS)
    parser.add_argument("--breeds", type=int, default=STANFORD_DOGS_BREEDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes rendering photos")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--shards", type=int, default=8, help="preprocess.shards")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each dry run")
    parser.add_argument(
        "--reuse-archives", action="store_true", help="keep WORK/archives if all three exist"
    )
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="stanford-dogs-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    archives = work / "archives"
    reuse = args.reuse_archives and all((archives / n).is_file() for n in ARCHIVES)
    start = time.perf_counter()
    if not reuse:
        write_stanford_dogs_scale(
            archives, seed=args.seed, photos=args.photos, breeds=args.breeds, workers=args.workers
        )
    generation_s = time.perf_counter() - start
    boxes = count_boxes(archives / "annotation.tar")
    sizes_mib = {n: (archives / n).stat().st_size / 2**20 for n in ARCHIVES}

    workflow = work / "workflow"
    if workflow.exists():
        shutil.rmtree(workflow)
    copy_workflow(workflow)
    write_overlay(workflow, archives, args.shards, args.cores)
    config = ["--configfile", "configs/scale.yaml"]
    manifest = f"{RESULTS}/data/manifest.parquet"
    build = [manifest, "--cores", str(args.cores), *config]
    wall_s, _ = run(workflow, build)

    kept = pq.read_metadata(workflow / manifest).num_rows
    rejects = pq.read_table(workflow / RESULTS / "data" / "rejects.parquet")
    by_stage: dict[str, int] = {}
    for stage in rejects["stage"].to_pylist():
        by_stage[stage] = by_stage.get(stage, 0) + 1
    downloads = workflow / "data" / "downloads" / DATASET / "benchmarks"
    bench_dir = workflow / RESULTS / "benchmarks"
    stages = {
        "download (3 archives)": [downloads / f"download-{n}.tsv" for n in ARCHIVES],
        "extract": [downloads / "extract.tsv"],
        "index": [bench_dir / "index.tsv"],
        f"crop_shard ({args.shards} shards)": sorted(bench_dir.glob("crop_shard-*.tsv")),
        "manifest": [bench_dir / "manifest.tsv"],
    }
    crop_s = 0.0
    stage_rows = []
    for name, files in stages.items():
        measured = [bench(f) for f in files]
        seconds = sum(s for s, _ in measured)
        rss = max(r for _, r in measured)
        crop_s = seconds if name.startswith("crop_shard") else crop_s
        stage_rows.append((f"  {name} s / peak RSS MiB", f"{seconds:.1f} / {rss:.0f}"))

    dry_commands = {"all": ["-n", "all", *config], "manifest": ["-n", manifest, *config]}
    environments = {"": {}}
    if shutil.which("scontrol"):
        environments[" SLURM_CONF=/dev/null"] = {"SLURM_CONF": "/dev/null"}
    dry: dict[tuple[str, str], tuple[float, dict[str, int]]] = {}
    for label, extra_env in environments.items():
        for key, dry_args in dry_commands.items():
            times, jobs = [], {}
            for _ in range(args.repeats):
                seconds, done = run(workflow, dry_args, extra_env)
                times.append(seconds)
                jobs = planned_jobs(done.stdout + done.stderr)
            dry[label, key] = (statistics.median(times), jobs)
    dry_rows = []
    for label in environments:
        all_s, all_jobs = dry[label, "all"]
        manifest_s, manifest_jobs = dry[label, "manifest"]
        dry_rows += [
            (f"dry run -n all s{label}", f"{all_s:.2f}"),
            (
                f"dry run -n manifest s{label}",
                f"{manifest_s:.2f} ({sum(manifest_jobs.values())} jobs)",
            ),
        ]
    all_jobs = dry["", "all"][1]

    def cmd(a: list[str]) -> str:
        return "snakemake " + shlex.join(a)

    rows = [
        ("photos / breeds / boxes", f"{args.photos} / {args.breeds} / {boxes}"),
        ("archives MiB (images / annotation / lists)",
         " / ".join(f"{sizes_mib[n]:.1f}" for n in ARCHIVES)),
        ("mean JPEG KiB", f"{sizes_mib['images.tar'] * 1024 / args.photos:.1f}"),
        ("generation s" + (" (reused)" if reuse else f" ({args.workers} workers)"),
         f"{generation_s:.1f}"),
        (f"snakemake preprocessing wall s (--cores {args.cores})", f"{wall_s:.1f}"),
        ("crops kept / rejected", f"{kept} / {rejects.num_rows}"
         + (f" ({', '.join(f'{k} {v}' for k, v in sorted(by_stage.items()))})" if by_stage else "")),
        ("crops per second (wall / crop_shard)",
         f"{kept / wall_s:.1f} / {kept / crop_s:.1f}" if crop_s else f"{kept / wall_s:.1f} / -"),
        ("per-stage seconds (benchmark: files)", ""),
        *stage_rows,
        (f"dry runs: medians of {args.repeats}", ""),
        *dry_rows,
        ("jobs planned by -n all",
         f"{sum(all_jobs.values())} ({', '.join(f'{k} {v}' for k, v in all_jobs.items())})"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"\nStanford Dogs scale: work folder {work}")
    print(f"{'quantity':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\ncommands (in the workflow copy):")
    print(f"  cd {workflow}")
    print(f"  {cmd(build)}")
    print(f"  {cmd(dry_commands['all'])}")
    print(f"  {cmd(dry_commands['manifest'])}")
    if len(environments) > 1:
        print("  (and each dry run again with SLURM_CONF=/dev/null in the environment)")


if __name__ == "__main__":
    main()
