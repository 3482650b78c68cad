"""Training loop of the species-conditional GAN (the ``train-gan`` stage).

The whole train split is loaded once as uint8 onto the GPU when there is one
(on a CPU it stays memory-mapped, shared by the ranks of a node); each step
samples a batch with a seeded generator, converts it to float in [-1, 1] and
flips it on the device, so no file is decoded during training.

Reproducibility: every random draw of the loop comes from one of three explicit
generators (``data`` on the CPU; ``noise`` and ``augment`` on the device), all
seeded from ``seed`` and all stored in the checkpoint.  With a fixed thread
count a CPU run is bit-identical to a rerun, and a run that was interrupted and
resumed is bit-identical to one that was not.

Preemption: ``StopRequest`` is polled every step; when SLURM warns (signal) or
the job's end time is near, the loop writes ``last.pt`` and raises
``TrainingInterrupted`` (exit status 75), and the retried job resumes.

Distributed: under ``torchrun`` or ``srun`` (launchers, threads per rank and
the rendezvous: ``gan.ranks``) the ranks draw the same global batch and each
trains on its own slice of it; every per-image
draw (noise, DiffAugment parameters, gradient-penalty weights) is made for the
global batch and sliced the same way (``BatchSlice``), so the global batch
(and, up to float summation order, the result) does not depend on the number
of processes.  Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from speciesgan.config import section_defaults
from speciesgan.data.balanced import SpeciesIndex, check_sampling, identity_settings
from speciesgan.data.dataset import MappedSplit, open_split
from speciesgan.gan import checkpoint as ckpt
from speciesgan.gan import segments, selection
from speciesgan.gan.augment import diff_augment, parse_policy
from speciesgan.gan.batch_slice import BatchSlice
from speciesgan.gan.loss import (
    ADVERSARIAL_LOSSES,
    check_loss_kind,
    classifier_guidance_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    mode_seeking_loss,
)
from speciesgan.gan.networks import build_networks, save_generator, save_snapshots
from speciesgan.gan.ranks import Ranks, gpu_index, init_ranks, layout_from_env, threads_for_rank
from speciesgan.gan.standing_stats import with_standing_statistics
from speciesgan.runtime.device import select_device
from speciesgan.runtime.preemption import StopRequest, TrainingInterrupted
from speciesgan.runtime.resume_state import exception_summary
from speciesgan.util.atomic import atomic_open, write_json
from speciesgan.util.errors import ConfigError, SpeciesganError
from speciesgan.util.progress import progress
from speciesgan.util.species_lists import require_same_species

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {k: v for k, v in section_defaults("gan").items() if k != "gpus"}
"""Every ``gan`` setting's default, from the schema (``gpus`` is how the launcher runs it)."""

FINAL_STEP_SELECTION = {
    "rule": "none (gan.select_every: 0): the G-EMA of the final step",
    "scores": {},
}
LOG_COLUMNS = ("step", "loss_d", "loss_g", "loss_cls", "d_real", "d_fake")
EMA_WARMUP = 10
"""EMA decay at step t is min(ema_decay, (1 + t) / (EMA_WARMUP + t)): the average
covers roughly the last tenth of training early on, so the EMA generator is
already better than the raw one after a few hundred steps."""


def resolve_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings with defaults filled in; unknown keys and bad values are user errors."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown gan setting(s): {', '.join(unknown)} (known: {', '.join(DEFAULTS)})"
        )
    resolved = {**DEFAULTS, **settings}
    check_loss_kind(resolved["loss"])
    check_sampling(resolved["sampling"], "gan.sampling")
    parse_policy(resolved["diffaugment"])
    if resolved["precision"] not in ("fp32", "bf16"):
        raise ConfigError(f"gan.precision must be 'fp32' or 'bf16', got {resolved['precision']!r}")
    for key in ("steps", "batch_size", "d_steps", "checkpoint_every", "log_every"):
        if int(resolved[key]) < 1:
            raise ConfigError(f"gan.{key} must be at least 1, got {resolved[key]}")
    if float(resolved["species_loss_weight"]) > 0 and resolved["model"] != "projected":
        raise ConfigError(
            "gan.species_loss_weight needs gan.model: projected (the discriminator with a"
            f" species head), got model {resolved['model']!r}"
        )
    if resolved["colour_style"] and resolved["model"] == "dcgan":
        raise ConfigError("gan.colour_style: the dcgan generator has no style layer")
    if int(resolved["select_every"]) < 0:
        raise ConfigError(f"gan.select_every must be 0 or more, got {resolved['select_every']}")
    if not 0.0 <= float(resolved["select_from"]) <= 1.0:
        raise ConfigError(f"gan.select_from must be in [0, 1], got {resolved['select_from']}")
    if int(resolved["snapshot_every"]) < 0:
        raise ConfigError(f"gan.snapshot_every must be 0 or more, got {resolved['snapshot_every']}")
    return resolved


