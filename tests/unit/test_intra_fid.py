"""Intra-class FID: each species' FID, None where a side has under 2 images, their mean."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speciesgan.metrics.fid import fid_from_features
from speciesgan.metrics.intra_fid import intra_class_fid
from speciesgan.util.errors import SpeciesganError

SPECIES = ["Alpha Dog", "Beta Bird", "Gamma Cat"]
DIMS = 6


def _features(rng: np.random.Generator, labels: np.ndarray, shift: float) -> np.ndarray:
    centres = np.random.default_rng(42).normal(scale=3.0, size=(len(SPECIES), DIMS))
    return centres[labels] + shift + rng.normal(size=(len(labels), DIMS))


def test_per_species_fid_and_the_mean_over_species_with_enough_images() -> None:
    rng = np.random.default_rng(0)
    real_labels = np.array([0] * 30 + [1] * 25 + [2] * 1)  # Gamma Cat: a single real crop
    fake_labels = np.tile([0, 1, 2], 20)  # interleaved, as labels need not be sorted
    real = _features(rng, real_labels, 0.0)
    fake = _features(rng, fake_labels, 0.4)
    result = intra_class_fid(real, real_labels, fake, fake_labels, SPECIES)
    expected = {
        name: fid_from_features(fake[fake_labels == k], real[real_labels == k])
        for k, name in enumerate(SPECIES[:2])
    }
    assert result["per_species"]["Gamma Cat"] is None
    for name, value in expected.items():
        assert result["per_species"][name] == pytest.approx(value, rel=1e-12)
    assert result["mean"] == pytest.approx(np.mean(list(expected.values())), rel=1e-12)
    assert list(result["per_species"]) == SPECIES
    assert json.loads(json.dumps(result)) == result


def test_mean_is_none_when_no_species_has_two_images_on_both_sides() -> None:
    rng = np.random.default_rng(1)
    real_labels, fake_labels = np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])
    result = intra_class_fid(
        _features(rng, real_labels, 0.0),
        real_labels,
        _features(rng, fake_labels, 0.0),
        fake_labels,
        SPECIES,
    )
    assert result == {"mean": None, "per_species": dict.fromkeys(SPECIES)}


def test_labels_that_do_not_fit_the_features_or_species_are_user_errors() -> None:
    rng = np.random.default_rng(2)
    labels = np.array([0, 0, 1, 1])
    features = _features(rng, labels, 0.0)
    with pytest.raises(SpeciesganError, match="fake labels have shape \\(3,\\) but there are 4"):
        intra_class_fid(features, labels, features, labels[:3], SPECIES)
    with pytest.raises(SpeciesganError, match="real labels must be species ids 0..2, found 0..3"):
        intra_class_fid(features, np.array([0, 1, 2, 3]), features, labels, SPECIES)
    with pytest.raises(SpeciesganError, match="species names repeat"):
        intra_class_fid(features, labels, features, labels, ["A", "A", "B"])
