"""The demo pipeline, started when the test session starts and awaited by its test.

The demo is the suite's longest test (1,103 s on its own in stop 19's CI) and the
SLURM, DVC and Snakemake tests spend part of their time waiting for job
submissions, polls and subprocess start-ups.  Started at the beginning of the
session and awaited by ``test_demo_end_to_end`` (moved to the end of the run), the
demo uses the CPU those tests leave idle, at a higher CPU priority than the rest
(:func:`_ahead_of_the_other_tests`), so that it does not become the last thing
the suite waits for.  ``SPECIESGAN_DEMO_IN_BACKGROUND=0``
runs it in the foreground instead, when its stage times should be measured on an
otherwise idle machine (the stage times printed from a background run include the
other tests' load).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.workflow import copy_workflow, env

DEMO_ARGS = ("all", "--cores", "all", "--configfile", "configs/demo.yaml")
DEMO_TEST = "tests/test_demo.py::test_demo_end_to_end"


DEMO_PRIORITY_BOOST = 5
"""Nice levels the demo runs ahead of the other tests (CPU shares about 3:1 when both want it)."""


def _ahead_of_the_other_tests() -> None:
    """In the demo's process before it starts: a higher CPU priority, inherited by its jobs.

    The demo's stages run two torch threads that wait for each other at every
    operation; sharing both cores equally with the other tests, its GAN training
    took 0.9 s per step against 0.365 s alone, so the whole suite ended waiting for
    it (stop 20: the other tests were done after 1,775 s, the demo after 2,392 s).
    Ahead of them, it uses the cores in long runs, and the other tests fill the
    gaps.  Raising a priority needs root (CI runs as root); otherwise nothing here.
    """
    with contextlib.suppress(PermissionError):
        os.nice(-DEMO_PRIORITY_BOOST)


def in_background() -> bool:
    return os.environ.get("SPECIESGAN_DEMO_IN_BACKGROUND", "1") != "0"


@dataclass
class DemoRun:
    """A `snakemake all` of the demo config in ``workdir``, running or finished."""

    workdir: Path
    process: subprocess.Popen | None = None
    started: float = 0.0

    @property
    def prioritised(self) -> bool:
        """Whether the demo runs at a higher CPU priority than this process."""
        assert self.process is not None
        try:
            return os.getpriority(os.PRIO_PROCESS, self.process.pid) < os.nice(0)
        except ProcessLookupError:  # already ended
            return True

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
            start_new_session=True,  # its own process group: stop() ends every job
            preexec_fn=_ahead_of_the_other_tests,
        )
        if not run.prioritised:
            # not root: lower this process (and the tests' own runs) instead
            os.nice(DEMO_PRIORITY_BOOST)
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
