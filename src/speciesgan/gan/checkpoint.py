"""Resumable training state: everything needed to continue a GAN run bit for bit.

A checkpoint holds the networks (G, D, G-EMA), both optimisers, the step, the
training log so far and the state of every random number generator the loop
draws from.  It is written atomically to ``checkpoint_dir/last.pt``, so a job
killed mid-write leaves the previous checkpoint intact, and it is loaded with
``weights_only=True``: RNG states are stored as tensors, everything else is
plain data.

A checkpoint is only reused by a run with the same *identity*: a hash of the
settings that shape the trajectory, the seed, the manifest's content and the
classifier's content.  Anything else means the saved state answers a different
question, so the run starts fresh (and says so in the log).
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

from speciesgan.atomic import atomic_open
from speciesgan.resume_state import canonical, restore_rng_states, rng_states
from speciesgan.weights import file_sha256

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
        torch.save(canonical(payload), fh)
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


def load_checkpoint(checkpoint_dir: str | Path, identity: str) -> dict[str, Any] | None:
    """The saved payload if ``last.pt`` exists and belongs to this run, else None."""
    path = checkpoint_path(checkpoint_dir)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable: a fresh start is the only safe answer
        log.warning("%s is unreadable (%s); starting fresh", path, exc)
        return None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        log.warning("%s has an unknown format; starting fresh", path)
        return None
    if payload.get("identity") != identity:
        log.info("%s belongs to other settings, seed or data; starting fresh", path)
        return None
    return payload


def restore_checkpoint(
    payload: Mapping[str, Any],
    networks: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    generators: Mapping[str, torch.Generator],
) -> tuple[int, list[list[float]]]:
    """Load a payload into live objects; returns ``(step, log_rows)``."""
    for name, net in networks.items():
        net.load_state_dict(payload["networks"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(payload["optimizers"][name])
    restore_rng_states(payload["rng"], generators)
    return int(payload["step"]), [list(row) for row in payload["log_rows"]]


def saved_snapshots(payload: Mapping[str, Any]) -> dict[int, dict[str, torch.Tensor]]:
    """The G-EMA snapshots a checkpoint carries, by step."""
    return {int(k): dict(v) for k, v in payload.get("snapshots", {}).items()}
