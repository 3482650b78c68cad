"""Stop training cleanly before SLURM kills the job.

A training step loop asks ``StopRequest.requested()`` once per step.  It turns
true when the process receives SIGUSR1 or SIGTERM (SLURM's ``--signal`` warning,
``scancel``, preemption) or when the job's known end time is less than
``margin_seconds`` away.  The loop then writes a checkpoint and exits with
``EXIT_PREEMPTED``; Snakemake's ``retries`` (or a SLURM requeue) starts the job
again and training resumes from that checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from types import FrameType

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75
"""Exit status of a training command that stopped early and saved a checkpoint (EX_TEMPFAIL)."""


class TrainingInterrupted(Exception):
    """Raised by a training loop after it saved a checkpoint because a stop was requested."""


class StageTerminated(BaseException):
    """SIGTERM (``scancel``, a node drain, a kill without warning) in a stage that has no
    checkpoint to save.

    Raised in the main thread from the signal handler, so that every write in
    progress runs its cleanup (atomic writes remove their temporaries) on the way
    out.  A BaseException, like KeyboardInterrupt: a handler for a stage's own
    errors (``except Exception``) must not swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise StageTerminated(signum)


def stop_stage_on_sigterm() -> object:
    """Make SIGTERM raise ``StageTerminated`` in this process (training replaces the
    handler with its own, which checkpoints first).  Returns the previous handler."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave the handler as it is
        return None


def restore_sigterm(previous: object) -> None:
    """Put back the handler ``stop_stage_on_sigterm`` replaced (the CLI runs in tests'
    own process too)."""
    if previous is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def job_deadline() -> float | None:
    """Epoch seconds at which this job will be killed, if known.

    ``SPECIESGAN_DEADLINE`` (epoch seconds) wins; otherwise SLURM's job end time
    when running inside a SLURM job (see ``speciesgan.slurm_time``).
    """
    value = os.environ.get("SPECIESGAN_DEADLINE")
    if value:
        return float(value)
    if os.environ.get("SLURM_JOB_ID"):
        try:
            from speciesgan.slurm_time import slurm_job_end_time
        except ImportError:  # pragma: no cover - module optional
            return None
        return slurm_job_end_time()
    return None


class StopRequest:
    """Signal handlers + deadline, checked cheaply once per training step."""

    def __init__(
        self,
        margin_seconds: float = 120.0,
        signals: tuple[int, ...] = (signal.SIGUSR1, signal.SIGTERM),
    ) -> None:
        self.margin_seconds = margin_seconds
        self.reason: str | None = None
        self._deadline = job_deadline()
        self._previous: dict[int, object] = {}
        for sig in signals:
            # ValueError: not the main thread (e.g. inside a test runner thread)
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        if self._deadline is not None:
            log.info(
                "job ends at %s; will checkpoint and stop %.0f s before",
                time.strftime("%H:%M:%S", time.localtime(self._deadline)),
                margin_seconds,
            )

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.reason = f"received {signal.Signals(signum).name}"

    def requested(self) -> bool:
        deadline = self._deadline
        if (
            self.reason is None
            and deadline is not None
            and time.time() > deadline - self.margin_seconds
        ):
            self.reason = "job time limit is near"
        return self.reason is not None

    def restore(self) -> None:
        """Put the previous signal handlers back (tests create several in one process)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
