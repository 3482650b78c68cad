"""FID/IS/KID: agreement with the reference tools, unbiasedness, real-feature cache."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import speciesgan.metrics.inception as inception_module
from speciesgan.metrics.fid import (
    fid_from_features,
    rank_deficiency_note,
    real_features,
    real_features_key,
)
from speciesgan.metrics.inception import inception_outputs, load_inception
from speciesgan.metrics.inception_score import inception_score
from speciesgan.metrics.kid import kernel_inception_distance
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.weights import (
    FID_INCEPTION_FILE,
    checkpoints_dir,
    file_sha256,
    random_fid_inception_state,
)
from tests.helpers.http_server import ServerState, serve

IMAGES_PER_FOLDER = 16  # pytorch-fid's Inception is slow on CPU


@pytest.fixture(scope="module")
def inception():
    torch.set_num_threads(2)
    return load_inception("pretrained", "cpu")


def _blobs(seed: int, count: int, size: int, smooth: bool) -> np.ndarray:
    """uint8 [N, 3, S, S]: smooth colour gradients or pixel noise (two distinct distributions)."""
    rng = np.random.default_rng(seed)
    if not smooth:
        return rng.integers(0, 256, size=(count, 3, size, size), dtype=np.uint8)
    ramp = np.linspace(0.0, 1.0, size)
    images = np.empty((count, 3, size, size))
    for i in range(count):
        colour = rng.uniform(0, 255, size=(3, 1, 1))
        images[i] = colour * ramp[None, :, None] * ramp[None, None, :] + rng.uniform(0, 40)
    return images.clip(0, 255).astype(np.uint8)


def _write_folder(images: np.ndarray, folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:03d}.png")


# pytorch-fid's 2048x2048 scipy sqrtm alone takes 20-90 s on this 2-core CI machine,
# whatever the number of images: the CLI comparison is marked slow.
@pytest.mark.slow
def test_fid_matches_pytorch_fid_cli(tmp_path: Path) -> None:
    """Same folders, same weights file (the session's placeholder, whose BatchNorm
    statistics are calibrated so features do not vanish): our FID equals the CLI's
    within 1e-3, or 1e-6 relative for the very large FIDs random weights give."""
    first = _blobs(1, IMAGES_PER_FOLDER, 32, smooth=True)
    second = _blobs(2, IMAGES_PER_FOLDER, 32, smooth=False)
    _write_folder(first, tmp_path / "a")
    _write_folder(second, tmp_path / "b")
    completed = subprocess.run(
        [sys.executable, "-m", "pytorch_fid", str(tmp_path / "a"), str(tmp_path / "b"),
         "--device", "cpu", "--batch-size", str(IMAGES_PER_FOLDER), "--num-workers", "0",
         "--dims", "2048"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    reference = float(re.search(r"FID:\s+(\S+)", completed.stdout).group(1))
    net = load_inception("pretrained", "cpu")
    features_a, _ = inception_outputs(net, torch.from_numpy(first), IMAGES_PER_FOLDER)
    features_b, _ = inception_outputs(net, torch.from_numpy(second), IMAGES_PER_FOLDER)
    ours = fid_from_features(features_a, features_b)
    assert reference > 1.0  # a real distance, not numerical noise around 0
    assert ours == pytest.approx(reference, rel=1e-6, abs=1e-3)


def test_inception_info_flags_placeholder_weights(inception) -> None:
    # the test cache holds random weights under the real file name: must not pass as published
    assert inception.info["weights"] != "pytorch-fid"
    assert len(inception.info["weights_sha256"]) == 64


def test_missing_weights_pretrained_mode_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytorch_fid.inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    # the real download path, failing fast and deterministically (as with no network)
    url = f"file:///nonexistent/{FID_INCEPTION_FILE}"
    monkeypatch.setattr(pytorch_fid.inception, "FID_WEIGHTS_URL", url)
    with pytest.raises(SpeciesganError, match=re.escape(FID_INCEPTION_FILE)):
        load_inception("pretrained")
    fallback = load_inception("pretrained_or_random")
    assert fallback.info["weights"] == "random-init (offline placeholder)"
    assert not (checkpoints_dir() / FID_INCEPTION_FILE).exists()


class _CodeRunningPayload:
    """Unpickling this calls open(marker, "w"): any code could run in its place."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _payload_bytes(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(1), "x": _CodeRunningPayload(marker)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["pretrained", "pretrained_or_random"])
