"""Train the species classifier (the ``train-classifier`` stage).

The recipe follows torchvision's classification reference (AdamW, one-cycle
learning rate, label smoothing), reorganised for small in-memory datasets: both
splits are loaded once as uint8 tensors and placed on the device, and each batch
is augmented there.  That keeps a GPU busy without data-loader workers and keeps
the CPU path byte-for-byte reproducible: every random draw (batch order,
augmentation, dropout) comes from generators seeded by ``seed``.

A SLURM job may be preempted or hit its time limit: the loop checks a
:class:`~speciesgan.runtime.preemption.StopRequest` every step, saves everything needed to
continue exactly (``<out_model>.resume.pt``) and raises ``TrainingInterrupted``.
The same file is also written (atomically) after every epoch, because a process
killed outright (SIGKILL, the OOM killer, a node crash) saves nothing on its way
out.  The next attempt picks that file up, so an interrupted-and-resumed run
produces the same model as an uninterrupted one.

A resume file the run cannot continue is never overwritten unasked (see
``gan.checkpoint`` for the same policy): one of other settings or data (a
Snakemake rerun after a param change, an older version's) is moved aside as
``<model>.resume.mismatch-<UTC time>.pt`` and training starts over; an
unreadable one stops training with a SpeciesganError naming it; ``restart``
(``train-classifier --restart``) moves any aside and starts over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speciesgan.classifier.model import (
    SpeciesClassifier,
    build_classifier_network,
    save_classifier,
    uint8_to_model_range,
)
from speciesgan.config import section_defaults
from speciesgan.data.balanced import SpeciesIndex, check_sampling, identity_settings
from speciesgan.data.dataset import CropSet, load_split
from speciesgan.metrics.frequency_bins import accuracy_by_bin
from speciesgan.metrics.headline import classifier_headline, write_headline
from speciesgan.runtime.device import select_device
from speciesgan.runtime.preemption import StopRequest, TrainingInterrupted
from speciesgan.runtime.resume_state import (
    canonical,
    exception_summary,
    move_aside,
    restore_rng_states,
    rng_states,
    unusable,
)
from speciesgan.util.atomic import save_torch, write_json
from speciesgan.util.content_hash import seal_problem, sealed
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.progress import progress

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = section_defaults("classifier")
"""Every ``classifier`` setting's default, from the schema."""
EVAL_BATCH_SIZE = 256
RESUME_FORMAT = 1
GRAY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator,
    shift_fraction: float = 0.125,
    jitter: float = 0.2,
) -> torch.Tensor:
    """Random flip, translation (reflect-padded crop) and colour jitter of a [-1, 1] batch.

    Runs on the batch's device with an explicit generator, so the GPU does the work
    and the draws are reproducible from the seed.  Kept mild: crops are already
    centred on the animal, and species can differ by colour.
    """
    count, _, height, width = images.shape
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        draw = torch.rand(count, generator=generator, device=device)
        return (low + (high - low) * draw).view(count, 1, 1, 1)

    flip = torch.rand(count, generator=generator, device=device) < 0.5
    images = torch.where(flip.view(count, 1, 1, 1), images.flip(3), images)

    pad = max(1, round(min(height, width) * shift_fraction))
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect").permute(0, 2, 3, 1)
    top = torch.randint(0, 2 * pad + 1, (count,), generator=generator, device=device)
    left = torch.randint(0, 2 * pad + 1, (count,), generator=generator, device=device)
    rows = top[:, None] + torch.arange(height, device=device)
    cols = left[:, None] + torch.arange(width, device=device)
    batch = torch.arange(count, device=device)[:, None, None]
    images = padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)

    pixels = (images + 1.0) * 0.5
    pixels = pixels * uniform(1 - jitter, 1 + jitter)  # brightness
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    pixels = (pixels - mean) * uniform(1 - jitter, 1 + jitter) + mean  # contrast
    gray = (pixels * GRAY_WEIGHTS.to(device)).sum(dim=1, keepdim=True)
    pixels = (pixels - gray) * uniform(1 - jitter, 1 + jitter) + gray  # saturation
    return pixels.clamp(0.0, 1.0).mul(2.0).sub(1.0).contiguous()


