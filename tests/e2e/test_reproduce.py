"""Publishing a run with DVC and reproducing it elsewhere without retraining.

The fast tests check the generated ``dvc.yaml`` and params file against the real
workflow's job graph for the smoke config (no job runs): one stage per job, the
config keys DVC tracks agree with what Snakemake reruns on, several configs live
side by side.  The slow tests are the user's stories: run, publish, ``git clone``,
restore, and Snakemake has nothing to do, yet a later config edit still reruns
exactly the stale stages; and DVC's own commands read the published run.
"""

from __future__ import annotations

import csv
import filecmp
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from speciesgan.config import load_config
from speciesgan.util.errors import SpeciesganError
from speciesgan.workflow.dvc_export import PROFILE_ENV, Export, export_dvc, stage_snakemake_argv
from speciesgan.workflow.dvc_remote import REMOTE_ENV, resolve_remote
from speciesgan.workflow.dvc_sync import publish, restore
from speciesgan.workflow.snakemake_dag import read_jobs
from speciesgan.workflow.stage_graph import downstream_closure, select_stages, upstream_closure
from tests.helpers.cluster_site import TEST_PROFILE, write_test_site
from tests.helpers.workflow import (
    REPO,
    copy_workflow,
    downloads_folder,
    env,
    planned_jobs,
    snakemake,
)

SMOKE = ["configs/smoke.yaml"]
PARAMS = "params/smoke.yaml"
RES = "results/smoke"
GAN_AND_AFTER = {"train_gan", "sample", "evaluate", "cas", "report"}


def _rule(stage: str) -> str:
    """The Snakemake rule of a stage name (``smoke-train_classifier-eval`` -> rule)."""
    return stage.removeprefix("smoke-").split("-")[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Export]:
    """A copy of the workflow with the smoke config exported: (folder, dvc.yaml stages, export)."""
    work = copy_workflow(tmp_path_factory.mktemp("export") / "wf")
    export = export_dvc(work, SMOKE)
    return work, yaml.safe_load((work / "dvc.yaml").read_text())["stages"], export


def test_every_job_of_all_becomes_one_stage(exported: tuple[Path, dict, Export]) -> None:
    _, stages, _ = exported
    assert sorted(_rule(name) for name in stages) == sorted(
        [
            "demo_stanford_dogs",
            "demo_cub",
            *["download"] * 4,
            *["extract"] * 2,
            "index",
            *["crop_shard"] * 2,
            "manifest",
            *["train_classifier"] * 3,  # guide, eval and the independent judge
            "train_gan",
            "sample",
            "real_features",
            "evaluate",
            "cas",
            "report",
        ]
    )
    # the run's stages carry its name; dataset stages (outside results_dir) are shared
    assert {"smoke-train_classifier-guide", "smoke-crop_shard-000", "smoke-train_gan"} <= set(
        stages
    )
    # a demo dataset's folder is <name>.<run key>; stage names have no dots
    dogs = downloads_folder("smoke_dogs", "configs/smoke.yaml").rsplit("/", 1)[1].replace(".", "_")
    birds = (
        downloads_folder("smoke_birds", "configs/smoke.yaml").rsplit("/", 1)[1].replace(".", "_")
    )
    assert {f"download-{dogs}-images_tar", f"extract-{birds}"} <= set(stages)


