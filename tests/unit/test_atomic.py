"""Atomic writes: temporary files of killed writers are removed, those of live ones kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from speciesgan.util.atomic import atomic_path, write_text
from tests.helpers.killed_run import run_killed_at_rename


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    run_killed_at_rename(
        f"""
        from speciesgan.util.atomic import write_text
        write_text({str(target)!r}, "x" * 100_000)
        """
    )
    assert len(siblings(tmp_path)) == 1 and not target.exists()  # the debris
    write_text(target, "done")
    assert siblings(tmp_path) == ["out.bin"]
    assert target.read_text() == "done"


def test_temporary_file_of_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    ready = tmp_path / "ready"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from speciesgan.util.atomic import atomic_path\n"
            f"with atomic_path({str(target)!r}) as tmp:\n"
            "    tmp.write_text('slow')\n"
            f"    Path({str(ready)!r}).touch()\n"
            "    time.sleep(60)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.05)
        ready.unlink()
        write_text(target, "first")
        live = [n for n in siblings(tmp_path) if n != "out.bin"]
        assert len(live) == 1  # the other writer's file is still there
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    with atomic_path(target) as tmp:
        tmp.write_text("second")
    assert siblings(tmp_path) == ["out.bin"]
