"""The project's SLURM profile on a real (one-node) SLURM cluster.

Users run `snakemake --profile slurm` on HPC clusters; what they rely on:
every rule that is not a local rule becomes a SLURM job with its log kept, the
GPU rules (training, sampling, evaluation) land in the GPU partition with a GPU,
downloads and other small steps run where Snakemake runs, a failing rule ends the
run with an error naming its log (instead of hanging), and a training job warned
by SIGUSR1 before its time limit checkpoints, stops and resumes in a new job
(tests/e2e/test_slurm_faults.py cuts a run in every way).

Each test fills in the site template for the test cluster (tests/helpers/cluster_site.py)
and adds the test-only profile tests/slurm/profile after the shipped one.

The cluster comes from tests/slurm/cluster.sh (CI starts it before pytest, or
set SPECIESGAN_SLURM=1 to let the session fixture start it; it needs root).
Without a running cluster these tests are skipped, saying why.  Accounting is
off by default, so the test profile polls with squeue; SPECIESGAN_SLURM_ACCOUNTING=1
starts the cluster with slurmdbd instead.

The time-limit parsing tests at the end need no cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speciesgan.runtime.slurm_time import parse_slurm_timestamp, slurm_job_end_time
from tests.helpers.cluster_site import PROFILE_ARGS, write_test_site

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
TOY_WORKFLOW = REPO / "tests" / "slurm" / "toy"
PROFILE = REPO / "slurm"
RUN_TIMEOUT_SECONDS = 300
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)")


def _node_ready() -> bool:
    """True when sinfo answers and some node can take jobs."""
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    states = done.stdout.split()
    return done.returncode == 0 and any(
        state.startswith(("idle", "mixed", "allocated")) for state in states
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A running SLURM cluster, started here only when SPECIESGAN_SLURM=1."""
    if os.environ.get("SPECIESGAN_SLURM") == "1":
        args = ["bash", str(CLUSTER_SCRIPT), "start"]
        if os.environ.get("SPECIESGAN_SLURM_ACCOUNTING") == "1":
            args.append("--accounting")
        subprocess.run(args, check=True, timeout=600)
    if shutil.which("sbatch") is None:
        pytest.skip("no SLURM client (sbatch) on PATH: run tests/slurm/cluster.sh start as root")
    if not _node_ready():
        pytest.skip(
            "SLURM cluster not running: run `tests/slurm/cluster.sh start` as root "
            "or set SPECIESGAN_SLURM=1"
        )


def _clean_env() -> dict[str, str]:
    """This environment minus SLURM job variables (pytest may itself run inside a job)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _toy_copy(tmp_path: Path, short_train_gan: bool = False) -> Path:
    """The toy workflow plus the project's profile as ./slurm/, where --profile finds it.

    ``short_train_gan`` gives that rule a 2-minute limit and a warning 50 s before
    it through the site file's ``rules:`` section, so SLURM sends the SIGUSR1 within
    the test.  The rule's 300 s would exceed the limit, and SLURM then signals at
    once, before Snakemake in the job has even read the Snakefile; SLURM may signal
    up to a minute early (seen: 20 s), so the due time 70 s into the job keeps it
    after the start-up and well before the limit.
    """
    workdir = tmp_path / "toy"
    shutil.copytree(TOY_WORKFLOW, workdir)
    shutil.copytree(PROFILE, workdir / "slurm")
    rules = {"train_gan": {"runtime": 2, "slurm_extra": "--signal=USR1@50"}}
    write_test_site(workdir / "slurm", rules=rules if short_train_gan else {})
    return workdir


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`snakemake --profile slurm ...` under a hard timeout, so a hang fails instead of blocking."""
    command = [
        "timeout", "-k", "10", str(RUN_TIMEOUT_SECONDS),
        sys.executable, "-m", "snakemake", *PROFILE_ARGS, *args,
    ]  # fmt: skip
    return subprocess.run(
        command,
        cwd=workdir,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS + 60,
        check=False,
    )


