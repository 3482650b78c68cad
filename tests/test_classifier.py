"""The species classifier: weights loading, file format, training, reproducibility, resume."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from speciesgan.classifier.model import (
    SpeciesClassifier,
    build_efficientnet_b0,
    load_classifier,
    save_classifier,
    uint8_to_model_range,
)
from speciesgan.classifier.train import augment_batch, resume_path, train_classifier
from speciesgan.data.dataset import load_split
from speciesgan.errors import SpeciesganError
from speciesgan.preemption import TrainingInterrupted
from speciesgan.weights import EFFICIENTNET_B0_FILE, cached_weights, file_sha256

SHAPES = ["disc", "square", "hbar", "vbar"]
COLOURS = {
    "disc": (230, 60, 60),
    "square": (60, 220, 60),
    "hbar": (70, 90, 240),
    "vbar": (230, 220, 50),
}
IMAGE_SIZE = 32
# enough steps to learn the shapes (~15 s here); a higher peak LR than the default
# because this run is ~60 steps, not hundreds
LEARN = {"epochs": 6, "batch_size": 8, "lr": 5e-3, "pretrained": "none"}
# reproducibility and resume only need a few steps, spread over more than one epoch
SHORT = {"epochs": 2, "batch_size": 16, "pretrained": "none"}


def _draw(shape: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One noisy image of ``shape`` in its species colour at a random place and scale.

    Colour and shape both mark the species, so a working loop learns it within a
    few dozen steps; a broken one stays at chance (0.25).
    """
    image = rng.integers(0, 60, (size, size, 3)).astype(np.float64)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
    radius = rng.uniform(size * 0.2, size * 0.3)
    if shape == "disc":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    elif shape == "square":
        mask = (abs(yy - cy) < radius * 0.8) & (abs(xx - cx) < radius * 0.8)
    elif shape == "hbar":
        mask = (abs(yy - cy) < radius * 0.3) & (abs(xx - cx) < radius * 1.4)
    else:
        mask = (abs(yy - cy) < radius * 1.4) & (abs(xx - cx) < radius * 0.3)
    image[mask] = np.array(COLOURS[shape]) + rng.uniform(-25, 25, 3)
    return image.clip(0, 255).astype(np.uint8)


def write_tiny_manifest(folder: Path, per_species: int = 20, seed: int = 0) -> Path:
    """A manifest + one shard (docs/architecture.md) of 4 shape 'species', per split."""
    rng = np.random.default_rng(seed)
    images, rows = [], []
    for split in ("train", "test"):
        for species_id, shape in enumerate(SHAPES):
            for _ in range(per_species):
                rows.append(
                    {
                        "dataset": "shapes",
                        "file": f"/nowhere/{shape}/{len(rows):04d}.jpg",
                        "species": shape,
                        "species_id": species_id,
                        "category": "shape",
                        "split": split,
                        "shard": 0,
                        "index": len(rows),
                    }
                )
                images.append(_draw(shape, rng, IMAGE_SIZE))
    frame = pd.DataFrame(rows)
    for column in ("box_x0", "box_y0", "box_x1", "box_y1", "crop_x0", "crop_y0"):
        frame[column] = np.int32(0)
    frame["crop_size"] = np.int32(IMAGE_SIZE)
    frame["sha256"] = "0" * 64
    for column in ("species_id", "shard", "index"):
        frame[column] = frame[column].astype(np.int32)
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    np.save(folder / "shards" / "shard-000.npy", np.stack(images))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"speciesgan.image_size": str(IMAGE_SIZE).encode()}
    )
    manifest = folder / "manifest.parquet"
    pq.write_table(table, manifest)
    return manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_manifest(tmp_path_factory.mktemp("data"))


def _train(manifest: Path, out: Path, settings: dict, **kwargs) -> tuple[Path, Path]:
    model, metrics = out / "model.pt", out / "metrics.json"
    train_classifier(manifest, model, metrics, dict(settings), seed=3, threads=1, **kwargs)
    return model, metrics


