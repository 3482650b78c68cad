"""The evaluate stage's streamed generation, feature spaces and CAS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from speciesgan.data.dataset import CropSet
from speciesgan.generate.sample import generate_images
from speciesgan.metrics.feature_spaces import features_of, lite0_space
from speciesgan.metrics.generated import generated_outputs, regenerate
from speciesgan.metrics.inception import inception_outputs, load_inception


@pytest.fixture(scope="module")
def inception():
    return load_inception("pretrained_or_random")


def _small_generator(num_species: int = 3, size: int = 32) -> nn.Module:
    from speciesgan.gan.networks import build_networks

    settings = {"model": "dcgan", "z_dim": 8, "embed_dim": 4, "g_channels": 4, "d_channels": 4}
    generator, _ = build_networks(settings, num_species, size, seed=0)
    return generator.eval()


def test_streamed_outputs_equal_generating_everything_then_embedding(inception) -> None:
    """Streaming batch by batch must not change a single feature, logit or image."""
    generator = _small_generator()
    labels = torch.arange(3).repeat_interleave(5)
    lite0 = lite0_space()
    streamed = generated_outputs(generator, labels, seed=4, batch_size=4, inception=inception,
                                 spaces=[lite0])  # fmt: skip
    images = generate_images(generator, labels, seed=4, batch_size=4)
    features, logits = inception_outputs(inception, images, batch_size=4)
    np.testing.assert_array_equal(streamed.inception, features)
    np.testing.assert_array_equal(streamed.logits, logits)
    np.testing.assert_array_equal(streamed.spaces["lite0"], features_of(lite0, images, 4))
    assert streamed.correct is None and streamed.labels.tolist() == labels.tolist()
    # any row can be made again from its index (the memorisation pictures rely on it)
    assert torch.equal(regenerate(generator, labels, 4, [13, 2]), images[[13, 2]])


def test_lite0_features_tell_shapes_apart_that_inception_placeholders_cannot_rank() -> None:
    """FD-Lite0 must mean something offline: same-shape sets are closer than other-shape sets."""
    from speciesgan.metrics.fid import fid_from_features

    rng = np.random.default_rng(0)
    stripes_h, stripes_v = _stripes(rng, 40, vertical=False), _stripes(rng, 40, vertical=True)
    more_h = _stripes(rng, 40, vertical=False)
    space = lite0_space()
    a, b, c = (features_of(space, torch.from_numpy(x), 20) for x in (stripes_h, more_h, stripes_v))
    assert a.shape == (40, 1280)
    assert fid_from_features(a, b) < 0.5 * fid_from_features(a, c)


def _stripes(rng: np.random.Generator, count: int, vertical: bool, size: int = 32) -> np.ndarray:
    """uint8 [N, 3, S, S] stripes in random colours and phases: the species is the orientation."""
    images = np.empty((count, 3, size, size), dtype=np.uint8)
    coords = np.arange(size)
    for i in range(count):
        period = rng.integers(6, 10)
        wave = ((coords + rng.integers(0, period)) // (period // 2)) % 2
        pattern = wave[None, :] if vertical else wave[:, None]
        pattern = np.broadcast_to(pattern, (size, size))
        colours = rng.integers(0, 256, size=(2, 3))
        images[i] = np.where(pattern[None], colours[0][:, None, None], colours[1][:, None, None])
    return images


class CropBank(nn.Module):
    """A stand-in generator that returns stored crops of the species it is asked for.

    ``shift`` makes it draw species ``(id + shift) % K`` instead: a generator whose
    images are perfect photos of the wrong species.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, shift: int = 0) -> None:
        super().__init__()
        self.z_dim = 4
        self.register_buffer("images", torch.from_numpy(images).float() / 127.5 - 1.0)
        self.labels = torch.as_tensor(labels)
        self.shift = shift
        self.anchor = nn.Parameter(torch.zeros(1))  # where the "generator" lives

    def forward(self, z: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        wanted = (species.cpu() + self.shift) % int(self.labels.max() + 1)
        rows = []
        for latent, k in zip(z.cpu(), wanted, strict=True):
            candidates = (self.labels == k).nonzero().flatten()
            rows.append(candidates[int(abs(float(latent[0])) * 1000) % len(candidates)])
        return self.images[torch.stack(rows)]


def test_cas_is_high_for_faithful_images_and_low_for_the_wrong_species() -> None:
    from speciesgan.metrics.cas import classification_accuracy_score

    rng = np.random.default_rng(1)
    size = 48  # at 32 px Lite0's last maps are 1x1 and 3-4 epochs are not always enough
    train = np.concatenate([_stripes(rng, 24, False, size), _stripes(rng, 24, True, size)])
    train_labels = np.repeat([0, 1], 24)
    test_images = np.concatenate([_stripes(rng, 10, False, size), _stripes(rng, 10, True, size)])
    test = CropSet(
        images=torch.from_numpy(test_images),
        labels=torch.from_numpy(np.repeat([0, 1], 10)),
        species=["Horizontal", "Vertical"],
        categories=["x", "x"],
    )
    recipe = {"arch": "efficientnet_lite0", "pretrained": "imagenet", "epochs": 4,
              "batch_size": 8, "lr": 0.003, "weight_decay": 0.01, "label_smoothing": 0.0}  # fmt: skip
    counts = np.array([24, 24])
    faithful = classification_accuracy_score(CropBank(train, train_labels), counts, test, recipe, 0)
    wrong = classification_accuracy_score(
        CropBank(train, train_labels, shift=1), counts, test, recipe, 0
    )
    assert faithful["top1"] >= 0.85, faithful
    assert wrong["top1"] <= 0.15, wrong
    assert faithful["train_images"] == 48 and faithful["test_images"] == 20
    assert set(faithful["per_species"]) == {"Horizontal", "Vertical"}
    again = classification_accuracy_score(CropBank(train, train_labels), counts, test, recipe, 0)
    assert again == faithful  # seeded: the same run gives the same score
