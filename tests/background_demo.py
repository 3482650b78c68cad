"""The demo pipeline, started when the test session starts and awaited by its test.

The demo is the suite's longest test (1,103 s on its own in stop 19's CI) and the
SLURM, DVC and Snakemake tests spend part of their time waiting for job
submissions, polls and subprocess start-ups.  Started at the beginning of the
session and awaited by ``test_demo_end_to_end`` (moved to the end of the run), the
demo uses the CPU those tests leave idle.  The gain is small: the demo's GAN
trains at about 0.9 s per step beside the other tests against 0.365 s alone, so
in stop 20's local run the other tests were done after 1,775 s and the demo after
2,392 s.  ``SPECIESGAN_DEMO_IN_BACKGROUND=0`` runs it in the foreground instead, when its stage times should be measured on an
otherwise idle machine (the stage times printed from a background run include the
other tests' load).
"""

from __future__ import annotations

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
            start_new_session=True,  # its own process group: stop() ends every job
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
