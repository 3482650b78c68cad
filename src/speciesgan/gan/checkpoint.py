"""Resumable training state: everything needed to continue a GAN run bit for bit.

A checkpoint holds the networks (G, D, G-EMA), both optimisers, the step, the
training log so far and the state of every random number generator the loop
draws from.  It is written atomically to ``checkpoint_dir/last.pt``, so a job
killed mid-write leaves the previous checkpoint intact, and it is loaded with
``weights_only=True``: RNG states are stored as tensors, everything else is
plain data.

A checkpoint is only reused by a run with the same *identity*: a hash of the
settings that shape the trajectory, the seed, the manifest's content, the
content of the crop shards it lists and the classifier's content.  What happens to one that cannot be continued
(:func:`checkpoint_to_resume`) is chosen so that no training state is ever
destroyed without being asked to, yet a Snakemake rerun after a param change
needs no hand:

* other identity (a gan param, the seed, the data or the classifier changed;
  the checkpoint folder does not depend on them, so Snakemake's rerun meets
  the old run's ``last.pt``): the file answers a different question, so it is
  moved aside as ``last.mismatch-<UTC time>.pt`` and training starts at step 0,
  with a warning naming both files;
* unreadable, not a checkpoint, or not matching its content hash (a damaged copy, a disk fault, another
  program's file): training stops with a ``SpeciesganError`` naming the file
  and the reason, and the file stays as it is.  Atomic writes mean a killed
  run never leaves one, so this needs a person's look;
* a step past ``gan.steps`` (steps lowered): continuing cannot give the shorter
  run and starting over would overwrite the longer one, so training stops too;
* ``restart=True`` (``train-gan --restart``): whatever is there is moved aside
  (``last.corrupt-…``, ``last.mismatch-…`` or ``last.restart-…``) and training
  starts at step 0.

Moved-aside files stay in the checkpoint folder (and are published with it by
DVC) until deleted by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from speciesgan.data.dataset import shard_hashes
from speciesgan.runtime.resume_state import (
    RESTART_HINT,
    canonical,
    exception_summary,
    move_aside,
    restore_rng_states,
    rng_states,
    unusable,
)
from speciesgan.util.atomic import atomic_open
from speciesgan.util.content_hash import seal_problem, sealed
from speciesgan.util.errors import ConfigError, SpeciesganError
from speciesgan.util.weights import file_sha256

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
FORMAT_VERSION = 1

SETTINGS_NOT_IN_IDENTITY = frozenset(
    {"steps", "checkpoint_every", "snapshot_every", "log_every", "stop_margin_seconds"}
)
"""Settings that do not change what step k computes: a run may extend ``steps`` or
checkpoint more often and still continue an earlier run's state."""


