"""A long GAN training run through `snakemake --profile slurm` survives every kind of cut.

What users rely on, on the local SLURM cluster (tests/slurm/cluster.sh) and through
the shipped profile exactly as they run it:

* a segment cut by the time limit -- during start-up, during its first step, right
  after a checkpoint, mid-step, ten segments in a row -- and a job killed by
  ``scancel`` all resume in a *new* job (SLURM's requeue of the same job id, or a
  job Snakemake submits again), never inside the dying one, and no ``segments
  --retry`` is ever needed; the run ends with the generator and training log of an
  uninterrupted run, byte for byte;
* a job on a node without a usable GPU fails once, with training's message and exit
  status 69, and the run stops instead of resubmitting it 29 times;
* ``dvc repro`` with ``SPECIESGAN_PROFILE=slurm`` submits the stage as a SLURM job.

The time-limit warning is sent as SLURM sends it (``scancel --signal=USR1``, what
``--signal=USR1@300`` does), at the moment each case needs, instead of waiting for
real limits of a minute or more each; the start-up cut ends the job outright, as a
limit reached before training could answer does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from speciesgan.gan import segments
from tests.e2e.test_slurm import (  # noqa: F401 - slurm_cluster: the fixture
    _clean_env,
    _release_requeued,
    _submitted_jobs,
    slurm_cluster,
)
from tests.helpers.cluster_site import PROFILE_ARGS, TEST_PROFILE, write_test_site
from tests.helpers.workflow import copy_workflow, snakemake
from tests.unit.test_gan import write_manifest

RES = "results/smoke"
CHECKPOINTS = f"{RES}/gan/checkpoints"
SEGMENTS_CONFIG = (
    "preprocess:\n  shards: 1\n"
    "gan:\n  steps: 60\n  checkpoint_every: 2\n  log_every: 10\n  classifier_loss_weight: 0.0\n"
)
TRAIN_GAN = (
    f"{RES}/gan/generator.pt", "--allowed-rules", "train_gan",
    "--configfile", "configs/smoke.yaml", "segments.yaml",
)  # fmt: skip
RUN_TIMEOUT_SECONDS = 900


def _workdir(dest: Path) -> Path:
    """The workflow with a ready manifest (Snakemake runs train_gan alone) and the test site."""
    work = copy_workflow(dest)
    (work / "segments.yaml").write_text(SEGMENTS_CONFIG)
    write_manifest(work / f"{RES}/data")
    # memory grows with each Snakemake attempt (rules/common.smk); the test node has
    # less than the third attempt's 24 GB, and sbatch would refuse it
    write_test_site(work / "slurm", rules={"train_gan": {"mem_mb": 2000}})
    return work


def _start(work: Path, log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    command = [
        "timeout", "-k", "10", str(RUN_TIMEOUT_SECONDS),
        sys.executable, "-m", "snakemake", *PROFILE_ARGS, *args,
    ]  # fmt: skip
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)


def _running_train_job(work: Path) -> tuple[str, int] | None:
    """(job id, SLURM restart count) of this workflow's train_gan job now running, if any."""
    listed = subprocess.run(
        ["squeue", "-h", "-t", "R", "-o", "%i|%k|%Z"], capture_output=True, text=True, timeout=30
    ).stdout
    for line in listed.splitlines():
        job, comment, workdir = line.split("|", 2)
        if comment.strip() == "rule_train_gan" and Path(workdir.strip()) == work:
            shown = subprocess.run(
                ["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30
            ).stdout
            restarts = re.search(r"Restarts=(\d+)", shown)
            return job, int(restarts.group(1)) if restarts else 0
    return None


def _segment_of(work: Path, job: tuple[str, int]) -> segments.Segment | None:
    """This attempt's segment (``SLURM job N [(requeue k)] on host``), once training began it."""
    try:
        ledger = segments.read_ledger(work / CHECKPOINTS)
    except ValueError:
        return None
    if ledger is None or not ledger.segments:
        return None
    job_id, restarts = job
    requeued = f" (requeue {restarts})" if restarts else ""
    last = ledger.segments[-1]
    return last if last.attempt.startswith(f"SLURM job {job_id}{requeued} on ") else None


def _training_started(work: Path) -> bool:
    """A `speciesgan train-gan` process of this workflow exists (it has not trained yet)."""
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        if "train-gan" in (proc.info["cmdline"] or []) and proc.info["cwd"] == str(work):
            return True
    return False


CUTS = (
    "startup",  # the limit ends the job before training could answer
    "first_step",  # USR1 at the first poll that sees the segment running
    "after_checkpoint",  # USR1 the moment a checkpoint landed
    "mid_step",  # USR1 a little after a checkpoint, inside a step
    *["usr1"] * 6,  # ten cut segments in a row, with the four above
    "scancel",  # a person's (or the system's) scancel: the job ends CANCELLED
)


def _cut(work: Path, cut: str, job: tuple[str, int]) -> bool:
    """Apply ``cut`` to ``job`` if it is at the right moment; True once applied."""
    segment = _segment_of(work, job)
    trained = segment is not None and segment.status == segments.RUNNING
    if cut == "startup":
        ready = segment is None and _training_started(work)
    elif cut == "first_step":
        # the first poll that sees the segment running: waiting for step == start_step
        # alone missed the moment when a loaded machine polled after the first
        # checkpoint, and the whole run then finished uncut
        ready = trained
    elif cut in ("after_checkpoint", "mid_step"):
        ready = trained and segment.step > segment.start_step
        if ready and cut == "mid_step":
            time.sleep(0.1)
    else:
        ready = trained and segment.step >= segment.start_step + 2
    if not ready:
        return False
    signal = [] if cut in ("startup", "scancel") else ["--signal=USR1"]
    subprocess.run(["scancel", *signal, job[0]], timeout=30, check=True)
    return True


@pytest.mark.slow
def test_training_survives_every_cut_through_the_profile_and_ends_bit_identical(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    reference = _workdir(tmp_path / "reference")
    local = snakemake(reference, *TRAIN_GAN, "--cores", "1", timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]

    work = _workdir(tmp_path / "cluster")
    log = tmp_path / "snakemake.out"
    started = time.monotonic()
    # the cluster's GPU is fake: SPECIESGAN_DEVICE=cpu (exported into the jobs) says so
    run = _start(work, log, {**_clean_env(), "SPECIESGAN_DEVICE": "cpu"}, *TRAIN_GAN)
    applied: list[tuple[str, tuple[str, int]]] = []
    acted_on: set[tuple[str, int]] = set()
    try:
        while run.poll() is None:
            _release_requeued(work)
            job = _running_train_job(work) if len(applied) < len(CUTS) else None
            if job is not None and job not in acted_on:
                cut = CUTS[len(applied)]
                if _cut(work, cut, job):
                    applied.append((cut, job))
                    acted_on.add(job)
            time.sleep(0.05)
    finally:
        if run.poll() is None:
            run.kill()
    wall = time.monotonic() - started
    output = log.read_text()
    assert run.returncode == 0, f"after {wall:.0f} s:\n{output[-6000:]}"
    assert [cut for cut, _ in applied] == list(CUTS), output[-3000:]

    # the same generator and log as the uninterrupted run
    for rel in ("gan/generator.pt", "gan/training_log.csv"):
        made, expected = work / RES / rel, reference / RES / rel
        assert made.read_bytes() == expected.read_bytes(), rel

    # every segment resumed where the one before stopped, in another job or requeue
    timing = json.loads((work / RES / "gan/training_time.json").read_text())
    parts = timing["per_segment"]
    attempts = [part["attempt"].split(" on ")[0] for part in parts]
    assert len(set(attempts)) == len(attempts), attempts  # never twice in one job run
    assert parts[-1]["status"] == "done" and parts[-1]["step"] == 60
    assert sum(part["status"] == "stopped" for part in parts) >= 10
    for earlier, later in zip(parts, parts[1:], strict=False):
        assert later["start_step"] == earlier["step"], (earlier, later)
    assert any("(requeue " in attempt for attempt in attempts), attempts  # SLURM's requeue
    submitted = _submitted_jobs(output)["train_gan"]
    # ... and Snakemake's own retries, outside the jobs: after the start-up cut, the
    # scancel and any segment stopped before its first step
    assert len(submitted) >= 3, submitted
    ledger = segments.read_ledger(work / CHECKPOINTS)
    assert ledger is not None and ledger.retry_from == 0  # no `segments --retry` was needed
    # the Snakemake inside each job never retried the rule (retries: 0 there)
    slurm_logs = "".join(path.read_text(errors="replace") for _, path in submitted)
    assert "Trying to restart job" not in slurm_logs
    print(f"{len(parts)} segments, {len(submitted)} SLURM jobs, {wall:.0f} s wall")


@pytest.mark.slow
def test_a_job_without_a_usable_gpu_fails_once_and_the_run_stops(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """The test cluster's GPU is fake (File=/dev/null): a GPU job asked to use it, as on a
    node whose driver is broken, must fail once, not 30 times."""
    work = _workdir(tmp_path / "wf")
    log = tmp_path / "snakemake.out"
    env = _clean_env()
    env.pop("SPECIESGAN_DEVICE", None)
    started = time.monotonic()
    run = _start(work, log, env, *TRAIN_GAN)
    run.wait(timeout=RUN_TIMEOUT_SECONDS)
    wall = time.monotonic() - started
    output = log.read_text()
    assert run.returncode not in (0, 124, 137), output[-4000:]
    submitted = _submitted_jobs(output)["train_gan"]
    assert len(submitted) == 1, output[-4000:]
    assert "not retrying: attempt 1 (SLURM job" in output, output[-4000:]
    assert "stopped with exit status 69" in output
    assert "no usable CUDA device for train-gan" in output
    training_log = (work / f"{RES}/logs/train_gan.log").read_text()
    assert training_log.count("error: no usable CUDA device") == 1, training_log
    print(f"failed once in {wall:.0f} s")


@pytest.mark.slow
def test_dvc_repro_submits_the_stage_through_the_profile(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """``SPECIESGAN_PROFILE`` makes `dvc repro` run a stage as `snakemake --profile` does:
    the extraction (not a local rule) becomes a SLURM job in the CPU partition."""
    from speciesgan.workflow.dvc_export import PROFILE_ENV, export_dvc

    work = copy_workflow(tmp_path / "wf")
    write_test_site(work / "slurm")
    export = export_dvc(work, ["configs/smoke.yaml"])
    stage = next(name for name, job in export.stages.items() if job.rule == "extract")
    dvc = str(Path(sys.executable).parent / "dvc")
    env = {**_clean_env(), PROFILE_ENV: f"slurm{os.pathsep}{TEST_PROFILE}"}
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=work, env=env, check=True, timeout=60)
    repro = subprocess.run(
        ["timeout", "-k", "10", str(RUN_TIMEOUT_SECONDS), dvc, "repro", stage],
        cwd=work, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS + 60,
    )  # fmt: skip
    output = repro.stdout + repro.stderr
    assert repro.returncode == 0, output[-4000:]
    assert f"--profile slurm --profile {TEST_PROFILE}" in output
    jobs = _submitted_jobs(output)
    assert list(jobs) == ["extract"], output[-4000:]
    assert all(path.is_file() for _, path in jobs["extract"])


def test_only_a_time_limit_stop_after_progress_requeues_its_job() -> None:
    """The other stops are left to Snakemake's retries (no scontrol is run for them)."""
    from speciesgan.runtime.preemption import TrainingInterrupted, requeue_own_job

    in_job = {"SPECIESGAN_REQUEUE": "1", "SLURM_JOB_ID": "5"}
    at_limit = TrainingInterrupted("stopped at step 4", reason="received SIGUSR1")
    cases = {
        "not in a job the workflow submitted": (at_limit, {"SLURM_JOB_ID": "5"}),
        "not rank 0": (at_limit, {**in_job, "SLURM_PROCID": "1"}),
        "stopped by received SIGTERM, not by the time limit": (
            TrainingInterrupted("x", reason="received SIGTERM"),  # maybe a person's scancel
            in_job,
        ),
        "no step trained in this segment": (
            TrainingInterrupted("x", reason="job time limit is near", progressed=False),
            in_job,
        ),
    }
    for why, (stop, environ) in cases.items():
        assert requeue_own_job(stop, environ) == (
            f"not requeued ({why}): the workflow's retries start the next segment"
        )
