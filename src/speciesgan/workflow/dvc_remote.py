"""Which DVC remote ``publish`` and ``restore`` use; the user sets it, nothing is guessed.

The repository ships no remote: a default under ``/tmp`` looked like it worked,
but on a cluster ``/tmp`` is node-local, so what one job pushed another node never
saw.  In order of precedence:

1. ``--remote NAME`` (a remote in ``.dvc/config``) or ``--remote PATH_OR_URL``;
2. the environment variable ``SPECIESGAN_DVC_REMOTE=PATH_OR_URL``;
3. DVC's default remote (``dvc remote add -d NAME URL``, committed for the lab).

A path or URL from 1 or 2 is recorded as the remote ``speciesgan`` in
``.dvc/config.local``, which DVC keeps out of git: it belongs to this machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from speciesgan.util.errors import SpeciesganError
from speciesgan.util.tools import run_tool

REMOTE_ENV = "SPECIESGAN_DVC_REMOTE"
LOCAL_REMOTE_NAME = "speciesgan"

HOW_TO_SET = (
    f"set one: `export {REMOTE_ENV}=/shared/storage/speciesgan-dvc` (a folder every "
    "machine that publishes or restores can reach; s3://... and ssh://... work with "
    "dvc[s3]/dvc[ssh]), or `dvc remote add -d NAME URL` and commit .dvc/config, "
    "or pass --remote PATH_OR_URL"
)


def configured_remotes(workdir: Path) -> list[str]:
    """Names of the remotes DVC knows in ``workdir`` (all config levels)."""
    listed = run_tool(workdir, ["dvc", "remote", "list"], "dvc remote list").stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def default_remote(workdir: Path) -> str | None:
    result = run_tool(workdir, ["dvc", "remote", "default"], "dvc remote default", check=False)
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else None


def is_location(value: str) -> bool:
    """A URL (``s3://...``) or a path, as opposed to a remote's name."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value)) or any(c in value for c in "/\\~")


def _absolute(location: str) -> str:
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location):
        return location
    return str(Path(location).expanduser().resolve())


def _use_location(workdir: Path, location: str) -> str:
    run_tool(
        workdir,
        ["dvc", "remote", "add", "--local", "--force", LOCAL_REMOTE_NAME, _absolute(location)],
        "recording the DVC remote",
    )
    return LOCAL_REMOTE_NAME


def resolve_remote(workdir: Path, remote: str | None) -> str | None:
    """The remote name to pass to ``dvc push/pull --remote``; None means DVC's default.

    Raises :class:`SpeciesganError` saying how to set a remote when none is set.
    """
    if remote:
        if is_location(remote):
            return _use_location(workdir, remote)
        known = configured_remotes(workdir)
        if remote not in known:
            raise SpeciesganError(
                f"--remote {remote}: no DVC remote of that name "
                f"(configured: {', '.join(known) or 'none'}); give a configured name, "
                "or a path or URL"
            )
        return remote
    location = os.environ.get(REMOTE_ENV, "").strip()
    if location:
        return _use_location(workdir, location)
    if default_remote(workdir) is not None:
        return None
    raise SpeciesganError(f"no DVC remote is set for {workdir}: {HOW_TO_SET}")