def test_gan_stage_mirrors_the_snakemake_job(exported: tuple[Path, dict, Export]) -> None:
    _, stages, _ = exported
    gan = stages["smoke-train_gan"]
    assert gan["deps"] == [
        f"{RES}/data/manifest.parquet",
        f"{RES}/data/shards/shard-000.npy",
        f"{RES}/data/shards/shard-001.npy",
        f"{RES}/classifier/guide/model.pt",
        "Snakefile",
        "rules/common.smk",
        "rules/gan.smk",
    ]
    [(params_file, keys)] = gan["params"][0].items()
    assert params_file == PARAMS
    assert {"gan.steps", "gan.model", "seed"} <= set(keys)
    assert not {"gan.gpus", "threads", "stage_threads"} & set(keys)  # resources: how, not what
    assert not [k for k in keys if k.startswith(("classifier.", "metrics.", "sample."))]
    assert gan["outs"] == [
        f"{RES}/gan/generator.pt",
        f"{RES}/gan/training_log.csv",
        f"{RES}/gan/snapshots.pt",
        f"{RES}/gan/training_time.json",
        f"{RES}/gan/selection.json",
        f"{RES}/logs/train_gan.log",
        f"{RES}/benchmarks/train_gan.tsv",
        {f"{RES}/gan/checkpoints": {"persist": True}},
    ]
    assert f"{RES}/samples" in stages["smoke-sample"]["outs"]  # directory() output
    assert stages["smoke-sample"]["cmd"] == (
        f"speciesgan dvc-stage {RES}/samples --rule sample --configfile {PARAMS}"
    )
    assert stage_snakemake_argv([f"{RES}/samples"], "sample", PARAMS, {}) == [
        "snakemake", f"{RES}/samples", "--cores", "all", "--allowed-rules", "sample",
        "--configfile", PARAMS,
    ]  # fmt: skip
    # before a run there is nothing to show, and a missing metric file makes DVC warn:
    # the headline (kept in git, cache: false) becomes a metric once it exists
    assert "metrics" not in stages["smoke-evaluate"]
    assert {f"{RES}/eval/headline.json": {"cache": False}} in stages["smoke-evaluate"]["outs"]
    assert f"{RES}/eval/metrics.json" in stages["smoke-evaluate"]["outs"]
    assert {f"{RES}/classifier/eval/headline.json": {"cache": False}} in stages[
        "smoke-train_classifier-eval"
    ]["outs"]
    assert "params" not in stages["smoke-report"]  # reads no config key


def test_params_file_is_the_merged_config_the_stages_run_with(
    exported: tuple[Path, dict, Export], tmp_path: Path
) -> None:
    work, _, _ = exported
    params = yaml.safe_load((work / PARAMS).read_text())
    assert params == load_config([work / SMOKE[0]], base=work / "config.yaml")
    assert params["gan"]["steps"] == 6 and params["gan"]["diffaugment"]  # from config.yaml

    # The stage commands read the params file: same jobs as the config files give,
    # and an edit there (what `dvc exp run -S` makes) reaches the job's command.
    shells = {(j.rule, j.outputs): j.shell for j in read_jobs(work, SMOKE)}
    assert {(j.rule, j.outputs): j.shell for j in read_jobs(work, [PARAMS])} == shells
    copy = tmp_path / "wf"
    shutil.copytree(work, copy)
    text = (copy / PARAMS).read_text().replace("  steps: 6\n", "  steps: 8\n")
    (copy / PARAMS).write_text(text)
    edited = {(j.rule, j.outputs): j.shell for j in read_jobs(copy, [PARAMS])}
    changed = {
        rule for (rule, outputs), shell in edited.items() if shells[(rule, outputs)] != shell
    }
    assert changed == {"train_gan"}
    assert '"steps":8' in next(s for (r, _), s in edited.items() if r == "train_gan")


def test_commands_hold_no_absolute_paths(exported: tuple[Path, dict, Export]) -> None:
    work, _, _ = exported
    text = (work / "dvc.yaml").read_text() + (work / PARAMS).read_text()
    assert str(work) not in text and "/tmp" not in text
    header = [line for line in (work / PARAMS).read_text().splitlines() if "Regenerate" in line]
    assert header == ["# Regenerate with:  speciesgan dvc-export --configfile configs/smoke.yaml"]


