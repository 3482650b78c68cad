"""When will SLURM kill the current job?

Training stops itself, with a checkpoint, shortly before the job's time limit
(``speciesgan.runtime.preemption``), so a timed-out job resumes on retry instead of
losing everything since the last periodic checkpoint.  That needs the job's end
time, which only the SLURM controller knows; this module asks it.  It must never
break training: every failure (not in a job, no SLURM client, slow or unreachable
controller, unlimited job) gives ``None``, meaning "no known deadline".
"""

from __future__ import annotations

import os
import re
import subprocess
import time

QUERY_TIMEOUT_SECONDS = 10.0
"""A busy controller may be slow; training must not hang on it for long."""

_UNKNOWN_END_TIMES = {"", "N/A", "NONE", "UNLIMITED", "UNKNOWN", "INVALID"}
_SCONTROL_END_TIME = re.compile(r"\bEndTime=(\S+)")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def parse_slurm_timestamp(text: str) -> float | None:
    """Epoch seconds of a SLURM timestamp such as ``2026-11-23T14:05:00``, else None.

    SLURM prints times in the local time zone of the machine running the
    command, without an offset, so ``time.mktime`` (local time) is the right
    inverse on that same machine.  Words like ``Unknown`` or ``N/A`` mean no
    end time is set (an unlimited or not yet started job).
    """
    value = text.strip()
    if value.upper() in _UNKNOWN_END_TIMES or not _TIMESTAMP.match(value):
        return None
    try:
        return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _run_quietly(command: list[str], timeout: float) -> str | None:
    """Stdout of ``command``, or None on any failure: a missing tool is not an error here."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout


def _end_time_from_squeue(job_id: str, timeout: float) -> float | None:
    output = _run_quietly(["squeue", "-h", "-j", job_id, "-o", "%e"], timeout)
    if output is None:
        return None
    lines = [line for line in output.splitlines() if line.strip()]
    return parse_slurm_timestamp(lines[0]) if lines else None


def _end_time_from_scontrol(job_id: str, timeout: float) -> float | None:
    output = _run_quietly(["scontrol", "show", "job", job_id], timeout)
    if output is None:
        return None
    match = _SCONTROL_END_TIME.search(output)
    return parse_slurm_timestamp(match.group(1)) if match else None


def slurm_job_end_time(
    job_id: str | None = None, timeout: float = QUERY_TIMEOUT_SECONDS
) -> float | None:
    """Epoch seconds at which SLURM will end this job (time limit), or None if unknown.

    ``job_id`` defaults to ``$SLURM_JOB_ID``; outside a SLURM job the answer is
    None without running anything.  ``squeue`` is asked first (cheap, works
    on every site); ``scontrol`` is the fallback when squeue is missing or
    filtered.  Never raises.
    """
    try:
        job = job_id if job_id is not None else os.environ.get("SLURM_JOB_ID", "")
        job = job.strip()
        if not job.isdigit():
            return None
        end = _end_time_from_squeue(job, timeout)
        if end is None:
            end = _end_time_from_scontrol(job, timeout)
        return end
    except Exception:  # by contract this must never break training
        return None
