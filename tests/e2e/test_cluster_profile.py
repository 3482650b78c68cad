"""The shipped SLURM profile (slurm/config.yaml + a filled-in slurm/site.yaml), no cluster needed.

What users rely on before submitting anything: the training, sampling and
evaluation jobs ask SLURM for a GPU on one node in the site's GPU partition, every
other job goes to the CPU partition with the site's account and QoS, downloads and
other small steps run on the machine Snakemake runs on (compute nodes often have no
internet), and a missing or misspelt site file stops the run with a message that
says what to do.  tests/e2e/test_slurm.py runs the same profile on a real cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from speciesgan.runtime.slurm_site import PROJECT_SLURM_EXTRA, TIME_LIMIT_SIGNAL
from tests.helpers.cluster_site import PROFILE_ARGS, write_test_site
from tests.helpers.workflow import copy_workflow, downloads_folder, planned_jobs, snakemake

GPU_RULES = {
    "train_classifier",
    "train_gan",
    "train_gan_variant",
    "real_features",
    "evaluate",
    "cas",
    "evaluate_variant",
    "sample",
}
CONFIGS = ("--configfile", "configs/smoke.yaml", "configs/ablation.yaml")


def _dry_run_jobs(output: str) -> list[tuple[str, dict[str, str], str]]:
    """(rule, resources, shell command) of each job a dry run lists."""
    jobs: list[tuple[str, dict[str, str], str]] = []
    for block in output.split("\n\n"):
        lines = block.strip().splitlines()
        head = next((line for line in lines if line.startswith(("rule ", "localrule "))), None)
        if head is None:
            continue
        rule = head.split()[1].rstrip(":")
        resources: dict[str, str] = {}
        command = ""
        for line in lines:
            if line.startswith("    resources: "):
                pairs = line.removeprefix("    resources: ").split(", ")
                resources = dict(pair.split("=", 1) for pair in pairs)
            if line.startswith("Shell command: "):
                command = line.removeprefix("Shell command: ")
        jobs.append((rule, resources, command))
    return jobs


def test_gpu_jobs_ask_for_a_gpu_on_one_node_in_the_sites_gpu_partition(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    write_test_site(
        work / "slurm",
        account="test_lab",
        cpu={"partition": "cpu", "qos": "normal", "constraint": None},
        gpu={"partition": "gpu", "qos": "gpu_qos", "constraint": "a100|h100", "model": None},
    )
    (work / "gpus.yaml").write_text("gan:\n  gpus: 2\n")
    result = snakemake(work, "-n", "--profile", "slurm", "all", *CONFIGS, "gpus.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    jobs = _dry_run_jobs(result.stdout)
    assert len(jobs) == sum(planned_jobs(result.stdout).values()), output[-4000:]

    asking_for_gpus = {rule for rule, resources, _ in jobs if int(resources.get("gpu", 0)) > 0}
    assert asking_for_gpus == GPU_RULES
    for rule, resources, command in jobs:
        assert resources["slurm_account"] == "test_lab", rule
        if rule in GPU_RULES:
            assert resources["nodes"] == "1", (rule, resources)
            assert resources["slurm_partition"] == "gpu", (rule, resources)
            assert resources["qos"] == "gpu_qos", (rule, resources)
            assert resources["constraint"] == "a100|h100", (rule, resources)
            assert int(resources["mem_mb"]) >= 8000 and int(resources["runtime"]) >= 60, rule
        else:
            assert resources["slurm_partition"] == "cpu", (rule, resources)
            assert resources["qos"] == "normal", (rule, resources)
            assert "constraint" not in resources and "nodes" not in resources, (rule, resources)
        if rule.startswith("train_"):  # checkpoint at SLURM's warning before the time limit
            assert resources["slurm_extra"].startswith("--signal=USR1@"), (rule, resources)
        if rule == "train_gan":  # gan.gpus: GPUs asked for, and one process per GPU
            assert resources["gpu"] == "2"
            assert command.startswith("speciesgan train-gan --gpus 2 "), command
        elif rule in GPU_RULES:
            assert resources["gpu"] == "1", (rule, resources)


def test_site_rules_section_sets_one_rules_resources(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    write_test_site(work / "slurm", rules={"train_gan": {"runtime": 2880, "mem_mb": 64000}})
    result = snakemake(
        work, "-n", "--profile", "slurm", "all", "--configfile", "configs/smoke.yaml"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    by_rule = {rule: resources for rule, resources, _ in _dry_run_jobs(result.stdout)}
    assert by_rule["train_gan"]["runtime"] == "2880"
    assert by_rule["train_gan"]["mem_mb"] == "64000"
    assert by_rule["train_gan"]["slurm_partition"] == "gpu"  # the GPU settings stay
    assert by_rule["train_classifier"]["runtime"] == "720"  # other rules keep theirs


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="no SLURM client (sbatch) on PATH")
def test_downloads_and_small_steps_run_here_not_as_slurm_jobs(tmp_path: Path) -> None:
    """With the SLURM executor but no reachable controller (SLURM_CONF=/dev/null, set by
    tests.helpers.workflow.env), any job submitted with sbatch would fail: demo archives and
    downloads all finish, each listed as a local rule."""
    work = copy_workflow(tmp_path / "wf")
    write_test_site(work / "slurm")
    dogs = downloads_folder("smoke_dogs", "configs/smoke.yaml")
    birds = downloads_folder("smoke_birds", "configs/smoke.yaml")
    targets = [
        f"{dogs}/archives/{name}" for name in ("images.tar", "annotation.tar", "lists.tar")
    ] + [f"{birds}/archives/CUB_200_2011.tgz"]
    # PROFILE_ARGS add the test profile's short first status wait: the plugin's 40 s
    # would otherwise pass idle before the run ends
    result = snakemake(work, *PROFILE_ARGS, *targets, "--configfile", "configs/smoke.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "sbatch" not in output
    ran = {
        line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("localrule ")
    }
    assert ran == {"demo_stanford_dogs", "demo_cub", "download"}, output[-4000:]
    assert all((work / target).is_file() for target in targets)


def test_missing_site_file_says_how_to_make_one(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    (work / "slurm" / "site.yaml").unlink(missing_ok=True)
    result = snakemake(
        work, "-n", "--profile", "slurm", "all", "--configfile", "configs/smoke.yaml"
    )
    assert result.returncode != 0
    assert "copy slurm/site.yaml.example to slurm/site.yaml" in result.stderr, result.stderr


def test_misspelt_site_key_is_named(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    write_test_site(work / "slurm", gpu={"partiton": "gpu"})
    result = snakemake(
        work, "-n", "--profile", "slurm", "all", "--configfile", "configs/smoke.yaml"
    )
    assert result.returncode != 0
    assert "key gpu.partiton: unknown (known: partition, qos, constraint, model)" in result.stderr


def _site_copied_unchanged(work: Path) -> dict:
    """slurm/site.yaml exactly as docs/cluster.md and the README say to make it: a copy of the template."""
    template = (work / "slurm" / "site.yaml.example").read_text()
    (work / "slurm" / "site.yaml").write_text(template)
    return yaml.safe_load(template)


@pytest.mark.parametrize(
    "filled",
    [
        {},  # unchanged: a cluster whose defaults suffice
        {"account": "lab"},
        {"cpu": {"partition": "cpu"}},
        {"cpu": {"qos": "short"}, "gpu": {"constraint": "a100"}},
        {"gpu": {"partition": "gpu"}},
        {"gpu": {"model": "a100"}},
        {"slurm_extra": "--mail-type=FAIL"},
        {"rules": {"train_gan": {"runtime": 2880}}},
    ],
    ids=lambda filled: "+".join(filled) or "unchanged",
)
def test_site_template_plans_the_run_unchanged_and_partly_filled(
    tmp_path: Path, filled: dict
) -> None:
    work = copy_workflow(tmp_path / "wf")
    site = _site_copied_unchanged(work)
    for key, value in filled.items():
        site[key] = {**site[key], **value} if isinstance(value, dict) and site[key] else value
    (work / "slurm" / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    result = snakemake(
        work, "-n", "--profile", "slurm", "all", "--configfile", "configs/smoke.yaml"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    by_rule = {rule: resources for rule, resources, _ in _dry_run_jobs(result.stdout)}
    assert by_rule["train_gan"]["slurm_extra"].startswith("--signal=USR1@300")
    gpu_partition = (filled.get("gpu") or {}).get("partition")
    cpu_partition = (filled.get("cpu") or {}).get("partition")
    assert by_rule["train_gan"].get("slurm_partition") == (gpu_partition or cpu_partition)
    assert by_rule["extract"].get("slurm_partition") == cpu_partition
    assert by_rule["extract"].get("slurm_account") == filled.get("account")


def test_site_slurm_extra_adds_to_the_rules_own_flags(tmp_path: Path) -> None:
    """A per-rule slurm_extra in the site file must not drop the time-limit signal, or
    the job is killed at its limit without a checkpoint."""
    work = copy_workflow(tmp_path / "wf")
    write_test_site(
        work / "slurm",
        slurm_extra="--mail-type=FAIL --mail-user=me@lab.org",
        rules={
            "train_gan": {"slurm_extra": "--mail-type=END"},
            "train_classifier": {"slurm_extra": "--signal=USR1@600"},  # a deliberate change
            "sample": {"slurm_extra": "--exclusive"},
        },
    )
    result = snakemake(
        work, "-n", "--profile", "slurm", "all", "--configfile", "configs/smoke.yaml"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    by_rule = {rule: resources for rule, resources, _ in _dry_run_jobs(result.stdout)}
    assert by_rule["train_gan"]["slurm_extra"] == (
        "--signal=USR1@300 --open-mode=append --mail-user=me@lab.org --mail-type=END"
    )
    assert by_rule["train_classifier"]["slurm_extra"] == (
        "--open-mode=append --mail-type=FAIL --mail-user=me@lab.org --signal=USR1@600"
    )
    assert by_rule["sample"]["slurm_extra"] == "--mail-type=FAIL --mail-user=me@lab.org --exclusive"
    assert by_rule["extract"]["slurm_extra"] == "--mail-type=FAIL --mail-user=me@lab.org"
    # every rule the site module merges into declares those flags itself
    plain = snakemake(work, "-n", "all", "--configfile", "configs/smoke.yaml", "--cores", "1")
    declared = {rule: res.get("slurm_extra") for rule, res, _ in _dry_run_jobs(plain.stdout)}
    for rule in set(PROJECT_SLURM_EXTRA) & set(declared):
        assert declared[rule] == PROJECT_SLURM_EXTRA[rule], rule
        assert declared[rule].startswith(TIME_LIMIT_SIGNAL), rule
    assert {rule for rule, flags in declared.items() if flags} <= set(PROJECT_SLURM_EXTRA)