def test_planted_pickle_under_the_inception_file_name_does_not_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    marker = tmp_path / "payload-ran"
    planted = checkpoints_dir() / FID_INCEPTION_FILE
    planted.parent.mkdir(parents=True)
    planted.write_bytes(_payload_bytes(marker))
    with pytest.raises(SpeciesganError, match=re.escape(str(planted))):
        load_inception(mode)
    assert not marker.exists()
    # control: the payload is real, an unrestricted load does run it
    torch.load(planted, weights_only=False)["x"].close()
    assert marker.exists()


def test_downloaded_inception_file_is_hash_checked_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror, proxy or attacker serving a pickle in place of pytorch-fid's file."""
    import pytorch_fid.inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    marker = tmp_path / "payload-ran"
    state = ServerState(files={f"/{FID_INCEPTION_FILE}": _payload_bytes(marker)})
    with serve(state) as base:
        monkeypatch.setattr(
            pytorch_fid.inception, "FID_WEIGHTS_URL", f"{base}/{FID_INCEPTION_FILE}"
        )
        with pytest.raises(SpeciesganError, match=re.escape(FID_INCEPTION_FILE)) as refused:
            load_inception("pretrained")
    assert "6726825d" in str(refused.value)  # says why: not the published file
    assert not marker.exists()
    # nothing is left in the cache to be picked up (and labelled) by a later run
    assert not (checkpoints_dir() / FID_INCEPTION_FILE).exists()
    assert not any(checkpoints_dir().iterdir())


