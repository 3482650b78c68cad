"""Long-tail metrics: accuracy by frequency bin, and ID against OOD camera locations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from speciesgan.classifier.train import DEFAULTS as CLASSIFIER_DEFAULTS
from speciesgan.classifier.train import final_metrics
from speciesgan.data.dataset import CropSet, open_split
from speciesgan.metrics.evaluate import classifier_accuracy
from speciesgan.metrics.feature_spaces import features_of, lite0_space
from speciesgan.metrics.fid import RealFeatures, fid_from_features
from speciesgan.metrics.frequency_bins import accuracy_by_bin, species_bins
from speciesgan.metrics.id_ood import id_ood_metrics, mapped_accuracy
from tests.unit.test_evaluate_metrics import CropBank, _stripes

NAMES = [f"s{k}" for k in range(7)]
COUNTS = [5, 100, 1, 30, 7, 2, 50]


def test_bins_are_thirds_of_the_species_sorted_by_train_crops() -> None:
    bins = species_bins(COUNTS, NAMES)
    assert bins == {"head": ["s1", "s6", "s3"], "middle": ["s4", "s0"], "tail": ["s5", "s2"]}
    assert species_bins([3, 3, 3], ["a", "b", "c"]) == {
        "head": ["a"],
        "middle": ["b"],
        "tail": ["c"],
    }  # fmt: skip  (ties: lower species id first)


def test_bin_accuracy_is_the_mean_over_its_species_with_a_figure() -> None:
    accuracy = {"s1": 1.0, "s6": 0.5, "s3": 0.0, "s4": 0.25, "s5": None}  # s0, s2: no test crops
    table = accuracy_by_bin(COUNTS, NAMES, {"test_top1": accuracy})["bins"]
    assert table["head"]["test_top1"] == pytest.approx(0.5)
    assert table["middle"]["test_top1"] == pytest.approx(0.25)
    assert table["tail"]["test_top1"] is None
    assert table["head"]["train_crops"] == 180 and table["tail"]["train_crops_range"] == [1, 2]


def test_fewer_species_than_bins_keep_the_rarest_as_the_tail() -> None:
    table = accuracy_by_bin([4, 9], ["a", "b"], {"generated_top1": {"a": 1.0, "b": 0.0}})["bins"]
    assert table["head"]["species"] == ["b"] and table["head"]["generated_top1"] == 0.0
    assert table["tail"]["species"] == ["a"] and table["tail"]["generated_top1"] == 1.0
    assert table["middle"] == {
        "species": [], "train_crops": 0, "train_crops_range": None, "generated_top1": None
    }  # fmt: skip
    assert species_bins([4], ["a"]) == {"head": ["a"], "middle": [], "tail": []}


def test_classifier_metrics_give_test_top1_per_frequency_bin() -> None:
    """From real logits: species 0 (head) always right, species 2 (tail) always wrong."""
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 0, 1, 0, 1, 1])
    logits = torch.nn.functional.one_hot(predicted, 3).float()
    test = CropSet(torch.zeros(6, 3, 8, 8, dtype=torch.uint8), labels, ["a", "b", "c"], ["x"] * 3)
    info = {"arch": "a", "init": "none", "weights": "none", "weights_sha256": None}
    metrics = final_metrics(logits, test, 60, CLASSIFIER_DEFAULTS, info, [], [50, 8, 2])
    bins = metrics["frequency_bins"]["bins"]
    assert [bins[b]["test_top1"] for b in ("head", "middle", "tail")] == [1.0, 0.5, 0.0]
    assert metrics["top1"] == pytest.approx(0.5) and metrics["sampling"] == "natural"


def _manifest_with_ood(root: Path, size: int = 32) -> Path:
    """Train and test: horizontal (0) and vertical (1) stripes; ood: the same species as noise.

    The ood crops stand for new camera locations: the same species, looking
    unlike anything trained on.
    """
    rng = np.random.default_rng(0)
    parts, rows = [], []
    for split, count in (("train", 8), ("test", 4)):
        for species, vertical in ((0, False), (1, True)):
            parts.append(_stripes(rng, count, vertical, size))
            rows += [(split, species)] * count
    for species in (0, 1):
        parts.append(rng.integers(0, 256, (6, 3, size, size), dtype=np.uint8))
        rows += [("ood", species)] * 6
    images = np.concatenate(parts)
    (root / "shards").mkdir(parents=True)
    np.save(root / "shards" / "shard-000.npy", images.transpose(0, 2, 3, 1).copy())
    frame = pd.DataFrame(
        {
            "species": [("Horizontal", "Vertical")[s] for _, s in rows],
            "species_id": np.array([s for _, s in rows], dtype=np.int32),
            "category": "stripes",
            "split": [split for split, _ in rows],
            "shard": np.int32(0),
            "index": np.arange(len(rows), dtype=np.int32),
        }
    )
    frame.to_parquet(root / "manifest.parquet")
    return root / "manifest.parquet"


def _real(space, manifest: Path, split: str) -> RealFeatures:  # noqa: ANN001
    mapped = open_split(manifest, split)
    features = features_of(space, mapped.gather_all(), 8).astype(np.float64)
    return RealFeatures(features, mapped.labels.numpy(), mapped.species, Path("unused"))


def test_id_and_ood_figures_show_a_generator_that_copies_the_training_locations(
    tmp_path: Path,
) -> None:
    manifest = _manifest_with_ood(tmp_path)
    space = lite0_space()
    train = open_split(manifest, "train")
    generator = CropBank(train.gather_all().numpy(), train.labels.numpy())
    labels = np.repeat([0, 1], 6)
    balanced = features_of(space, _generate(generator, labels), 8)
    test, ood = _real(space, manifest, "test"), _real(space, manifest, "ood")
    classifier = _StripeClassifier()
    result = id_ood_metrics(
        generator=generator, classifier=classifier, ood_split=open_split(manifest, "ood"),
        ood_features=ood, id_test_top1=0.9, id_test_images=8, id_test_features=test,
        balanced=balanced, balanced_labels=labels, space=space, seed=0, batch_size=5,
    )  # fmt: skip
    # the same number of real crops on both sides: the test split's 8, 8 of the 12 ood
    assert result["num_images"]["fd_real_per_side"] == 8
    fd = result["fd_lite0"]
    assert fd["id"] is not None and fd["ood"] > 2 * fd["id"]  # copies: far from new places
    assert fd["id"] == pytest.approx(fid_from_features(balanced, test.features))  # 6 + 6 mix
    ood_split = open_split(manifest, "ood")
    expected = classifier_accuracy(classifier, ood_split.gather_all(), ood_split.labels).mean()
    assert result["classifier_top1"] == {"id": 0.9, "ood": pytest.approx(float(expected))}
    assert result["num_images"]["ood"] == 12 and result["num_images"]["fd_generated_per_side"] == 12
    assert mapped_accuracy(classifier, ood_split, 5) == pytest.approx(float(expected))


def _generate(generator: CropBank, labels: np.ndarray) -> torch.Tensor:
    from speciesgan.generate.sample import latents, quantize

    z = latents(len(labels), generator.z_dim, 0)
    with torch.no_grad():
        return quantize(generator(z, torch.as_tensor(labels)))


class _StripeClassifier(torch.nn.Module):
    """Horizontal stripes change down the rows, vertical ones across the columns."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        down = (images[:, :, 1:] - images[:, :, :-1]).abs().mean(dim=(1, 2, 3))
        across = (images[..., 1:] - images[..., :-1]).abs().mean(dim=(1, 2, 3))
        return torch.stack([down, across], dim=1)