def _submitted_jobs(output: str) -> dict[str, list[tuple[str, Path]]]:
    """Rule name -> [(SLURM job id, SLURM log path)] in submission order."""
    jobs: dict[str, list[tuple[str, Path]]] = {}
    for job_id, log_path in SUBMITTED.findall(output):
        # .snakemake/slurm_logs/rule_<name>/[<wildcards>/]<jobid>.log
        rule = next(p for p in Path(log_path).parts if p.startswith("rule_")).removeprefix("rule_")
        jobs.setdefault(rule, []).append((job_id, Path(log_path)))
    return jobs


def _release_requeued(work: Path) -> None:
    """Start this workflow's requeued jobs now: slurm-wlm 22.05 holds a requeued job for
    120 s (measured: EligibleTime 2 min after the requeue, Reason=BeginTime).  A real
    run pays that once per 24 h segment; here it would add minutes per cut."""
    listed = subprocess.run(
        ["squeue", "-h", "-t", "PD", "-o", "%i|%r|%Z"], capture_output=True, text=True, timeout=30
    ).stdout
    for line in listed.splitlines():
        job, reason, workdir = line.split("|", 2)
        if reason == "BeginTime" and Path(workdir.strip()) == work:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], timeout=30)


def _read_env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.slow
def test_profile_runs_rules_as_slurm_jobs_gpu_partition_and_resumes_after_sigusr1(
    slurm_cluster: None, tmp_path: Path
) -> None:
    workdir = _toy_copy(tmp_path, short_train_gan=True)
    started = time.monotonic()
    run = _snakemake(workdir, "all")
    wall = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, (
        f"snakemake failed ({run.returncode}) after {wall:.0f}s:\n{output[-6000:]}"
    )

    jobs = _submitted_jobs(output)
    assert set(jobs) == {"prepare", "train_classifier", "train_gan"}, output[-4000:]
    for rule, submissions in jobs.items():
        for job_id, log_path in submissions:
            assert log_path.is_file(), f"SLURM log of {rule} (job {job_id}) not kept: {log_path}"
            assert log_path.parent == workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}"

    prepare = _read_env_file(workdir / "out" / "prepare.env")
    assert prepare["SLURM_JOB_ID"] == jobs["prepare"][0][0]
    assert prepare["SLURM_JOB_PARTITION"] == "cpu"

    gpu_rule = _read_env_file(workdir / "out" / "train_classifier.env")
    assert gpu_rule["SLURM_JOB_ID"] == jobs["train_classifier"][0][0]
    assert gpu_rule["SLURM_JOB_PARTITION"] == "gpu"
    assert gpu_rule["CUDA_VISIBLE_DEVICES"] != "", "GPU rule ran without a GPU assigned"

    # train_gan's first attempt waited for SIGUSR1 (sent by SLURM because of the
    # profile's --signal=USR1@N and the short limit), saved a checkpoint
    # and exited 75; the retry found that checkpoint.
    result = (workdir / "out" / "train_gan.txt").read_text()
    assert "resumed from: SIGUSR1 in job" in result, result
    signalled_job = re.search(r"SIGUSR1 in job (\d+)", result).group(1)
    assert signalled_job in {job_id for job_id, _ in jobs["train_gan"]}


