"""Training in job segments: time summed over all of them, and a stalled run stops retrying.

Users rely on: the training time reported for a run (``training_time.json``, read
by the ablation table) covering every segment, not the last job's; a run that
Snakemake retries for as many segments as it needs; and a run that cannot get
past a step (a repeating crash, a hang killed at the time limit) failing at once
after two such attempts, instead of using up its retries for days; and time limits
that fall before a step (during start-up) never counting as such a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from speciesgan.cli import main
from speciesgan.gan import segments
from tests.unit.test_gan import TINY, write_manifest

SEGMENT_SETTINGS = {**TINY, "model": "dcgan", "steps": 40, "checkpoint_every": 1000}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("data"))


def train(manifest: Path, out: Path, *flags: str, **overrides: object) -> int:
    """``speciesgan train-gan`` with ``--out-timing`` (as the rules run it); the exit status."""
    settings = {**SEGMENT_SETTINGS, **overrides}
    return main(
        [
            "train-gan",
            "--manifest", str(manifest),
            "--out-generator", str(out / "generator.pt"),
            "--out-log", str(out / "log.csv"),
            "--out-timing", str(out / "training_time.json"),
            "--checkpoint-dir", str(out / "checkpoints"),
            "--seed", "3",
            "--threads", "1",
            "--settings", json.dumps(settings),
            *flags,
        ]
    )  # fmt: skip


def ledger_of(out: Path) -> segments.Ledger:
    ledger = segments.read_ledger(out / "checkpoints")
    assert ledger is not None
    return ledger


def signal_once_past(out: Path, step: int, done: threading.Event) -> threading.Thread:
    """SIGUSR1 to this process as soon as this attempt's ledger shows ``step`` trained.

    What SLURM's ``--signal=USR1@N`` does before a time limit, timed by progress
    instead of the clock so that the cut always falls mid-run.
    """

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done.is_set():
            try:
                current = ledger_of(out).segments[-1]
            except (AssertionError, ValueError, IndexError):
                current = None
            if current is not None and current.status == "running" and current.step >= step:
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_training_time_sums_every_segment_and_resume_is_bit_identical(
    manifest: Path, tmp_path: Path
) -> None:
    # a signal arriving after training ended must not end pytest (SIGUSR1's default)
    previous = signal.signal(signal.SIGUSR1, lambda *args: None)
    straight = tmp_path / "straight"
    cut = tmp_path / "cut"
    durations = []
    try:
        assert train(manifest, straight) == 0
        for cut_at in (3, 7):  # stopped twice by the "time limit" signal, then finished
            done = threading.Event()
            watcher = signal_once_past(cut, cut_at, done)
            begun = time.monotonic()
            status = train(manifest, cut, checkpoint_every=1)
            durations.append(time.monotonic() - begun)
            done.set()
            watcher.join(timeout=60)
            assert status == 75
        begun = time.monotonic()
        assert train(manifest, cut, checkpoint_every=1) == 0
        durations.append(time.monotonic() - begun)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert (cut / "generator.pt").read_bytes() == (straight / "generator.pt").read_bytes()
    assert (cut / "log.csv").read_bytes() == (straight / "log.csv").read_bytes()

    timing = json.loads((cut / "training_time.json").read_text())
    parts = timing["per_segment"]
    assert [p["status"] for p in parts] == ["stopped", "stopped", "done"]
    assert parts[0]["start_step"] == 0 and parts[-1]["step"] == timing["steps"] == 40
    for before, after in zip(parts, parts[1:], strict=False):  # each resumed where one stopped
        assert after["start_step"] == before["step"] > before["start_step"]
    # the whole run's time, not the last job's: every attempt's wall clock is in it
    assert timing["segments"] == 3
    assert timing["wall_seconds"] == pytest.approx(sum(p["wall_seconds"] for p in parts), abs=0.01)
    assert timing["wall_seconds"] == pytest.approx(sum(durations), abs=0.5)
    assert timing["cpu_seconds"] == pytest.approx(sum(p["cpu_seconds"] for p in parts), abs=0.01)
    assert all(p["cpu_seconds"] > 0 for p in parts)


def test_time_limits_without_progress_never_stop_the_run(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit that falls during start-up, again and again, is no stall: the loop was alive
    and stopped when asked.  The next job with time trains on, no ``--retry`` needed."""
    out = tmp_path / "run"
    assert train(manifest, out, steps=2) == 0  # progress: 0 -> 2
    # each of these jobs starts with its time limit already inside the stop margin
    monkeypatch.setenv("SPECIESGAN_DEADLINE", str(time.time()))
    for _ in range(4):
        assert train(manifest, out, steps=6) == 75
    monkeypatch.delenv("SPECIESGAN_DEADLINE")
    assert [s.status for s in ledger_of(out).segments] == ["done"] + ["stopped"] * 4
    assert train(manifest, out, steps=6) == 0
    reference = tmp_path / "reference"
    assert train(manifest, reference, steps=6) == 0
    assert (out / "generator.pt").read_bytes() == (reference / "generator.pt").read_bytes()


