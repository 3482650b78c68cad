"""State that any resumable training loop saves: RNG states, and a canonical payload.

Shared by the GAN checkpoint and the classifier's resume file, so both continue
bit for bit and both write byte-identical files whether or not they were resumed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import torch


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
