"""Stop training cleanly before SLURM kills the job.

A training step loop asks ``StopRequest.requested()`` once per step.  It turns
true when the process receives SIGUSR1 or SIGTERM (SLURM's ``--signal`` warning,
``scancel``, preemption) or when the job's known end time is less than
``margin_seconds`` away.  The loop then writes a checkpoint and exits with
``EXIT_PREEMPTED``, and a *new* job resumes from that checkpoint: never the
dying one, whose time is up.

Which new job: inside a job that the Snakemake SLURM executor submitted
(``SPECIESGAN_REQUEUE=1``, set by the workflow there), a segment that moved
training forward and was stopped by the time limit (SIGUSR1 or the known end
time) asks SLURM to requeue its own job (``scontrol requeue``): the same job id
runs again with a fresh time limit, and the Snakemake that submitted it sees a
job still pending or running instead of a failure.  Otherwise (SIGTERM, which
may be a person's ``scancel``; a segment without progress; a cluster that
refuses requeues) the job just fails with 75 and Snakemake's retry budget,
counted outside the job, submits the next one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from types import FrameType

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75
"""Exit status of a training command that stopped early and saved a checkpoint (EX_TEMPFAIL)."""


REQUEUE_ENV = "SPECIESGAN_REQUEUE"
"""``1``: this process runs in a job of its own that SLURM may requeue (set by the
workflow inside jobs the Snakemake SLURM executor submitted, see rules/gan.smk)."""

TIME_LIMIT_REASONS = ("received SIGUSR1", "job time limit is near")
"""Stop reasons that mean "this job's time is up": SLURM's ``--signal=USR1@N`` and
the job's end time read by :class:`StopRequest`."""


class TrainingInterrupted(Exception):
    """Raised by a training loop after it saved a checkpoint because a stop was requested.

    ``reason``: the :class:`StopRequest` reason; ``progressed``: the segment trained
    at least one step before stopping (a requeue is only worth it then).
    """

    def __init__(self, message: str, reason: str | None = None, progressed: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.progressed = progressed

    @property
    def at_time_limit(self) -> bool:
        return self.reason in TIME_LIMIT_REASONS


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
    when running inside a SLURM job (see ``speciesgan.runtime.slurm_time``).
    """
    value = os.environ.get("SPECIESGAN_DEADLINE")
    if value:
        return float(value)
    if os.environ.get("SLURM_JOB_ID"):
        try:
            from speciesgan.runtime.slurm_time import slurm_job_end_time
        except ImportError:  # pragma: no cover - module optional
            return None
        return slurm_job_end_time()
    return None


_early_signal: str | None = None


def _remember(signum: int, frame: FrameType | None) -> None:
    global _early_signal
    _early_signal = f"received {signal.Signals(signum).name}"


def remember_time_limit_signal() -> None:
    """Catch SIGUSR1 from the first line of a training command, before torch is imported.

    SLURM sends the time-limit warning once; arriving during start-up (seconds of
    imports and data loading) it would end Python (SIGUSR1's default action) with no
    checkpoint and a bare "User defined signal 1", as seen with the multi-node
    template under a short limit.  Remembered here, it stops training at its first
    step boundary (:class:`StopRequest` picks it up).
    """
    with contextlib.suppress(ValueError):  # not the main thread
        if signal.getsignal(signal.SIGUSR1) is not signal.SIG_IGN:
            signal.signal(signal.SIGUSR1, _remember)


class StopRequest:
    """Signal handlers + deadline, checked cheaply once per training step."""

    def __init__(
        self,
        margin_seconds: float = 120.0,
        signals: tuple[int, ...] = (signal.SIGUSR1, signal.SIGTERM),
    ) -> None:
        self.margin_seconds = margin_seconds
        self.reason: str | None = _early_signal
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


def allow_requeue_in_job(in_submitted_job: bool) -> None:
    """Set ``SPECIESGAN_REQUEUE=1`` in a SLURM job that runs one rule for the Snakemake
    that submitted it (``workflow.remote_exec``), for the rule's commands to inherit.

    Only there: requeueing the batch script of a user's own ``sbatch`` would rerun
    whatever else that script does.
    """
    if in_submitted_job and os.environ.get("SLURM_JOB_ID"):
        os.environ[REQUEUE_ENV] = "1"


def requeue_own_job(stop: TrainingInterrupted, environ: Mapping[str, str] | None = None) -> str:
    """Ask SLURM to run this job again (fresh time limit, same job id); say what happened.

    Only for a stop at the time limit of a segment that progressed, in a job marked
    by ``SPECIESGAN_REQUEUE=1``, from rank 0.  Anything else is left to Snakemake's
    retries: a SIGTERM may be a person's ``scancel`` (requeueing would undo it), and
    a segment that could not train a step would requeue itself for ever.  A refused
    requeue (``--no-requeue``, ``JobRequeue=0``, no permission) is only logged: the job
    then fails with 75 and is retried the same way.  ``scontrol`` ends this job at
    once, so this is called after the checkpoint and the ledger are written.
    """
    environ = os.environ if environ is None else environ
    job = environ.get("SLURM_JOB_ID")
    why_not = ""
    if environ.get(REQUEUE_ENV) != "1" or not job:
        why_not = "not in a job the workflow submitted"
    elif (environ.get("RANK") or environ.get("SLURM_PROCID") or "0") != "0":
        why_not = "not rank 0"  # torchrun's RANK, srun's SLURM_PROCID
    elif not stop.at_time_limit:
        why_not = f"stopped by {stop.reason}, not by the time limit"
    elif not stop.progressed:
        why_not = "no step trained in this segment"
    if why_not:
        return f"not requeued ({why_not}): the workflow's retries start the next segment"
    try:
        done = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"scontrol requeue {job} failed ({exc}): the workflow's retries start the next one"
    if done.returncode != 0:
        problem = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        return f"scontrol requeue {job} refused ({problem}): the workflow's retries start the next"
    return f"SLURM job {job} requeued: the next segment runs as the same job"
