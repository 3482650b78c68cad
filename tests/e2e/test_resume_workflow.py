"""A training job killed outright (SIGKILL) and rerun by Snakemake resumes from its checkpoint.

Issue 4, criterion 3: on a CPU the resumed run ends with the same bytes as a run
that was never interrupted: checkpoint, generator, snapshots and training log.
Everything here runs for real: Snakemake, the ``speciesgan train-gan`` process
and the kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from tests.helpers.workflow import copy_workflow, env, snakemake
from tests.unit.test_gan import run, write_manifest

# Long enough to be caught mid-way (ten checkpoints), still the smoke config's tiny model.
LONGER = "gan:\n  steps: 40\n  checkpoint_every: 4\n  log_every: 2\n"
STEPS = 40
TARGET = "results/smoke/gan/generator.pt"
ARGS = (TARGET, "--cores", "2", "--configfile", "configs/smoke.yaml", "longer.yaml")
CHECKPOINT = "results/smoke/gan/checkpoints/last.pt"
TRAIN_LOG = "results/smoke/logs/train_gan.log"
COMPARED = (
    CHECKPOINT,
    "results/smoke/gan/generator.pt",
    "results/smoke/gan/snapshots.pt",
    "results/smoke/gan/training_log.csv",
)
RESUMED = re.compile(r"resuming GAN training at step (\d+)")


def test_checkpoint_bytes_do_not_depend_on_a_restore(tmp_path: Path) -> None:
    """Function level: a resumed run's final ``last.pt`` equals an uninterrupted run's.

    Pickle memoises by object identity, and a restored optimiser holds strings that
    ``torch.load`` made rather than the ones a fresh run shares (``'step'``), so
    equal tensors alone do not give equal files (see ``checkpoint.canonical``).
    """
    manifest = write_manifest(tmp_path / "data")
    run(manifest, tmp_path / "straight", steps=6)
    run(manifest, tmp_path / "resumed", steps=3)
    run(manifest, tmp_path / "resumed", steps=6)  # continues from step 3
    for name in ("checkpoints/last.pt", "generator.pt", "snapshots.pt", "log.csv"):
        straight = (tmp_path / "straight" / name).read_bytes()
        assert straight == (tmp_path / "resumed" / name).read_bytes(), f"{name} differs"


def _tail(path: Path, chars: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return text[-chars:]


def _checkpoint_step(path: Path) -> int | None:
    """The step ``last.pt`` holds, or None while there is none (it is replaced atomically)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except FileNotFoundError:
        return None


def _training_process(parent: psutil.Process) -> psutil.Process | None:
    """The ``speciesgan train-gan`` python process below Snakemake (not its bash wrapper).

    ``train-gan`` is an argv element of the python process only: the shell that
    Snakemake starts has it inside its single ``-c`` string.
    """
    for proc in parent.children(recursive=True):
        try:
            if "train-gan" in proc.cmdline():
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return None


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a Snakemake this test started and everything below it, if still running."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for member in [*family, proc]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session below)
    proc.wait(timeout=30)


def _kill_training_mid_way(work: Path, output: Path, timeout: float = 300) -> tuple[int, int]:
    """Run Snakemake, SIGKILL training once it has checkpointed; returns (exit, step seen)."""
    checkpoint = work / CHECKPOINT
    with output.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *ARGS],
            cwd=work,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        seen = None
        while seen is None or seen == 0:
            assert proc.poll() is None, (
                f"Snakemake exited ({proc.returncode}) before training wrote a checkpoint:\n"
                + _tail(output)
            )
            assert time.monotonic() < deadline, "no checkpoint in time:\n" + _tail(output)
            time.sleep(0.05)
            seen = _checkpoint_step(checkpoint)
        assert seen < STEPS, (
            f"training had finished (step {seen}) before it could be killed; "
            "make the run longer:\n" + _tail(output)
        )
        training = _training_process(psutil.Process(proc.pid))
        assert training is not None, "train-gan process not found:\n" + _tail(output)
        training.send_signal(signal.SIGKILL)
        training.wait(timeout=30)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return code, seen
    finally:
        if proc.poll() is None:
            _kill_tree(proc)