def test_downloaded_inception_file_with_the_published_hash_is_cached_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The online path end to end; the pinned prefix is that of a stand-in file here."""
    import pytorch_fid.inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    buffer = io.BytesIO()
    torch.save(random_fid_inception_state(seed=3), buffer)
    body = buffer.getvalue()
    served = tmp_path / "served.pth"
    served.write_bytes(body)
    monkeypatch.setattr(inception_module, "PUBLISHED_SHA256_PREFIX", file_sha256(served)[:8])
    with serve(ServerState(files={f"/{FID_INCEPTION_FILE}": body})) as base:
        monkeypatch.setattr(
            pytorch_fid.inception, "FID_WEIGHTS_URL", f"{base}/{FID_INCEPTION_FILE}"
        )
        net = load_inception("pretrained")
    cached = checkpoints_dir() / FID_INCEPTION_FILE
    assert cached.read_bytes() == body
    assert net.is_published and net.info["weights_sha256"] == file_sha256(served)


def test_cached_inception_file_without_the_published_hash_is_used_but_unverified() -> None:
    """B0's policy: conftest's placeholder loads, named as unverified wherever it is reported."""
    net = load_inception("pretrained")
    cached = checkpoints_dir() / FID_INCEPTION_FILE
    assert not net.is_published
    assert net.info["weights_sha256"] == file_sha256(cached)
    assert "unverified" in net.info["weights"] and FID_INCEPTION_FILE in net.info["weights"]


def _reference_is(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """Textbook IS: softmax, marginal, KL, exp - in float64 numpy (splits in the given order)."""
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    part = len(probs) // splits
    scores = []
    for k in range(splits):
        p = probs[k * part : (k + 1) * part]
        marginal = p.mean(axis=0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_numpy_reference() -> None:
    logits = np.random.default_rng(0).normal(scale=4.0, size=(205, 1008))
    mean, std = inception_score(logits, splits=10, seed=3)
    # the score shuffles with a seeded numpy permutation before splitting
    ref_mean, ref_std = _reference_is(logits[np.random.default_rng(3).permutation(205)], 10)
    assert mean == pytest.approx(ref_mean, abs=1e-4)
    assert std == pytest.approx(ref_std, abs=1e-4)
    assert 1.0 < mean < 1008.0


def test_inception_score_extremes() -> None:
    one_class = np.zeros((40, 10))
    one_class[:, 3] = 50.0
    assert inception_score(one_class, splits=4)[0] == pytest.approx(1.0, abs=1e-9)
    each_class = np.full((40, 10), -50.0)
    each_class[np.arange(40), np.arange(40) % 10] = 50.0
    # one split: a shuffled split of 10 need not hold every class exactly once
    assert inception_score(each_class, splits=1)[0] == pytest.approx(10.0, rel=1e-6)


def test_kid_is_unbiased_and_separates_distributions() -> None:
    rng = np.random.default_rng(0)
    same_a = rng.normal(size=(400, 64))
    same_b = rng.normal(size=(400, 64))
    shifted = rng.normal(loc=0.3, size=(400, 64))
    same = kernel_inception_distance(same_a, same_b, seed=1, num_subsets=50, subset_size=50)
    different = kernel_inception_distance(same_a, shifted, seed=1, num_subsets=50, subset_size=50)
    # a biased (V-statistic) estimator at subset size 50 would sit several std above 0
    assert abs(same["mean"]) < 0.5 * same["std"]
    assert different["mean"] > 5 * different["std"] > 0
    assert same == kernel_inception_distance(same_a, same_b, seed=1, num_subsets=50, subset_size=50)


def test_fid_note_only_below_feature_dimension() -> None:
    assert "rank-deficient" in rank_deficiency_note(100, 5000)
    assert rank_deficiency_note(2048, 4096) is None


def _write_manifest(
    root: Path, images: np.ndarray, species_ids: list[int], splits: list[str] | None = None
) -> Path:
    """A manifest + one shard following docs/architecture.md (every crop in train by default)."""
    names = ["Alpha Dog", "Beta Bird"]
    (root / "shards").mkdir(parents=True)
    np.save(root / "shards" / "shard-000.npy", images.transpose(0, 2, 3, 1).copy())
    frame = pd.DataFrame(
        {
            "species": [names[s] for s in species_ids],
            "species_id": np.array(species_ids, dtype=np.int32),
            "category": ["dogs" if s == 0 else "birds" for s in species_ids],
            "split": splits or "train",
            "shard": np.int32(0),
            "index": np.arange(len(species_ids), dtype=np.int32),
        }
    )
    manifest = root / "manifest.parquet"
    frame.to_parquet(manifest)
    return manifest


def test_real_features_are_cached(inception, tmp_path: Path) -> None:
    images = _blobs(3, 6, 24, smooth=True)
    manifest = _write_manifest(tmp_path / "data", images, [0, 0, 0, 1, 1, 1])
    cache = tmp_path / "cache"
    first = real_features(manifest, "train", inception, cache, batch_size=4)
    assert first.cache_file.is_file() and first.cache_file.parent == cache
    assert first.features.shape == (6, 2048) and list(first.labels) == [0, 0, 0, 1, 1, 1]
    stamp = first.cache_file.stat().st_mtime_ns
    second = real_features(manifest, "train", inception, cache, batch_size=4)
    assert second.cache_file == first.cache_file
    assert second.cache_file.stat().st_mtime_ns == stamp  # loaded, not rewritten
    np.testing.assert_array_equal(second.features, first.features)
    assert second.species == first.species == ["Alpha Dog", "Beta Bird"]


def test_real_features_key_tracks_every_input(tmp_path: Path) -> None:
    images = _blobs(3, 4, 8, smooth=True)
    manifest = _write_manifest(tmp_path / "a", images, [0, 0, 1, 1])
    relabelled = _write_manifest(tmp_path / "b", images, [0, 1, 0, 1])
    key = real_features_key(manifest, "train", "0" * 64)
    assert key == real_features_key(manifest, "train", "0" * 64)
    assert key != real_features_key(relabelled, "train", "0" * 64)
    assert key != real_features_key(manifest, "test", "0" * 64)
    assert key != real_features_key(manifest, "train", "1" * 64)


def _trained_files(root: Path, species: list[str], size: int) -> tuple[Path, Path]:
    """generator.pt and classifier model.pt with seeded random weights, in the real formats."""
    from speciesgan.classifier.model import (
        SpeciesClassifier,
        build_classifier_network,
        save_classifier,
    )
    from speciesgan.gan.networks import build_networks, save_generator

    settings = {"model": "dcgan", "z_dim": 8, "embed_dim": 4, "g_channels": 4, "d_channels": 4}
    generator, _ = build_networks(settings, len(species), size, seed=0)
    save_generator(root / "generator.pt", generator, settings, species, size)
    torch.manual_seed(0)
    network, info = build_classifier_network("efficientnet_b0", len(species), "none")
    classifier = SpeciesClassifier(network, species, size, info["arch"])
    save_classifier(root / "model.pt", classifier, species, size, info)
    return root / "generator.pt", root / "model.pt"


@pytest.mark.slow
def test_evaluate_writes_deterministic_metrics(tmp_path: Path) -> None:
    from speciesgan.metrics.evaluate import evaluate

    size = 16
    manifest = _write_manifest(
        tmp_path / "data", _blobs(5, 6, size, smooth=True), [0, 0, 0, 1, 1, 1]
    )
    generator, classifier = _trained_files(tmp_path, ["Alpha Dog", "Beta Bird"], size)
    settings = {"images_per_species": 3, "is_splits": 2, "batch_size": 6}
    first, second = tmp_path / "eval" / "metrics.json", tmp_path / "eval" / "again.json"
    pairs = tmp_path / "eval" / "pairs.png"
    kwargs = {"seed": 1, "threads": 1}
    evaluate(generator, manifest, classifier, first, settings, out_pairs=pairs, **kwargs)
    evaluate(generator, manifest, classifier, second, settings, **kwargs)
    assert first.read_bytes() == second.read_bytes()  # second run used the real-feature cache
    cached = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "eval" / "fid_cache").iterdir())
    assert cached == ["real", "real-lite0"]  # uncapped: Lite0's real side is the train split
    result = json.loads(first.read_text())
    assert "no ood split" in result["id_ood"]["skipped"]  # and no ood pass: nothing cached for it
    assert result["frequency_bins"]["bins"]["head"]["species"] == ["Alpha Dog"]  # ties: lower id
    result = json.loads(first.read_text())
    # the figures of issue 13, in the space that means something offline too
    lite0 = result["feature_spaces"]["lite0"]
    assert result["fd_lite0"] == lite0["fd"] > 0
    assert 0 <= lite0["precision"] <= 1 and 0 <= lite0["recall"] <= 1
    assert lite0["density"] >= 0 and 0 <= lite0["coverage"] <= 1
    assert result["fidelity_diversity"]["space"] == "lite0"  # placeholder Inception weights
    assert set(result["intra_class_fid"]["per_species"]) == {"Alpha Dog", "Beta Bird"}
    assert 0 <= result["memorisation"]["fraction"] <= 1 and result["memorisation"]["pairs"]
    assert "cas" not in result  # its own stage: speciesgan cas
    assert "placeholder" in result["comparability"]["inception"]
    assert result["fd_dinov2"] is None and result["fd_dinov2_skipped"]
    assert Image.open(pairs).size[0] > 2 * 16  # generated | training crop, side by side
    assert result["fid"] > 0 and result["fid_num_images"] == {"generated": 6, "real": 6}
    assert "rank-deficient" in result["fid_note"]
    assert result["inception_score"]["mean"] >= 1.0
    assert set(result["kid"]) >= {"mean", "std"}
    assert set(result["kid_per_species"]) == set(result["accuracy_per_species"])
    assert result["accuracy_per_species"].keys() == {"Alpha Dog", "Beta Bird"}
    assert all(acc in (0.0, 1 / 3, 2 / 3, 1.0) for acc in result["accuracy_per_species"].values())
    assert result["chance"] == 0.5
    assert result["inception_weights"]["weights"] != "pytorch-fid"
    # floors need real test crops in the generator's place: this manifest has none
    floors = result["floors"]
    assert floors["space"] == "lite0" and "perfect generator" in floors["note"]
    assert floors["skipped"] == "the manifest has no test crops"
    assert "generated_accuracy" not in floors
    # placeholder Inception weights: marked, and kept out of the headline
    assert result["inception_figures"]["placeholder"] is True
    assert "fid" in result["inception_figures"]["figures"]


@pytest.mark.slow
def test_cas_stage_writes_the_score_beside_its_floor(tmp_path: Path) -> None:
    """CAS is its own stage: a classifier with the given recipe trained on generated images
    only, tested on the real test crops, beside the eval classifier's own top-1 on them;
    the same bytes on a rerun, and a manifest without test crops says so."""
    from speciesgan.metrics.cas import write_cas

    size = 16
    splits = ["train", "train", "test", "train", "train", "test"]
    ids = [0, 0, 0, 1, 1, 1]
    manifest = _write_manifest(tmp_path / "data", _blobs(5, 6, size, smooth=True), ids, splits)
    generator, classifier = _trained_files(tmp_path, ["Alpha Dog", "Beta Bird"], size)
    recipe = {"arch": "efficientnet_lite0", "epochs": 1, "batch_size": 4}
    first, again = tmp_path / "cas" / "metrics.json", tmp_path / "again" / "metrics.json"
    for out in (first, again):
        write_cas(generator, manifest, classifier, out, recipe, seed=1, threads=1)
    assert first.read_bytes() == again.read_bytes()
    result = json.loads(first.read_text())
    assert result["train_images"] == 4 and result["test_images"] == 2  # the train split's size
    assert result["top1"] in (0.0, 0.5, 1.0) and result["floor"] in (0.0, 0.5, 1.0)
    assert set(result["per_species"]) == {"Alpha Dog", "Beta Bird"}
    headline = json.loads((first.parent / "headline.json").read_text())
    assert headline == {"cas_top1": result["top1"]}

    no_test = _write_manifest(tmp_path / "train_only", _blobs(5, 6, size, smooth=True), ids)
    out = tmp_path / "skipped" / "metrics.json"
    write_cas(generator, no_test, classifier, out, recipe, seed=1, threads=1)
    assert json.loads(out.read_text()) == {"skipped": "the manifest has no test crops to test on"}
    assert json.loads((out.parent / "headline.json").read_text()) == {}


@pytest.mark.slow
def test_evaluate_from_the_real_features_stage_gives_the_same_bytes(tmp_path: Path) -> None:
    """The workflow computes the real side in its own stage (beside GAN training) and
    evaluate only reads it: the figures must be those evaluate computes on its own, and a
    folder made with other settings is an error naming the missing file, not a recomputation."""
    from speciesgan.metrics.evaluate import evaluate
    from speciesgan.metrics.real_side import write_real_features

    size = 16
    manifest = _write_manifest(
        tmp_path / "data", _blobs(5, 6, size, smooth=True), [0, 0, 0, 1, 1, 1]
    )
    generator, classifier = _trained_files(tmp_path, ["Alpha Dog", "Beta Bird"], size)
    settings = {"images_per_species": 3, "is_splits": 2, "batch_size": 6}
    kwargs = {"seed": 1, "threads": 1}
    alone, staged = tmp_path / "alone" / "metrics.json", tmp_path / "staged" / "metrics.json"
    evaluate(generator, manifest, classifier, alone, settings, **kwargs)
    folder = tmp_path / "real_features"
    write_real_features(manifest, folder, settings, threads=1)
    assert not folder.with_name("real_features.partial").exists()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    evaluate(generator, manifest, classifier, staged, settings, real_features_dir=folder, **kwargs)
    assert staged.read_bytes() == alone.read_bytes()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # read, never written
    assert not (staged.parent / "fid_cache").exists()

    other = {**settings, "real_images_per_species": 2}  # a capped real split: other files
    with pytest.raises(
        SpeciesganError, match=r"real-.*\.npz: no inception features.*real-features"
    ):
        evaluate(generator, manifest, classifier, staged, other, real_features_dir=folder, **kwargs)


@pytest.mark.parametrize(("num", "dims"), [(300, 64), (40, 64), (120, 256)])
def test_frechet_distance_matches_pytorch_fid_reference(num: int, dims: int) -> None:
    """Our eigenvalue form equals pytorch-fid's sqrtm form, full-rank and rank-deficient."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from speciesgan.metrics.fid import feature_statistics, frechet_distance

    rng = np.random.default_rng(num + dims)
    a = rng.normal(size=(num, dims))
    b = rng.normal(size=(num, dims)) @ rng.normal(size=(dims, dims)) * 0.3 + 0.5
    stats = (*feature_statistics(a), *feature_statistics(b))
    ours = frechet_distance(*stats)
    reference = float(calculate_frechet_distance(*stats))
    assert ours == pytest.approx(reference, rel=1e-6, abs=1e-4)
    assert frechet_distance(*feature_statistics(a), *feature_statistics(a)) == pytest.approx(
        0, abs=1e-4
    )


