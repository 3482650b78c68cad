"""Training time and progress across the job segments of one training run.

A run longer than a job's time limit is trained in segments: each job (a
Snakemake retry, a resubmission) trains until SLURM warns or the limit is near,
checkpoints, exits 75, and the next one resumes.  Two things need a record that
outlives each segment, kept in ``checkpoint_dir/segments.json`` (the *ledger*):

* **Training time.**  Snakemake's benchmark file holds the last attempt only, so
  a run trained in five segments would report a fifth of its cost.  Every segment
  records its wall seconds and the CPU seconds of all its ranks, at every
  checkpoint and when it ends; the run's time is the sum over segments, killed
  ones included (up to their last checkpoint).
* **Progress.**  Training needs a retry budget large enough for any number of
  segments, which is only safe if an attempt that cannot advance ends the loop:
  a crash that repeats at the same step, a hang that the time limit kills.
  Progress is judged across jobs, by the steps the checkpoint gained: after
  ``STALL_LIMIT`` attempts in a row that *crashed or died* without moving the
  checkpoint past their first step, the next attempt refuses to train (in
  seconds, before loading data) and says why; ``speciesgan segments DIR --retry``
  allows it again once the cause is fixed.  An attempt that *stopped* when asked
  (the time-limit signal, the job's end time, preemption) is no evidence either
  way, even without a step: its loop was alive and answering, and the limit
  merely fell during its start-up or first step.  Such segments are skipped, so
  ordinary time limits never need a ``--retry`` (before this rule, a job started
  60 s before its limit with a 120 s stop margin stopped twice at step 0 and
  the run refused to go on until a person ran ``--retry``).

The ledger sits beside ``last.pt``, not inside it: timings differ between an
interrupted and an uninterrupted run, and checkpoints must stay byte-identical.
Only rank 0 writes it; every rank may read it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from speciesgan.runtime.resume_state import move_aside
from speciesgan.util.atomic import write_json
from speciesgan.util.errors import SpeciesganError

log = logging.getLogger(__name__)

LEDGER_NAME = "segments.json"
FORMAT_VERSION = 1
STALL_LIMIT = 2
"""Attempts in a row without progress after which the next one refuses to train.

One is not enough: a node failure or a preemption right after the start is
transient and the next attempt succeeds.  Two in a row at the same step is a
pattern that a third identical attempt will not break.
"""

RUNNING, STOPPED, FAILED, KILLED, CANCELLED, DONE = (
    "running",
    "stopped",
    "failed",
    "killed",
    "cancelled",
    "done",
)
STALLING = frozenset({FAILED, KILLED})
"""Endings that count towards a stall when the segment made no progress.

``stopped`` (a stop request honoured: time limit, preemption) is no fault and
is passed over (see :meth:`Ledger.stalled_tail`); ``cancelled`` (Ctrl-C at a
terminal) is a person's decision; ``done`` reached ``gan.steps``."""


def ledger_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / LEDGER_NAME


def _restarts_of(job: str) -> str | None:
    """How often SLURM requeued ``job`` (``Restarts=N``).  Asked because slurm-wlm 22.05
    sets SLURM_RESTART_COUNT in the batch script only, not in the srun step that runs
    training (measured), and a requeued segment must not look like its predecessor."""
    from speciesgan.runtime.slurm_time import _run_quietly

    shown = _run_quietly(["scontrol", "show", "job", job], timeout=10)
    match = re.search(r"\bRestarts=(\d+)", shown or "")
    return match.group(1) if match else None


def _attempt_name() -> str:
    """How a person finds this attempt's logs: the SLURM job, else host and pid."""
    host = socket.gethostname().split(".")[0]
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        restarts = os.environ.get("SLURM_RESTART_COUNT") or _restarts_of(job)
        requeued = f" (requeue {restarts})" if restarts and restarts != "0" else ""
        return f"SLURM job {job}{requeued} on {host}"
    return f"pid {os.getpid()} on {host}"


