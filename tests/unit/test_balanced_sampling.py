"""Class-balanced sampling (``classifier.sampling`` / ``gan.sampling``) on a skewed toy set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from speciesgan.classifier.train import epoch_order
from speciesgan.classifier.train import resolve_settings as classifier_settings
from speciesgan.data.balanced import SpeciesIndex, identity_settings
from speciesgan.gan.training_loop import DeviceCrops, Ranks, build_trainer, resolve_settings
from speciesgan.util.errors import SpeciesganError

# species 0 has 400 crops, species 3 has one; species 4 has none (id gap on purpose)
SKEW = {0: 400, 1: 60, 2: 12, 3: 1, 5: 3}
DRAWS = 12_000
TOLERANCE = 0.03
"""Per-species share within 0.03 of 1/5: about 7 binomial standard deviations at
12,000 draws (sd 0.0037), while natural sampling gives species 3 a share of 0.002."""

CPU = torch.device("cpu")
TINY = {"z_dim": 8, "embed_dim": 4, "g_channels": 4, "d_channels": 4, "batch_size": 8}


def skewed_labels() -> torch.Tensor:
    """Species ids in a shuffled order, so rows of one species are not contiguous."""
    labels = torch.cat([torch.full((n,), k) for k, n in SKEW.items()])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def balanced_enough(species: torch.Tensor) -> bool:
    """Every species with crops within TOLERANCE of an equal share, none other drawn."""
    shares = torch.bincount(species, minlength=6).double() / len(species)
    expected = torch.tensor([0.2 if k in SKEW else 0.0 for k in range(6)], dtype=torch.float64)
    return bool(((shares - expected).abs() <= TOLERANCE).all())


def skewed_crops() -> DeviceCrops:
    """Crops whose pixels spell their own row number: channel 0 row // 256, channel 1 row % 256."""
    labels = skewed_labels()
    rows = torch.arange(len(labels))
    channels = torch.stack([rows // 256, rows % 256, rows % 256], dim=1).to(torch.uint8)
    images = channels.view(-1, 3, 1, 1).expand(-1, 3, 16, 16).contiguous()
    return DeviceCrops(images, labels, [f"s{k}" for k in range(6)], CPU)


def rows_of(images: torch.Tensor) -> torch.Tensor:
    """The row numbers ``skewed_crops`` wrote into a batch in [-1, 1]."""
    pixels = ((images[:, :2, 0, 0] + 1) * 127.5).round().long()
    return pixels[:, 0] * 256 + pixels[:, 1]


def test_balanced_rows_give_every_species_an_equal_share() -> None:
    labels = skewed_labels()
    rows = SpeciesIndex.from_labels(labels).draw_rows(DRAWS, torch.Generator().manual_seed(1))
    assert balanced_enough(labels[rows])
    natural = torch.randint(len(labels), (DRAWS,), generator=torch.Generator().manual_seed(1))
    assert not balanced_enough(labels[natural])  # the check can tell the two apart


def test_balanced_rows_are_uniform_within_a_species() -> None:
    labels = skewed_labels()
    rows = SpeciesIndex.from_labels(labels).draw_rows(DRAWS, torch.Generator().manual_seed(2))
    of_species_1 = rows[labels[rows] == 1]
    counts = torch.bincount(of_species_1, minlength=len(labels))[labels == 1]
    assert (counts > 0).all()  # every one of its 60 crops is drawn (about 40 times each)
    expected = len(of_species_1) / 60
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 120  # 59 degrees of freedom: p < 1e-5 above 120


def test_balanced_species_draws_skip_species_without_crops() -> None:
    index = SpeciesIndex.from_labels(skewed_labels())
    species = index.draw_species(DRAWS, torch.Generator().manual_seed(3))
    assert balanced_enough(species)
    assert not (species == 4).any()


def test_draws_follow_the_generator_state() -> None:
    index = SpeciesIndex.from_labels(skewed_labels())
    generator = torch.Generator().manual_seed(4)
    state = generator.get_state()
    first = index.draw_rows(64, generator)
    generator.set_state(state)
    assert torch.equal(first, index.draw_rows(64, generator))


def test_natural_classifier_epochs_are_the_permutation_they_always_were() -> None:
    old = torch.randperm(50, generator=torch.Generator().manual_seed(7 * 1_000_003 + 2))
    assert torch.equal(epoch_order(50, seed=7, epoch=2), old)


def test_balanced_classifier_epochs_are_balanced_and_reproducible() -> None:
    labels = skewed_labels()
    index = SpeciesIndex.from_labels(labels)
    orders = [epoch_order(len(labels), seed=7, epoch=e, balanced=index) for e in range(25)]
    assert all(len(order) == len(labels) for order in orders)
    assert torch.equal(orders[3], epoch_order(len(labels), seed=7, epoch=3, balanced=index))
    assert balanced_enough(labels[torch.cat(orders)])  # 25 epochs x 476 rows


def test_gan_natural_batches_are_unchanged() -> None:
    """With natural sampling the data stream is the one the loop always drew."""
    data = skewed_crops()
    cfg = resolve_settings({**TINY, "model": "dcgan"})
    trainer = build_trainer(data, None, cfg, seed=3, ranks=Ranks(), device=CPU)
    assert trainer.balanced is None
    expected = torch.Generator().manual_seed(3 * 1000 + 1)  # the "data" stream's seed
    images, species = data.real_batch(8, slice(0, 8), trainer.rngs["data"], trainer.balanced)
    index = torch.randint(len(data), (8,), generator=expected)
    mirror = torch.rand(8, generator=expected) < 0.5
    assert torch.equal(species, data.labels[index])
    plain = data.crops(index).float().div(127.5).sub(1.0)
    assert torch.equal(images, torch.where(mirror[:, None, None, None], plain.flip(3), plain))
    labels = data.species_batch(8, slice(0, 8), trainer.rngs["data"], trainer.balanced)
    assert torch.equal(labels, data.labels[torch.randint(len(data), (8,), generator=expected)])


def test_gan_balanced_real_and_generated_species_are_balanced() -> None:
    data = skewed_crops()
    cfg = resolve_settings({**TINY, "model": "dcgan", "sampling": "balanced"})
    trainer = build_trainer(data, None, cfg, seed=3, ranks=Ranks(), device=CPU)
    real, fake = [], []
    for _ in range(DRAWS // 64):
        images, species = data.real_batch(64, slice(0, 64), trainer.rngs["data"], trainer.balanced)
        assert torch.equal(data.labels[rows_of(images)], species)  # images match their labels
        real.append(species)
        fake.append(data.species_batch(64, slice(0, 64), trainer.rngs["data"], trainer.balanced))
    assert balanced_enough(torch.cat(real))
    assert balanced_enough(torch.cat(fake))


def test_gan_balanced_batch_is_the_same_global_batch_on_every_rank() -> None:
    """Two ranks keep complementary halves of the batch one process draws."""
    data = skewed_crops()
    cfg = resolve_settings({**TINY, "model": "dcgan", "sampling": "balanced"})
    single = build_trainer(data, None, cfg, seed=3, ranks=Ranks(), device=CPU)
    start = single.rngs["data"].get_state()
    whole = data.real_batch(8, slice(0, 8), single.rngs["data"], single.balanced)
    halves = []
    for rank in (0, 1):
        single.rngs["data"].set_state(start)
        on_rank = dataclasses.replace(single, ranks=Ranks(rank=rank, world_size=2))
        halves.append(data.real_batch(8, on_rank._part(), on_rank.rngs["data"], on_rank.balanced))
    assert torch.equal(torch.cat([h[0] for h in halves]), whole[0])
    assert torch.equal(torch.cat([h[1] for h in halves]), whole[1])


@pytest.mark.parametrize("resolve", [resolve_settings, classifier_settings])
def test_unknown_sampling_mode_is_a_user_error(resolve) -> None:  # noqa: ANN001
    with pytest.raises(SpeciesganError, match="sampling must be one of natural, balanced"):
        resolve({"sampling": "uniform"})


def test_natural_sampling_keeps_the_run_identity_it_had_before_the_setting() -> None:
    """Checkpoints written before ``sampling`` existed stay resumable under natural."""
    settings = {"steps": 4, "batch_size": 8}
    assert identity_settings({**settings, "sampling": "natural"}) == settings
    assert identity_settings({**settings, "sampling": "balanced"}) != settings


def test_gan_sampling_setting_reaches_the_training_loop(tmp_path: Path) -> None:
    """train-gan with balanced sampling trains on other batches than with natural."""
    from speciesgan.gan import checkpoint as ckpt
    from tests.unit.test_gan import run, write_manifest

    manifest = write_manifest(tmp_path / "data")
    natural = run(manifest, tmp_path / "natural", steps=2)
    balanced = run(manifest, tmp_path / "balanced", steps=2, sampling="balanced")
    assert natural.read_bytes() != balanced.read_bytes()
    # natural keeps the run identity of checkpoints from before the setting existed
    settings = resolve_settings({"steps": 2})
    before = {key: value for key, value in settings.items() if key != "sampling"}
    assert ckpt.run_identity(identity_settings(settings), 3, manifest, None) == ckpt.run_identity(
        before, 3, manifest, None
    )
