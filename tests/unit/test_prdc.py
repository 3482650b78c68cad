"""Precision/recall and density/coverage: agreement with the reference code, behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import speciesgan.metrics.neighbours as neighbours
from speciesgan.metrics.prdc import density_coverage, precision_recall
from speciesgan.util.errors import SpeciesganError


def _sets(seed: int, real_count: int = 300, fake_count: int = 240, dims: int = 64):
    """Real and fake Gaussian features that overlap partly (no metric at 0 or 1)."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(real_count, dims))
    fake = rng.normal(loc=0.15, scale=1.1, size=(fake_count, dims))
    return real, fake


def _all(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    return {**precision_recall(real, fake, k=k), **density_coverage(real, fake, k=k)}


@pytest.mark.parametrize(("k", "seed"), [(3, 0), (5, 1), (1, 2)])
def test_prdc_agrees_with_the_prdc_package(k: int, seed: int) -> None:
    """Naeem et al.'s reference code; ties (where its open balls differ) have probability 0."""
    from prdc import compute_prdc

    real, fake = _sets(seed)
    reference = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    ours = _all(real, fake, k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(reference[key]), rel=1e-6), key
    assert 0.0 < ours["precision"] < 1.0 and 0.0 < ours["recall"] < 1.0


def test_precision_recall_agrees_with_torch_fidelity() -> None:
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real, fake = _sets(3, real_count=200, fake_count=260)
    # torch-fidelity's convention: features_1 is generated, features_2 is real
    precision, recall = calculate_precision_recall_full(
        torch.tensor(fake), torch.tensor(real), neighborhood=3
    )
    ours = precision_recall(real, fake)
    assert ours["precision"] == pytest.approx(precision, rel=1e-6)
    assert ours["recall"] == pytest.approx(recall, rel=1e-6)


def test_results_do_not_depend_on_the_chunk_size_and_blocks_stay_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large sets are processed in blocks; no block may exceed CHUNK_ROWS on either side."""
    real, fake = _sets(4, real_count=70, fake_count=53, dims=16)
    whole = _all(real, fake, 3)
    shapes: list[tuple[int, int]] = []
    cdist = torch.cdist

    def spy(a: torch.Tensor, b: torch.Tensor, **kwargs) -> torch.Tensor:
        shapes.append((a.shape[0], b.shape[0]))
        return cdist(a, b, **kwargs)

    monkeypatch.setattr(neighbours, "CHUNK_ROWS", 16)
    monkeypatch.setattr(torch, "cdist", spy)
    assert _all(real, fake, 3) == whole
    assert max(max(shape) for shape in shapes) == 16
    assert len(shapes) > 20  # many blocks: chunk edges (and the self-pair diagonal) were crossed


def test_identical_sets_score_one() -> None:
    real, _ = _sets(5)
    assert _all(real, real.copy(), 3) == {
        "precision": 1.0,
        "recall": 1.0,
        "density": pytest.approx(1.0),
        "coverage": 1.0,
    }


def test_duplicated_real_crops_still_contain_their_copies() -> None:
    """k+1 identical crops give radius 0: closed balls (the paper's <=) still hold their copies."""
    rng = np.random.default_rng(6)
    real = np.repeat(rng.normal(size=(20, 2048)) + 3.0, 4, axis=0)  # each crop 4 times, k=3
    result = precision_recall(real, real[::-1].copy(), k=3)
    assert result == {"precision": 1.0, "recall": 1.0}


def test_collapsed_fake_set_has_precision_but_no_recall_or_coverage() -> None:
    """A mode-collapsed generator: every fake sits on one of 3 real points."""
    real, _ = _sets(7)
    rng = np.random.default_rng(8)
    fake = real[rng.integers(0, 3, size=240)] + rng.normal(scale=1e-6, size=(240, 64))
    pr = precision_recall(real, fake)
    dc = density_coverage(real, fake)
    assert pr["precision"] == 1.0
    assert pr["recall"] <= 0.02
    # 3 points fall in the (wide, k=5) balls of some real neighbours, not of most
    assert dc["coverage"] <= 0.25
    fresh = np.random.default_rng(14).normal(size=(240, 64))  # same distribution as real
    assert density_coverage(real, fresh)["coverage"] >= 0.9


def test_shifted_fake_set_has_low_precision() -> None:
    real, _ = _sets(9)
    rng = np.random.default_rng(10)
    fake = rng.normal(loc=2.0, size=(240, 64))  # 16 std away: disjoint in 64-d
    result = _all(real, fake, 3)
    assert result["precision"] <= 0.01 and result["density"] <= 0.01
    assert result["recall"] <= 0.01 and result["coverage"] <= 0.01


@pytest.mark.parametrize(("real_count", "fake_count", "name"), [(3, 10, "real"), (10, 3, "fake")])
def test_precision_recall_needs_more_than_k_images_per_set(
    real_count: int, fake_count: int, name: str
) -> None:
    real, fake = _sets(11, real_count, fake_count, dims=8)
    with pytest.raises(SpeciesganError, match=rf"k=3 needs more than 3 {name} images, got 3"):
        precision_recall(real, fake, k=3)


def test_density_coverage_needs_more_than_k_real_images_and_a_fake_one() -> None:
    real, fake = _sets(12, 5, 4, dims=8)
    with pytest.raises(SpeciesganError, match=r"k=5 needs more than 5 real images, got 5"):
        density_coverage(real, fake, k=5)
    assert density_coverage(real, fake, k=4)["coverage"] >= 0.0  # 4 fakes are enough
    with pytest.raises(SpeciesganError, match="at least 1 fake image"):
        density_coverage(real, fake[:0], k=4)


def test_mismatched_feature_dims_and_bad_k_are_user_errors() -> None:
    real, fake = _sets(13, 20, 20, dims=8)
    with pytest.raises(SpeciesganError, match="8 dims but fake features have 6"):
        precision_recall(real, fake[:, :6])
    with pytest.raises(SpeciesganError, match="k must be a positive integer"):
        density_coverage(real, fake, k=0)
    with pytest.raises(SpeciesganError, match="NaN"):
        precision_recall(real, np.full_like(fake, np.nan))
