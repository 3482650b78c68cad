"""Generator and discriminator networks of the species-conditional GAN.

Two families share one interface so the training loop, sampler and metrics never
care which is in use:

* ``dcgan``: a small baseline.  The species embedding is concatenated to the
  noise; the generator upsamples (nearest) and convolves (3x3) instead of using
  transposed convolutions, which avoids checkerboard artefacts; the
  discriminator adds a projection term ``<embed(y), h>`` to its score.
* ``resnet``: a projection GAN in the style of SNGAN/BigGAN.  The noise is split
  into one chunk per block (hierarchical z) and each chunk, concatenated with a
  shared species embedding, drives conditional BatchNorm in that block.  Both
  networks use spectral norm and orthogonal initialisation.

``projected`` pairs the ResNet generator with a discriminator on frozen ImageNet
features (``speciesgan.gan.projected``).  Each ``gan.model`` is a ``GanModel`` in
``GAN_MODELS``: the code builds and loads models by looking their name up there.

Both generators expose ``generate(z, class_embedding)`` next to
``forward(z, species_ids)``: species mixing interpolates two embedding vectors and
feeds the blend to ``generate``.

The number of blocks follows from the resolution (any power of two from 16 to
256): the generator starts from a 4x4 map and doubles it per block; the
discriminator halves it per block down to 4x4.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from speciesgan.config import section_defaults
from speciesgan.gan.layers import SpeciesEmbedding, orthogonal_init
from speciesgan.util.atomic import atomic_open
from speciesgan.util.content_hash import seal_problem, sealed
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.registry import Registry

MIN_SIZE = 16
MAX_SIZE = 256
BASE_SIZE = 4
MAX_WIDTH_MULTIPLIER = 8
"""Channel widths grow towards the 4x4 end but stop at 8x ``g_channels``/``d_channels``."""
GAN_DEFAULTS = section_defaults("gan")
"""The schema's gan defaults: what a generator file written before a setting existed used."""


