"""The species classifier: weights loading, file format, training, reproducibility, resume."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import speciesgan.classifier.model as model_module
import speciesgan.classifier.train as train_module
from speciesgan.classifier.efficientnet_lite import (
    LITE0_WEIGHTS_FILE,
    LITE0_WEIGHTS_SHA256,
    efficientnet_lite0_imagenet,
    load_lite0_imagenet_state,
    packaged_lite0_weights,
)
from speciesgan.classifier.model import (
    B0_HASH_PREFIX,
    SpeciesClassifier,
    build_classifier_network,
    load_classifier,
    save_classifier,
    uint8_to_model_range,
)
from speciesgan.classifier.train import augment_batch, resume_path, train_classifier
from speciesgan.cli import main
from speciesgan.data.dataset import load_split
from speciesgan.runtime.preemption import TrainingInterrupted
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.weights import (
    EFFICIENTNET_B0_FILE,
    cached_weights,
    checkpoints_dir,
    file_sha256,
)
from tests.helpers.damage import overwrite_tensor_bytes

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
LITE0 = "efficientnet_lite0"
EGYPTIAN_CAT = 285  # ImageNet class of scikit-image's chelsea.png


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
    network, _ = build_classifier_network("efficientnet_b0", 5, "none")
    model = SpeciesClassifier(network, list("abcde"), IMAGE_SIZE).eval()
    images = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    seen_sizes = []
    network.register_forward_pre_hook(lambda _, args: seen_sizes.append(args[0].shape[-1]))
    upsampling = SpeciesClassifier(network, list("abcde"), IMAGE_SIZE, input_size=64).eval()
    assert upsampling(images).shape == (3, 5)
    assert model(images).shape == (3, 5)
    assert seen_sizes == [64, IMAGE_SIZE]  # resized only when asked to


def test_lite0_classifier_gives_one_logit_per_species_at_any_size() -> None:
    torch.manual_seed(0)
    network, info = build_classifier_network("efficientnet_lite0", 3, "none")
    assert info["arch"] == "efficientnet_lite0" and info["init"] == "scratch"
    model = SpeciesClassifier(network, list("abc"), 24, "efficientnet_lite0").eval()
    for size in (24, 33):  # odd sizes exercise TF "same" padding
        assert model(torch.rand(2, 3, size, size) * 2 - 1).shape == (2, 3)


# ---------------------------------------------------------------- ImageNet weights


def _chelsea(size: int = 224) -> torch.Tensor:
    """scikit-image's bundled cat photo (ImageNet class 285, Egyptian cat) in [-1, 1]."""
    import skimage.data

    path = os.path.join(os.path.dirname(skimage.data.__file__), "chelsea.png")
    image = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
    return uint8_to_model_range(pixels)


def test_packaged_lite0_weights_recognise_a_real_cat_photo() -> None:
    network = efficientnet_lite0_imagenet()
    image = _chelsea()
    with torch.no_grad():
        probabilities = network(image).softmax(dim=1)[0]
        # the same network behind the species interface (its own normalisation)
        wrapped = SpeciesClassifier(network, [str(i) for i in range(1000)], 224, LITE0).eval()
        wrapped_logits = wrapped(image)
    assert int(probabilities.argmax()) == EGYPTIAN_CAT
    assert float(probabilities[EGYPTIAN_CAT]) > 0.6  # measured 0.79; random weights give ~0.001
    torch.testing.assert_close(wrapped_logits, network(image).detach(), atol=1e-4, rtol=1e-4)