def _perfect_generator_logits(num_species: int, per_species: int) -> np.ndarray:
    """Logits of a perfect generator: each image confidently its own species, in species order."""
    labels = np.repeat(np.arange(num_species), per_species)
    logits = np.full((len(labels), 1008), -20.0)
    logits[np.arange(len(labels)), labels] = 20.0
    return logits


def test_inception_score_does_not_depend_on_generation_order() -> None:
    """evaluate generates species by species; contiguous splits must not each see few species."""
    logits = _perfect_generator_logits(50, 50)
    shuffled = logits[np.random.default_rng(7).permutation(len(logits))]
    in_order = inception_score(logits, splits=10)[0]
    assert in_order == pytest.approx(inception_score(shuffled, splits=10)[0], rel=0.03)
    assert 40.0 < in_order <= 50.0  # 250 images per split: the marginal is nearly uniform
    assert inception_score(logits, splits=10) == inception_score(logits, splits=10)  # seeded


def test_inception_logits_leave_out_the_fc_bias(inception) -> None:
    """IS uses the unbiased fc logits, as the original IS code and torch-fidelity do."""
    images = torch.as_tensor(_blobs(4, 3, 32, smooth=True))
    features, logits = inception_outputs(inception, images, batch_size=3)
    weight = inception.fc.weight.detach().double().numpy()
    assert np.abs(inception.fc.bias.detach().numpy()).max() > 0  # the test would prove nothing
    np.testing.assert_allclose(logits, features @ weight.T, rtol=1e-4, atol=1e-4)


