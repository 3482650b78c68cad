"""Memorisation check: copies of training crops are flagged and paired with their source."""

from __future__ import annotations

import json

import numpy as np
import pytest

import speciesgan.metrics.neighbours as neighbours
from speciesgan.metrics.memorisation import memorisation
from speciesgan.util.errors import SpeciesganError

DIMS = 32


def test_near_copies_of_training_crops_are_flagged_and_point_at_their_source() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, DIMS))
    generated = rng.normal(size=(100, DIMS))
    copied = {10: 7, 20: 50, 30: 123, 40: 311}  # generated row -> training row it copies
    for row, source in copied.items():
        generated[row] = train[source] + rng.normal(scale=1e-6, size=DIMS)
    result = memorisation(train, generated, pairs=6)
    closest = result["pairs"][:4]
    assert {pair["generated"]: pair["train"] for pair in closest} == copied
    assert all(pair["distance"] < 1e-4 for pair in closest)
    assert len(result["pairs"]) == 6
    distances = [pair["distance"] for pair in result["pairs"]]
    assert distances == sorted(distances) and distances[4] > result["threshold"] / 2
    assert 0.04 <= result["fraction"] <= 0.07  # the 4 copies, perhaps a fresh one or two
    assert json.loads(json.dumps(result)) == result  # plain ints and floats: JSON-ready


def test_fresh_samples_of_the_training_distribution_are_rarely_flagged() -> None:
    """About ``percentile`` % of fresh samples: they are as close as train crops are to each other."""
    rng = np.random.default_rng(1)
    train = rng.normal(size=(2000, DIMS))
    fresh = rng.normal(size=(2000, DIMS))
    result = memorisation(train, fresh)
    assert result["fraction"] <= 0.03
    assert memorisation(train, fresh, percentile=50.0)["fraction"] == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("refine_pairs", [neighbours.REFINE_PAIRS, 7])
def test_duplicated_training_crops_give_threshold_zero_and_exact_copies_are_flagged(
    monkeypatch: pytest.MonkeyPatch, refine_pairs: int
) -> None:
    """Duplicates in train are at distance exactly 0 (documented): only exact copies count then."""
    monkeypatch.setattr(neighbours, "REFINE_PAIRS", refine_pairs)
    rng = np.random.default_rng(2)
    crops = rng.normal(loc=0.5, size=(180, 2048))  # Inception-sized: cancellation would show
    train = np.concatenate([crops, crops[:20]])  # 40 of 200 crops (20 %) have a twin
    generated = np.concatenate([rng.normal(loc=0.5, size=(9, 2048)), train[[3]]])
    result = memorisation(train, generated, percentile=1.0, pairs=1)
    assert result["threshold"] == 0.0
    assert result["pairs"] == [{"generated": 9, "train": 3, "distance": 0.0}]
    assert result["fraction"] == pytest.approx(0.1)


def test_results_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=(90, DIMS))
    generated = np.concatenate([rng.normal(size=(40, DIMS)), train[[5, 77]] + 1e-7])
    whole = memorisation(train, generated, pairs=5)
    monkeypatch.setattr(neighbours, "CHUNK_ROWS", 16)
    chunked = memorisation(train, generated, pairs=5)
    # block shapes change the matrix-product rounding in the last bits, nothing more
    assert chunked["fraction"] == whole["fraction"]
    assert chunked["threshold"] == pytest.approx(whole["threshold"], rel=1e-12)
    for ours, reference in zip(chunked["pairs"], whole["pairs"], strict=True):
        assert ours == {**reference, "distance": pytest.approx(reference["distance"], rel=1e-9)}
    assert {pair["train"] for pair in whole["pairs"][:2]} == {5, 77}


def test_bad_inputs_are_user_errors() -> None:
    rng = np.random.default_rng(4)
    train, generated = rng.normal(size=(10, DIMS)), rng.normal(size=(5, DIMS))
    with pytest.raises(SpeciesganError, match="at least 2 training images, got 1"):
        memorisation(train[:1], generated)
    with pytest.raises(SpeciesganError, match="at least 1 generated image"):
        memorisation(train, generated[:0])
    with pytest.raises(SpeciesganError, match=r"percentile must be in \[0, 100\], got 150"):
        memorisation(train, generated, percentile=150)
    with pytest.raises(SpeciesganError, match="pairs must be an integer >= 0"):
        memorisation(train, generated, pairs=-1)
    with pytest.raises(SpeciesganError, match="training features have 32 dims"):
        memorisation(train, generated[:, :4])