@pytest.mark.slow
def test_sigkilled_training_resumes_and_ends_byte_identical(tmp_path: Path) -> None:
    straight = copy_workflow(tmp_path / "straight")
    (straight / "longer.yaml").write_text(LONGER)
    result = snakemake(straight, *ARGS, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert not RESUMED.search((straight / TRAIN_LOG).read_text())

    killed = copy_workflow(tmp_path / "killed")
    (killed / "longer.yaml").write_text(LONGER)
    first = tmp_path / "killed.out"
    code, seen = _kill_training_mid_way(killed, first)
    output = _tail(first, 20000)
    # the killed attempt is reported as a failure, whatever Snakemake does next
    assert "Error in rule train_gan" in output, output
    if code == 0:
        # `retries: 3`: Snakemake reran the job within the same invocation
        assert "Trying to restart job" in output, output
    else:
        rerun = snakemake(killed, *ARGS, timeout=600)
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-6000:]

    log = (killed / TRAIN_LOG).read_text()
    resumed_at = [int(step) for step in RESUMED.findall(log)]
    assert len(resumed_at) == 1, f"expected one resume in {TRAIN_LOG}:\n{log}"
    # the kill came after the checkpoint at `seen`: training restarts there or later
    assert seen <= resumed_at[0] < STEPS, (seen, log)

    for rel in COMPARED:
        assert (straight / rel).read_bytes() == (killed / rel).read_bytes(), (
            f"{rel} of the killed and resumed run differs from the uninterrupted run's"
        )


def test_a_killed_checkpoint_write_leaves_no_temporary_behind(tmp_path: Path) -> None:
    """SIGKILL mid-write leaves ``.last.pt.*.tmp.pt``; the next start removes it, keeps last.pt."""
    from speciesgan.gan.checkpoint import remove_stale_temporaries

    (tmp_path / "last.pt").write_bytes(b"finished")
    stale = tmp_path / ".last.pt.abc123.tmp.pt"
    stale.write_bytes(b"half")
    other = tmp_path / "notes.txt"
    other.write_text("kept")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists()
    assert (tmp_path / "last.pt").read_bytes() == b"finished" and other.exists()


# ---------------------------------------------------------------- many segments, one snakemake
SEGMENTS_CONFIG = (
    "preprocess:\n  shards: 1\n"
    "gan:\n  steps: 60\n  checkpoint_every: 1\n  log_every: 10\n  classifier_loss_weight: 0.0\n"
)
GAN_ONLY = (
    "results/smoke/gan/generator.pt", "--cores", "1", "--allowed-rules", "train_gan",
    "--configfile", "configs/smoke.yaml", "segments.yaml",
)  # fmt: skip


def _gan_workdir(dest: Path) -> Path:
    """The workflow with a ready manifest, so that Snakemake runs train_gan alone."""
    work = copy_workflow(dest)
    (work / "segments.yaml").write_text(SEGMENTS_CONFIG)
    write_manifest(work / "results/smoke/data")
    return work


@pytest.mark.slow
def test_snakemake_retries_resume_training_across_six_segments(tmp_path: Path) -> None:
    """More segments than the old `retries: 3` allowed, all within one `snakemake` call.

    Each attempt is stopped by SIGUSR1 (SLURM's time-limit warning) once it has
    trained two steps; Snakemake retries it, training resumes, and the result equals
    an uninterrupted run's byte for byte, with the time of all six segments reported.
    """
    from speciesgan.gan.segments import read_ledger

    straight = _gan_workdir(tmp_path / "straight")
    done = snakemake(straight, *GAN_ONLY, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    work = _gan_workdir(tmp_path / "segmented")
    output = tmp_path / "segmented.out"
    checkpoints = work / "results/smoke/gan/checkpoints"
    signalled: list[str] = []
    with output.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *GAN_ONLY],
            cwd=work, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            ledger = read_ledger(checkpoints) if (checkpoints / "segments.json").exists() else None
            last = ledger.segments[-1] if ledger else None
            if (
                len(signalled) < 5
                and last is not None
                and last.status == "running"
                and last.attempt not in signalled
                and last.step >= last.start_step + 2
            ):
                os.kill(int(last.attempt.split()[1]), signal.SIGUSR1)  # "pid N on host"
                signalled.append(last.attempt)
            time.sleep(0.05)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    log = _tail(output, 20000)
    assert proc.returncode == 0, log
    assert len(signalled) == 5, log
    assert log.count("Trying to restart job") == 5, log
    for rel in ("gan/generator.pt", "gan/training_log.csv"):
        made, reference = work / "results/smoke" / rel, straight / "results/smoke" / rel
        assert made.read_bytes() == reference.read_bytes(), rel
    timing = json.loads((work / "results/smoke/gan/training_time.json").read_text())
    assert [s["status"] for s in timing["per_segment"]] == ["stopped"] * 5 + ["done"]
    assert timing["wall_seconds"] == pytest.approx(
        sum(s["wall_seconds"] for s in timing["per_segment"]), abs=0.01
    )
