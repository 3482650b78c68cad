"""GAN training as SLURM runs it: many time-limited segments, and several ranks from srun.

Users rely on: a run that needs more job segments than a few finishing, resumed
by each next job, with a generator equal bit for bit to an uninterrupted run's
and a training time that covers every segment; and ``srun`` inside
``sbatch --ntasks N`` training with N ranks (gloo on CPUs here) that find each
other without MASTER_ADDR/MASTER_PORT, each with its share of the node's CPUs,
reaching what one process reaches.

The segments are cut the way SLURM cuts them: ``scancel --signal=USR1`` is what
the profile's ``--signal=USR1@N`` sends before the time limit (one cut uses
SIGTERM, what preemption sends).  The test signals a job once it has trained a
step or two, so six segments fit in well under two minutes where a real
one-minute limit would take six.  The jobs are submitted with sbatch directly,
the way a retry resubmits them: through Snakemake's SLURM plugin each failed
attempt adds 10 s to its status-check interval (only a success resets it), so
six segments would take minutes of polling; tests/test_slurm.py covers the
profile's retry once.

Needs the local cluster (tests/slurm/cluster.sh; SPECIESGAN_SLURM=1 to start it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from speciesgan.gan import segments
from speciesgan.gan.training_loop import train_gan
from tests.test_gan import TINY, write_manifest
from tests.test_slurm import _clean_env, slurm_cluster  # noqa: F401 - the fixture

JOB_TIMEOUT_SECONDS = 120
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY"}


def _train_command(manifest: Path, out: Path, settings: dict, threads: int) -> str:
    return " ".join(
        [
            "srun", sys.executable, "-m", "speciesgan", "train-gan",
            "--manifest", str(manifest),
            "--out-generator", str(out / "generator.pt"), "--out-log", str(out / "log.csv"),
            "--out-timing", str(out / "training_time.json"),
            "--checkpoint-dir", str(out / "checkpoints"),
            "--seed", "3", "--threads", str(threads),
            "--settings", "'" + json.dumps(settings) + "'",
        ]
    )  # fmt: skip


def _sbatch(command: str, log: Path, *options: str) -> str:
    env = {**_clean_env(), "SPECIESGAN_DEVICE": "cpu"}
    submitted = subprocess.run(
        ["sbatch", "--parsable", "-t", "5", "-o", str(log), *options, "--wrap", command],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return submitted.stdout.strip().split(";")[0]


def _job_state(job: str) -> tuple[str, int | None]:
    """SLURM's state of ``job`` and, once it ended, its exit status (no accounting needed)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    state = re.search(r"JobState=(\S+)", shown).group(1)
    code = re.search(r"ExitCode=(\d+):", shown)
    return state, int(code.group(1)) if state in ENDED and code else None


