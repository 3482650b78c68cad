"""The demo pipeline, started when the test session starts and awaited by its test.

The demo is the suite's longest test and sets the suite's wall time: started at
the beginning of the session and awaited by ``test_demo_end_to_end`` (moved to
the end of the run), it trains while the other tests run.  Two things keep it
from being starved on a 2-core machine:

* the demo runs one thread per job (``configs/demo.yaml``), and
* the rest of the session (this process, its threads and its child processes;
  not the SLURM jobs, which slurmd starts) then runs ``OTHER_TESTS_NICENESS``
  nice levels below it, so the demo's jobs get the cores they need and the
  other tests get the rest.

The demo stays in the test session's scheduling group (its own process group,
not its own session): with Linux's autogroup (on by default) each session gets an
equal share of the CPU, whatever the niceness inside it.  Measured on 2026-12-03
(commit 485b9e1, this machine, the suite running beside it): in a session of its own the demo got
one core, so its classifier and GAN jobs each trained at 11 CPU s per 20 s.
With two threads per job (stop 20) its steps took 0.9 s beside the tests,
against 0.365 s alone.  ``SPECIESGAN_DEMO_IN_BACKGROUND=0`` runs it in the
foreground instead, when its stage times should be measured on an otherwise idle
machine (the stage times printed from a background run include the other
tests' load).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.workflow import copy_workflow, env

DEMO_ARGS = ("all", "--cores", "all", "--configfile", "configs/demo.yaml")
DEMO_TEST = "tests/e2e/test_demo.py::test_demo_end_to_end"
OTHER_TESTS_NICENESS = 5
"""Nice levels the rest of the session drops below the demo (one level is ~1.25x CPU weight)."""


def yield_to_the_demo() -> None:
    """Lower this process's priority (every thread, so also torch's pool) below the demo's.

    Processes started from now on inherit it.  Raising niceness needs no
    privileges; the demo, already started, keeps the priority the session had.
    """
    threads = Path("/proc/self/task")
    if threads.is_dir():  # Linux: niceness is per thread
        for task in threads.iterdir():
            try:
                tid = int(task.name)
                current = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, current + OTHER_TESTS_NICENESS)
            except (OSError, ValueError):  # a thread that ended meanwhile
                continue
    else:
        os.nice(OTHER_TESTS_NICENESS)


def _own_process_group() -> dict:
    """Popen arguments for a new process group in the same session."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}  # Python 3.10


def in_background() -> bool:
    return os.environ.get("SPECIESGAN_DEMO_IN_BACKGROUND", "1") != "0"


@dataclass
class DemoRun:
    """A `snakemake all` of the demo config in ``workdir``, running or finished."""

    workdir: Path
    process: subprocess.Popen | None = None
    started: float = 0.0

    @classmethod
    def start(cls, dest: Path) -> DemoRun:
        run = cls(copy_workflow(dest))
        run.started = time.monotonic()
        run.process = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *DEMO_ARGS],
            cwd=run.workdir,
            env={**env(), "SPECIESGAN_PROGRESS": "0"},
            stdout=(run.workdir / "snakemake.stdout").open("w"),
            stderr=(run.workdir / "snakemake.stderr").open("w"),
            stdin=subprocess.DEVNULL,  # a background process group must not read a tty
            # its own process group (stop() ends every job) but not its own session:
            # Linux's autogroup shares the CPU equally between sessions whatever the
            # niceness inside them, and the rest of the session yields to the demo
            **_own_process_group(),
        )
        return run

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Wait for the run (killing it at ``timeout`` seconds after its start)."""
        assert self.process is not None
        remaining = max(1.0, timeout - (time.monotonic() - self.started))
        try:
            self.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return subprocess.CompletedProcess(
            self.process.args,
            self.process.returncode,
            (self.workdir / "snakemake.stdout").read_text(),
            (self.workdir / "snakemake.stderr").read_text(),
        )

    def stop(self) -> None:
        """End the run and its jobs if still running (session end, timeout, interrupt)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