@pytest.fixture(scope="module")
def short_run(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _train(manifest, tmp_path_factory.mktemp("short"), SHORT)


def _same_weights(path_a: Path, path_b: Path) -> bool:
    a = torch.load(path_a, weights_only=True)["state_dict"]
    b = torch.load(path_b, weights_only=True)["state_dict"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_gives_one_logit_per_species_for_small_images() -> None:
    torch.manual_seed(0)
    network, _ = build_efficientnet_b0(5, "none")
    model = SpeciesClassifier(network, list("abcde"), IMAGE_SIZE).eval()
    images = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    seen_sizes = []
    network.register_forward_pre_hook(lambda _, args: seen_sizes.append(args[0].shape[-1]))
    upsampling = SpeciesClassifier(network, list("abcde"), IMAGE_SIZE, min_size=64).eval()
    assert upsampling(images).shape == (3, 5)
    assert model(images).shape == (3, 5)
    assert seen_sizes == [64, IMAGE_SIZE]  # resized only when asked to


def test_imagenet_init_loads_the_cached_file_and_reports_its_hash() -> None:
    cached = cached_weights(EFFICIENTNET_B0_FILE)
    assert cached is not None  # conftest puts a placeholder there
    network, info = build_efficientnet_b0(7, "imagenet")
    assert info == {"init": "imagenet", "weights_sha256": file_sha256(cached)}
    reference = torch.load(cached, weights_only=True)
    state = network.state_dict()
    assert torch.equal(state["features.0.0.weight"], reference["features.0.0.weight"])
    assert state["classifier.1.weight"].shape == (7, 1280)


def test_missing_imagenet_weights_fall_back_to_scratch_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty_hub"))
    try:
        with caplog.at_level(logging.WARNING):
            network, info = build_efficientnet_b0(3, "imagenet")
    finally:
        torch.hub.set_dir(previous)
    assert info == {"init": "scratch", "weights_sha256": None}
    assert EFFICIENTNET_B0_FILE in caplog.text
    assert not (tmp_path / "empty_hub" / "checkpoints" / EFFICIENTNET_B0_FILE).exists()
    assert network.state_dict()["classifier.1.weight"].shape == (3, 1280)


def test_unknown_pretrained_choice_is_a_user_error() -> None:
    with pytest.raises(SpeciesganError, match="pretrained"):
        build_efficientnet_b0(3, "imagenet21k")


def test_saved_classifier_reloads_frozen_with_identical_logits(tmp_path: Path) -> None:
    torch.manual_seed(1)
    network, info = build_efficientnet_b0(4, "none")
    model = SpeciesClassifier(network, SHAPES, IMAGE_SIZE).eval()
    path = tmp_path / "model.pt"
    save_classifier(path, model, SHAPES, IMAGE_SIZE, info)
    loaded = load_classifier(path)
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    assert torch.equal(loaded(images), model(images))
    assert loaded.species == SHAPES and loaded.image_size == IMAGE_SIZE
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left


def test_missing_or_corrupt_classifier_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pt"
    with pytest.raises(SpeciesganError, match="absent.pt"):
        load_classifier(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(SpeciesganError, match="corrupt.pt"):
        load_classifier(corrupt)


def test_augmentation_keeps_shape_and_range_and_follows_the_generator() -> None:
    images = torch.rand(8, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    first = augment_batch(images, torch.Generator().manual_seed(0))
    again = augment_batch(images, torch.Generator().manual_seed(0))
    other = augment_batch(images, torch.Generator().manual_seed(1))
    assert first.shape == images.shape
    assert first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_training_learns_the_species_and_saves_a_consistent_model(
    manifest: Path, tmp_path: Path
) -> None:
    model_path, metrics_path = _train(manifest, tmp_path, LEARN)
    metrics = pd.read_json(metrics_path, typ="series")
    assert metrics["num_classes"] == 4 and metrics["num_train"] == 80 and metrics["num_test"] == 80
    assert len(metrics["history"]) == LEARN["epochs"]
    assert metrics["top1"] >= 0.6  # chance is 0.25; this seed reaches 0.875
    assert set(metrics["per_species_top1"]) == set(SHAPES)
    assert metrics["top5"] == 1.0  # k = min(5, 4 classes): every label is in the top 4
    assert metrics["init"] == "scratch"
    # the saved model reproduces the reported accuracy on the test split
    test = load_split(manifest, "test")
    classifier = load_classifier(model_path)
    with torch.no_grad():
        predicted = classifier(uint8_to_model_range(test.images)).argmax(dim=1)
    assert round(float((predicted == test.labels).float().mean()), 6) == metrics["top1"]
    assert not resume_path(model_path).exists()


def test_same_seed_gives_identical_metrics_and_weights(
    short_run: tuple[Path, Path], manifest: Path, tmp_path: Path
) -> None:
    model_b, metrics_b = _train(manifest, tmp_path, SHORT)
    model_a, metrics_a = short_run
    assert metrics_a.read_bytes() == metrics_b.read_bytes()
    assert _same_weights(model_a, model_b)


def test_interrupted_then_resumed_training_equals_an_uninterrupted_run(
    short_run: tuple[Path, Path], manifest: Path, tmp_path: Path
) -> None:
    def stop_mid_epoch(epoch: int, step: int) -> None:
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGUSR1)  # what SLURM's --signal warning sends

    with pytest.raises(TrainingInterrupted):
        _train(manifest, tmp_path, SHORT, on_step=stop_mid_epoch)
    assert resume_path(tmp_path / "model.pt").is_file()
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.json").exists()

    model_b, metrics_b = _train(manifest, tmp_path, SHORT)
    model_a, metrics_a = short_run
    assert metrics_a.read_bytes() == metrics_b.read_bytes()
    assert _same_weights(model_a, model_b)
    assert not resume_path(model_b).exists()


def test_resume_file_from_other_settings_is_ignored(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = {**SHORT, "epochs": 1}
    monkeypatch.setenv("SPECIESGAN_DEADLINE", "1")  # long past: stop before the first step
    with pytest.raises(TrainingInterrupted):
        _train(manifest, tmp_path / "a", settings={**short, "lr": 1e-3})
    monkeypatch.delenv("SPECIESGAN_DEADLINE")
    stale = resume_path(tmp_path / "a" / "model.pt")
    assert stale.is_file()
    (tmp_path / "b").mkdir()
    stale.rename(resume_path(tmp_path / "b" / "model.pt"))

    _train(manifest, tmp_path / "a", settings=short)
    _train(manifest, tmp_path / "b", settings=short)
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (
        tmp_path / "b" / "metrics.json"
    ).read_bytes()
    assert not resume_path(tmp_path / "b" / "model.pt").exists()
