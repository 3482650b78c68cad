"""The test harness's CPU sharing with the background demo (tests/helpers/background_demo.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.background_demo import OTHER_TESTS_NICENESS

CHILD = """
import os, threading, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.helpers.background_demo import yield_to_the_demo

started = threading.Event(); done = threading.Event()
def worker():
    started.set(); done.wait()
thread = threading.Thread(target=worker); thread.start(); started.wait()
tids = [int(t.name) for t in Path("/proc/self/task").iterdir()]
before = {{tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in tids}}
yield_to_the_demo()
after = {{tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in tids}}
child = int(os.popen("sh -c 'cut -d\\" \\" -f19 /proc/self/stat'").read())
done.set(); thread.join()
print(len(tids), sorted({{after[t] - before[t] for t in tids}}), child - before[tids[0]])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_every_thread_and_later_children_yield_to_the_demo() -> None:
    """All threads already running (torch's pool among them in a real session) drop by
    OTHER_TESTS_NICENESS, and a process started afterwards inherits it."""
    from tests.helpers.workflow import REPO

    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(REPO))],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split(maxsplit=1)  # fmt: skip
    threads, rest = int(out[0]), out[1]
    assert threads >= 2
    deltas, child = rest.rsplit(maxsplit=1)
    assert deltas == f"[{OTHER_TESTS_NICENESS}]"
    assert int(child) == OTHER_TESTS_NICENESS