@pytest.mark.slow
def test_failing_rule_is_resubmitted_with_more_memory_then_ends_run_naming_its_log(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """The profile's `retries: 1` gives a failed job (say, killed for memory) one more
    SLURM job, asking for the memory of its second attempt; then the run fails."""
    workdir = _toy_copy(tmp_path)
    run = _snakemake(workdir, "out/fail.txt")
    output = run.stdout + run.stderr
    assert run.returncode not in (0, 124, 137), f"expected a failure, not a hang:\n{output[-4000:]}"
    assert "logs/fail.log" in output
    assert "FAILED" in output
    jobs = _submitted_jobs(output)
    assert len(jobs.get("fail", [])) == 2, output[-4000:]
    assert [_job_memory_mb(job_id) for job_id, _ in jobs["fail"]] == [1000, 2000]
    for _, slurm_log in jobs["fail"]:
        assert slurm_log.is_file()
        assert str(slurm_log) in output, "the failing job's SLURM log path should be named"
    assert (workdir / "logs" / "fail.log").read_text().strip() == "toy rule failing on purpose"


@pytest.mark.slow
def test_job_end_time_matches_the_time_limit_inside_a_job(
    slurm_cluster: None, tmp_path: Path
) -> None:
    out = tmp_path / "end_time.txt"
    probe = (
        "import time; from speciesgan.runtime.slurm_time import slurm_job_end_time; "
        f"end = slurm_job_end_time(); open({str(out)!r}, 'w').write(f'{{end}} {{time.time()}}')"
    )
    submit = subprocess.run(
        ["sbatch", "--parsable", "-t", "7", "-o", str(tmp_path / "probe.log"), "--wrap",
         f"{sys.executable} -c \"{probe}\""],
        env=_clean_env(), capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    job_id = submit.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert out.exists(), f"probe job {job_id} wrote nothing: {(tmp_path / 'probe.log').read_text()}"
    end, now = (float(word) for word in out.read_text().split())
    assert 6 * 60 < end - now <= 7 * 60 + 2


def test_timestamps_in_local_time_and_unlimited_jobs() -> None:
    expected = time.mktime((2026, 11, 23, 14, 5, 0, 0, 0, -1))
    assert parse_slurm_timestamp("2026-11-23T14:05:00\n") == expected
    for no_deadline in ("Unknown", "N/A", "NONE", "UNLIMITED", "", "INVALID", "14:05:00"):
        assert parse_slurm_timestamp(no_deadline) is None


def test_no_deadline_outside_a_job_or_without_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_job_end_time() is None
    assert slurm_job_end_time("not-a-job") is None
    # Inside a "job" but with no SLURM tools on PATH: None, not an exception.
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert slurm_job_end_time() is None


# ---------------------------------------------------------------- the real pipeline
def _pipeline_copy(tmp_path: Path, name: str) -> Path:
    from tests.helpers.workflow import copy_workflow

    workdir = copy_workflow(tmp_path / name)
    # long enough to be caught mid-run, small enough for CI (tiny DCGAN at 32 px)
    (workdir / "longer.yaml").write_text("gan:\n  steps: 400\n  checkpoint_every: 20\n")
    return workdir


PIPELINE_ARGS = ("all", "--configfile", "configs/smoke.yaml", "longer.yaml")


def _show_job(job_id: str) -> str:
    """``scontrol show job`` of a (finished) job; slurmctld keeps it for MinJobAge seconds."""
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def _job_partition(job_id: str) -> str:
    return re.search(r"Partition=(\S+)", _show_job(job_id)).group(1)


def _job_memory_mb(job_id: str) -> int:
    """The job's --mem (``MinMemoryNode=12000M``; slurm-wlm may print ``12G``)."""
    value, unit = re.search(r"MinMemoryNode=(\d+)([MG])", _show_job(job_id)).groups()
    return int(value) * (1024 if unit == "G" else 1)


@pytest.mark.slow
def test_pipeline_on_slurm_resumes_training_after_warning_signal(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """The real workflow with `snakemake --profile slurm`: every rule but the local ones a
    SLURM job, the GPU rules in the gpu partition with a GPU, downloads and the other
    small steps run by Snakemake itself, and GAN training signalled mid-run (as SLURM
    does before the time limit) checkpoints, exits 75, is retried and resumes; its
    final generator and log equal those of an uninterrupted local run byte for byte,
    and its final checkpoint holds the same state."""
    from tests.helpers.workflow import snakemake as run_local

    reference = _pipeline_copy(tmp_path, "local")
    # the reference only needs training: its generator, log and checkpoint are compared
    local = run_local(
        reference, "results/smoke/gan/generator.pt", *PIPELINE_ARGS[1:], "--cores", "2"
    )
    assert local.returncode == 0, local.stderr[-4000:]

    workdir = _pipeline_copy(tmp_path, "cluster")  # includes the profile as ./slurm/
    assert (workdir / "slurm" / "config.yaml").is_file()
    write_test_site(workdir / "slurm")
    command = [
        "timeout", "-k", "10", "900", sys.executable, "-m", "snakemake", *PROFILE_ARGS,
        *PIPELINE_ARGS,
    ]  # fmt: skip
    log_path = tmp_path / "snakemake.out"
    with open(log_path, "w") as log_file:
        # the cluster's GPU is fake (/dev/null): training stages given it would refuse to
        # start (speciesgan.runtime.device); SPECIESGAN_DEVICE=cpu, exported into every job, says
        # the CPU is meant
        env = {**_clean_env(), "SPECIESGAN_DEVICE": "cpu"}
        run = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        checkpoint = workdir / "results/smoke/gan/checkpoints/last.pt"
        signalled = None
        deadline = time.monotonic() + 600
        while run.poll() is None and time.monotonic() < deadline:
            jobs = _submitted_jobs(log_path.read_text()).get("train_gan")
            if signalled is None and jobs and checkpoint.exists():
                signalled = jobs[0][0]
                subprocess.run(["scancel", "--signal=USR1", signalled], check=True, timeout=30)
            _release_requeued(workdir)
            time.sleep(0.5)
        run.wait(timeout=600)
    output = log_path.read_text()
    assert run.returncode == 0, output[-6000:]
    assert signalled is not None, "train_gan finished before it could be signalled"

    jobs = _submitted_jobs(output)
    gpu_rules = {"train_classifier", "train_gan", "sample", "real_features", "evaluate", "cas"}
    assert set(jobs) == gpu_rules | {"extract", "crop_shard"}, sorted(jobs)
    ran_here = {line.split()[1].rstrip(":") for line in output.splitlines()
                if line.startswith("localrule ")}  # fmt: skip
    local_rules = {"demo_stanford_dogs", "demo_cub", "download", "index", "manifest", "report"}
    assert ran_here == local_rules | {"all"}, sorted(ran_here)
    for rule, submissions in jobs.items():
        partition = "gpu" if rule in gpu_rules else "cpu"
        for job_id, slurm_log in submissions:
            assert slurm_log.is_file()
            assert _job_partition(job_id) == partition, (rule, job_id)
            if rule in gpu_rules:  # a GPU allocated, not just the partition
                # TresPerJob=gres:gpu:1 (slurm-wlm 24) or gres/gpu:1; TRES=...,gres/gpu=1
                shown = _show_job(job_id)
                assert re.search(r"gres[/:]gpu[:=]1\b", shown), (rule, shown)
    # the signalled attempt saved a checkpoint and stopped; the next segment ran in a
    # new job (its own requeue, or Snakemake's retry from outside), never inside the
    # dying one ...
    slurm_logs = "".join(log.read_text() for _, log in jobs["train_gan"])
    assert "Trying to restart job" not in slurm_logs, slurm_logs[-3000:]
    from speciesgan.gan.segments import read_ledger

    ledger = read_ledger(workdir / "results/smoke/gan/checkpoints")
    assert ledger is not None and len(ledger.segments) >= 2, ledger
    first, *_, last = ledger.segments
    assert first.status == "stopped" and "SIGUSR1" in first.reason, first
    assert first.attempt.startswith(f"SLURM job {signalled} ") and last.status == "done"
    # ... and continued from the checkpoint instead of step 0 (Snakemake empties the
    # rule's log when the requeued job starts it again: the last segment's log)
    training_log = (workdir / "results/smoke/logs/train_gan.log").read_text()
    assert "resuming GAN training at step" in training_log, training_log[-3000:]
    for rel in ("gan/generator.pt", "gan/training_log.csv"):
        produced = (workdir / "results/smoke" / rel).read_bytes()
        assert produced == (reference / "results/smoke" / rel).read_bytes(), rel
    # the final checkpoint holds exactly the same state (weights, optimisers, step, every
    # RNG); its pickle layout may differ after a restore (string memoisation), not its data
    _assert_same_state(
        _load(workdir / "results/smoke/gan/checkpoints/last.pt"),
        _load(reference / "results/smoke/gan/checkpoints/last.pt"),
    )


def _load(path: Path) -> object:
    import torch

    return torch.load(path, weights_only=True)


def _assert_same_state(left: object, right: object, where: str = "") -> None:
    import torch

    assert type(left) is type(right), where
    if isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            _assert_same_state(left[key], right[key], f"{where}/{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            _assert_same_state(a, b, f"{where}[{i}]")
    elif isinstance(left, torch.Tensor):
        assert torch.equal(left, right), where
    else:
        assert left == right, where