def _wait_for_end(job: str, log: Path) -> tuple[str, int | None]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state, code = _job_state(job)
        if state in ENDED:
            return state, code
        time.sleep(0.2)
    subprocess.run(["scancel", job], timeout=30, check=False)
    pytest.fail(f"job {job} did not end in {JOB_TIMEOUT_SECONDS}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no job output)"


def _segment_of(checkpoint_dir: Path, job: str) -> segments.Segment | None:
    """This job's segment in the run's ledger, once training has begun it."""
    try:
        ledger = segments.read_ledger(checkpoint_dir)
    except ValueError:
        return None
    if ledger is None or not ledger.segments:
        return None
    last = ledger.segments[-1]
    return last if last.attempt.startswith(f"SLURM job {job} ") else None


@pytest.mark.slow
def test_training_cut_into_six_slurm_segments_ends_bit_identical(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path / "data")
    settings = {**TINY, "model": "dcgan", "steps": 100, "checkpoint_every": 1, "log_every": 10}
    reference = tmp_path / "reference"
    train_gan(
        manifest, None, reference / "generator.pt", reference / "log.csv",
        reference / "checkpoints", settings=settings, seed=3, threads=1,
    )  # fmt: skip

    out = tmp_path / "segmented"
    cuts = ["USR1", "USR1", "TERM", "USR1", "USR1"]  # TERM: what preemption sends
    jobs: list[tuple[str, str, int | None]] = []
    while len(jobs) < 10:
        log = tmp_path / f"segment-{len(jobs) + 1}.log"
        job = _sbatch(_train_command(manifest, out, settings, threads=1), log)
        if len(jobs) < len(cuts):
            deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
            while True:  # signal once the job has trained two steps past where it resumed
                segment = _segment_of(out / "checkpoints", job)
                if segment is not None and segment.step >= segment.start_step + 2:
                    break
                assert _job_state(job)[0] not in ENDED, f"job {job} ended early:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"job {job} did not train:\n{_tail(log)}"
                time.sleep(0.05)
            signal = cuts[len(jobs)]
            subprocess.run(["scancel", f"--signal={signal}", job], timeout=30, check=True)
        state, code = _wait_for_end(job, log)
        jobs.append((job, state, code))
        if code == 0:
            break
        assert code == 75, f"job {job} ended {state} with {code}, not 75:\n{_tail(log)}"
        assert "checkpoint saved" in log.read_text(), _tail(log)

    assert [code for _, _, code in jobs] == [75] * 5 + [0], jobs
    assert (out / "generator.pt").read_bytes() == (reference / "generator.pt").read_bytes()
    assert (out / "log.csv").read_bytes() == (reference / "log.csv").read_bytes()
    timing = json.loads((out / "training_time.json").read_text())
    parts = timing["per_segment"]
    assert [p["attempt"].split()[2] for p in parts] == [job for job, _, _ in jobs]
    assert [p["status"] for p in parts] == ["stopped"] * 5 + ["done"]
    assert "SIGTERM" in parts[2]["reason"] and "SIGUSR1" in parts[0]["reason"]
    assert all(
        later["start_step"] == earlier["step"]
        for earlier, later in zip(parts, parts[1:], strict=False)
    )
    assert parts[-1]["step"] == 100
    assert timing["wall_seconds"] == pytest.approx(sum(p["wall_seconds"] for p in parts), abs=0.01)
    assert timing["cpu_seconds"] == pytest.approx(sum(p["cpu_seconds"] for p in parts), abs=0.01)
    assert timing["wall_seconds"] > 6 * min(p["wall_seconds"] for p in parts)


@pytest.mark.slow
def test_srun_two_tasks_on_one_node_train_like_one_process(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """As tests/test_gan.py's two-process test, with the ranks started by srun."""
    manifest = write_manifest(tmp_path / "data")
    settings = {**TINY, "model": "dcgan", "steps": 3}
    single = tmp_path / "single"
    train_gan(
        manifest, None, single / "generator.pt", single / "log.csv", single / "checkpoints",
        settings=settings, seed=3, threads=1,
    )  # fmt: skip
    out, log = tmp_path / "srun", tmp_path / "srun.log"
    # --threads 2 is the job's CPUs: two tasks on a 2-CPU allocation get one thread each
    job = _sbatch(
        _train_command(manifest, out, settings, threads=2), log, "--ntasks=2", "--nodes=1"
    )
    state, code = _wait_for_end(job, log)
    output = _tail(log)
    assert code == 0, f"job {job} ended {state} with {code}:\n{output}"
    assert re.search(r"2 ranks \(srun, gloo\) meet at \S+:\d+", output), output
    for rank in (0, 1):
        assert re.search(
            rf"rank {rank} of 2 \(srun, local {rank} of 2 on this node\): 1 torch", output
        )
    one = pd.read_csv(single / "log.csv")
    two = pd.read_csv(out / "log.csv")
    assert two["step"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(two.to_numpy(), one.to_numpy(), rtol=1e-3, atol=1e-4)
    timing = json.loads((out / "training_time.json").read_text())
    assert timing["segments"] == 1 and timing["cpu_seconds"] > 0