@dataclass
class Segment:
    """One attempt at training: where it started and got to, what it cost, how it ended."""

    attempt: str
    started: float  # epoch seconds
    start_step: int
    step: int  # last step saved in the checkpoint
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # all ranks
    status: str = RUNNING
    reason: str = ""

    @property
    def progressed(self) -> bool:
        return self.step > self.start_step

    @property
    def stalled(self) -> bool:
        """Ended without progress for a reason that may repeat.

        Read before this attempt's own segment is added, a segment still marked
        running belongs to a process that is gone: killed, like the ones ``begin``
        marks so.
        """
        return self.status in STALLING | {RUNNING} and not self.progressed

    def describe(self) -> str:
        ending = {
            RUNNING: "is still running (or died without a trace)",
            STOPPED: "stopped",
            FAILED: "failed",
            KILLED: "was killed without a word (time limit, out of memory or node failure: "
            "see its SLURM log)",
            CANCELLED: "was cancelled",
            DONE: "finished",
        }.get(self.status, self.status)
        reason = f" ({self.reason})" if self.reason else ""
        return (
            f"{self.attempt}: steps {self.start_step} -> {self.step}, "
            f"{self.wall_seconds:.0f} s, {ending}{reason}"
        )


@dataclass
class Ledger:
    """The segments of one training run (one identity), oldest first."""

    identity: str
    segments: list[Segment] = field(default_factory=list)
    retry_from: int = 0  # segments before this index are not counted towards a stall

    def stalled_tail(self) -> list[Segment]:
        """The trailing segments (since ``retry_from``) that crashed or died without
        progress; segments stopped on request without progress are passed over."""
        tail: list[Segment] = []
        for segment in reversed(self.segments[self.retry_from :]):
            if segment.status == STOPPED and not segment.progressed:
                continue
            if not segment.stalled:
                break
            tail.append(segment)
        return tail[::-1]

    def totals(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(sum(s.wall_seconds for s in self.segments), 3),
            "cpu_seconds": round(sum(s.cpu_seconds for s in self.segments), 3),
            "segments": len(self.segments),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "identity": self.identity,
            "retry_from": self.retry_from,
            "segments": [asdict(segment) for segment in self.segments],
        }

    @classmethod
    def from_json(cls, data: Any) -> Ledger:
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ValueError(f"not a segment ledger of format {FORMAT_VERSION}")
        names = {f.name for f in fields(Segment)}
        segments = [Segment(**{k: v for k, v in s.items() if k in names}) for s in data["segments"]]
        return cls(str(data["identity"]), segments, int(data.get("retry_from", 0)))


