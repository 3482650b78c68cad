"""The ``file_list`` of a MATLAB list file, read by scipy in a child process.

scipy's MAT-file reader is compiled code that trusts the type tags inside the
file: one damaged byte in a nested element's tag makes scipy 1.17 read out of
bounds and segfault (found by tests/unit/test_fuzz_parsers.py).  In the index job
that would kill the process without a word about which file was at fault.  Read
in a child process, a crash or a hang becomes a SpeciesganError naming the file.
The lists are read once per index run, so the child's start (about 0.3 s) is
cheap insurance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from speciesgan.util.errors import SpeciesganError

READ_TIMEOUT_S = 300
"""Far beyond the second or so a real 20,000-entry list takes; a hang is a damaged file."""


def mat_strings(cells: Any) -> list[str]:
    """Entries of a MATLAB cell column of strings, as loaded by scipy."""
    import numpy as np

    out = []
    for cell in np.asarray(cells, dtype=object).ravel():
        value = cell
        while isinstance(value, np.ndarray):
            value = value.ravel()[0] if value.size else ""
        out.append(str(value))
    return out


def _child(path: str) -> None:
    """Print ``{"files": [...]}`` or ``{"error": "..."}`` as one JSON line."""
    import scipy.io

    try:
        result: dict[str, Any] = {"files": mat_strings(scipy.io.loadmat(path)["file_list"])}
    except Exception as exc:  # noqa: BLE001 - scipy raises many kinds for a damaged file
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")


def _died(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            pass
    return f"exit status {returncode}"


def read_file_list(path: Path) -> list[str]:
    """The strings of the ``file_list`` variable in the MAT file ``path``."""
    # the child imports this module from wherever this process found it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-m", __name__, str(path)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=READ_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired:
        raise SpeciesganError(
            f"{path}: reading this MAT file took over {READ_TIMEOUT_S} s; it is probably damaged"
        ) from None
    if done.returncode != 0:
        raise SpeciesganError(
            f"{path}: the MAT-file reader died on this file ({_died(done.returncode)}); "
            f"it is probably damaged. {done.stderr.strip()[-300:]}"
        )
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SpeciesganError(f"{path}: the MAT-file reader gave no result") from None
    if "error" in result:
        raise SpeciesganError(
            f"{path}: not a Stanford Dogs list (a MAT file with 'file_list'): {result['error']}"
        )
    return [str(name) for name in result["files"]]


if __name__ == "__main__":
    _child(sys.argv[1])
