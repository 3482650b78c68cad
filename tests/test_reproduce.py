"""Publishing a run with DVC and reproducing it elsewhere without retraining.

The fast tests check the generated ``dvc.yaml`` against the real workflow's job
graph for the smoke config (no job runs).  The slow test is the user's story:
run, publish, ``git clone``, restore, and Snakemake has nothing to do, yet a
later config edit still reruns exactly the stale stages.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from speciesgan.dvc_export import PARAMS_FILE, export_dvc
from speciesgan.dvc_sync import downstream_closure, publish, restore
from speciesgan.errors import SpeciesganError
from tests.workflow import copy_workflow, env, planned_jobs, snakemake

SMOKE = ["configs/smoke.yaml"]
GAN_AND_AFTER = {"train_gan", "sample", "evaluate", "report"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    work = copy_workflow(tmp_path_factory.mktemp("export") / "wf")
    export_dvc(work, SMOKE)
    dvc_yaml = yaml.safe_load((work / "dvc.yaml").read_text())
    params = yaml.safe_load((work / PARAMS_FILE).read_text())
    return work, dvc_yaml["stages"], params


def test_every_job_of_all_becomes_one_stage(exported: tuple[Path, dict, dict]) -> None:
    _, stages, params = exported
    rules = sorted(name.split("-")[0] for name in stages)
    assert rules == sorted(
        [
            "demo_stanford_dogs",
            "demo_cub",
            *["download"] * 4,
            *["extract"] * 2,
            "index",
            *["crop_shard"] * 2,
            "manifest",
            *["train_classifier"] * 2,
            "train_gan",
            "sample",
            "evaluate",
            "report",
        ]
    )
    assert {"train_classifier-guide", "train_classifier-eval", "crop_shard-000"} <= set(stages)
    assert set(params) == set(stages)


def test_gan_stage_mirrors_the_snakemake_job(exported: tuple[Path, dict, dict]) -> None:
    _, stages, params = exported
    gan = stages["train_gan"]
    res = "results/smoke"
    assert gan["deps"] == [
        f"{res}/data/manifest.parquet",
        f"{res}/data/shards/shard-000.npy",
        f"{res}/data/shards/shard-001.npy",
        f"{res}/classifier/guide/model.pt",
        "rules/gan.smk",
    ]
    assert gan["params"] == [{PARAMS_FILE: ["train_gan"]}]
    assert gan["outs"] == [
        f"{res}/gan/generator.pt",
        f"{res}/gan/training_log.csv",
        f"{res}/gan/snapshots.pt",
        f"{res}/gan/training_time.json",
        f"{res}/logs/train_gan.log",
        f"{res}/benchmarks/train_gan.tsv",
        {f"{res}/gan/checkpoints": {"persist": True}},
    ]
    assert '"steps":6' in params["train_gan"]["params"]["settings"]
    assert params["train_gan"]["shell"].startswith("{params.launch:q} train-gan ")
    assert f"{res}/samples" in stages["sample"]["outs"]  # directory() output
    assert stages["sample"]["cmd"] == (
        f"snakemake {res}/samples --cores all --allowed-rules sample --configfile configs/smoke.yaml"
    )


def test_commands_hold_no_absolute_paths(exported: tuple[Path, dict, dict]) -> None:
    work, stages, _ = exported
    text = (work / "dvc.yaml").read_text() + (work / PARAMS_FILE).read_text()
    assert str(work) not in text and "/tmp" not in text
    header = (work / "dvc.yaml").read_text().splitlines()[1]
    assert header == "# Regenerate with:  speciesgan dvc-export --configfile configs/smoke.yaml"


def test_export_is_reproducible_and_a_gan_edit_changes_only_its_stage(
    exported: tuple[Path, dict, dict], tmp_path: Path
) -> None:
    work, stages, params = exported
    before = (work / "dvc.yaml").read_bytes(), (work / PARAMS_FILE).read_bytes()
    export_dvc(work, SMOKE)
    assert ((work / "dvc.yaml").read_bytes(), (work / PARAMS_FILE).read_bytes()) == before

    (work / "steps.yaml").write_text("gan:\n  steps: 8\n")
    export_dvc(work, [*SMOKE, "steps.yaml"])
    edited = yaml.safe_load((work / PARAMS_FILE).read_text())
    assert {name for name in params if params[name] != edited[name]} == {"train_gan"}
    export_dvc(work, SMOKE)


def test_stale_stage_closure_follows_the_graph(exported: tuple[Path, dict, dict]) -> None:
    work, _, _ = exported
    jobs = export_dvc(work, SMOKE).stages
    assert downstream_closure(jobs, {"train_gan"}) == GAN_AND_AFTER
    assert downstream_closure(jobs, {"train_classifier-eval"}) == {
        "train_classifier-eval",
        "evaluate",
        "report",
    }


def test_dvc_accepts_the_generated_file(exported: tuple[Path, dict, dict], tmp_path: Path) -> None:
    work, stages, _ = exported
    copy = tmp_path / "wf"
    shutil.copytree(work, copy)
    _dvc(copy, "init", "--no-scm", "-q")
    listed = _dvc(copy, "stage", "list", "--name-only").stdout.split()
    assert sorted(listed) == sorted(stages)


def test_bad_config_is_reported_with_its_key(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    (work / "bad.yaml").write_text("gan:\n  steps: many\n")
    with pytest.raises(SpeciesganError, match="gan.steps"):
        export_dvc(work, [*SMOKE, "bad.yaml"])
    assert not (work / "dvc.yaml").exists()


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _git(cwd: Path, *args: str) -> None:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


UNPUBLISHED = (".snakemake_timestamp", "fid_cache")
"""Snakemake's directory marker, and the evaluation's cache of real-image Inception
statistics (not a rule output: recomputed when missing)."""


def _files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not set(p.relative_to(root).parts) & set(UNPUBLISHED)
    )


@pytest.mark.slow
def test_publish_clone_restore_reruns_nothing(tmp_path: Path) -> None:
    origin = copy_workflow(tmp_path / "lab")
    remote = tmp_path / "remote"
    _git(origin, "init", "-q")
    (origin / ".gitignore").write_text((Path(__file__).parents[1] / ".gitignore").read_text())
    _dvc(origin, "init", "-q")
    _dvc(origin, "remote", "add", "-d", "-f", "storage", str(remote))
    (origin / ".dvcignore").write_text(".snakemake_timestamp\n")

    run = snakemake(origin, "all", "--cores", "2", "--configfile", *SMOKE)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    start = time.perf_counter()
    publish(origin, SMOKE)
    print(f"publish wall time: {time.perf_counter() - start:.1f} s")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "publish")

    clone = tmp_path / "colleague"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert not (clone / "results").exists()
    start = time.perf_counter()
    result = restore(clone, SMOKE)
    print(f"restore wall time: {time.perf_counter() - start:.1f} s")
    assert result.stale_stages == () and result.plan.nothing_to_do

    published = origin / "results/smoke"
    assert _files(clone / "results/smoke") == _files(published)
    for rel in _files(published):
        assert filecmp.cmp(published / rel, clone / "results/smoke" / rel, shallow=False), rel
    dry = snakemake(clone, "-n", "all", "--configfile", *SMOKE)
    assert planned_jobs(dry.stdout) == {}, dry.stdout + dry.stderr

    (clone / "steps.yaml").write_text("gan:\n  steps: 8\n")
    dry = snakemake(clone, "-n", "all", "--configfile", *SMOKE, "steps.yaml")
    assert set(planned_jobs(dry.stdout)) == GAN_AND_AFTER | {"all"}, dry.stdout

    # Restoring under an edited config names the stale stage and touches nothing after it.
    again = tmp_path / "colleague2"
    _git(tmp_path, "clone", "-q", str(origin), str(again))
    (again / "steps.yaml").write_text("gan:\n  steps: 8\n")
    result = restore(again, [*SMOKE, "steps.yaml"])
    assert result.stale_stages == ("train_gan",)
    assert set(result.plan.jobs) == GAN_AND_AFTER | {"all"}
    assert result.rerun_command is not None and "--forcerun" in result.rerun_command

    (origin / "steps.yaml").write_text("gan:\n  steps: 8\n")
    with pytest.raises(SpeciesganError, match="refusing to publish.*train_gan"):
        publish(origin, [*SMOKE, "steps.yaml"])
