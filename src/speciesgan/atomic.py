"""Atomic file output.

A job killed by SLURM (time limit, preemption, OOM) must never leave a file that
looks finished: Snakemake and DVC judge completeness by existence.  Every writer
in the package goes through these helpers, which write to a temporary sibling and
``os.replace`` it into place (atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    The temporary name keeps the target's suffix (or ``suffix``) so that libraries
    which infer the format from the extension (PIL, numpy, pyarrow) still work.
    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.",
        suffix=f".tmp{suffix if suffix is not None else target.suffix}",
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file for writing; it replaces ``target`` when the block succeeds."""
    if "w" not in mode:
        raise ValueError("atomic_open is for writing")
    with atomic_path(target) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write a text file (UTF-8)."""
    with atomic_open(target, "w") as fh:
        fh.write(text)


def write_json(target: str | os.PathLike[str], data: Any) -> None:
    """Atomically write JSON with sorted keys, so equal data gives equal bytes."""
    write_text(target, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def save_torch(obj: Any, target: str | os.PathLike[str]) -> None:
    """Atomically ``torch.save`` plain data (tensors, dicts, lists, numbers).

    Saved through a file object on purpose: given a path, torch names the zip's
    inner folder after the file, so the random temporary name would make two
    identical checkpoints differ byte for byte.
    """
    import torch

    with atomic_open(target, "wb") as fh:
        torch.save(obj, fh)
