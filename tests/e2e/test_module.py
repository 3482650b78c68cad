"""The workflow used as a ``module:`` of another workflow, as Snakemake documents it.

A lab's own Snakefile imports ours and runs it in its own folder; the module must
plan exactly the jobs a direct run with the same config file plans (its
``config.yaml`` defaults included, though Snakemake skips a module's
``configfile:``), and must really run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from speciesgan.workflow.snakemake_dag import parse_jobs
from tests.helpers.workflow import REPO, copy_workflow, downloads_folder, planned_jobs, snakemake

OUTER_SNAKEFILE = """\
configfile: "smoke.yaml"


module speciesgan:
    snakefile:
        "{repo}/Snakefile"
    config:
        config


use rule * from speciesgan
"""


def _outer(tmp_path: Path) -> Path:
    outer = tmp_path / "lab"
    outer.mkdir()
    (outer / "Snakefile").write_text(OUTER_SNAKEFILE.format(repo=REPO))
    shutil.copy(REPO / "configs/smoke.yaml", outer / "smoke.yaml")
    return outer


def _plan(workdir: Path, *args: str) -> dict[tuple[str, tuple[str, ...]], str | None]:
    dry = snakemake(workdir, "all", "-n", "--forceall", "-p", *args)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    return {(job.rule, job.outputs): job.shell for job in parse_jobs(dry.stdout + dry.stderr)}


def test_module_plans_what_a_direct_run_plans(tmp_path: Path) -> None:
    module_plan = _plan(_outer(tmp_path))
    direct_plan = _plan(copy_workflow(tmp_path / "direct"), "--configfile", "configs/smoke.yaml")
    assert len(module_plan) == 22  # the smoke jobs: the judge, real_features and cas among them
    assert module_plan == direct_plan
    gan = next(shell for (rule, _), shell in module_plan.items() if rule == "train_gan")
    assert '"diffaugment":"translation,cutout,color"' in gan  # from the module's config.yaml


def test_module_runs_the_data_stages(tmp_path: Path) -> None:
    outer = _outer(tmp_path)
    records = "results/smoke/data/records.parquet"
    run = snakemake(outer, records, "--cores", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (outer / records).stat().st_size > 0
    assert (outer / downloads_folder("smoke_dogs", "configs/smoke.yaml") / "extracted").is_dir()
    dry = snakemake(outer, records, "-n")
    assert planned_jobs(dry.stdout) == {}, dry.stdout