def _species_features(rng: np.random.Generator, labels: np.ndarray, dims: int = 16) -> np.ndarray:
    """Features of a 'perfect generator': each species' own Gaussian, the same for real and fake."""
    centres = np.random.default_rng(99).normal(scale=3.0, size=(int(labels.max()) + 1, dims))
    return centres[labels] + rng.normal(size=(len(labels), dims))


def test_fid_generated_mix_follows_the_real_species_frequencies() -> None:
    from speciesgan.metrics.evaluate import fid_features
    from speciesgan.metrics.fid import fid_from_features
    from speciesgan.metrics.species_mix import matched_species_counts

    rng = np.random.default_rng(0)
    real_labels = np.repeat([0, 1, 2], [800, 200, 200])  # 2/3 of the real crops are species 0
    counts = matched_species_counts(real_labels, num_species=3, total=600)
    assert counts.tolist() == [400, 100, 100] and counts.sum() == 600
    real = _species_features(rng, real_labels)
    balanced_labels = np.repeat([0, 1, 2], 200)  # what evaluate generates for the accuracy
    balanced = _species_features(rng, balanced_labels)
    features, labels = fid_features(
        balanced, balanced_labels, real_labels, 3, lambda extra: _species_features(rng, extra)
    )
    assert np.bincount(labels, minlength=3).tolist() == [400, 100, 100]
    assert len(features) == len(balanced)
    # balanced images are reused first: only species 0's shortfall is generated anew
    np.testing.assert_array_equal(features[labels == 1], balanced[balanced_labels == 1][:100])
    assert fid_from_features(features, real) < 0.5 * fid_from_features(balanced, real)


