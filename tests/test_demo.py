"""The built-in demo, end to end, as the README's first command runs it.

Asserts the bars a user relies on: the classifier learns the synthetic species
(test top-1 >= 0.9) and the GAN's images are recognised as the species they were
asked for at least 3x more often than chance by the *evaluation* classifier (one
the GAN never trained against).  Prints the figures and per-stage wall times.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.workflow import copy_workflow, env, planned_jobs, snakemake


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "demo")
    result = snakemake(
        work, "all", "--cores", "all", "--configfile", "configs/demo.yaml", timeout=3000
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    results = work / "results/demo"
    assert (results / "report.html").stat().st_size > 10_000
    metrics = json.loads((results / "metrics.json").read_text())

    classifier = metrics["classifier"]["eval"]
    generation = metrics["generation"]
    print(
        "\ndemo figures:",
        json.dumps(
            {
                "classifier_top1_eval": classifier["top1"],
                "generated_accuracy": generation["accuracy_mean"],
                "chance": generation["chance"],
                "fid": generation["fid"],
                "inception_score": generation["inception_score"],
            },
            indent=1,
        ),
    )
    for bench in sorted((results / "benchmarks").glob("*.tsv")):
        row = next(csv.DictReader(bench.open(), delimiter="\t"))
        print(f"  {bench.stem:28s} {float(row['s']):8.1f} s")

    assert classifier["top1"] >= 0.9
    assert generation["accuracy_mean"] >= 3 * generation["chance"]
    for key in ("fid", "inception_score"):
        assert key in generation
    # FID/IS over training (gan.snapshot_every: 600 of 1800 steps), plotted in the report
    assert [p["step"] for p in metrics["over_steps"]["points"]] == [600, 1200, 1800]
    page = (results / "report.html").read_text()
    assert "Metrics over training steps" in page and "Species interpolation" in page

    # species mixing from the command line, by the names people use
    species = json.loads((results / "samples/index.json").read_text())["species"]
    first, second = list(species)[:2]
    mix = subprocess.run(
        ["speciesgan", "sample", "--generator", str(results / "gan/generator.pt"),
         "--mix", first.upper(), second, "--alpha", "0.5", "--out", str(tmp_path / "mix.png")],
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert mix.returncode == 0, mix.stderr
    assert (tmp_path / "mix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = snakemake(work, "-n", "all", "--configfile", "configs/demo.yaml")
    assert planned_jobs(again.stdout) == {}, again.stdout