def checkpoint_path(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def run_identity(
    settings: Mapping[str, Any], seed: int, manifest: str | Path, classifier: str | Path | None
) -> str:
    """Hash naming the training trajectory a checkpoint belongs to."""
    relevant = {k: v for k, v in settings.items() if k not in SETTINGS_NOT_IN_IDENTITY}
    description = {
        "format": FORMAT_VERSION,
        "settings": relevant,
        "seed": int(seed),
        "manifest_sha256": file_sha256(Path(manifest)),
        # the crops themselves, not only their rows: recropping with other settings can
        # leave the rows equal (open_split checks the files against these)
        "shards_sha256": {str(k): v for k, v in shard_hashes(manifest).items()},
        "classifier_sha256": file_sha256(Path(classifier)) if classifier is not None else None,
    }
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy, so that saving never aliases (or syncs on) live tensors later."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def save_checkpoint(
    checkpoint_dir: str | Path,
    identity: str,
    step: int,
    networks: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    log_rows: list[list[float]],
    snapshots: Mapping[int, Mapping[str, torch.Tensor]] | None = None,
) -> Path:
    """Write ``last.pt`` atomically.  Reads state only: training continues unperturbed.

    ``snapshots`` (step -> G-EMA weights) travel with the checkpoint so that a
    resumed run still has the earlier ones for the metrics-over-steps curve.
    """
    payload = {
        "format": FORMAT_VERSION,
        "identity": identity,
        "step": int(step),
        "networks": {name: cpu_state_dict(net) for name, net in networks.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "rng": rng_states(generators),
        "log_rows": [list(row) for row in log_rows],
        "snapshots": {str(k): dict(v) for k, v in sorted((snapshots or {}).items())},
    }
    target = checkpoint_path(checkpoint_dir)
    # a file object, not the temp path: torch would name the archive's root folder after
    # the (random) temp file name, and equal generators would not give equal bytes
    with atomic_open(target) as fh:
        torch.save(canonical(sealed(payload)), fh)
    return target


def remove_stale_temporaries(checkpoint_dir: str | Path) -> list[Path]:
    """Delete half-written ``last.pt`` temporaries that a SIGKILL left behind.

    The atomic write cleans up after exceptions and signals it can catch, not after
    SIGKILL or a node crash.  Such files are never read (only ``last.pt`` is), but a
    long, often-preempted run would collect one per kill.  Call before any write.
    """
    stale = sorted(Path(checkpoint_dir).glob(f".{CHECKPOINT_NAME}.*.tmp*"))
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted checkpoint write", path)
    return stale


PAYLOAD_KEYS = ("identity", "step", "networks", "optimizers", "rng", "log_rows")


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """The payload of ``path``; None when there is no file.

    Raises a SpeciesganError naming the file when it is unreadable or not a
    checkpoint of this format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:  # none, or moved aside by rank 0 meanwhile
        return None
    except Exception as exc:  # noqa: BLE001 - truncated, damaged or foreign: say so
        raise unusable(path, f"unreadable training checkpoint ({exception_summary(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise unusable(path, f"not a speciesgan GAN checkpoint of format {FORMAT_VERSION}")
    missing = [key for key in PAYLOAD_KEYS if key not in payload]
    if missing:
        raise unusable(path, f"damaged training checkpoint (missing {missing})")
    problem = seal_problem(payload)
    if problem:
        raise unusable(path, f"damaged training checkpoint: {problem}")
    return payload


def load_checkpoint(checkpoint_dir: str | Path, identity: str) -> dict[str, Any] | None:
    """The saved payload if ``last.pt`` exists and belongs to this run, else None.

    Reads only; an unusable file is a SpeciesganError (see :func:`read_checkpoint`).
    """
    payload = read_checkpoint(checkpoint_path(checkpoint_dir))
    if payload is None or payload["identity"] != identity:
        return None
    return payload


def checkpoint_to_resume(
    checkpoint_dir: str | Path, identity: str, steps: int, restart: bool, may_move: bool
) -> dict[str, Any] | None:
    """The payload to continue from, or None to start at step 0 (policy: module docstring).

    ``may_move``: this process may rename files (rank 0 of a distributed run).
    """
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        return None
    if restart:
        try:
            payload = read_checkpoint(path)
        except SpeciesganError:
            reason = "corrupt"
        else:
            stale = payload is not None and payload["identity"] != identity
            reason = "mismatch" if stale else "restart"
        if may_move and path.is_file():
            aside = move_aside(path, reason)
            log.warning("--restart: moved %s aside to %s; training starts at step 0", path, aside)
        return None
    payload = read_checkpoint(path)
    if payload is None:
        return None
    if payload["identity"] != identity:
        if may_move:
            aside = move_aside(path, "mismatch")
            log.warning(
                "%s belongs to other settings, seed or data: moved aside to %s; "
                "training starts at step 0",
                path,
                aside,
            )
        return None
    if int(payload["step"]) > steps:
        raise ConfigError(
            f"{path}: this checkpoint is at step {int(payload['step'])}, past "
            f"gan.steps={steps}. Continuing it cannot give a {steps}-step run and starting "
            f"over would overwrite the longer one, so nothing was changed. Set gan.steps to "
            f"{int(payload['step'])} or more to continue it, or {RESTART_HINT}"
        )
    return payload


def restore_checkpoint(
    payload: Mapping[str, Any],
    networks: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
    source: Path | None = None,
) -> tuple[int, list[list[float]]]:
    """Load a payload into live objects; returns ``(step, log_rows)``.

    With ``source`` (the file it came from), a payload that does not fit the
    networks (same settings, but written by an incompatible version) is a
    SpeciesganError naming that file.
    """
    try:
        for name, net in networks.items():
            net.load_state_dict(payload["networks"][name])
        for name, opt in optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
        restore_rng_states(payload["rng"], generators)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        if source is None:
            raise
        raise unusable(source, f"does not fit the networks ({exception_summary(exc)})") from exc
    return int(payload["step"]), [list(row) for row in payload["log_rows"]]


def saved_snapshots(payload: Mapping[str, Any]) -> dict[int, dict[str, torch.Tensor]]:
    """The G-EMA snapshots a checkpoint carries, by step."""
    return {int(k): dict(v) for k, v in payload.get("snapshots", {}).items()}