@pytest.mark.slow
def test_evaluate_writes_bins_and_id_ood_when_the_manifest_has_ood_crops(tmp_path: Path) -> None:
    from speciesgan.metrics.evaluate import evaluate
    from tests.unit.test_metrics import _trained_files

    manifest = _manifest_with_ood(tmp_path / "data", size=16)
    generator, classifier = _trained_files(tmp_path, ["Horizontal", "Vertical"], 16)
    out = tmp_path / "eval" / "metrics.json"
    settings = {
        "images_per_species": 3,
        "is_splits": 1,
        "batch_size": 8,
        "cas": False,
        "dinov2": None,
    }
    evaluate(generator, manifest, classifier, out, settings, seed=1, threads=1)
    result = json.loads(out.read_text())
    id_ood = result["id_ood"]
    assert set(id_ood["classifier_top1"]) == {"id", "ood"}
    assert all(0 <= value <= 1 for value in id_ood["classifier_top1"].values())
    assert id_ood["fd_lite0"]["id"] > 0 and id_ood["fd_lite0"]["ood"] > 0
    assert id_ood["num_images"]["id_test"] == 8 and id_ood["num_images"]["ood"] == 12
    bins = result["frequency_bins"]["bins"]
    assert bins["head"]["species"] == ["Horizontal"] and bins["tail"]["species"] == ["Vertical"]
    assert bins["head"]["generated_top1"] == result["accuracy_per_species"]["Horizontal"]
    cached = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "eval" / "fid_cache").iterdir())
    # the train split's, the ood crops' and (beside them) the ID test crops'
    assert cached == ["real", "real-lite0", "real-lite0", "real-lite0"]


def test_infrared_summary_counts_crops_per_split_and_dropped_photos_once() -> None:
    """A frame with two animals is two rejected crops but one infrared photo dropped."""
    import pandas as pd

    from speciesgan.report.long_tail import GREYSCALE_REJECT, greyscale_summary

    manifest = pd.DataFrame(
        {"split": ["train", "train", "train", "test"], "greyscale": [True, False, False, True]}
    )
    rejects = pd.DataFrame(
        {
            "file": ["night1.jpg", "night1.jpg", "night2.jpg", "blurred.jpg"],
            "reason": [GREYSCALE_REJECT, GREYSCALE_REJECT, GREYSCALE_REJECT, "unreadable"],
        }
    )
    summary = greyscale_summary(manifest, rejects)
    assert summary["greyscale"] == 2 and summary["share"] == pytest.approx(0.5)
    assert summary["by_split"]["train"] == {
        "crops": 3,
        "greyscale": 1,
        "share": pytest.approx(1 / 3),
    }
    assert summary["dropped_photos"] == 2
    assert greyscale_summary(manifest.drop(columns="greyscale"), rejects) is None