def test_configs_live_side_by_side_and_export_is_reproducible(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    export_dvc(work, SMOKE)
    smoke_only = (work / "dvc.yaml").read_bytes()
    export_dvc(work, SMOKE)
    assert (work / "dvc.yaml").read_bytes() == smoke_only

    export_dvc(work, ["configs/demo.yaml"])
    both = yaml.safe_load((work / "dvc.yaml").read_text())
    smoke = yaml.safe_load(smoke_only)
    assert {k: v for k, v in both["stages"].items() if k in smoke["stages"]} == smoke["stages"]
    assert {"demo-train_gan", "smoke-train_gan"} <= set(both["stages"])
    assert "plots" not in both  # no run made yet: DVC would warn about every plot

    for run in ("smoke", "demo"):  # plots are declared once their files exist
        log = work / f"results/{run}/gan/training_log.csv"
        log.parent.mkdir(parents=True)
        log.write_text("step,loss_d,loss_g,loss_cls\n")
        export_dvc(work, [f"configs/{run}.yaml"])
    both = yaml.safe_load((work / "dvc.yaml").read_text())
    assert {"smoke-gan_losses", "demo-gan_losses"} == {next(iter(p)) for p in both["plots"]}
    assert (work / "params/demo.yaml").exists() and (work / PARAMS).exists()

    # re-exporting one config keeps the other's stages, and the order of exports
    # does not change the file
    after_demo = (work / "dvc.yaml").read_bytes()
    export_dvc(work, SMOKE)
    assert (work / "dvc.yaml").read_bytes() == after_demo


def test_dvc_and_snakemake_agree_on_what_a_config_edit_makes_stale(
    exported: tuple[Path, dict, Export], tmp_path: Path
) -> None:
    """A stage tracks a key iff editing the key changes the job's command (its params)."""
    work, stages, export = exported
    stage_of = {(job.rule, job.outputs): name for name, job in export.stages.items()}
    base = {(j.rule, j.outputs): j.shell for j in read_jobs(work, SMOKE)}
    edits = {
        "gan.steps": "gan:\n  steps: 8\n",
        "preprocess.image_size": "preprocess:\n  image_size: 16\n",
        "classifier.epochs": "classifier:\n  epochs: 2\n",
        "seed": "seed: 3\n",
    }
    for key, overlay in edits.items():
        (work / "edit.yaml").write_text(overlay)
        jobs = read_jobs(work, [*SMOKE, "edit.yaml"])
        edited = {(j.rule, j.outputs): j.shell for j in jobs if j.outputs}
        rerun = {stage_of[job] for job, shell in edited.items() if shell != base[job]}
        tracking = {
            name
            for name, stage in stages.items()
            if any(key in keys for entry in stage.get("params", []) for keys in entry.values())
        }
        assert rerun == tracking, key
    (work / "edit.yaml").unlink()


def test_stage_graph_follows_the_files(exported: tuple[Path, dict, Export]) -> None:
    _, _, export = exported
    jobs = export.stages
    assert downstream_closure(jobs, {"smoke-train_gan"}) == {
        f"smoke-{rule}" for rule in GAN_AND_AFTER
    }
    assert downstream_closure(jobs, {"smoke-train_classifier-eval"}) == {
        "smoke-train_classifier-eval",
        "smoke-evaluate",
        "smoke-cas",
        "smoke-report",
    }
    # --target: by stage name with or without the run prefix, rule, or output path
    assert select_stages(jobs, "smoke", ["train_gan"]) == ["smoke-train_gan"]
    assert select_stages(jobs, "smoke", [f"{RES}/samples/overview.png"]) == ["smoke-sample"]
    assert select_stages(jobs, "smoke", ["train_classifier"]) == [
        "smoke-train_classifier-eval",
        "smoke-train_classifier-guide",
        "smoke-train_classifier-judge",
    ]
    needed = upstream_closure(jobs, ["smoke-train_classifier-eval"])
    assert {_rule(n) for n in needed} == {
        "demo_stanford_dogs",
        "demo_cub",
        "download",
        "extract",
        "index",
        "crop_shard",
        "manifest",
        "train_classifier",
    }
    assert "smoke-train_classifier-guide" not in needed
    with pytest.raises(SpeciesganError, match="--target nonsense"):
        select_stages(jobs, "smoke", ["nonsense"])


def test_dvc_accepts_the_generated_file(
    exported: tuple[Path, dict, Export], tmp_path: Path
) -> None:
    work, stages, _ = exported
    copy = tmp_path / "wf"
    shutil.copytree(work, copy)
    _dvc(copy, "init", "--no-scm", "-q")
    listed = _dvc(copy, "stage", "list", "--name-only").stdout.split()
    assert sorted(listed) == sorted(stages)


def test_dvc_repro_runs_stages_with_the_profile_the_user_chose(
    exported: tuple[Path, dict, Export], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SPECIESGAN_PROFILE=slurm dvc repro`` submits like ``snakemake --profile slurm``;
    unset, the stage runs on local cores.  (A demo archive stage: a local rule, so no
    cluster is needed; tests/e2e/test_slurm_faults.py submits a SLURM job through DVC.)"""
    work, stages, _ = exported
    copy = tmp_path / "wf"
    shutil.copytree(work, copy)
    write_test_site(copy / "slurm")
    _dvc(copy, "init", "--no-scm", "-q")
    stage = next(name for name in stages if name.startswith("demo_cub-"))
    [target] = stages[stage]["outs"][:1]
    command = f"snakemake {target} --cores all --allowed-rules demo_cub"

    monkeypatch.setenv(PROFILE_ENV, f"slurm{os.pathsep}{TEST_PROFILE}")
    repro = _dvc(copy, "repro", stage)
    output = repro.stdout + repro.stderr
    profiles = f"--profile slurm --profile {TEST_PROFILE}"
    assert f"{command} {profiles} --configfile {PARAMS} (${PROFILE_ENV})" in output
    assert "Provided remote nodes: 50" in output  # the profile's SLURM executor and jobs
    assert "slurm_partition=cpu" in output  # and the site's partition
    assert (copy / target).is_file()

    monkeypatch.delenv(PROFILE_ENV)
    repro = _dvc(copy, "repro", "--force", stage)
    output = repro.stdout + repro.stderr
    assert f"{command} --configfile {PARAMS} (local; ${PROFILE_ENV} unset)" in output
    assert "Provided remote nodes" not in output and "slurm_partition" not in output


def test_bad_config_is_reported_with_its_key(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    (work / "bad.yaml").write_text("gan:\n  steps: many\n")
    with pytest.raises(SpeciesganError, match="gan.steps"):
        export_dvc(work, [*SMOKE, "bad.yaml"])
    (work / "comma.yaml").write_text("results_dir: results/a, b\n")
    with pytest.raises(SpeciesganError, match="results_dir.*rename"):
        export_dvc(work, [*SMOKE, "comma.yaml"])
    assert not (work / "dvc.yaml").exists()


def test_a_remote_must_be_set_and_is_taken_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = copy_workflow(tmp_path / "wf")
    _dvc(work, "init", "--no-scm", "-q")
    monkeypatch.delenv(REMOTE_ENV, raising=False)
    with pytest.raises(SpeciesganError, match=f"no DVC remote is set.*{REMOTE_ENV}="):
        publish(work, SMOKE)
    monkeypatch.setenv(REMOTE_ENV, str(tmp_path / "storage"))
    assert resolve_remote(work, None) == "speciesgan"
    local = (work / ".dvc/config.local").read_text()
    assert str(tmp_path / "storage") in local
    assert "storage" not in (work / ".dvc/config").read_text()  # nothing machine-local in git


def _venv_tool(tool: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command of this interpreter's environment (dvc, speciesgan); it must succeed."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / tool), *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _venv_tool("dvc", cwd, *args)


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


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lab's git + DVC repository where the smoke run was made, published and committed."""
    origin = copy_workflow(tmp_path_factory.mktemp("published") / "lab")
    remote = origin.parent / "remote"
    _git(origin, "init", "-q")
    (origin / ".gitignore").write_text((REPO / ".gitignore").read_text())
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
    return origin


@pytest.mark.slow
def test_publish_clone_restore_reruns_nothing(published: Path, tmp_path: Path) -> None:
    origin = published
    clone = tmp_path / "colleague"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    # git carries the headline figures only (DVC metrics, cache: false); DVC the rest
    assert _files(clone / "results") == [
        "smoke/classifier/eval/headline.json",
        "smoke/classifier/guide/headline.json",
        "smoke/classifier/judge/headline.json",
        "smoke/eval/cas/headline.json",
        "smoke/eval/headline.json",
    ]
    start = time.perf_counter()
    result = restore(clone, SMOKE)
    print(f"restore wall time: {time.perf_counter() - start:.1f} s")
    assert result.stale_stages == () and result.plan.nothing_to_do

    published_results = origin / RES
    assert _files(clone / RES) == _files(published_results)
    for rel in _files(published_results):
        assert filecmp.cmp(published_results / rel, clone / RES / rel, shallow=False), rel
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
    assert result.stale_stages == ("smoke-train_gan",)
    assert set(result.plan.jobs) == GAN_AND_AFTER | {"all"}
    assert result.rerun_command is not None and "--forcerun" in result.rerun_command

    (origin / "steps.yaml").write_text("gan:\n  steps: 8\n")
    with pytest.raises(SpeciesganError, match="refusing to publish.*train_gan"):
        publish(origin, [*SMOKE, "steps.yaml"])
    (origin / "steps.yaml").unlink()


def _speciesgan(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _venv_tool("speciesgan", cwd, *args)


def _md_rows(table: str) -> list[list[str]]:
    """The cells of a Markdown table, header first, without the |---| line."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]


@pytest.mark.slow
def test_dvc_commands_read_the_published_run(published: Path, tmp_path: Path) -> None:
    """A colleague pulls only the evaluation and what it needs, then uses DVC's own views."""
    clone = tmp_path / "colleague"
    _git(tmp_path, "clone", "-q", str(published), str(clone))
    # before any pull: the headline figures came with git, a short table, no warning
    shown = _dvc(clone, "metrics", "show")
    assert "failed to load" not in shown.stdout + shown.stderr, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 6 and max(map(len, lines)) <= 160, shown.stdout
    assert "fd_lite0" in lines[0].split() and f"{RES}/eval/headline.json" in shown.stdout
    start = time.perf_counter()
    _speciesgan(clone, "restore", "--configfile", *SMOKE, "--target", "evaluate")
    print(f"restore --target wall time: {time.perf_counter() - start:.1f} s")
    assert (clone / RES / "eval/metrics.json").exists()
    assert not (clone / RES / "report.html").exists() and not (clone / RES / "samples").exists()
    dry = snakemake(clone, "-n", f"{RES}/eval/metrics.json", "--configfile", *SMOKE)
    assert planned_jobs(dry.stdout) == {}, dry.stdout + dry.stderr

    metrics = json.loads(_dvc(clone, "metrics", "show", "--json").stdout)
    by_file = next(iter(metrics.values()))["data"]
    evaluation = json.loads((clone / RES / "eval/metrics.json").read_text())
    headline = by_file[f"{RES}/eval/headline.json"]["data"]
    fidelity = evaluation["fidelity_diversity"]
    assert headline["fd_lite0"] == pytest.approx(fidelity["fd_lite0"], rel=1e-4)
    assert headline["coverage"] == pytest.approx(fidelity["coverage"], rel=1e-4)
    # placeholder Inception weights offline: FID, KID and IS stay out of the headline
    assert evaluation["inception_figures"]["placeholder"] and "fid" not in headline
    assert by_file[f"{RES}/classifier/eval/headline.json"]["data"]["top1"] >= 0
    cas = json.loads((published / RES / "eval/cas/metrics.json").read_text())  # not pulled
    cas_headline = by_file[f"{RES}/eval/cas/headline.json"]["data"]
    assert cas_headline == {"cas_top1": pytest.approx(cas["top1"], rel=1e-4)}
    table = _md_rows(_dvc(clone, "metrics", "show", "--md").stdout)
    assert {"Path", "fd_lite0", "precision", "recall", "top1", "top5"} <= set(table[0])
    assert [row[0] for row in table[1:]] == [
        f"{RES}/classifier/eval/headline.json",
        f"{RES}/classifier/guide/headline.json",
        f"{RES}/classifier/judge/headline.json",
        f"{RES}/eval/cas/headline.json",
        f"{RES}/eval/headline.json",
    ]

    _dvc(clone, "plots", "show", "-o", "plots")
    html = (clone / "plots/index.html").read_text()
    for title in ("GAN losses (smoke)", "FID by training step (smoke)", "Classifier test top-1"):
        assert title in html
    assert '"loss_g"' in html and '"fid"' in html

    config = clone / SMOKE[0]
    config.write_text(config.read_text().replace("  steps: 6\n", "  steps: 8\n"))
    _speciesgan(clone, "dvc-export", "--configfile", *SMOKE)
    diff = _md_rows(_dvc(clone, "params", "diff", "--md").stdout)
    assert diff == [["Path", "Param", "HEAD", "workspace"], [PARAMS, "gan.steps", "6", "8"]]
    # sample and report were not pulled; what was pulled is current except the GAN
    status = json.loads(_dvc(clone, "status", "--json", "--with-deps", "smoke-evaluate").stdout)
    assert [k for k, v in status.items() if v != ["changed command"]] == ["smoke-train_gan"]

    rows = list(csv.DictReader(io.StringIO(_dvc(clone, "exp", "show", "--csv").stdout)))
    steps = next(c for c in rows[0] if c.endswith("gan.steps"))
    fd = next(c for c in rows[0] if c == "fd_lite0" or c.endswith(":fd_lite0"))
    assert (rows[0]["rev"], rows[0][steps]) == ("workspace", "8")
    assert rows[1]["rev"] != "workspace" and rows[1][steps] == "6"  # the published commit
    assert float(rows[1][fd]) == pytest.approx(fidelity["fd_lite0"], rel=1e-4)

    # a second run (8 steps instead of 6): `dvc metrics diff` says what changed
    rerun = snakemake(clone, f"{RES}/eval/metrics.json", "--cores", "2", "--configfile", *SMOKE)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    diff = _md_rows(_dvc(clone, "metrics", "diff", "--md").stdout)
    assert diff[0] == ["Path", "Metric", "HEAD", "workspace", "Change"]
    changed = {(row[0], row[1]) for row in diff[1:]}
    assert (f"{RES}/eval/headline.json", "fd_lite0") in changed, diff
    assert all(path.endswith("/eval/headline.json") for path, _ in changed), diff
