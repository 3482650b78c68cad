"""Run this environment's command-line tools (``snakemake``, ``dvc``) from Python.

The copy next to the running interpreter is preferred, and its folder is put first
on PATH, so the rules Snakemake runs find the same ``speciesgan`` as the caller.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from speciesgan.util.errors import SpeciesganError


def tool_env() -> dict[str, str]:
    """This interpreter's bin/ first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def tool(name: str) -> list[str]:
    """How to call ``name``: the copy next to this interpreter if any, else PATH's."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise SpeciesganError(f"`{name}` not found on PATH; install the 'workflow' extra")
    return [found]


def run_tool(
    workdir: Path, argv: Sequence[str], what: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``workdir``; a failure becomes a SpeciesganError with its output."""
    result = subprocess.run(
        [*tool(argv[0]), *argv[1:]], cwd=workdir, env=tool_env(), capture_output=True, text=True
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise SpeciesganError(
            f"{what} failed (`{shlex.join(argv)}` in {workdir}):\n{output[-3000:]}"
        )
    return result