def test_two_attempts_that_died_without_progress_stop_the_next_until_retry_is_allowed(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(manifest, out, steps=4) == 0  # progress: 0 -> 4
    ledger = ledger_of(out)  # two attempts that died at step 4 (a crash that repeats)
    for job in ("SLURM job 11 on n1", "SLURM job 12 on n1"):
        ledger.segments.append(segments.Segment(job, time.time(), 4, 4, 30.0, 30.0, "failed", "X"))
        # a time limit that fell between them changes nothing: no evidence either way
        ledger.segments.append(
            segments.Segment("SLURM job 13", time.time(), 4, 4, 1.0, 1.0, "stopped")
        )
    segments.write_ledger(out / "checkpoints", ledger)
    checkpoint = (out / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()

    begun = time.monotonic()
    assert train(manifest, out, steps=6) == 1
    refused_in = time.monotonic() - begun
    error = capsys.readouterr().err
    assert "the last 2 attempts made no progress past step 4" in error
    assert f"speciesgan segments {out / 'checkpoints'} --retry" in error
    assert refused_in < 5, f"a stalled run should stop at once, took {refused_in:.1f}s"
    assert (out / "checkpoints" / "last.pt").read_bytes() == checkpoint
    assert len(ledger_of(out).segments) == 5  # the refused attempt is not a segment
    # ... and it tells the workflow not to spend its retries on it (speciesgan.runtime.fatal)
    assert "not training" in json.loads((out / "checkpoints" / "fatal.json").read_text())["message"]

    assert main(["segments", str(out / "checkpoints")]) == 0
    listing = capsys.readouterr().out
    assert listing.count("steps 4 -> 4") == 4 and "stalled" in listing
    assert main(["segments", str(out / "checkpoints"), "--retry"]) == 0
    assert train(manifest, out, steps=6) == 0
    assert not (out / "checkpoints" / "fatal.json").exists()
    reference = tmp_path / "reference"
    assert train(manifest, reference, steps=6) == 0
    assert (out / "generator.pt").read_bytes() == (reference / "generator.pt").read_bytes()


def _start_training(manifest: Path, out: Path) -> subprocess.Popen[bytes]:
    settings = {**SEGMENT_SETTINGS, "steps": 100_000}
    command = [
        sys.executable, "-m", "speciesgan", "train-gan",
        "--manifest", str(manifest),
        "--out-generator", str(out / "generator.pt"), "--out-log", str(out / "log.csv"),
        "--checkpoint-dir", str(out / "checkpoints"), "--seed", "3", "--threads", "1",
        "--settings", json.dumps(settings),
    ]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE)


def test_attempts_killed_without_progress_count_as_stalled(manifest: Path, tmp_path: Path) -> None:
    """A hang or an OOM kill leaves no exit status: the next attempt finds the segment open."""
    out = tmp_path / "run"
    for attempt in (1, 2):
        child = _start_training(manifest, out)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # killed once it is training, before a checkpoint
            ledger = segments.read_ledger(out / "checkpoints")
            if ledger is not None and len(ledger.segments) == attempt:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert [s.status for s in ledger_of(out).segments] == ["killed", "running"]
    child = _start_training(manifest, out)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 1
    assert b"the last 2 attempts made no progress past step 0" in stderr
    assert b"was killed without a word" in stderr
    assert not (out / "generator.pt").exists()