def test_tampered_lite0_weights_file_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / LITE0_WEIGHTS_FILE
    data = bytearray(packaged_lite0_weights().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte inside the weights
    tampered.write_bytes(bytes(data))
    with pytest.raises(SpeciesganError) as caught:
        load_lite0_imagenet_state(tampered)
    message = str(caught.value)
    assert str(tampered) in message
    assert file_sha256(tampered) in message and LITE0_WEIGHTS_SHA256 in message


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TORCH_HOME with nothing cached (torch.hub.get_dir() follows the variable)."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert checkpoints_dir() == home / "hub" / "checkpoints"
    return home


class _CodeRunningPayload:
    """Unpickling this calls open(marker, "w"): any code could run in its place."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_planted_pickle_in_torch_cache_does_not_run_code(
    empty_torch_home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    planted = checkpoints_dir() / EFFICIENTNET_B0_FILE
    planted.parent.mkdir(parents=True)
    torch.save({"features.0.0.weight": torch.zeros(1), "x": _CodeRunningPayload(marker)}, planted)
    with pytest.raises(SpeciesganError, match=re.escape(str(planted))):
        build_classifier_network("efficientnet_b0", 3, "imagenet")
    assert not marker.exists()
    # control: the payload is real, an unrestricted load does run it
    torch.load(planted, weights_only=False)["x"].close()
    assert marker.exists()


def test_imagenet_init_loads_the_cached_file_and_reports_its_hash() -> None:
    cached = cached_weights(EFFICIENTNET_B0_FILE)
    assert cached is not None  # conftest puts a placeholder there
    digest = file_sha256(cached)
    network, info = build_classifier_network("efficientnet_b0", 7, "imagenet")
    # conftest's placeholder is random-init, so not torchvision's file: labelled as such
    verified = digest.startswith(B0_HASH_PREFIX)
    assert info["arch"] == "efficientnet_b0"
    assert info["init"] == ("imagenet" if verified else "unverified")
    assert info["weights_sha256"] == digest and info["weights_file"] == str(cached)
    assert verified or EFFICIENTNET_B0_FILE in info["weights"]
    reference = torch.load(cached, weights_only=True)
    state = network.state_dict()
    assert torch.equal(state["features.0.0.weight"], reference["features.0.0.weight"])
    assert state["classifier.1.weight"].shape == (7, 1280)


def test_offline_without_cached_b0_falls_back_to_packaged_lite0_weights(
    empty_torch_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the real download path, failing fast and deterministically (as with no network)
    monkeypatch.setattr(model_module, "B0_URL", f"file:///nonexistent/{EFFICIENTNET_B0_FILE}")
    with caplog.at_level(logging.WARNING):
        network, info = build_classifier_network("efficientnet_b0", 4, "imagenet")
    assert info["arch"] == "efficientnet_lite0" and info["init"] == "imagenet"
    assert LITE0_WEIGHTS_FILE in info["weights"]
    assert info["weights_sha256"] == LITE0_WEIGHTS_SHA256
    assert EFFICIENTNET_B0_FILE in caplog.text and "Lite0" in caplog.text
    # nothing (not even a partial download) was left in the cache
    assert not (checkpoints_dir() / EFFICIENTNET_B0_FILE).exists()
    reference = load_lite0_imagenet_state()
    state = network.state_dict()
    backbone = [key for key in reference if not key.startswith("_fc.")]
    assert len(backbone) > 100
    assert all(torch.equal(state[key], reference[key]) for key in backbone)
    assert state["_fc.weight"].shape == (4, 1280)


def test_pretrained_none_is_random_initialisation() -> None:
    torch.manual_seed(0)
    network, info = build_classifier_network("efficientnet_lite0", 3, "none")
    assert info == {
        "arch": "efficientnet_lite0",
        "init": "scratch",
        "weights": "random initialisation (efficientnet_lite0)",
        "weights_sha256": None,
    }
    reference = load_lite0_imagenet_state()
    assert not torch.equal(
        network.state_dict()["_conv_stem.weight"], reference["_conv_stem.weight"]
    )


def test_unknown_pretrained_or_arch_choice_is_a_user_error() -> None:
    with pytest.raises(SpeciesganError, match="pretrained"):
        build_classifier_network("efficientnet_b0", 3, "imagenet21k")
    with pytest.raises(SpeciesganError, match="arch"):
        build_classifier_network("resnet50", 3, "none")


@pytest.mark.parametrize(
    ("arch", "input_size"), [("efficientnet_b0", None), ("efficientnet_lite0", 48)]
)
def test_saved_classifier_reloads_frozen_with_identical_logits(
    tmp_path: Path, arch: str, input_size: int | None
) -> None:
    torch.manual_seed(1)
    network, info = build_classifier_network(arch, 4, "none")
    model = SpeciesClassifier(network, SHAPES, IMAGE_SIZE, arch, input_size).eval()
    path = tmp_path / "model.pt"
    save_classifier(path, model, SHAPES, IMAGE_SIZE, info)
    loaded = load_classifier(path)
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    assert torch.equal(loaded(images), model(images))
    assert loaded.species == SHAPES and loaded.image_size == IMAGE_SIZE
    assert loaded.arch == arch and loaded.input_size == input_size
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
    assert metrics["init"] == "scratch" and metrics["arch"] == "efficientnet_b0"
    assert metrics["weights"] == "random initialisation (efficientnet_b0)"
    assert metrics["weights_sha256"] is None
    # the saved model reproduces the reported accuracy on the test split
    test = load_split(manifest, "test")
    classifier = load_classifier(model_path)
    with torch.no_grad():
        predicted = classifier(uint8_to_model_range(test.images)).argmax(dim=1)
    assert round(float((predicted == test.labels).float().mean()), 6) == metrics["top1"]
    assert not resume_path(model_path).exists()


@pytest.mark.parametrize("input_size", [None, 48])
def test_lite0_imagenet_training_records_its_weights_and_reloads(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, input_size: int | None
) -> None:
    trained = []

    def keep_model(path: Path, model: SpeciesClassifier, *args, **kwargs) -> None:
        trained.append(model)
        save_classifier(path, model, *args, **kwargs)

    monkeypatch.setattr(train_module, "save_classifier", keep_model)
    settings = {"epochs": 1, "batch_size": 16, "arch": LITE0, "pretrained": "imagenet"}
    if input_size is not None:
        settings["input_size"] = input_size
    model_path, metrics_path = _train(manifest, tmp_path, settings)
    metrics = json.loads(metrics_path.read_text())
    assert metrics["arch"] == LITE0 and metrics["init"] == "imagenet"
    assert LITE0_WEIGHTS_FILE in metrics["weights"]
    assert metrics["weights_sha256"] == LITE0_WEIGHTS_SHA256
    loaded = load_classifier(model_path)
    assert loaded.arch == LITE0 and loaded.input_size == input_size
    test = load_split(manifest, "test")
    images = uint8_to_model_range(test.images)
    (model,) = trained
    with torch.no_grad():
        logits = loaded(images)
        assert torch.equal(logits, model.eval()(images))
    accuracy = float((logits.argmax(dim=1) == test.labels).float().mean())
    assert round(accuracy, 6) == metrics["top1"]


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


def test_balanced_sampling_resumes_exactly_and_is_recorded(
    short_run: tuple[Path, Path], manifest: Path, tmp_path: Path
) -> None:
    """classifier.sampling: balanced reaches the loop, and its epochs need no resume state."""
    settings = {**SHORT, "sampling": "balanced"}
    model_a, metrics_a = _train(manifest, tmp_path / "straight", settings)

    def stop_mid_epoch(epoch: int, step: int) -> None:
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(TrainingInterrupted):
        _train(manifest, tmp_path / "resumed", settings, on_step=stop_mid_epoch)
    model_b, metrics_b = _train(manifest, tmp_path / "resumed", settings)
    assert metrics_a.read_bytes() == metrics_b.read_bytes()
    assert _same_weights(model_a, model_b)
    assert json.loads(metrics_a.read_text())["sampling"] == "balanced"
    assert json.loads(short_run[1].read_text())["sampling"] == "natural"
    assert not _same_weights(model_a, short_run[0])  # other batches than natural sampling


def _aside(model: Path, reason: str) -> list[Path]:
    """Resume files moved aside as ``model.pt.resume.<reason>-<UTC time>.pt``."""
    return sorted(model.parent.glob(f"{model.name}.resume.{reason}-*.pt"))


def test_resume_file_from_other_settings_is_moved_aside(
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
    stale_bytes = resume_path(tmp_path / "b" / "model.pt").read_bytes()

    _train(manifest, tmp_path / "a", settings=short)
    _train(manifest, tmp_path / "b", settings=short)  # a Snakemake rerun after a param change
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (
        tmp_path / "b" / "metrics.json"
    ).read_bytes()
    assert not resume_path(tmp_path / "b" / "model.pt").exists()
    (kept,) = _aside(tmp_path / "b" / "model.pt", "mismatch")  # stale, but not destroyed
    assert kept.read_bytes() == stale_bytes


def test_damaged_resume_file_stops_training_and_is_kept(
    short_run: tuple[Path, Path], manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def stop_mid_epoch(epoch: int, step: int) -> None:
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGUSR1)

    with pytest.raises(TrainingInterrupted):
        _train(manifest, tmp_path, SHORT, on_step=stop_mid_epoch)
    resume = resume_path(tmp_path / "model.pt")
    damaged = resume.read_bytes()[:1000]  # a truncated copy, a disk fault
    resume.write_bytes(damaged)
    with pytest.raises(SpeciesganError, match=re.escape(str(resume))) as stopped:
        _train(manifest, tmp_path, SHORT)
    assert "--restart" in str(stopped.value)
    assert resume.read_bytes() == damaged and not (tmp_path / "model.pt").exists()
    # the flag starts over; the damaged file stays, under a name that says why
    args = [
        "train-classifier",
        "--manifest",
        str(manifest),
        "--out-model",
        str(tmp_path / "model.pt"),
    ]
    args += ["--out-metrics", str(tmp_path / "metrics.json"), "--seed", "3", "--threads", "1"]
    assert main([*args, "--settings", json.dumps(SHORT), "--restart"]) == 0
    assert (tmp_path / "metrics.json").read_bytes() == short_run[1].read_bytes()
    (kept,) = _aside(tmp_path / "model.pt", "corrupt")
    assert kept.read_bytes() == damaged


KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
from speciesgan.classifier.train import train_classifier

def die():  # what the OOM killer or a crashed node does: no cleanup, nothing saved
    os.kill(os.getpid(), signal.SIGKILL)

def in_second_epoch(epoch, step):
    if (epoch, step) == (1, 0) and {kill_at!r} == "second epoch":
        die()

replace = os.replace
def replace_unless_model(src, dst, *args, **kwargs):
    if Path(dst).name == "model.pt" and {kill_at!r} == "model write":
        die()
    replace(src, dst, *args, **kwargs)
os.replace = replace_unless_model

manifest, out, settings = Path(sys.argv[1]), Path(sys.argv[2]), {settings!r}
train_classifier(manifest, out / "model.pt", out / "metrics.json", settings, seed=3, threads=1,
                 on_step=in_second_epoch)
"""


@pytest.mark.parametrize(
    ("kill_at", "resumes_at"),
    [("second epoch", (1, 0)), ("model write", None)],
    ids=["killed_in_the_second_epoch", "killed_at_the_model_write"],
)
def test_sigkilled_training_resumes_from_its_last_finished_epoch(
    short_run: tuple[Path, Path],
    manifest: Path,
    tmp_path: Path,
    kill_at: str,
    resumes_at: tuple[int, int] | None,
) -> None:
    """SHORT has 2 epochs: killed in the second, or after both but before model.pt exists."""
    script = textwrap.dedent(KILLED_CHILD.format(kill_at=kill_at, settings=SHORT))
    killed = subprocess.run(
        [sys.executable, "-c", script, str(manifest), str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert resume_path(tmp_path / "model.pt").is_file()
    assert not (tmp_path / "model.pt").exists()

    steps_run = []
    model_b, metrics_b = _train(
        manifest, tmp_path, SHORT, on_step=lambda epoch, step: steps_run.append((epoch, step))
    )
    # finished epochs are not trained again (none at all when both were done)
    assert (steps_run[0] if steps_run else None) == resumes_at
    model_a, metrics_a = short_run
    assert metrics_a.read_bytes() == metrics_b.read_bytes()
    assert _same_weights(model_a, model_b)
    assert not resume_path(model_b).exists()


def test_classifier_file_with_damaged_tensor_bytes_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network, info = build_classifier_network("efficientnet_lite0", 3, "none")
    model = SpeciesClassifier(network, list("abc"), 24, "efficientnet_lite0")
    path = tmp_path / "model.pt"
    save_classifier(path, model, list("abc"), 24, info)
    load_classifier(path)  # intact: loads
    damaged = overwrite_tensor_bytes(path)
    with pytest.raises(SpeciesganError, match="content hash") as error:
        load_classifier(path)
    assert str(path) in str(error.value)
    assert path.read_bytes() == damaged