def read_ledger(checkpoint_dir: str | Path) -> Ledger | None:
    """The ledger, None when there is none; an unreadable one raises ``ValueError``."""
    path = ledger_path(checkpoint_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Ledger.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def write_ledger(checkpoint_dir: str | Path, ledger: Ledger) -> None:
    write_json(ledger_path(checkpoint_dir), ledger.to_json())


def retry_command(checkpoint_dir: str | Path) -> str:
    return f"speciesgan segments {checkpoint_dir} --retry"


def refuse_if_stalled(checkpoint_dir: str | Path, identity: str) -> None:
    """Raise a SpeciesganError when the last ``STALL_LIMIT`` attempts of this run stalled.

    Read-only, so every rank can call it and all stop together.  A ledger of
    other settings or an unreadable one is no evidence: training goes ahead.
    """
    try:
        ledger = read_ledger(checkpoint_dir)
    except ValueError:
        return
    if ledger is None or ledger.identity != identity:
        return
    tail = ledger.stalled_tail()
    if len(tail) < STALL_LIMIT:
        return
    story = "; ".join(segment.describe() for segment in tail)
    raise SpeciesganError(
        f"not training: the last {len(tail)} attempts made no progress past step "
        f"{tail[-1].step} ({story}). Another identical attempt would end the same way, "
        f"so this one stops at once (as do any retries left). Read those attempts' logs, "
        f"fix the cause, then run `{retry_command(checkpoint_dir)}` and start training "
        f"again; the checkpoint and the time spent so far are kept. Ledger: "
        f"{ledger_path(checkpoint_dir)}"
    )


class SegmentClock:
    """This attempt's segment: started at ``begin``, updated at each checkpoint, closed at the end.

    Time counts from the start of ``train_gan`` (wall clock and this process's
    CPU clock, both read there).  Only the writer (rank 0) touches the file.
    CPU seconds of all ranks arrive through ``sync`` (summed by the training loop
    at each checkpoint); between syncs this process's own CPU time is added on top.
    """

    def __init__(
        self, checkpoint_dir: Path, ledger: Ledger, segment: Segment, cpu_start: float, write: bool
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.ledger = ledger
        self.segment = segment
        self.write = write
        self._cpu_start = cpu_start
        self._synced_cpu = self.own_cpu_seconds()
        self._own_at_sync = self._synced_cpu

    def own_cpu_seconds(self) -> float:
        """CPU seconds of this process since training started (what ranks sum for ``sync``)."""
        return time.process_time() - self._cpu_start

    def _cpu_now(self) -> float:
        return self._synced_cpu + (self.own_cpu_seconds() - self._own_at_sync)

    def _save(self) -> None:
        self.segment.wall_seconds = round(time.time() - self.segment.started, 3)
        if self.write:
            write_ledger(self.checkpoint_dir, self.ledger)

    def sync(self, step: int, cpu_all_ranks: float | None = None) -> None:
        """Record a checkpoint at ``step``; ``cpu_all_ranks``: ``own_cpu_seconds`` summed over ranks."""
        if cpu_all_ranks is not None:
            self._synced_cpu, self._own_at_sync = cpu_all_ranks, self.own_cpu_seconds()
        self.segment.step = int(step)
        self.segment.cpu_seconds = round(self._cpu_now(), 3)
        self._save()

    def end(self, status: str, reason: str = "") -> None:
        self.segment.status = status
        self.segment.reason = reason
        self.segment.cpu_seconds = round(self._cpu_now(), 3)
        self._save()

    def totals(self) -> dict[str, Any]:
        return self.ledger.totals()


def begin(
    checkpoint_dir: str | Path,
    identity: str,
    start_step: int,
    started: tuple[float, float],
    restart: bool,
    write: bool,
) -> SegmentClock:
    """Open this attempt's segment, continuing the run's ledger when it belongs to this run.

    A ledger of other settings, or any ledger under ``restart``, goes with its
    checkpoint: moved aside (``segments.mismatch-<time>.json`` and so on), never
    deleted.  ``started``: ``time.time()`` and ``time.process_time()`` when
    training started.  A segment still marked running belonged to a process that died
    without closing it: it becomes ``killed``.
    """
    checkpoint_dir = Path(checkpoint_dir)
    ledger = None
    try:
        ledger = read_ledger(checkpoint_dir)
    except ValueError as exc:
        if write:
            aside = move_aside(ledger_path(checkpoint_dir), "corrupt")
            log.warning("%s; moved aside to %s, training time counts from now", exc, aside)
    if ledger is not None and (restart or ledger.identity != identity):
        if write:
            aside = move_aside(ledger_path(checkpoint_dir), "restart" if restart else "mismatch")
            log.info("segment ledger of an earlier run moved aside to %s", aside)
        ledger = None
    if ledger is None:
        ledger = Ledger(identity)
    for segment in ledger.segments:
        if segment.status == RUNNING:
            segment.status = KILLED
    wall_start, cpu_start = started
    segment = Segment(_attempt_name(), wall_start, int(start_step), int(start_step))
    ledger.segments.append(segment)
    clock = SegmentClock(checkpoint_dir, ledger, segment, cpu_start, write)
    clock.sync(start_step)
    if len(ledger.segments) > 1:
        log.info(
            "training segment %d of this run; so far %.0f s wall, %.0f s CPU",
            len(ledger.segments),
            sum(s.wall_seconds for s in ledger.segments[:-1]),
            sum(s.cpu_seconds for s in ledger.segments[:-1]),
        )
    return clock


def write_training_time(path: str | Path, clock: SegmentClock, steps: int) -> None:
    """The run's total training time (all segments) next to the generator."""
    write_json(
        path,
        {
            "steps": int(steps),
            **clock.totals(),
            "per_segment": [asdict(segment) for segment in clock.ledger.segments],
            "note": "wall and CPU seconds summed over every job segment of this training "
            "run (CPU of all ranks); Snakemake's benchmark file holds only the last one",
        },
    )


def allow_retry(checkpoint_dir: str | Path) -> Ledger:
    """``speciesgan segments --retry``: stalls before now no longer stop training."""
    ledger = read_ledger(checkpoint_dir)
    if ledger is None:
        raise SpeciesganError(f"no segment ledger in {checkpoint_dir} ({LEDGER_NAME})")
    ledger.retry_from = len(ledger.segments)
    write_ledger(checkpoint_dir, ledger)
    return ledger


def format_ledger(ledger: Ledger) -> str:
    """The ledger as lines for a person: one per segment, then the totals."""
    lines = [f"{i + 1:3d}. {segment.describe()}" for i, segment in enumerate(ledger.segments)]
    totals = ledger.totals()
    lines.append(
        f"total: {totals['segments']} segment(s), {totals['wall_seconds']:.0f} s wall, "
        f"{totals['cpu_seconds']:.0f} s CPU"
    )
    stalled = ledger.stalled_tail()
    if len(stalled) >= STALL_LIMIT:
        lines.append("stalled: training refuses to start until `speciesgan segments DIR --retry`")
    return "\n".join(lines)