# ---------------------------------------------------------------- distributed set-up


def _cpu_seconds_all_ranks(own: float, ranks: Ranks, device: torch.device) -> float:
    """``own`` CPU seconds summed over every process of the run (a collective when distributed)."""
    if not ranks.distributed:
        return own
    value = torch.tensor([own], dtype=torch.float64, device=device)
    dist.all_reduce(value)
    return float(value.item())


def _all_ranks_agree(flag: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every rank if it is true on any (stop together, or deadlock)."""
    if not ranks.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


# ---------------------------------------------------------------- data on the device


class DeviceCrops:
    """The train split as uint8, sampled without touching image files.

    On a GPU the crops are copied into device memory once, chunk by chunk from
    the memory-mapped shards (no host copy of the whole split per rank).  On a
    CPU they stay memory-mapped and each batch gathers its rows: the ranks of a
    node then share one copy in the page cache instead of holding one each.
    Either way a batch holds the same values in the same layout.
    """

    def __init__(
        self,
        images: torch.Tensor | None,
        labels: torch.Tensor,
        species: list[str],
        device: torch.device,
        mapped: MappedSplit | None = None,
        rows: torch.Tensor | None = None,
    ) -> None:
        if (images is None) == (mapped is None):
            raise ValueError("DeviceCrops needs the crops in memory or mapped, not both")
        self.images = images.to(device) if images is not None else None  # uint8 [N, 3, S, S]
        self.mapped = mapped
        self.rows = rows  # mapped only: which rows of the mapped split (None: all)
        self.labels = labels.to(device)
        self.species = list(species)
        self.image_size = int(images.shape[-1]) if images is not None else mapped.image_size
        self.device = device
        self._index: SpeciesIndex | None = None  # built on the first species_groups draw

    @classmethod
    def from_manifest(
        cls, manifest: Path, device: torch.device, held_out: np.ndarray | None = None
    ) -> DeviceCrops:
        """The train split, less the rows ``held_out`` (validation crops for selection)."""
        return cls.from_split(open_split(manifest, "train"), device, held_out)

    @classmethod
    def from_split(
        cls, mapped: MappedSplit, device: torch.device, held_out: np.ndarray | None = None
    ) -> DeviceCrops:
        """An opened train split, less the rows ``held_out``."""
        labels, rows = mapped.labels, None
        if held_out is not None and len(held_out):
            keep = np.ones(len(labels), dtype=bool)
            keep[held_out] = False
            rows = torch.from_numpy(np.flatnonzero(keep))
            labels = labels[rows]
        if device.type == "cpu":
            return cls(None, labels, mapped.species, device, mapped=mapped, rows=rows)
        images = mapped.gather_all(device)
        return cls(
            images if rows is None else images[rows.to(device)], labels, mapped.species, device
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def crops(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 [n, 3, S, S] crops ``index`` (a CPU tensor), on the device."""
        if self.images is not None:
            return self.images[index.to(self.device)]
        if self.rows is not None:
            index = self.rows[index]
        return self.mapped.gather(index.numpy()).to(self.device)

    def real_batch(
        self,
        size: int,
        part: slice,
        generator: torch.Generator,
        balanced: SpeciesIndex | None = None,
        group: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] (randomly mirrored) and species ids for slice ``part`` of a global batch.

        Rows are drawn uniformly (``balanced`` None: the data's own species
        frequencies) or species first (``balanced``: ``gan.sampling: balanced``).
        Every rank draws the whole global batch and keeps its slice, so the batch
        does not depend on the number of ranks either way.
        """
        if group > 1:  # runs of ``group`` rows of one species (gan.species_groups)
            index = self._runs_of_one_species(size, group, generator, balanced)[part]
        elif balanced is None:
            index = torch.randint(len(self), (size,), generator=generator)[part]
        else:
            index = balanced.draw_rows(size, generator)[part]
        mirror = (torch.rand(size, generator=generator) < 0.5)[part].to(self.device)
        images = self.crops(index).float().div_(127.5).sub_(1.0)
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
        return images, self.labels[index.to(self.device)]

    def _runs_of_one_species(
        self, size: int, group: int, generator: torch.Generator, balanced: SpeciesIndex | None
    ) -> torch.Tensor:
        """``size // group`` rows drawn as ``real_batch`` would, each followed by
        ``group - 1`` more rows of its species (uniformly, with replacement)."""
        leads = size // group
        if balanced is None:
            first = torch.randint(len(self), (leads,), generator=generator)
        else:
            first = balanced.draw_rows(leads, generator)
        index = self._species_rows()
        lead_species = self.labels.cpu()[first]
        slot = torch.searchsorted(index.present, lead_species)
        uniform = torch.rand(leads, group - 1, generator=generator, dtype=torch.float64)
        sizes = index.sizes[slot][:, None]
        within = torch.minimum((uniform * sizes).long(), sizes - 1)
        more = index.rows[index.starts[slot][:, None] + within]
        return torch.cat([first[:, None], more], dim=1).flatten()

    def _species_rows(self) -> SpeciesIndex:
        if self._index is None:
            self._index = SpeciesIndex.from_labels(self.labels)
        return self._index

    def species_batch(
        self,
        size: int,
        part: slice,
        generator: torch.Generator,
        balanced: SpeciesIndex | None = None,
        group: int = 1,
    ) -> torch.Tensor:
        """Species ids for generated images: the data's own class frequencies, or balanced.

        The generator is asked for species as often as the discriminator sees
        them: with balanced real batches, natural labels would leave the tail
        species' fakes rare while their real crops are common.
        """
        if group > 1:  # runs of one species, as real_batch draws them
            leads = self.species_batch(size // group, slice(None), generator, balanced)
            return leads.repeat_interleave(group)[part]
        if balanced is not None:
            return balanced.draw_species(size, generator)[part].to(self.device)
        index = torch.randint(len(self), (size,), generator=generator)[part].to(self.device)
        return self.labels[index]


# ---------------------------------------------------------------- the loop


@dataclass
class Trainer:
    """The live objects of one run; ``step()`` performs one training iteration."""

    cfg: dict[str, Any]
    data: DeviceCrops
    generator: nn.Module  # possibly DDP-wrapped
    discriminator: nn.Module  # possibly DDP-wrapped
    generator_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rngs: dict[str, torch.Generator]
    classifier: nn.Module | None
    ranks: Ranks
    device: torch.device
    channels_last: bool = False
    balanced: SpeciesIndex | None = None  # gan.sampling: balanced (None: natural)

    @property
    def raw_g(self) -> nn.Module:
        return (
            self.generator.module
            if isinstance(self.generator, DistributedDataParallel)
            else self.generator
        )

    @property
    def raw_d(self) -> nn.Module:
        return (
            self.discriminator.module
            if isinstance(self.discriminator, DistributedDataParallel)
            else self.discriminator
        )

    def _part(self) -> slice:
        local = self.cfg["batch_size"] // self.ranks.world_size
        return slice(self.ranks.rank * local, (self.ranks.rank + 1) * local)

    def _noise(self, part: slice) -> torch.Tensor:
        z = torch.randn(
            self.cfg["batch_size"],
            self.cfg["z_dim"],
            generator=self.rngs["noise"],
            device=self.device,
        )
        return z[part]

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.cfg["precision"] == "bf16"
        )

    def _rows(self) -> BatchSlice:
        """This rank's rows of the global batch, for per-image random draws."""
        return BatchSlice(self.cfg["batch_size"], self._part())

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment with this rank's rows of parameters drawn for the global batch."""
        return diff_augment(images, self.policy, self.rngs["augment"], self._rows())

    @property
    def species_loss_weight(self) -> float:
        """Weight of the discriminator's own species classification (AC-GAN term)."""
        return float(self.cfg["species_loss_weight"])

    @property
    def group(self) -> int:
        """Runs of one species per batch (``gan.species_groups``; 1 = independent rows)."""
        return max(1, int(self.cfg["species_groups"]))

    @property
    def num_species(self) -> int:
        return len(self.data.species)

    @property
    def policy(self) -> tuple[str, ...]:
        return parse_policy(self.cfg["diffaugment"])

    def _to_memory_format(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def discriminator_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        part, size = self._part(), self.cfg["batch_size"]
        real, species = self.data.real_batch(
            size, part, self.rngs["data"], self.balanced, self.group
        )
        real = self._to_memory_format(real)
        z = self._noise(part)
        with self._autocast():
            with torch.no_grad():
                fake = self.generator(z, species)
            real_aug, fake_aug = self._augment(real), self._augment(fake.to(real.dtype))
            images, ids = torch.cat([real_aug, fake_aug]), torch.cat([species, species])
            if self.species_loss_weight > 0:
                scores, logits = self.discriminator(images, ids, with_logits=True)
                # D's species head learns from real photos only (fakes would teach it G's errors)
                k = self.num_species
                real_logits = logits[: real.shape[0], :k].float()
                species_loss = F.cross_entropy(real_logits, species)
                if self.cfg["species_twin"]:  # the twin learns the species of generated images
                    fake_logits = logits[real.shape[0] :, k:].float()
                    species_loss = species_loss + F.cross_entropy(fake_logits, species)
            else:
                scores, species_loss = self.discriminator(images, ids), 0.0
            real_scores, fake_scores = scores.float().chunk(2)
            loss = discriminator_loss(self.cfg["loss"], real_scores, fake_scores)
            loss = loss + self.species_loss_weight * species_loss
        if ADVERSARIAL_LOSSES[self.cfg["loss"]].gradient_penalty:
            loss = loss + gradient_penalty(
                self.raw_d, real_aug, fake_aug, species, self.rngs["noise"], self._rows()
            )
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.detach(), real_scores.detach().mean(), fake_scores.detach().mean()

    def generator_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        part, size = self._part(), self.cfg["batch_size"]
        species = self.data.species_batch(size, part, self.rngs["data"], self.balanced, self.group)
        z = self._noise(part)
        seek_modes = float(self.cfg["mode_seeking_weight"]) > 0 and species.shape[0] >= 2
        if seek_modes:  # pairs (i, half + i) ask for the same species with different noise
            half = species.shape[0] // 2
            species = torch.cat([species[:half], species[:half], species[2 * half :]])
        # freeze only what D trains: a projected D's backbone stays frozen throughout
        trainable_d = [p for p in self.raw_d.parameters() if p.requires_grad]
        for param in trainable_d:
            param.requires_grad_(False)
        try:
            with self._autocast():
                fake = self.generator(z, species)
                total = loss_cls = torch.zeros((), device=self.device)
                if self.species_loss_weight > 0:
                    scores, logits = self.raw_d(self._augment(fake), species, with_logits=True)
                    k = self.num_species
                    species_loss = F.cross_entropy(logits[:, :k].float(), species)
                    if self.cfg["species_twin"]:  # TAC-GAN: undo the pull to the easiest image
                        species_loss = species_loss - F.cross_entropy(
                            logits[:, k:].float(), species
                        )
                    total = total + self.species_loss_weight * species_loss
                else:
                    scores = self.raw_d(self._augment(fake), species)
                loss = generator_loss(self.cfg["loss"], scores)
                if self.classifier is not None:
                    loss_cls = classifier_guidance_loss(self.classifier, fake, species)
                if seek_modes:
                    total = total + float(self.cfg["mode_seeking_weight"]) * mode_seeking_loss(
                        fake[:half], fake[half : 2 * half], z[:half], z[half : 2 * half]
                    )
                total = total + loss + self.cfg["classifier_loss_weight"] * loss_cls
            self.opt_g.zero_grad(set_to_none=True)
            total.backward()
            self.opt_g.step()
        finally:
            for param in trainable_d:
                param.requires_grad_(True)
        return loss.detach(), loss_cls.detach()

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        decay = min(float(self.cfg["ema_decay"]), (1 + step) / (EMA_WARMUP + step))
        ema_params = list(self.generator_ema.parameters())
        torch._foreach_lerp_(ema_params, list(self.raw_g.parameters()), 1.0 - decay)
        for ema_buffer, buffer in zip(
            self.generator_ema.buffers(), self.raw_g.buffers(), strict=True
        ):
            ema_buffer.copy_(buffer)

    def step(self, step: int) -> torch.Tensor:
        """One iteration (``d_steps`` D updates, one G update, EMA); returns the log values."""
        for _ in range(self.cfg["d_steps"]):
            loss_d, d_real, d_fake = self.discriminator_step()
        loss_g, loss_cls = self.generator_step()
        self.update_ema(step)
        return torch.stack([loss_d, loss_g, loss_cls, d_real, d_fake]).float()

    def checkpoint_parts(self) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        networks = {"G": self.raw_g, "D": self.raw_d, "G_ema": self.generator_ema}
        return networks, {"G": self.opt_g, "D": self.opt_d}


def _load_frozen_classifier(path: Path, device: torch.device) -> nn.Module:
    from speciesgan.classifier.model import load_classifier

    model = load_classifier(path, device)
    model.eval().requires_grad_(False)
    return model


def build_trainer(
    data: DeviceCrops,
    classifier: nn.Module | None,
    cfg: dict[str, Any],
    seed: int,
    ranks: Ranks,
    device: torch.device,
    channels_last: bool | None = None,
) -> Trainer:
    """All live objects of a run, freshly initialised from ``seed`` (the benchmark uses this too).

    ``channels_last`` stores images and weights NHWC.  Default: on CUDA (tensor
    cores want it) and with bf16 on a CPU, where oneDNN's bf16 kernels are about
    twice as fast with it (benchmarks/train_step.py); fp32 on a CPU stays NCHW.
    """
    if channels_last is None:
        channels_last = device.type == "cuda" or cfg["precision"] == "bf16"
    if cfg["batch_size"] % ranks.world_size:
        raise SpeciesganError(
            f"gan.batch_size ({cfg['batch_size']}) must be divisible by the number of processes ({ranks.world_size})"
        )
    g, d = build_networks(cfg, len(data.species), data.image_size, seed=seed)
    g, d = g.to(device), d.to(device)
    if channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    betas = (float(cfg["beta1"]), float(cfg["beta2"]))
    opt_g = torch.optim.Adam(g.parameters(), lr=float(cfg["lr_g"]), betas=betas)
    # the projected discriminator's frozen ImageNet backbone has nothing to optimise
    trainable_d = [p for p in d.parameters() if p.requires_grad]
    opt_d = torch.optim.Adam(trainable_d, lr=float(cfg["lr_d"]), betas=betas)
    if ranks.distributed:
        ids = [device.index] if device.type == "cuda" else None
        g = DistributedDataParallel(g, device_ids=ids)
        d = DistributedDataParallel(d, device_ids=ids)
    rngs = {
        "data": torch.Generator("cpu"),
        "noise": torch.Generator(device),
        "augment": torch.Generator(device),
    }
    for offset, gen in enumerate(rngs.values(), start=1):
        gen.manual_seed((seed * 1000 + offset) % 2**64)  # any 64-bit seed
    balanced = None
    if check_sampling(cfg["sampling"], "gan.sampling") == "balanced":
        balanced = SpeciesIndex.from_labels(data.labels.cpu())
    return Trainer(
        cfg=cfg,
        data=data,
        generator=g,
        discriminator=d,
        generator_ema=g_ema,
        opt_g=opt_g,
        opt_d=opt_d,
        rngs=rngs,
        classifier=classifier,
        ranks=ranks,
        device=device,
        channels_last=channels_last,
        balanced=balanced,
    )


def write_log(path: str | Path, rows: list[list[float]]) -> None:
    """The training log as CSV; values only (no timings), so equal runs give equal files."""
    with atomic_open(path, "w") as fh:
        fh.write(",".join(LOG_COLUMNS) + "\n")
        for row in rows:
            fh.write(",".join([str(int(row[0])), *(f"{value:.6g}" for value in row[1:])]) + "\n")


def train_gan(
    manifest: str | Path,
    classifier: str | Path | None,
    out_generator: str | Path,
    out_log: str | Path,
    checkpoint_dir: str | Path,
    settings: Mapping[str, Any],
    seed: int,
    threads: int,
    out_snapshots: str | Path | None = None,
    restart: bool = False,
    device: str | None = None,
    out_timing: str | Path | None = None,
    scorer: selection.SnapshotScorer | None = None,
    out_selection: str | Path | None = None,
) -> None:
    """Train (or resume training of) the conditional GAN; write the generator and the log.

    ``out_generator`` holds the EMA weights (used for sampling and metrics) and
    the raw trained weights (for the "without EMA" ablation).  ``out_snapshots``
    holds G-EMA every ``snapshot_every`` steps plus the final step, for the
    metrics-over-steps curve.  ``checkpoint_dir/last.pt`` is continued when it
    belongs to this run; one of other settings is moved aside and training
    starts fresh, a damaged one or one past ``steps`` stops training, and
    ``restart`` moves any aside (see ``gan.checkpoint``).  ``device`` is ``--device``
    (auto, cuda, cpu; see ``speciesgan.device``), checked before any data is loaded.
    ``out_timing`` receives the wall and CPU seconds of every segment of the run
    (``gan.segments``); after ``STALL_LIMIT`` attempts without progress training
    refuses to start.  With ``gan.select_every`` > 0, ``validation_per_species``
    train crops per species are held out of training, ``scorer`` scores the
    G-EMA snapshots of the selection window on them, the best one is exported as
    the generator, and ``out_selection`` records the rule, every score and the
    step chosen (``gan.selection``).
    """
    started = (time.time(), time.process_time())
    manifest = Path(manifest)
    if not manifest.is_file():
        raise SpeciesganError(f"manifest not found: {manifest}")
    cfg = resolve_settings(settings)
    layout = layout_from_env()
    local_rank = layout.local_rank if layout is not None else 0
    torch_device = select_device(device, stage="train-gan", local_rank=gpu_index(local_rank))
    torch.set_num_threads(threads_for_rank(threads, layout))
    # The loop draws from its own generators, but torch's global generator is saved in
    # every checkpoint (and used by library code, e.g. building the frozen classifier):
    # seed it too, or two identical runs write checkpoints that differ in that state.
    torch.manual_seed(int(seed))
    ranks = init_ranks(torch_device, layout)
    use_classifier = classifier is not None and float(cfg["classifier_loss_weight"]) > 0
    identity = ckpt.run_identity(
        identity_settings(cfg), seed, manifest, classifier if use_classifier else None
    )
    stop = StopRequest(margin_seconds=float(cfg["stop_margin_seconds"]))
    try:
        if not restart:  # before any data is loaded: a stalled run stops in seconds
            segments.refuse_if_stalled(checkpoint_dir, identity)
        frozen = _load_frozen_classifier(Path(classifier), torch_device) if use_classifier else None
        if classifier is None and float(cfg["classifier_loss_weight"]) > 0:
            log.info("no classifier given: the classifier loss term is off")
        held_out = None
        selecting = int(cfg["select_every"]) > 0
        train_split = open_split(manifest, "train")  # opened (and its shards checked) once
        if selecting:
            if scorer is None:
                raise SpeciesganError("gan.select_every > 0 needs a snapshot scorer")
            labels = train_split.labels.numpy()
            held_out = selection.validation_rows(labels, int(cfg["validation_per_species"]), seed)
        data = DeviceCrops.from_split(train_split, torch_device, held_out)
        if selecting and ranks.is_main:
            scorer.prepare(train_split.gather(held_out), labels[held_out], data.species)
        if frozen is not None:  # same count, other order: guidance would steer to wrong species
            require_same_species(data.species, manifest, frozen.species, classifier)
        trainer = build_trainer(data, frozen, cfg, seed, ranks, torch_device)
        networks, optimizers = trainer.checkpoint_parts()
        start, rows, snapshots = 0, [], {}
        if ranks.is_main:
            ckpt.remove_stale_temporaries(checkpoint_dir)
        payload = ckpt.checkpoint_to_resume(
            checkpoint_dir, identity, int(cfg["steps"]), restart, may_move=ranks.is_main
        )
        if payload is not None:
            start, rows = ckpt.restore_checkpoint(
                payload, networks, optimizers, trainer.rngs, ckpt.checkpoint_path(checkpoint_dir)
            )
            # only the current grids (an earlier run may have used others)
            kept = snapshot_steps(cfg)
            snapshots = {
                step: state for step, state in ckpt.saved_snapshots(payload).items() if step in kept
            }
            log.info(
                "resuming GAN training at step %d from %s",
                start,
                ckpt.checkpoint_path(checkpoint_dir),
            )
        clock = segments.begin(
            checkpoint_dir, identity, start, started, restart, write=ranks.is_main
        )
        scores: dict[int, dict[str, Any]] = {}
        judge = scorer if selecting and ranks.is_main else None
        with _closing_segment(clock):
            _run_steps(
                trainer,
                start,
                rows,
                snapshots,
                stop,
                identity,
                Path(checkpoint_dir),
                clock,
                judge,
                scores,
            )
            if ranks.is_main:
                write_log(out_log, rows)
                chosen = None
                if judge is not None:
                    chosen = _select(trainer, snapshots, scores, judge, out_selection)
                elif out_selection is not None:
                    final = {"chosen_step": cfg["steps"], "final_step": cfg["steps"]}
                    write_json(out_selection, FINAL_STEP_SELECTION | final)
                _write_generators(trainer, snapshots, seed, out_generator, out_snapshots, chosen)
        if ranks.is_main and out_timing is not None:
            segments.write_training_time(out_timing, clock, int(cfg["steps"]))
    finally:
        stop.restore()
        if ranks.owns_group:
            dist.destroy_process_group()


@contextlib.contextmanager
def _closing_segment(clock: segments.SegmentClock) -> Iterator[None]:
    """Close this attempt's segment with how it ended (``done`` when the block succeeds)."""
    try:
        yield
    except TrainingInterrupted as exc:
        clock.end(segments.STOPPED, str(exc))
        raise
    except KeyboardInterrupt:
        clock.end(segments.CANCELLED, "KeyboardInterrupt")
        raise
    except BaseException as exc:
        try:
            clock.end(segments.FAILED, exception_summary(exc))
        except OSError as problem:  # a full disk must not hide why training failed
            log.warning("could not record the failed segment: %s", problem)
        raise
    clock.end(segments.DONE)


def snapshot_steps(cfg: Mapping[str, Any]) -> set[int]:
    """Steps whose G-EMA is kept: the ``snapshot_every`` grid and the selection steps."""
    total, every = int(cfg["steps"]), int(cfg["snapshot_every"])
    kept = set(range(every, total + 1, every)) if every else set()
    kept.update(
        selection.selection_steps(total, int(cfg["select_every"]), float(cfg["select_from"]))
    )
    return kept


def _snapshot_generator(trainer: Trainer, state: Mapping[str, torch.Tensor]) -> nn.Module:
    generator = copy.deepcopy(trainer.generator_ema)
    generator.load_state_dict(state)
    return generator.eval()


def _select(
    trainer: Trainer,
    snapshots: Mapping[int, Mapping[str, torch.Tensor]],
    scores: dict[int, dict[str, Any]],
    judge: selection.SnapshotScorer,
    out_selection: str | Path | None,
) -> int | None:
    """Score what a resumed run has not scored yet, choose, and record the choice."""
    cfg = trainer.cfg
    steps = selection.selection_steps(
        int(cfg["steps"]), int(cfg["select_every"]), float(cfg["select_from"])
    )
    for step in steps:
        if step not in scores and step in snapshots:
            scores[step] = judge.score(_snapshot_generator(trainer, snapshots[step]))
    chosen = selection.choose(scores)
    if chosen is None:  # no species had enough validation crops to score: the last step
        log.warning("snapshot selection: no snapshot could be scored; exporting the last step")
    log.info("snapshot selection: step %s chosen of %s", chosen, sorted(scores))
    if out_selection is not None:
        write_json(
            out_selection,
            {
                "rule": selection.describe_rule(cfg),
                "chosen_step": int(cfg["steps"]) if chosen is None else chosen,
                "final_step": int(cfg["steps"]),
                "scores": {str(step): scores[step] for step in sorted(scores)},
                "validation_per_species": int(cfg["validation_per_species"]),
            },
        )
    return chosen


def _write_generators(
    trainer: Trainer,
    snapshots: Mapping[int, Mapping[str, torch.Tensor]],
    seed: int,
    out_generator: str | Path,
    out_snapshots: str | Path | None,
    chosen: int | None = None,
) -> None:
    """``generator.pt`` and ``snapshots.pt``, each generator with its own standing statistics.

    The checkpoint keeps G-EMA exactly as trained (with the raw generator's
    BatchNorm buffers) so resuming is unaffected; only the exported copies get
    statistics recomputed for their weights (see ``standing_stats``).
    """
    cfg, species, size = trainer.cfg, trainer.data.species, trainer.data.image_size
    classes = len(species)
    final = trainer.generator_ema
    if chosen is not None and chosen != cfg["steps"]:  # the selected snapshot is the generator
        final = _snapshot_generator(trainer, snapshots[chosen])
    ema = with_standing_statistics(final, classes, seed)
    last = ema if final is trainer.generator_ema else None
    raw = with_standing_statistics(trainer.raw_g, classes, seed)
    save_generator(out_generator, ema, cfg, species, size, raw=raw)
    if out_snapshots is None:
        return
    if last is None:
        last = with_standing_statistics(trainer.generator_ema, classes, seed)
    standing = {cfg["steps"]: ckpt.cpu_state_dict(last)}  # the grid plus the final generator
    scratch = copy.deepcopy(trainer.generator_ema)
    for step, state in snapshots.items():
        if step == cfg["steps"]:
            continue
        scratch.load_state_dict(state)
        standing[step] = ckpt.cpu_state_dict(with_standing_statistics(scratch, classes, seed))
    save_snapshots(out_snapshots, standing, cfg, species, size)


def status_of(
    rows: list[list[float]],
    bar: Any,
    cfg: Mapping[str, Any],
    scores: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """The latest logged losses, the images per second and the latest selection score
    (``select=<score>@<step>``), for the bar or status line."""
    status = (
        {k: f"{v:.3g}" for k, v in zip(LOG_COLUMNS[1:], rows[-1][1:], strict=False)} if rows else {}
    )
    rate = bar.format_dict.get("rate")
    if rate:
        status["img/s"] = f"{rate * cfg['batch_size']:.0f}"
    if scores:
        latest = max(scores)
        if scores[latest].get("score") is not None:
            status["select"] = f"{scores[latest]['score']:.3f}@{latest}"
    return status


def _run_steps(
    trainer: Trainer,
    start: int,
    rows: list[list[float]],
    snapshots: dict[int, dict[str, torch.Tensor]],
    stop: StopRequest,
    identity: str,
    checkpoint_dir: Path,
    clock: segments.SegmentClock,
    judge: selection.SnapshotScorer | None = None,
    scores: dict[int, dict[str, Any]] | None = None,
) -> None:
    """Steps ``start + 1 .. steps``, with periodic checkpoints, snapshots and preemption checks.

    Every checkpoint also updates this segment's step and time in the ledger
    (CPU seconds summed over ranks, so the collective runs on every rank).
    """
    cfg, ranks = trainer.cfg, trainer.ranks
    networks, optimizers = trainer.checkpoint_parts()
    trainer.raw_g.train()
    trainer.raw_d.train()

    def save(step: int) -> None:
        if ranks.is_main:
            ckpt.save_checkpoint(
                checkpoint_dir,
                identity,
                step,
                networks,
                optimizers,
                trainer.rngs,
                rows,
                snapshots,
            )
        clock.sync(step, _cpu_seconds_all_ranks(clock.own_cpu_seconds(), ranks, trainer.device))
        if ranks.distributed:
            dist.barrier()

    kept = snapshot_steps(cfg)
    scored = set(
        selection.selection_steps(cfg["steps"], int(cfg["select_every"]), float(cfg["select_from"]))
    )
    step = start
    saved_at = start if start > 0 else None
    quiet = {} if ranks.is_main else {"disable": True}
    bar = progress(total=cfg["steps"], initial=start, desc="GAN", **quiet)
    try:
        while step < cfg["steps"]:
            if _all_ranks_agree(stop.requested(), ranks, trainer.device):
                if saved_at != step:
                    save(step)
                log.warning(
                    "stopping at step %d (%s); checkpoint saved, rerun to resume", step, stop.reason
                )
                raise TrainingInterrupted(
                    f"stopped at step {step}: {stop.reason or 'another rank stopped'}",
                    reason=stop.reason,
                    progressed=step > start,
                )
            values = trainer.step(step)
            step += 1
            bar.update(1)
            if step % cfg["log_every"] == 0:  # a fixed grid: resumed runs log the same rows
                if ranks.distributed:
                    dist.all_reduce(values)
                    values = values / ranks.world_size
                rows.append([float(step), *values.tolist()])
                # the losses ride on the status line (log files) or the bar (terminals)
                bar.set_postfix(status_of(rows, bar, cfg, scores), refresh=False)
            if ranks.is_main and step in kept:
                snapshots[step] = ckpt.cpu_state_dict(trainer.generator_ema)
                if judge is not None and scores is not None and step in scored:
                    # scored on a copy: the networks being trained keep their mode
                    scores[step] = judge.score(_snapshot_generator(trainer, snapshots[step]))
                    bar.set_postfix(status_of(rows, bar, cfg, scores))
            if step % cfg["checkpoint_every"] == 0:
                save(step)
                saved_at = step
        if saved_at != step:
            save(step)
    finally:
        bar.close()