def test_evaluate_stops_on_a_classifier_with_species_in_another_order(tmp_path: Path) -> None:
    """Accuracy per species would silently compare each species with another one."""
    from speciesgan.metrics.evaluate import evaluate

    size = 16
    manifest = _write_manifest(tmp_path / "data", _blobs(5, 4, size, smooth=True), [0, 0, 1, 1])
    (tmp_path / "g").mkdir()
    (tmp_path / "c").mkdir()
    generator, _ = _trained_files(tmp_path / "g", ["Alpha Dog", "Beta Bird"], size)
    _, classifier = _trained_files(tmp_path / "c", ["Beta Bird", "Alpha Dog"], size)
    out = tmp_path / "eval" / "metrics.json"
    settings = {"images_per_species": 2, "is_splits": 1, "batch_size": 4}
    with pytest.raises(SpeciesganError) as caught:
        evaluate(generator, manifest, classifier, out, settings, seed=1, threads=1)
    message = str(caught.value)
    assert "index 0" in message and "'Beta Bird'" in message and "'Alpha Dog'" in message
    assert str(classifier) in message and str(generator) in message
    assert not out.exists()


@pytest.mark.parametrize("real_count", [40, 160])
def test_kid_std_is_the_spread_of_the_estimate_when_a_subset_is_a_whole_set(
    real_count: int,
) -> None:
    """Per species, the subset is the whole generated set: its std must still be honest."""
    rng = np.random.default_rng(real_count)
    generated = rng.normal(size=(40, 32))
    real = rng.normal(loc=0.2, size=(real_count, 32))
    reported = kernel_inception_distance(generated, real, seed=0, num_subsets=20)
    # the actual spread: the same estimate on fresh draws of the same two distributions
    fresh = [
        kernel_inception_distance(
            rng.normal(size=(40, 32)), rng.normal(loc=0.2, size=(real_count, 32)), seed=0
        )["mean"]
        for _ in range(200)
    ]
    assert 0.5 * np.std(fresh) < reported["std"] < 2.0 * np.std(fresh)
    assert reported["mean"] == pytest.approx(np.mean(fresh), abs=3 * np.std(fresh))


def test_real_images_per_species_is_a_seeded_random_sample() -> None:
    """Manifest order groups crops by source photo/site: the first N are not representative."""
    from speciesgan.metrics.fid import sample_per_species

    labels = torch.tensor([0] * 50 + [1] * 30 + [0] * 20)
    chosen = sample_per_species(labels, 10, seed=0)
    assert torch.equal(chosen, sample_per_species(labels, 10, seed=0))
    assert not torch.equal(chosen, sample_per_species(labels, 10, seed=1))
    assert torch.bincount(labels[chosen]).tolist() == [10, 10]
    assert len(set(chosen.tolist())) == 20 and chosen.tolist() == sorted(chosen.tolist())
    first_ten = set(range(10)) | set(range(50, 60))
    assert set(chosen.tolist()) != first_ten
    assert sample_per_species(labels, None, seed=0).tolist() == list(range(100))
    assert len(sample_per_species(labels, 40, seed=0)) == 70  # 40 caps species 1's 30