def num_blocks(image_size: int) -> int:
    """Up- (or down-) sampling blocks between 4x4 and ``image_size``."""
    if image_size < MIN_SIZE or image_size > MAX_SIZE or image_size & (image_size - 1):
        raise SpeciesganError(
            f"GAN image size must be a power of two from {MIN_SIZE} to {MAX_SIZE}, got {image_size}"
        )
    return int(math.log2(image_size // BASE_SIZE))


def block_widths(base: int, blocks: int) -> list[int]:
    """Channels at each of the ``blocks + 1`` resolutions, from 4x4 up to full size.

    Deep (small) maps get more channels, like DCGAN/SNGAN, capped so wide
    settings at 256 px stay affordable.
    """
    return [base * min(2 ** (blocks - i), MAX_WIDTH_MULTIPLIER) for i in range(blocks + 1)]


def split_sizes(total: int, parts: int) -> list[int]:
    """Split ``total`` noise dimensions into ``parts`` near-equal chunks (first ones larger)."""
    if total < parts:
        raise SpeciesganError(
            f"gan.z_dim must be at least {parts} for this model and size, got {total}"
        )
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Differentiable all-reduce (sum): gradients flow back to every rank's inputs."""
    import warnings

    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():  # deprecated, but its replacement has no autograd yet
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose batch statistics span all ranks of a distributed run.

    With data parallelism each rank sees a slice of the global batch; ordinary
    BatchNorm would normalise per slice, so results would depend on the number
    of processes.  torch's SyncBatchNorm fixes that but only for GPU tensors;
    this version sums the statistics with a differentiable all-reduce, which
    works with gloo on CPUs as well.  In a single process it is plain BatchNorm2d.
    """

    local_statistics: bool = False
    """Use this process's batch alone even in a distributed run (standing statistics
    are computed on one rank's copy; an all-reduce there would wait for the others)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (
            self.training
            and not self.local_statistics
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return super().forward(x)
        x32 = x.float()
        count = torch.tensor([float(x.shape[0] * x.shape[2] * x.shape[3])], device=x.device)
        total = _sum_over_ranks(count)
        mean = _sum_over_ranks(x32.sum(dim=(0, 2, 3))) / total
        centred = x32 - mean[None, :, None, None]  # two passes: exact-ish, unlike E[x^2] - E[x]^2
        var = _sum_over_ranks((centred * centred).sum(dim=(0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                unbiased = var * (total / (total - 1).clamp_min(1))
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
                self.num_batches_tracked.add_(1)
        out = centred * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


# ---------------------------------------------------------------- DCGAN baseline


class DCGANGenerator(nn.Module):
    """Noise + species embedding -> 4x4 map -> (upsample, 3x3 conv, BN, ReLU) blocks -> tanh."""

    def __init__(
        self,
        num_classes: int,
        image_size: int,
        z_dim: int = 64,
        embed_dim: int = 64,
        channels: int = 64,
        spectral_init: str = "torch",
    ) -> None:
        super().__init__()
        blocks = num_blocks(image_size)
        widths = block_widths(channels, blocks)
        self.z_dim = z_dim
        self.embedding = SpeciesEmbedding(num_classes, embed_dim)
        self.stem = nn.Linear(z_dim + embed_dim, widths[0] * BASE_SIZE * BASE_SIZE)
        self.stem_norm = CrossRankBatchNorm2d(widths[0])
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False),
                CrossRankBatchNorm2d(widths[i + 1]),
                nn.ReLU(),
            )
            for i in range(blocks)
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.widths = widths

    def generate(self, z: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        h = self.stem(torch.cat([z, class_embedding.to(z.dtype)], dim=1))
        h = F.relu(self.stem_norm(h.view(z.shape[0], self.widths[0], BASE_SIZE, BASE_SIZE)))
        for block in self.blocks:
            h = block(h)
        return torch.tanh(self.to_rgb(h))

    def forward(self, z: torch.Tensor, species_ids: torch.Tensor) -> torch.Tensor:
        return self.generate(z, self.embedding(species_ids))


class DCGANDiscriminator(nn.Module):
    """Strided 4x4 conv blocks to 4x4, mean pooling, linear score + projection term.

    No BatchNorm: it couples samples in a batch, which breaks the gradient penalty
    of WGAN-GP and makes real and fake batches leak statistics into each other.
    Mean (not sum) pooling keeps the scores in a sane range without spectral norm.
    """

    def __init__(self, num_classes: int, image_size: int, channels: int = 64) -> None:
        super().__init__()
        blocks = num_blocks(image_size)
        widths = block_widths(channels, blocks)[::-1]  # full size -> 4x4
        self.from_rgb = nn.Conv2d(3, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.LeakyReLU(0.2)
            )
            for i in range(blocks)
        )
        self.score = nn.Linear(widths[-1], 1)
        self.embedding = SpeciesEmbedding(num_classes, widths[-1])

    def forward(self, images: torch.Tensor, species_ids: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.from_rgb(images), 0.2)
        for block in self.blocks:
            h = block(h)
        h = h.mean(dim=(2, 3))
        projection = (self.embedding(species_ids).to(h.dtype) * h).sum(dim=1)
        return self.score(h).squeeze(1) + projection


# ---------------------------------------------------------------- ResNet projection GAN


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose per-channel gain and bias are predicted from a condition vector."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = CrossRankBatchNorm2d(channels, affine=False)
        self.gain = spectral_norm(nn.Linear(cond_dim, channels, bias=False))
        self.bias = spectral_norm(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(cond)).to(x.dtype)[:, :, None, None]
        bias = self.bias(cond).to(x.dtype)[:, :, None, None]
        return self.norm(x) * gain + bias


class GeneratorBlock(nn.Module):
    """Residual up-block: CBN, ReLU, upsample, conv, CBN, ReLU, conv (+ upsampled 1x1 shortcut)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm(in_ch, cond_dim)
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.norm2 = ConditionalBatchNorm(out_ch, cond_dim)
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_up(F.relu(self.norm1(x, cond))))
        h = self.conv2(F.relu(self.norm2(h, cond)))
        return h + self.shortcut(_up(x))


class ResNetGenerator(nn.Module):
    """Hierarchical-z generator: one noise chunk + the shared embedding per block."""

    def __init__(
        self,
        num_classes: int,
        image_size: int,
        z_dim: int = 64,
        embed_dim: int = 64,
        channels: int = 64,
        spectral_init: str = "torch",
        colour_style: int = 0,
    ) -> None:
        super().__init__()
        blocks = num_blocks(image_size)
        widths = block_widths(channels, blocks)
        self.z_dim = z_dim
        self.z_chunks = split_sizes(z_dim, blocks + 1)
        self.embedding = SpeciesEmbedding(num_classes, embed_dim)
        self.stem = spectral_norm(nn.Linear(self.z_chunks[0], widths[0] * BASE_SIZE * BASE_SIZE))
        self.blocks = nn.ModuleList(
            GeneratorBlock(widths[i], widths[i + 1], embed_dim + self.z_chunks[i + 1])
            for i in range(blocks)
        )
        self.out_norm = CrossRankBatchNorm2d(widths[-1])
        # StyleGAN2's modulated toRGB, from the species and the whole noise: the
        # last features are scaled per image before they become colours
        self.colour_style = (
            spectral_norm(nn.Linear(embed_dim + z_dim, widths[-1], bias=False))
            if colour_style
            else None
        )
        self.to_rgb = spectral_norm(nn.Conv2d(widths[-1], 3, 3, padding=1))
        self.widths = widths
        orthogonal_init(self, spectral_init)

    def generate(self, z: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(z, self.z_chunks, dim=1)
        class_embedding = class_embedding.to(z.dtype)
        h = self.stem(chunks[0]).view(z.shape[0], self.widths[0], BASE_SIZE, BASE_SIZE)
        for block, chunk in zip(self.blocks, chunks[1:], strict=True):
            h = block(h, torch.cat([class_embedding, chunk], dim=1))
        h = F.relu(self.out_norm(h))
        if self.colour_style is not None:
            style = 1 + self.colour_style(torch.cat([class_embedding, z], dim=1))
            h = h * style.to(h.dtype)[:, :, None, None]
        return torch.tanh(self.to_rgb(h))

    def forward(self, z: torch.Tensor, species_ids: torch.Tensor) -> torch.Tensor:
        return self.generate(z, self.embedding(species_ids))


class DiscriminatorBlock(nn.Module):
    """Residual down-block; the first block skips the leading ReLU (it sees raw pixels)."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, first: bool) -> None:
        super().__init__()
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.shortcut = (
            spectral_norm(nn.Conv2d(in_ch, out_ch, 1)) if in_ch != out_ch or downsample else None
        )
        self.downsample = downsample
        self.first = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        skip = x
        if self.first:  # pool before the 1x1 conv on pixels: cheaper, same receptive field
            skip = F.avg_pool2d(skip, 2) if self.downsample else skip
            skip = self.shortcut(skip) if self.shortcut is not None else skip
        else:
            skip = self.shortcut(skip) if self.shortcut is not None else skip
            skip = F.avg_pool2d(skip, 2) if self.downsample else skip
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + skip


class ResNetDiscriminator(nn.Module):
    """Residual down-blocks to 4x4, one more block, sum pooling, linear + projection."""

    def __init__(
        self, num_classes: int, image_size: int, channels: int = 64, spectral_init: str = "torch"
    ) -> None:
        super().__init__()
        blocks = num_blocks(image_size)
        widths = [3, *block_widths(channels, blocks)[::-1][1:]]  # 3 -> ... -> 4x4 width
        layers = [
            DiscriminatorBlock(widths[i], widths[i + 1], downsample=True, first=(i == 0))
            for i in range(blocks)
        ]
        layers.append(DiscriminatorBlock(widths[-1], widths[-1], downsample=False, first=False))
        self.blocks = nn.ModuleList(layers)
        self.score = spectral_norm(nn.Linear(widths[-1], 1))
        self.embedding = SpeciesEmbedding(num_classes, widths[-1])
        orthogonal_init(self, spectral_init)
        self.embedding.table = spectral_norm(self.embedding.table)

    def forward(self, images: torch.Tensor, species_ids: torch.Tensor) -> torch.Tensor:
        h = images
        for block in self.blocks:
            h = block(h)
        h = F.relu(h).sum(dim=(2, 3))
        projection = (self.embedding(species_ids).to(h.dtype) * h).sum(dim=1)
        return self.score(h).squeeze(1) + projection


# ---------------------------------------------------------------- construction and files


def generator_kwargs(
    settings: Mapping[str, Any], num_classes: int, image_size: int
) -> dict[str, int]:
    """Constructor arguments of the generator, as plain ints (they go into generator.pt)."""
    kwargs = {
        "num_classes": int(num_classes),
        "image_size": int(image_size),
        "z_dim": int(settings.get("z_dim", GAN_DEFAULTS["z_dim"])),
        "embed_dim": int(settings.get("embed_dim", GAN_DEFAULTS["embed_dim"])),
        "channels": int(settings.get("g_channels", GAN_DEFAULTS["g_channels"])),
    }
    if settings.get("colour_style", GAN_DEFAULTS["colour_style"]):
        kwargs["colour_style"] = 1  # only when on: older generator.pt files lack the key
    return kwargs


def model_name(settings: Mapping[str, Any]) -> str:
    """``gan.model``, checked against ``GAN_MODELS``."""
    name = settings.get("model", GAN_DEFAULTS["model"])
    GAN_MODELS.pick(name)
    return name


def build_networks(
    settings: Mapping[str, Any], num_classes: int, image_size: int, seed: int = 0
) -> tuple[nn.Module, nn.Module]:
    """Create (G, D) for the configured model, initialised from ``seed`` only.

    Initialisation (and spectral norm's random start vectors) uses torch's global
    generator, so it runs inside ``fork_rng``: the caller's random state is left
    untouched and the weights depend on nothing but ``seed``.
    """
    model = GAN_MODELS[model_name(settings)]
    kwargs: dict[str, Any] = generator_kwargs(settings, num_classes, image_size)
    if model.spectral_norm:
        kwargs["spectral_init"] = spectral_init(settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = model.generator(**kwargs)
        discriminator = model.discriminator(settings, num_classes, image_size)
    return generator, discriminator


def spectral_init(settings: Mapping[str, Any]) -> str:
    """``gan.spectral_init`` (default ``"torch"``; ``orthogonal_init`` checks the value)."""
    return str(settings.get("spectral_init", GAN_DEFAULTS["spectral_init"]))


def _d_channels(settings: Mapping[str, Any]) -> int:
    return int(settings.get("d_channels", GAN_DEFAULTS["d_channels"]))


def _dcgan_discriminator(
    settings: Mapping[str, Any], num_classes: int, image_size: int
) -> nn.Module:
    return DCGANDiscriminator(
        num_classes=num_classes, image_size=image_size, channels=_d_channels(settings)
    )


def _resnet_discriminator(
    settings: Mapping[str, Any], num_classes: int, image_size: int
) -> nn.Module:
    return ResNetDiscriminator(
        num_classes=num_classes,
        image_size=image_size,
        channels=_d_channels(settings),
        spectral_init=spectral_init(settings),
    )


def _projected_discriminator(
    settings: Mapping[str, Any], num_classes: int, image_size: int
) -> nn.Module:
    from speciesgan.gan.projected import ProjectedDiscriminator

    channels = _d_channels(settings)
    input_size = settings.get("d_input_size")
    return ProjectedDiscriminator(
        num_classes,
        image_size,
        channels,
        None if input_size is None else int(input_size),
        spectral_init=spectral_init(settings),
        species_twin=bool(settings.get("species_twin", GAN_DEFAULTS["species_twin"])),
        species_groups=int(settings.get("species_groups", GAN_DEFAULTS["species_groups"])),
        pixel_head=bool(settings.get("pixel_head", GAN_DEFAULTS["pixel_head"])),
    )


@dataclass(frozen=True)
class GanModel:
    """One ``gan.model``: its generator class and how its discriminator is built."""

    generator: type[nn.Module]
    """Built from ``generator_kwargs`` (which generator.pt stores, so a file rebuilds it)."""
    discriminator: Callable[[Mapping[str, Any], int, int], nn.Module]
    """``(gan settings, num_classes, image_size) -> discriminator``."""
    spectral_norm: bool = True
    """The generator takes ``spectral_init`` (the DCGAN baseline has no spectral norm)."""


GAN_MODELS: Registry[GanModel] = Registry("gan.model")
"""Every ``gan.model`` (the schema's enum lists the same names; a test keeps them equal)."""
GAN_MODELS.add("dcgan", GanModel(DCGANGenerator, _dcgan_discriminator, spectral_norm=False))
GAN_MODELS.add("resnet", GanModel(ResNetGenerator, _resnet_discriminator))
# the ResNet generator against a discriminator on frozen ImageNet features
GAN_MODELS.add("projected", GanModel(ResNetGenerator, _projected_discriminator))


def _cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _generator_header(
    settings: Mapping[str, Any], species: list[str], image_size: int
) -> dict[str, Any]:
    kwargs = generator_kwargs(settings, len(species), image_size)
    return {
        "model": model_name(settings),
        "kwargs": kwargs,
        "species": list(species),
        "image_size": int(image_size),
        "z_dim": kwargs["z_dim"],
    }


def _save(path: str | Path, payload: dict[str, Any]) -> None:
    # a file object, not the temp path: torch would name the archive's root folder after
    # the (random) temp file name, and equal generators would not give equal bytes
    with atomic_open(path) as fh:
        torch.save(sealed(payload), fh)


def save_generator(
    path: str | Path,
    generator: nn.Module,
    settings: Mapping[str, Any],
    species: list[str],
    image_size: int,
    raw: nn.Module | None = None,
) -> None:
    """Write ``generator.pt`` (see docs/architecture.md): weights + constructor kwargs, plain data.

    ``generator`` is the one used for sampling (the EMA copy); ``raw``, when
    given, is the generator as trained, kept so the EMA's effect can be measured.
    """
    payload = {
        **_generator_header(settings, species, image_size),
        "state_dict": _cpu(generator.state_dict()),
    }
    if raw is not None:
        payload["raw_state_dict"] = _cpu(raw.state_dict())
    _save(path, payload)


def save_snapshots(
    path: str | Path,
    snapshots: Mapping[int, Mapping[str, torch.Tensor]],
    settings: Mapping[str, Any],
    species: list[str],
    image_size: int,
) -> None:
    """Write ``snapshots.pt``: the generator's header plus G-EMA weights by training step."""
    payload = {
        **_generator_header(settings, species, image_size),
        "snapshots": {str(step): _cpu(snapshots[step]) for step in sorted(snapshots)},
    }
    _save(path, payload)


def _read(path: Path, what: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: a checkpoint is data, so loading one never runs code."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SpeciesganError(f"{what} file not found: {path}") from exc
    except Exception as exc:  # corrupt or foreign file: say which file
        raise SpeciesganError(f"{path}: not a readable {what} checkpoint ({exc})") from exc
    if not isinstance(payload, dict):
        raise SpeciesganError(f"{path}: not a {what} checkpoint (top level is not a dict)")
    problem = seal_problem(payload)
    if problem:
        raise SpeciesganError(f"{path}: damaged {what} file: {problem}. The file is kept as it is")
    return payload


def _build(path: Path, payload: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> nn.Module:
    try:
        cls = GAN_MODELS[payload["model"]].generator
        generator = cls(**payload["kwargs"])
        generator.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise SpeciesganError(
            f"{path}: generator checkpoint does not match the code ({exc})"
        ) from exc
    return generator


def _meta(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {key: payload[key] for key in ("model", "species", "image_size", "z_dim", "kwargs")}


GENERATOR_WEIGHTS = ("ema", "raw")


def load_generator(
    path: str | Path, device: str | torch.device = "cpu", weights: str = "ema"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an eval-mode generator from ``generator.pt``; returns ``(generator, meta)``.

    ``weights="raw"`` loads the generator as trained instead of its EMA copy.
    """
    path = Path(path)
    if weights not in GENERATOR_WEIGHTS:
        raise SpeciesganError(
            f"generator weights must be one of {GENERATOR_WEIGHTS}, not {weights!r}"
        )
    payload = _read(path, "generator")
    key = "state_dict" if weights == "ema" else "raw_state_dict"
    if key not in payload:
        raise SpeciesganError(f"{path}: holds no {weights} generator weights ({key})")
    generator = _build(path, payload, payload[key])
    generator.to(device).eval()
    return generator, _meta(payload)


def load_snapshots(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[list[tuple[int, nn.Module]], dict[str, Any]]:
    """Eval-mode generators from ``snapshots.pt``, in step order, and the shared meta."""
    path = Path(path)
    payload = _read(path, "snapshots")
    if "snapshots" not in payload:
        raise SpeciesganError(f"{path}: not a snapshots file (no 'snapshots' entry)")
    generators = []
    for step in sorted(payload["snapshots"], key=int):
        generator = _build(path, payload, payload["snapshots"][step])
        generators.append((int(step), generator.to(device).eval()))
    return generators, _meta(payload)
