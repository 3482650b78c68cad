"""Run a stage in a child process that is SIGKILLed at its first rename into place.

That is the moment a SLURM time limit or the OOM killer does the most damage:
the output has been written in full under its temporary name, the final name
does not exist yet, and no ``except``/``finally`` cleanup runs.  The child is a
real interpreter importing the real package; only ``os.replace`` is swapped for
"die here".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

PRELUDE = """
import os, signal
def _die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
os.replace = _die
"""


def run_killed_at_rename(code: str) -> None:
    """Run ``code`` (Python source) in a child that dies at its first ``os.replace``."""
    script = PRELUDE + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