def test_inception_features_run_without_tf32_and_restore_the_flags(inception) -> None:
    """TF32 matmuls/convolutions would make GPU features (and FID) differ from pytorch-fid's."""
    seen: list[tuple[bool, bool]] = []
    hook = inception.features.register_forward_hook(
        lambda *_: seen.append(
            (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        )
    )
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        inception_outputs(inception, torch.as_tensor(_blobs(1, 2, 16, smooth=True)), 2)
        assert seen == [(False, False)]
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        hook.remove()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_kid_jackknife_std_equals_leave_one_out_by_hand() -> None:
    from speciesgan.metrics.kid import jackknife_std, mmd2_unbiased

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 5)), rng.normal(loc=0.3, size=(9, 5))
    without_x = np.array([mmd2_unbiased(np.delete(x, i, 0), y) for i in range(7)])
    without_y = np.array([mmd2_unbiased(x, np.delete(y, j, 0)) for j in range(9)])
    variance = 6 / 7 * np.sum((without_x - without_x.mean()) ** 2) + 8 / 9 * np.sum(
        (without_y - without_y.mean()) ** 2
    )
    assert jackknife_std(x, y) == pytest.approx(np.sqrt(variance), rel=1e-9)


def test_inception_score_agrees_with_torch_fidelity() -> None:
    """Same logits, same split order: torch-fidelity's IS (unbiased logits, float64)."""
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(5).normal(scale=4.0, size=(200, 1008))
    order = np.random.default_rng(2).permutation(200)  # our seeded shuffle, seed 2
    reference = isc_features_to_metric(torch.tensor(logits[order]), splits=10, shuffle=False)
    mean, std = inception_score(logits, splits=10, seed=2)
    assert mean == pytest.approx(reference["inception_score_mean"], rel=1e-4)
    assert std == pytest.approx(reference["inception_score_std"], rel=1e-4)


@pytest.mark.parametrize(
    ("num_a", "num_b", "dims"),
    [(30, 40, 64), (20, 500, 64), (500, 20, 64), (12, 12, 256), (2, 3, 16)],
)
def test_fid_with_fewer_images_than_dimensions_equals_the_covariance_form(
    num_a: int, num_b: int, dims: int
) -> None:
    """The n x n route (taken below full rank) gives the d x d formula's distance."""
    from speciesgan.metrics.fid import feature_statistics, fid_from_features, frechet_distance

    rng = np.random.default_rng(num_a * num_b + dims)
    a = rng.normal(size=(num_a, dims)) * 2.0
    b = rng.normal(size=(num_b, dims)) @ rng.normal(size=(dims, dims)) * 0.3 + 0.5
    expected = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert fid_from_features(b, a) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert fid_from_features(a, a) == pytest.approx(0, abs=1e-6)


def test_fid_refuses_one_image_or_features_of_other_sizes() -> None:
    from speciesgan.metrics.fid import fid_from_features
    from speciesgan.util.errors import SpeciesganError

    rng = np.random.default_rng(0)
    with pytest.raises(SpeciesganError, match="at least 2 images"):
        fid_from_features(rng.normal(size=(1, 8)), rng.normal(size=(5, 8)))
    with pytest.raises(SpeciesganError, match="8 and 6 dimensions"):
        fid_from_features(rng.normal(size=(5, 8)), rng.normal(size=(5, 6)))


def test_fid_agrees_with_torch_fidelity() -> None:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from speciesgan.metrics.fid import fid_from_features

    rng = np.random.default_rng(6)
    a = rng.normal(size=(400, 64))
    b = rng.normal(size=(400, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 0.5
    reference = fid_statistics_to_metric(
        fid_features_to_statistics(torch.tensor(a)),
        fid_features_to_statistics(torch.tensor(b)),
        verbose=False,
    )
    assert fid_from_features(a, b) == pytest.approx(
        reference["frechet_inception_distance"], rel=1e-4
    )


def test_kid_agrees_with_torch_fidelity() -> None:
    """Subset draws differ between the two, so compare one subset and the whole-set case."""
    from torch_fidelity.metric_kid import kernel_mmd, kid_features_to_metric

    from speciesgan.metrics.kid import mmd2_unbiased

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(60, 32)), rng.normal(loc=0.2, size=(60, 32))
    options = {"kid_kernel": "poly", "kid_kernel_poly_degree": 3, "kid_kernel_poly_coef0": 1}
    assert mmd2_unbiased(a, b) == pytest.approx(
        kernel_mmd(a, b, **options, kid_kernel_poly_gamma=None), rel=1e-4
    )
    # subsets as large as the sets: every torch-fidelity subset is the whole set
    reference = kid_features_to_metric(
        torch.tensor(a), torch.tensor(b), kid_subsets=5, kid_subset_size=60, verbose=False
    )
    ours = kernel_inception_distance(a, b, seed=0, num_subsets=5, subset_size=60)
    assert ours["mean"] == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-4)


