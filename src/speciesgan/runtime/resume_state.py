"""State that any resumable training loop saves: RNG states, and a canonical payload.

Shared by the GAN checkpoint and the classifier's resume file, so both continue
bit for bit and both write byte-identical files whether or not they were resumed,
and both keep a resume file they cannot use instead of overwriting it
(:func:`move_aside`).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from speciesgan.util.errors import DataError, SpeciesganError

RESTART_HINT = (
    "rerun with --restart to start from scratch (the file is then moved aside, not deleted); "
    "under Snakemake, move the file away yourself and rerun"
)
"""How a user gets past a resume file that training refuses to use."""


def unusable(path: Path, reason: str) -> SpeciesganError:
    """The error for a resume file that training will neither continue nor replace.

    A :class:`DataError`: the same file gives the same error on every retry."""
    return DataError(f"{path}: {reason}. The file is kept as it is; {RESTART_HINT}")


def exception_summary(exc: BaseException) -> str:
    """``Type: first line`` of an exception (torch's load errors run to a page)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def rng_states(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """States of torch's global generators and of the loop's own ones, as tensors."""
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: gen.get_state() for name, gen in generators.items()},
    }


def restore_rng_states(
    states: Mapping[str, Any], generators: Mapping[str, torch.Generator]
) -> None:
    torch.set_rng_state(states["torch_cpu"])
    if states["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])
    for name, gen in generators.items():
        gen.set_state(states["generators"][name])


def canonical(value: Any) -> Any:
    """``value`` rebuilt so that its pickle depends only on its contents, not on its history.

    Pickle memoises by object identity: a string that occurs twice as *one* object is
    written once and then referenced, two equal but distinct objects are written
    twice.  Which case arises depends on where the objects came from.  In a run from
    step 0, Adam's per-parameter state key ``'step'`` is the interned literal of
    ``torch/optim/adam.py``, the very object the GAN checkpoint uses as its top-level
    ``"step"`` key, so the optimiser section reads it back from the memo; after a
    resume the optimiser holds the ``'step'`` that ``torch.load`` created, a distinct
    object, which is written out again.  All tensors equal, and yet every later memo
    index shifts and ``last.pt`` differs byte for byte from an uninterrupted run's.

    Hence: every ``str`` is interned (equal strings become one object, whatever their
    origin) and every dict, list and tuple is rebuilt fresh (no container is shared).
    Order is kept; tensors, numbers, ``None`` and booleans pass through unchanged.
    """
    if type(value) is str:
        return sys.intern(value)
    if isinstance(value, dict):
        return {canonical(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(canonical(v) for v in value)
    return value


def move_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<stem>.<reason>-<UTC time><suffix>`` in its folder; return the new path.

    A resume file that a run will not continue is still hours of training, and
    may be wanted back (a damaged copy fetched again, the old settings restored):
    it is never deleted or overwritten, only renamed to say why it was set aside.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for count in itertools.count():
        tag = f"{reason}-{stamp}" + (f"-{count}" if count else "")
        target = path.with_name(f"{path.stem}.{tag}{path.suffix}")
        if not target.exists():
            break
    os.rename(path, target)
    return target