def resolve_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with defaults filled in; unknown keys are an error (likely typos)."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise SpeciesganError(f"classifier settings: unknown keys {unknown}")
    resolved = {**DEFAULTS, **settings}
    check_sampling(resolved["sampling"], "classifier.sampling")
    for key in ("epochs", "batch_size"):
        if int(resolved[key]) < 1:
            raise SpeciesganError(f"classifier.{key} must be >= 1, got {resolved[key]}")
    return resolved


def resume_path(out_model: Path) -> Path:
    """Where an interrupted run keeps its state: next to the model, not a rule output."""
    return out_model.with_name(out_model.name + ".resume.pt")


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full batches only (batch norm needs >1 sample); one short batch if the set is tiny."""
    return max(1, num_train // batch_size)


def epoch_order(
    num_train: int, seed: int, epoch: int, balanced: SpeciesIndex | None = None
) -> torch.Tensor:
    """The rows of one epoch in batch order, a pure function of (seed, epoch): resuming needs no state.

    Natural sampling (``balanced`` None) is a permutation: every row once.
    Balanced sampling draws as many rows, with replacement, species first (see
    ``speciesgan.data.balanced``), so an epoch costs the same either way.
    """
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)  # any 64-bit seed
    if balanced is not None:
        return balanced.draw_rows(num_train, generator)
    return torch.randperm(num_train, generator=generator)


def species_index(cfg: dict[str, Any], labels: torch.Tensor) -> SpeciesIndex | None:
    """What ``epoch_order`` needs for ``cfg``'s sampling: None for natural."""
    if cfg["sampling"] == "balanced":
        return SpeciesIndex.from_labels(labels.cpu())
    return None


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm parameters (the usual AdamW practice)."""
    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.ndim > 1 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def predict_logits(
    model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = EVAL_BATCH_SIZE
) -> torch.Tensor:
    """Float32 logits for uint8 images, in eval mode (caller restores train mode)."""
    model.eval()
    outputs = []
    with torch.no_grad(), _autocast(device):
        for start in range(0, len(images), batch_size):
            batch = uint8_to_model_range(images[start : start + batch_size].to(device))
            outputs.append(model(_memory_format(batch, device)).float().cpu())
    return torch.cat(outputs)


CALIBRATION_IMAGES = 512
"""Images for the per-epoch batch-norm re-estimate: evenly spaced over the train
split, enough for stable statistics at a fraction of a full pass."""


def recalibrate_batchnorm(
    model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = EVAL_BATCH_SIZE
) -> None:
    """Recompute batch-norm statistics as a plain average over the (unaugmented) train set.

    Why: freshly initialised EfficientNet layers deep in the network have tiny
    activation variances, while the running estimate starts at 1 and decays by only
    10 % per step.  After the few dozen steps of a small run the estimate is still
    dominated by that start value, eval-mode activations vanish and every image gets
    the same prediction.  Averaging fresh statistics of the current weights (the
    "precise BN" trick) fixes that; for long runs it changes little.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
        norm.train()
    # near-equal chunks: batch norm cannot take a final batch of one 1x1 feature map
    chunks = torch.arange(len(images)).tensor_split(max(1, math.ceil(len(images) / batch_size)))
    with torch.no_grad(), _autocast(device):
        for chunk in chunks:
            batch = uint8_to_model_range(images[chunk.to(images.device)].to(device))
            model(_memory_format(batch, device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    top = logits.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA for speed; plain fp32 on CPU so results are reproducible."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _memory_format(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


@dataclass
class Optimisation:
    """What one training step updates: AdamW, its one-cycle schedule, the loss, the device."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: nn.Module
    device: torch.device


def new_classifier(
    cfg: dict[str, Any],
    species: list[str],
    image_size: int,
    device: torch.device,
    seed: int,
    total_steps: int,
) -> tuple[SpeciesClassifier, dict[str, Any], torch.optim.Optimizer, Any, nn.Module]:
    """The recipe's network (seeded init), AdamW without decay on norms, one-cycle LR, CE loss.

    Shared by the species classifiers and the CAS classifier (trained on generated
    images), so "the eval classifier's recipe" is one piece of code.
    """
    torch.manual_seed(seed)
    network, info = build_classifier_network(str(cfg["arch"]), len(species), str(cfg["pretrained"]))
    input_size = None if cfg["input_size"] is None else int(cfg["input_size"])
    model = SpeciesClassifier(network, list(species), image_size, info["arch"], input_size)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, float(cfg["weight_decay"])), lr=float(cfg["lr"])
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=float(cfg["lr"]), total_steps=total_steps
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=float(cfg["label_smoothing"]))
    return model, info, optimizer, scheduler, criterion


def optimisation_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    augment_generator: torch.Generator,
    training: Optimisation,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment uint8 ``images``, take one optimiser step; (loss, logits), both detached."""
    device = training.device
    batch = augment_batch(uint8_to_model_range(images), augment_generator)
    with _autocast(device):
        logits = model(_memory_format(batch, device))
        loss = training.criterion(logits.float(), labels)
    training.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    training.optimizer.step()
    training.scheduler.step()
    return loss.detach(), logits.detach()


def _round(value: float) -> float:
    return round(float(value), 6)


@dataclass
class TrainState:
    """Everything that changes during training and must survive an interruption."""

    epoch: int = 0
    step: int = 0  # next step to run within ``epoch``
    history: list[dict[str, Any]] | None = None
    loss_sum: float = 0.0  # running sums of the current epoch
    correct: int = 0
    seen: int = 0


def settings_hash(settings: dict[str, Any], seed: int, train: CropSet, test: CropSet) -> str:
    """Identifies a run: a resume file from other settings or data must not be used."""
    key = {
        "settings": settings,
        "seed": seed,
        "num_train": len(train.labels),
        "num_test": len(test.labels),
        "species": train.species,
        "image_size": int(train.images.shape[-1]),
        "format": RESUME_FORMAT,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _scheduler_data(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """The scheduler's state without callables (older torch keeps a bound method there)."""
    return {key: value for key, value in scheduler.state_dict().items() if not callable(value)}


def save_resume(
    path: Path,
    run_hash: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    augment_generator: torch.Generator,
    state: TrainState,
) -> None:
    payload = {
        "settings_hash": run_hash,
        "epoch": state.epoch,
        "step": state.step,
        "history": state.history,
        "loss_sum": state.loss_sum,
        "correct": state.correct,
        "seen": state.seen,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": _scheduler_data(scheduler),
        "rng": rng_states({"augment": augment_generator}),
    }
    save_torch(canonical(sealed(payload)), path)


RESUME_KEYS = (
    "settings_hash", "epoch", "step", "history", "loss_sum", "correct", "seen",
    "model", "optimizer", "scheduler",
)  # fmt: skip


def _read_resume(path: Path) -> dict[str, Any] | None:
    """The resume payload; None when there is none; SpeciesganError when it is unusable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - truncated, damaged or foreign: say so
        raise unusable(
            path, f"unreadable classifier resume file ({exception_summary(exc)})"
        ) from exc
    if not isinstance(payload, dict):
        raise unusable(path, "not a classifier resume file (top level is not a dict)")
    missing = [key for key in RESUME_KEYS if key not in payload]
    if missing:
        raise unusable(path, f"damaged classifier resume file (missing {missing})")
    problem = seal_problem(payload)
    if problem:
        raise unusable(path, f"damaged classifier resume file: {problem}")
    return payload


def _is_stale(payload: dict[str, Any], run_hash: str) -> bool:
    """Other settings or data, or an older version's file (no RNG states)."""
    return payload["settings_hash"] != run_hash or "rng" not in payload


def load_resume(
    path: Path,
    run_hash: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    augment_generator: torch.Generator,
    restart: bool = False,
) -> TrainState | None:
    """Restore an interrupted run, or return None to start over (policy: module docstring)."""
    if not path.is_file():
        return None
    if restart:
        try:
            payload = _read_resume(path)
        except SpeciesganError:
            reason = "corrupt"
        else:
            reason = (
                "mismatch" if payload is not None and _is_stale(payload, run_hash) else "restart"
            )
        if path.is_file():
            log.warning("--restart: moved %s aside to %s", path, move_aside(path, reason))
        return None
    payload = _read_resume(path)
    if payload is None:
        return None
    if _is_stale(payload, run_hash):
        aside = move_aside(path, "mismatch")
        log.warning(
            "%s: made with other settings, data or version: moved aside to %s; starting over",
            path,
            aside,
        )
        return None
    try:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        restore_rng_states(payload["rng"], {"augment": augment_generator})
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise unusable(path, f"does not fit the classifier ({exception_summary(exc)})") from exc
    log.info("%s: resuming at epoch %d step %d", path, payload["epoch"] + 1, payload["step"])
    return TrainState(
        epoch=int(payload["epoch"]),
        step=int(payload["step"]),
        history=list(payload["history"]),
        loss_sum=float(payload["loss_sum"]),
        correct=int(payload["correct"]),
        seen=int(payload["seen"]),
    )


def final_metrics(
    logits: torch.Tensor,
    test: CropSet,
    num_train: int,
    settings: dict[str, Any],
    info: dict[str, Any],
    history: list[dict[str, Any]],
    train_counts: list[int] | None = None,
) -> dict[str, Any]:
    """The metrics JSON: only deterministic quantities, so same-seed runs give equal bytes.

    ``train_counts`` (train crops per species id) adds test top-1 by frequency
    bin (head, middle, tail species), which the report sets beside the
    generated images' accuracy in the same bins.
    """
    labels = test.labels
    predicted = logits.argmax(dim=1)
    per_species = {}
    for species_id, name in enumerate(test.species):
        mask = labels == species_id
        if mask.any():  # species without test images have no accuracy to report
            per_species[name] = _round((predicted[mask] == species_id).float().mean())
    return {
        "top1": _round(topk_accuracy(logits, labels, 1)),
        "top5": _round(topk_accuracy(logits, labels, min(5, test.num_classes))),
        "per_species_top1": per_species,
        "num_train": num_train,
        "num_test": len(labels),
        "num_classes": test.num_classes,
        "epochs": int(settings["epochs"]),
        "sampling": str(settings["sampling"]),
        "arch": info["arch"],
        "init": info["init"],
        "weights": info["weights"],
        "weights_sha256": info["weights_sha256"],
        "history": history,
        **(
            {
                "frequency_bins": accuracy_by_bin(
                    train_counts, test.species, {"test_top1": per_species}
                )
            }
            if train_counts is not None
            else {}
        ),
    }


def train_classifier(
    manifest: Path,
    out_model: Path,
    out_metrics: Path,
    settings: dict[str, Any],
    seed: int,
    threads: int,
    *,
    on_step: Callable[[int, int], None] | None = None,
    restart: bool = False,
    device: str | None = None,
) -> None:
    """Train EfficientNet-B0 on the manifest's train split; evaluate on its test split.

    ``on_step(epoch, step)`` is called after every optimiser step (tests use it to
    send themselves a stop signal at a known point).  ``restart`` starts over
    even when a resume file could be continued (it is moved aside).  ``device`` is
    ``--device`` (auto, cuda, cpu; see ``speciesgan.runtime.device``).
    """
    manifest, out_model, out_metrics = Path(manifest), Path(out_model), Path(out_metrics)
    cfg = resolve_settings(settings)
    torch.set_num_threads(threads)
    torch_device = select_device(device, stage="train-classifier")

    # data: both splits once, uint8, on the device
    if not manifest.is_file():
        raise SpeciesganError(f"{manifest}: manifest not found (run the manifest rule first)")
    train, test = load_split(manifest, "train"), load_split(manifest, "test")
    image_size = int(train.images.shape[-1])
    train_images, train_labels = train.images.to(torch_device), train.labels.to(torch_device)
    calibration_subset = torch.linspace(
        0, len(train_images) - 1, min(CALIBRATION_IMAGES, len(train_images)), device=torch_device
    ).long()
    num_train = len(train_labels)
    if num_train < 2:
        raise SpeciesganError(f"{manifest}: need at least 2 training images, found {num_train}")
    batch_size = min(int(cfg["batch_size"]), num_train)
    steps = steps_per_epoch(num_train, batch_size)
    epochs = int(cfg["epochs"])
    balanced = species_index(cfg, train.labels)

    # model and optimiser (random init and dropout use torch's global generator, seeded here)
    model, info, optimizer, scheduler, criterion = new_classifier(
        cfg, train.species, image_size, torch_device, seed, epochs * steps
    )
    augment_generator = torch.Generator(device=torch_device).manual_seed(seed)
    training = Optimisation(optimizer, scheduler, criterion, torch_device)

    resume_file = resume_path(out_model)
    # what was built, not only what was asked: an offline B0 request falls back to
    # Lite0, and its resume state must never be loaded into a B0 on a later attempt
    built = {**cfg, "built_arch": info["arch"], "init_sha256": info["weights_sha256"]}
    run_hash = settings_hash(identity_settings(built), seed, train, test)
    state = load_resume(
        resume_file, run_hash, model, optimizer, scheduler, augment_generator, restart
    )
    state = state or TrainState(history=[])
    log.info(
        "classifier: %d species, %d train / %d test images at %d px, weights: %s, %s, "
        "%d epochs x %d steps of %d",
        train.num_classes,
        num_train,
        len(test.labels),
        image_size,
        info["weights"],
        torch_device.type,
        epochs,
        steps,
        batch_size,
    )

    # loop
    stop = StopRequest()
    test_logits: torch.Tensor | None = None
    try:
        for epoch in range(state.epoch, epochs):
            order = epoch_order(num_train, seed, epoch, balanced).to(torch_device)
            model.train()
            bar = progress(
                total=steps, initial=state.step, desc=f"epoch {epoch + 1}/{epochs}", leave=False
            )
            for step in range(state.step, steps):
                if stop.requested():
                    state.epoch, state.step = epoch, step
                    save_resume(
                        resume_file, run_hash, model, optimizer, scheduler, augment_generator, state
                    )
                    raise TrainingInterrupted(
                        f"classifier training stopped ({stop.reason}) at epoch {epoch + 1} "
                        f"step {step}; state saved to {resume_file}"
                    )
                index = order[step * batch_size : (step + 1) * batch_size]
                labels = train_labels[index]
                loss, logits = optimisation_step(
                    model, train_images[index], labels, augment_generator, training
                )
                state.loss_sum += float(loss) * len(index)
                state.correct += int((logits.argmax(dim=1) == labels).sum())
                state.seen += len(index)
                bar.update(1)
                if on_step is not None:
                    on_step(epoch, step)
            bar.close()

            # eval
            recalibrate_batchnorm(model, train_images[calibration_subset], torch_device)
            test_logits = predict_logits(model, test.images, torch_device)
            entry = {
                "epoch": epoch + 1,
                "loss": _round(state.loss_sum / state.seen),
                "train_top1": _round(state.correct / state.seen),
                "test_top1": _round(topk_accuracy(test_logits, test.labels, 1)),
            }
            assert state.history is not None
            state.history.append(entry)
            log.info(
                "epoch %d/%d: loss %.4f, train top-1 %.3f, test top-1 %.3f",
                epoch + 1,
                epochs,
                entry["loss"],
                entry["train_top1"],
                entry["test_top1"],
            )
            state.step, state.loss_sum, state.correct, state.seen = 0, 0.0, 0, 0
            # SIGKILL (the OOM killer, a crashed node, SLURM past its grace time) gives
            # no chance to save on the way out: keep every finished epoch, atomically
            state.epoch = epoch + 1
            save_resume(
                resume_file, run_hash, model, optimizer, scheduler, augment_generator, state
            )
    finally:
        stop.restore()

    # save (the last epoch's evaluation is the final one: the model has not changed since)
    assert state.history is not None
    if test_logits is None:  # resumed after the last epoch, killed before the model was saved
        test_logits = predict_logits(model, test.images, torch_device)
    counts = torch.bincount(train.labels, minlength=train.num_classes).tolist()
    metrics = final_metrics(test_logits, test, num_train, cfg, info, state.history, counts)
    save_classifier(out_model, model, train.species, image_size, info)
    write_json(out_metrics, metrics)
    write_headline(out_metrics, classifier_headline(metrics))
    resume_file.unlink(missing_ok=True)
    log.info(
        "classifier: test top-1 %.3f, top-5 %.3f -> %s", metrics["top1"], metrics["top5"], out_model
    )
