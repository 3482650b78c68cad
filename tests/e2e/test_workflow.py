"""The workflow as a user runs it: config validation, lint, determinism, reruns.

These run real Snakemake on the smoke config (every stage, tiny sizes).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from speciesgan.config import run_key
from tests.helpers.workflow import copy_workflow, demo_folder_of, planned_jobs, snakemake

SMOKE = ("--configfile", "configs/smoke.yaml")


def test_no_rule_asks_for_a_conda_environment() -> None:
    """Rules run in the workflow's venv (docs/cluster.md, "Software environment"): a ``conda:``
    directive would name an env file that does not exist and fail the job's metadata write."""
    repo = Path(__file__).resolve().parents[2]
    for path in [repo / "Snakefile", *sorted((repo / "rules").glob("*.smk"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.match(r"\s+conda:", line), f"{path.name}:{number}: {line.strip()}"


def test_lint_is_clean(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    result = snakemake(work, "--lint", *SMOKE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("gan:\n  steps: many\n", "gan.steps"),
        ("preprocess:\n  image_size: 64.5\n", "preprocess.image_size"),
        ("gan:\n  stepz: 10\n", "gan.stepz"),
        ("use_datasets: [smoke_dogs, imagenet]\n", "use_datasets[1]"),
        ("datasets:\n  x:\n    format: oxford_pets\n    category: dog\n", "datasets.x.format"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path: Path, override: str, key: str) -> None:
    work = copy_workflow(tmp_path / "wf")
    (work / "bad.yaml").write_text(override)
    result = snakemake(
        work, "all", "--cores", "1", "--configfile", "configs/smoke.yaml", "bad.yaml"
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key {key}" in output, output
    assert not (work / "data").exists() and not (work / "results").exists()


# Config strings a shell would act on: spaces, quotes, $(...) and backticks.
ODD_RESULTS = "results/odd $(touch pwned-results) `touch pwned-tick` 'q' dir"
ODD_DOWNLOADS = "data/odd $(touch pwned-downloads) dl"
ODD_CATEGORY = "dog $(touch pwned-category)"


def _shell_commands(output: str) -> list[str]:
    prefix = "Shell command: "
    lines = [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]
    return [line for line in lines if line != "None"]  # `all` has no command


def test_every_rule_passes_config_strings_as_whole_arguments(tmp_path: Path) -> None:
    """Each job's command, as a dry run prints it, keeps each config string one shell word."""
    work = copy_workflow(tmp_path / "wf")
    dogs_demo = demo_folder_of("smoke_dogs", "configs/smoke.yaml", "configs/ablation.yaml")
    birds_demo = demo_folder_of("smoke_birds", "configs/smoke.yaml", "configs/ablation.yaml")
    odd = {
        "results_dir": ODD_RESULTS,
        "downloads_dir": ODD_DOWNLOADS,
        "datasets": {
            "smoke_dogs": {
                "category": ODD_CATEGORY,
                "files": {"lists.tar": {"url": f"file://{dogs_demo}/lists.tar"}},
            },
            "smoke_birds": {
                "files": {
                    "CUB_200_2011.tgz": {
                        "url": f"file://{birds_demo}/CUB_200_2011.tgz",
                        "sha256": "ab" * 32,
                    }
                }
            },
        },
    }
    (work / "odd.yaml").write_text(yaml.safe_dump(odd))
    configs = ("--configfile", "configs/smoke.yaml", "configs/ablation.yaml", "odd.yaml")
    result = snakemake(work, "-n", "-p", "all", *configs)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = _shell_commands(result.stdout)
    assert len(commands) == sum(planned_jobs(result.stdout).values()) - 1  # all: no command
    subcommands = set()
    pins = {}
    for command in commands:
        words = shlex.split(command)
        subcommands.add(words[1])
        if words[1] == "download":
            out = words[words.index("--out") + 1]
            pins[Path(out).name] = (
                words[words.index("--sha256") + 1] if "--sha256" in words else None
            )
        for word in words:
            if "touch" in word:  # split, or left for the shell to run, it would not be whole
                # (the run key, in demo paths, is results_dir's name reduced to [A-Za-z0-9_])
                whole = (ODD_RESULTS, ODD_DOWNLOADS, ODD_CATEGORY, run_key(ODD_RESULTS))
                assert any(text in word for text in whole), (
                    word,
                    command,
                )
    assert subcommands == {
        "demo-data", "download", "extract", "index", "crop-shard", "manifest",
        "train-classifier", "train-gan", "real-features", "evaluate", "cas", "sample",
        "ablation-table", "report",
    }  # fmt: skip
    assert pins == {
        "CUB_200_2011.tgz": "ab" * 32,
        "images.tar": None,
        "annotation.tar": None,
        "lists.tar": None,
    }


def test_stage_threads_set_one_stages_job_threads(tmp_path: Path) -> None:
    """`stage_threads.<rule>` gives that rule's jobs their own thread count (each of the
    eight rules that take --threads, ablation included); the others keep `threads`."""
    work = copy_workflow(tmp_path / "wf")
    stages = {
        "crop_shard": 3,
        "train_classifier": 4,
        "train_gan": 5,
        "evaluate": 6,
        "train_gan_variant": 7,
        "evaluate_variant": 8,
        "real_features": 9,
        "cas": 10,
    }
    (work / "threads.yaml").write_text(yaml.safe_dump({"threads": 2, "stage_threads": stages}))
    configs = ("--configfile", "configs/smoke.yaml", "configs/ablation.yaml", "threads.yaml")
    result = snakemake(work, "-n", "-p", "--cores", "16", "all", *configs)
    assert result.returncode == 0, result.stdout + result.stderr
    threads = {}
    for command in _shell_commands(result.stdout):
        words = shlex.split(command)
        if "--threads" in words:
            variant = "/ablation/" in command and words[1] in ("train-gan", "evaluate")
            key = f"{words[1]}{' (variant)' if variant else ''}"
            threads.setdefault(key, set()).add(int(words[words.index("--threads") + 1]))
    assert threads == {
        "crop-shard": {3},
        "train-classifier": {4},
        "train-gan": {5},
        "evaluate": {6},
        "train-gan (variant)": {7},
        "evaluate (variant)": {8},
        "real-features": {9},
        "cas": {10},
    }
    (work / "bad.yaml").write_text("stage_threads:\n  evaluate: 0\n")
    result = snakemake(work, "-n", "all", *SMOKE, "bad.yaml")
    assert result.returncode != 0
    assert "stage_threads.evaluate" in result.stdout + result.stderr


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_index_job_reads_an_odd_path_and_category_literally(tmp_path: Path) -> None:
    """A dataset path and category with quotes and $(...) reach the index job as written."""
    work = copy_workflow(tmp_path / "wf")
    folder = "photos 'mine' \"all\" $(touch pwned-path) x"
    rows = ["path,species"]
    for n, species in enumerate(("Owl", "Wren")):
        for i in range(2):
            _photo(work / folder / species / f"{i}.png", seed=10 * n + i)
            rows.append(f"{species}/{i}.png,{species}")
    (work / folder / "list.csv").write_text("\n".join(rows) + "\n")
    category = "dog$(touch pwned-category)"
    overlay = {
        "results_dir": ODD_RESULTS,
        "use_datasets": ["mine"],
        "datasets": {
            "mine": {"format": "table", "category": category, "path": f"{folder}/list.csv"}
        },
        "preprocess": {"min_images_per_species": 1},
    }
    (work / "odd.yaml").write_text(yaml.safe_dump(overlay))
    target = f"{ODD_RESULTS}/data/records.parquet"
    result = snakemake(
        work, target, "--cores", "1", "--configfile", "configs/smoke.yaml", "odd.yaml"
    )
    output = result.stdout + result.stderr
    assert not list(tmp_path.rglob("pwned*")), "a config string was run by the shell"
    assert result.returncode == 0, output
    records = pd.read_parquet(work / target)
    assert set(records["category"]) == {category}
    assert sorted((work / f).relative_to(work / folder).as_posix() for f in records["file"]) == [
        "Owl/0.png",
        "Owl/1.png",
        "Wren/0.png",
        "Wren/1.png",
    ]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DETERMINISTIC = [
    "results/smoke/data/manifest.parquet",
    "results/smoke/data/shards/shard-000.npy",
    "results/smoke/data/shards/shard-001.npy",
    "results/smoke/classifier/guide/model.pt",
    "results/smoke/classifier/eval/metrics.json",
    "results/smoke/gan/checkpoints/last.pt",
    "results/smoke/gan/generator.pt",
    "results/smoke/gan/training_log.csv",
    "results/smoke/gan/snapshots.pt",
    "results/smoke/eval/metrics.json",
    "results/smoke/eval/cas/metrics.json",
    "results/smoke/metrics.json",
]


@pytest.mark.slow
def test_smoke_runs_are_byte_identical_and_reruns_only_what_is_stale(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        work = copy_workflow(tmp_path / name)
        result = snakemake(work, "all", "--cores", "2", *SMOKE)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        runs.append(work)
    for rel in DETERMINISTIC:
        assert _digest(runs[0] / rel) == _digest(runs[1] / rel), f"{rel} differs between runs"

    work = runs[0]
    result = snakemake(work, "-n", "all", *SMOKE)
    assert result.returncode == 0
    assert planned_jobs(result.stdout) == {}, result.stdout
    assert "Nothing to be done" in result.stdout + result.stderr

    # how jobs run is not what they compute: more threads or GPUs rerun nothing
    (work / "execution.yaml").write_text(
        "threads: 2\nstage_threads:\n  evaluate: 3\ngan:\n  gpus: 2\n"
    )
    result = snakemake(work, "-n", "all", "--configfile", "configs/smoke.yaml", "execution.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result.stdout) == {}, result.stdout

    (work / "steps.yaml").write_text("gan:\n  steps: 8\n")
    result = snakemake(work, "-n", "all", "--configfile", "configs/smoke.yaml", "steps.yaml")
    assert set(planned_jobs(result.stdout)) == {
        "train_gan", "sample", "evaluate", "cas", "report", "all"
    }  # fmt: skip

    (work / "size.yaml").write_text("preprocess:\n  image_size: 16\n")
    result = snakemake(work, "-n", "all", "--configfile", "configs/smoke.yaml", "size.yaml")
    assert set(planned_jobs(result.stdout)) == {
        "crop_shard",
        "manifest",
        "train_classifier",
        "train_gan",
        "sample",
        "real_features",
        "evaluate",
        "cas",
        "report",
        "all",
    }

    _ablation_reuses_runs_and_fills_the_report(work)
    _snakemake_report_shows_the_results(work)


ABLATION = """
ablation:
  enabled: true
  variants:
    same_as_main: {gan: {}}
    main_raw: {weights: raw}
    resnet: {gan: {model: resnet, steps: 4}}
"""


def _ablation_reuses_runs_and_fills_the_report(work: Path) -> None:
    """Variants: one equal to the main model, its raw weights, one new training run."""
    (work / "ablation.yaml").write_text(ABLATION)
    args = ("--configfile", "configs/smoke.yaml", "ablation.yaml")
    planned = planned_jobs(snakemake(work, "-n", "all", *args).stdout)
    # the main model is neither retrained nor re-scored; only the new settings train
    assert planned == {
        "train_gan_variant": 1,
        "evaluate_variant": 2,
        "ablation_table": 1,
        "report": 1,
        "all": 1,
    }
    result = snakemake(work, "all", "--cores", "2", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    rows = json.loads((work / "results/smoke/ablation/table.json").read_text())["rows"]
    by_name = {row["variant"]: row for row in rows}
    assert [row["variant"] for row in rows] == ["same_as_main", "main_raw", "resnet"]
    main = json.loads((work / "results/smoke/eval/metrics.json").read_text())
    assert by_name["same_as_main"]["fid"] == main["fid"]
    assert by_name["main_raw"]["ema"] == "no" and by_name["main_raw"]["fid"] != main["fid"]
    assert by_name["main_raw"]["train_seconds"] == by_name["same_as_main"]["train_seconds"]
    # every run's time, all its segments, from its training_time.json
    assert all(row["train_seconds"] > 0 and row["train_cpu_seconds"] > 0 for row in rows)
    assert by_name["resnet"]["model"] == "resnet" and by_name["resnet"]["steps"] == 4
    report = json.loads((work / "results/smoke/metrics.json").read_text())
    assert report["ablation"]["rows"] == rows
    assert [p["step"] for p in report["over_steps"]["points"]] == [6]


REPORTED = {
    # result file -> words its caption (report/*.rst) must contain
    "results/smoke/samples/overview.png": "one row per species",
    "results/smoke/samples/species/marsh-terrier.png": "one grid per species",
    "results/smoke/eval/metrics.json": "FID",
    "results/smoke/eval/closest_pairs.png": "Memorisation",
    "results/smoke/classifier/guide/metrics.json": "guide",
    "results/smoke/classifier/eval/metrics.json": "eval",
    "results/smoke/classifier/judge/metrics.json": "judge",
    "results/smoke/gan/loss_curves.png": "GAN losses",
    "results/smoke/gan/training_log.csv": "training log",
    "results/smoke/report.html": "self-contained",
    "results/smoke/ablation/table.json": "ablation",
}


def _snakemake_report_shows_the_results(work: Path) -> None:
    """`snakemake --report report.zip` on the finished run holds the sample grids, metric
    tables and loss curves, each with its caption, byte for byte the run's files."""
    args = ("--configfile", "configs/smoke.yaml", "ablation.yaml")
    result = snakemake(work, "--report", "report.zip", "all", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with zipfile.ZipFile(work / "report.zip") as archive:
        page = archive.read("report/report.html").decode()
        decoder = json.JSONDecoder()
        for path, caption_words in REPORTED.items():
            found = re.search(rf'"{re.escape(path)}": (?=\{{)', page)
            assert found, f"{path} is not in the report"
            entry, _ = decoder.raw_decode(page, found.end())
            assert caption_words in entry["caption"], (path, entry["caption"])
            stored = archive.read(f"report/{entry['data_uri']}")
            assert stored == (work / path).read_bytes(), path


@pytest.mark.slow
def test_two_seeds_in_two_results_folders_run_side_by_side_and_stay_up_to_date(
    tmp_path: Path,
) -> None:
    """The demo archives depend on the seed: each seed's live under their own key, so a
    second seed neither waits for the first run's lock nor makes its outputs stale."""
    import subprocess
    import sys

    from tests.helpers.workflow import env

    work = copy_workflow(tmp_path / "wf")
    (work / "seed1.yaml").write_text(yaml.safe_dump({"seed": 1, "results_dir": "results/seed1"}))
    runs = {
        "seed0": ("results/smoke/data/manifest.parquet", "--configfile", "configs/smoke.yaml"),
        "seed1": (
            "results/seed1/data/manifest.parquet",
            "--configfile",
            "configs/smoke.yaml",
            "seed1.yaml",
        ),
    }
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "1", *args],
            cwd=work,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, args in runs.items()
    }  # at the same time: no shared output, so no lock between them
    for name, process in started.items():
        output, _ = process.communicate(timeout=1800)
        assert process.returncode == 0, f"{name}: {output[-3000:]}"
    for name, args in runs.items():
        dry = snakemake(work, "-n", *args)
        assert planned_jobs(dry.stdout) == {}, f"{name} went stale: {dry.stdout[-3000:]}"
    assert demo_folder_of("smoke_dogs", "configs/smoke.yaml", workdir=work) != demo_folder_of(
        "smoke_dogs", "configs/smoke.yaml", "seed1.yaml", workdir=work
    )