def test_floor_stand_ins_have_the_generated_species_counts_without_repeats() -> None:
    """The floor's real crops: the same count of each species as the generated set, drawn
    without replacement, capped where the train split has fewer."""
    from speciesgan.metrics.floors import rows_like

    train_labels = np.repeat([0, 1, 2], [50, 8, 30])
    rows = rows_like(train_labels, np.array([20, 10, 5]), seed=3)
    assert np.bincount(train_labels[rows], minlength=3).tolist() == [20, 8, 5]
    assert len(set(rows.tolist())) == len(rows)  # no crop twice
    np.testing.assert_array_equal(rows, rows_like(train_labels, np.array([20, 10, 5]), seed=3))
    assert not np.array_equal(rows, rows_like(train_labels, np.array([20, 10, 5]), seed=4))


class _Classifier(torch.nn.Module):
    """Predicts the species written in the first pixel's red value (a stand-in judge)."""

    def __init__(self, wrong_for: int | None = None) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.wrong_for = wrong_for

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        species = ((images[:, 0, 0, 0] + 1) * 127.5).round().long()
        if self.wrong_for is not None:
            species = torch.where(species == self.wrong_for, (species + 1) % 3, species)
        return torch.nn.functional.one_hot(species, 3).float()


def test_figures_and_floors_use_equal_class_balanced_counts() -> None:
    """Precision/recall and FD compare sets of equal size: species k keeps the smallest of its
    reference, generated and test counts in all three, and the floor uses real test crops."""
    from speciesgan.data.dataset import CropSet
    from speciesgan.metrics.evaluate import beside_floors
    from speciesgan.metrics.fid import RealFeatures
    from speciesgan.metrics.generated import GeneratedOutputs
    from speciesgan.metrics.real_side import RealSide

    rng = np.random.default_rng(0)
    species = ["a", "b", "c"]

    def feats(counts: list[int], shift: float) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(3), counts)
        return rng.normal(size=(len(labels), 8)) + shift + labels[:, None], labels

    ref, ref_labels = feats([12, 12, 12], 0.0)
    test, test_labels = feats([30, 7, 25], 0.0)
    gen, gen_labels = feats([20, 20, 20], 3.0)  # far from the real crops
    images = torch.zeros(len(test_labels), 3, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.as_tensor(test_labels, dtype=torch.uint8)
    real = RealSide(
        spaces={"lite0": RealFeatures(ref, ref_labels, species, Path("x"))},
        train_lite0=RealFeatures(ref, ref_labels, species, Path("x")),
        train_counts=np.array([12, 12, 12]),
        test=CropSet(images, torch.as_tensor(test_labels), species, ["x"] * 3),
        train_images=torch.zeros(0),
        test_lite0=RealFeatures(test, test_labels, species, Path("x")),
    )
    balanced = GeneratedOutputs(gen_labels, np.zeros((60, 0)), np.zeros((60, 0)), None)
    balanced.spaces["lite0"] = gen.astype(np.float32)
    options = {"precision_recall_k": 3, "density_coverage_k": 5}
    figures, floors = beside_floors(
        real, balanced, gen_labels, _Classifier(), _Classifier(wrong_for=1), options, seed=0
    )
    assert figures["num_images"]["per_species"] == [12, 7, 12]
    assert figures["num_images"]["generated"] == figures["num_images"]["real"] == 31
    assert floors["num_images"]["per_species"] == [12, 7, 12]
    assert floors["num_images"]["stand_ins"] == floors["num_images"]["real"] == 31
    assert floors["recall"] > 0.5 > figures["recall"]  # real test crops sit where real ones do
    assert floors["fd_lite0"] < figures["fd_lite0"]
    # accuracy floors: the classifiers on real test crops, as many per species as generated
    assert floors["generated_accuracy"]["mean"] == 1.0
    assert floors["judge_accuracy"]["worst"] == 0.0  # the judge stand-in misses species b
    assert floors["judge_accuracy"]["mean"] == pytest.approx(2 / 3)


def test_judge_verdict_counts_only_for_a_judge_good_on_real_crops() -> None:
    from speciesgan.metrics.evaluate import judge_verdict

    labels = np.repeat([0, 1], 4)
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    good = judge_verdict(correct, labels, ["a", "b"], {}, {"test_top1": 0.9, "min_accuracy": 0.85})
    assert good["mean"] == 0.5 and good["worst"] == 0.25 and good["counts"] is True
    assert good["ratio_to_real"] == pytest.approx(0.5 / 0.9)
    weak = judge_verdict(correct, labels, ["a", "b"], {}, {"test_top1": 0.6, "min_accuracy": 0.85})
    assert weak["counts"] is False
