"""write_demo_archives(): real layouts, determinism, and species that colour alone cannot tell."""

from __future__ import annotations

import colorsys
import io
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import yaml
from matplotlib.colors import rgb_to_hsv
from PIL import Image

from speciesgan.cli import main
from speciesgan.data.demo import (
    DOG_BREEDS,
    breed_names,
    stanford_dogs_photo_size,
    write_demo_archives,
    write_stanford_dogs_scale,
)
from speciesgan.data.extract import extract_archives
from speciesgan.data.index import boxes_to_crop, inspect_photo
from speciesgan.data.preprocess import crop_photo
from speciesgan.data.sources import reader
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.schema_defaults import schema_defaults

SMALL = {"species_per_dataset": 4, "images_per_species": 20, "min_size": 64, "max_size": 96}


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def dogs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dogs")
    write_demo_archives(out, "stanford_dogs", seed=5, **SMALL)
    return out


@pytest.fixture(scope="module")
def birds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("birds")
    write_demo_archives(out, "cub", seed=5, **SMALL)
    return out


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    tmp_path: Path, dogs: Path, birds: Path
) -> None:
    for layout, first in (("stanford_dogs", dogs), ("cub", birds)):
        again = write_demo_archives(tmp_path / layout, layout, seed=5, **SMALL)
        for archive in again:
            assert archive.read_bytes() == (first / archive.name).read_bytes(), archive.name
    other = write_demo_archives(tmp_path / "other", "stanford_dogs", seed=6, **SMALL)
    assert other[0].read_bytes() != (dogs / "images.tar").read_bytes()


def test_archive_metadata_is_neutral(dogs: Path, birds: Path) -> None:
    assert (birds / "CUB_200_2011.tgz").read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime
    with tarfile.open(dogs / "images.tar") as tar:
        assert {(m.mtime, m.uid, m.gid) for m in tar.getmembers()} == {(0, 0, 0)}


def test_stanford_dogs_layout(dogs: Path) -> None:
    assert sorted(p.name for p in dogs.iterdir()) == ["annotation.tar", "images.tar", "lists.tar"]
    images = _members(dogs / "images.tar")
    annotations = _members(dogs / "annotation.tar")
    assert len(images) == 4 * 20
    two_dogs = 0
    for name, jpeg in images.items():
        match = re.fullmatch(r"Images/(n9\d{7})-([A-Z][a-z]+_[a-z]+)/(\1_\d+)\.jpg", name)
        assert match, name
        wnid, breed, stem = match.groups()
        root = ET.fromstring(annotations[f"Annotation/{wnid}-{breed}/{stem}"])
        assert root.findtext("folder") == wnid[1:]
        assert root.findtext("filename") == stem
        assert root.findtext("source/database") == "ImageNet database"
        assert root.findtext("segment") == "0"
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG" and image.mode == "RGB"
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == image.size
        assert 64 <= image.width <= 96 and 64 <= image.height <= 96
        objects = root.findall("object")
        two_dogs += len(objects) == 2
        for obj in objects:
            assert obj.findtext("name") == breed
            assert obj.findtext("pose") == "Unspecified"
            assert obj.findtext("truncated") == obj.findtext("difficult") == "0"
            xmin, ymin, xmax, ymax = (
                int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            assert 1 <= xmin <= xmax <= image.width and 1 <= ymin <= ymax <= image.height
    assert 0.03 <= two_dogs / len(images) <= 0.35


def test_stanford_dogs_lists(dogs: Path, tmp_path: Path) -> None:
    with tarfile.open(dogs / "lists.tar") as tar:
        assert sorted(tar.getnames()) == ["file_list.mat", "test_list.mat", "train_list.mat"]
        tar.extractall(tmp_path, filter="data")
    folders = sorted({n.split("/")[1] for n in _members(dogs / "images.tar")})
    every = scipy.io.loadmat(tmp_path / "file_list.mat")
    files = [str(c[0][0]) for c in every["file_list"]]
    assert every["file_list"].shape == (80, 1) and every["labels"].shape == (80, 1)
    assert files == sorted(files)
    assert [str(c[0][0]) for c in every["annotation_list"]] == [
        f.removesuffix(".jpg") for f in files
    ]
    assert [int(v) for v in every["labels"].ravel()] == [
        folders.index(f.split("/")[0]) + 1 for f in files
    ]
    train = [str(c[0][0]) for c in scipy.io.loadmat(tmp_path / "train_list.mat")["file_list"]]
    test = [str(c[0][0]) for c in scipy.io.loadmat(tmp_path / "test_list.mat")["file_list"]]
    assert sorted(train + test) == files and not set(train) & set(test)
    assert len(train) == 4 * 16


def test_cub_layout(birds: Path) -> None:
    assert [p.name for p in birds.iterdir()] == ["CUB_200_2011.tgz"]
    members = _members(birds / "CUB_200_2011.tgz")

    def table(name: str) -> list[list[str]]:
        return [line.split() for line in members[f"CUB_200_2011/{name}"].decode().splitlines()]

    images = table("images.txt")
    assert [int(row[0]) for row in images] == list(range(1, 81))
    classes = dict(table("classes.txt"))
    assert list(classes) == ["1", "2", "3", "4"]
    assert all(re.fullmatch(r"00\d\.[A-Z][a-z]+_[A-Z][a-z]+", c) for c in classes.values())
    labels = dict(table("image_class_labels.txt"))
    boxes = {row[0]: row[1:] for row in table("bounding_boxes.txt")}
    split = dict(table("train_test_split.txt"))
    for image_id, rel in images:
        folder, filename = rel.split("/")
        assert classes[labels[image_id]] == folder
        assert re.fullmatch(re.escape(folder.split(".", 1)[1]) + r"_\d{4}_\d+\.jpg", filename)
        image = Image.open(io.BytesIO(members[f"CUB_200_2011/images/{rel}"]))
        x, y, w, h = boxes[image_id]
        assert all(re.fullmatch(r"\d+\.0", v) for v in (x, y, w, h))
        assert float(x) + float(w) <= image.width and float(y) + float(h) <= image.height
        assert split[image_id] in ("0", "1")
    assert sum(v == "1" for v in split.values()) == 4 * 16


def test_species_names_are_disjoint_between_layouts(dogs: Path, birds: Path) -> None:
    dog_names = {n.split("/")[1].split("-", 1)[1] for n in _members(dogs / "images.tar")}
    bird_names = {
        n.split("/")[2].split(".", 1)[1]
        for n in _members(birds / "CUB_200_2011.tgz")
        if "/images/" in n
    }
    assert len(dog_names) == len(bird_names) == 4
    assert not dog_names & bird_names


def test_colour_alone_does_not_identify_the_species(birds: Path) -> None:
    """Mean colour of the animal predicts the species far worse than a perfect classifier."""
    members = _members(birds / "CUB_200_2011.tgz")
    rows = [line.split() for line in members["CUB_200_2011/images.txt"].decode().splitlines()]
    boxes = {r[0]: [int(float(v)) for v in r[1:]] for r in
             (line.split() for line in members["CUB_200_2011/bounding_boxes.txt"].decode().splitlines())}  # fmt: skip
    features, labels = [], []
    for image_id, rel in rows:
        pixels = np.asarray(
            Image.open(io.BytesIO(members[f"CUB_200_2011/images/{rel}"])), dtype=np.float64
        )
        x, y, w, h = boxes[image_id]
        centre = pixels[y + h // 4 : y + 3 * h // 4 + 1, x + w // 4 : x + 3 * w // 4 + 1]
        features.append(centre.reshape(-1, 3).mean(axis=0))
        labels.append(rel.split("/")[0])
    x_all, y_all = np.array(features), np.array(labels)
    classes = sorted(set(labels))
    correct = 0
    for i in range(len(y_all)):  # leave-one-out nearest centroid on mean RGB
        keep = np.arange(len(y_all)) != i
        centroids = np.stack([x_all[keep & (y_all == c)].mean(axis=0) for c in classes])
        correct += classes[int(np.argmin(((centroids - x_all[i]) ** 2).sum(axis=1)))] == y_all[i]
    assert correct / len(y_all) < 0.7


# --------------------------------------------------------------- shape is the only species cue

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
PHOTOS_PER_SPECIES = 80  # the demo has 150; 80 keeps the test near 30 s and chance at 1/12
HIST_BINS = 8
GRADIENT_EDGES = np.array([0, 1, 2, 4, 8, 16, 32, 64, np.inf])
NEIGHBOURS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)])
LEVELS = 8  # grey levels of the co-occurrence matrices


@pytest.fixture(scope="module")
def demo_crops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Crops of both demo layouts, made as the pipeline makes them.

    Archives at the demo config's species count and photo sizes -> extraction ->
    the source readers -> the index's boxes -> ``crop_photo`` at the demo's crop
    size; splits are the archives' own.  ``images`` is uint8 [N, S, S, 3].
    """
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    demo = {**config["demo"], "images_per_species": PHOTOS_PER_SPECIES}
    size = int(config["preprocess"]["image_size"])
    base = tmp_path_factory.mktemp("shape_only")
    images, labels, splits, species = [], [], [], []
    defaults = schema_defaults("preprocess")  # as crop-shard crops when nothing is set
    for layout, category in (("stanford_dogs", "dog"), ("cub", "bird")):
        archives = write_demo_archives(base / layout, layout, seed=0, **demo)
        extract_archives(archives, base / f"{layout}-extracted")
        records, rejects = reader(layout)(base / f"{layout}-extracted", layout, category)
        assert rejects == []
        for record in records:
            if record.species not in species:
                species.append(record.species)
            boxes, _ = boxes_to_crop(record, inspect_photo(record.image_path), "all")
            for box in boxes:
                crop = crop_photo(record.image_path, box, size, defaults["pad_mode"])
                images.append(crop.pixels)
                labels.append(species.index(record.species))
                splits.append(record.split)
    assert len(species) == 2 * demo["species_per_dataset"]
    return {
        "images": np.stack(images),
        "labels": np.array(labels),
        "train": np.array(splits) == "train",
    }


def _local_binary_histogram(grey: np.ndarray, radius: int) -> np.ndarray:
    """Rotation-invariant uniform LBP (8 neighbours at ``radius``): 10 bins, whole crop."""
    r = radius
    centre = grey[r:-r, r:-r]
    h, w = centre.shape
    bits = np.stack([grey[r + dy * r : r + dy * r + h, r + dx * r : r + dx * r + w] >= centre
                     for dy, dx in NEIGHBOURS])  # fmt: skip
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    codes = np.where(transitions <= 2, bits.sum(axis=0), 9)  # 0..8 uniform, 9 the rest
    return np.bincount(codes.ravel(), minlength=10) / codes.size


def _cooccurrence_statistics(grey: np.ndarray) -> list[float]:
    """Contrast, homogeneity, energy and correlation of grey-level co-occurrence.

    Symmetric matrices of ``LEVELS`` levels at distances 1, 2 and 4, averaged
    over the four directions.
    """
    q = np.minimum((grey * LEVELS / 256).astype(np.int64), LEVELS - 1)
    i, j = np.mgrid[0:LEVELS, 0:LEVELS]
    out = []
    for d in (1, 2, 4):
        stats = []
        for a, b in ((q[:, :-d], q[:, d:]), (q[:-d, :], q[d:, :]),
                     (q[:-d, :-d], q[d:, d:]), (q[:-d, d:], q[d:, :-d])):  # fmt: skip
            m = np.bincount((a * LEVELS + b).ravel(), minlength=LEVELS**2).reshape(LEVELS, LEVELS)
            p = (m + m.T) / (2.0 * m.sum())
            mu = (i * p).sum()
            var = (((i - mu) ** 2) * p).sum()
            corr = (((i - mu) * (j - mu)) * p).sum() / var if var > 0 else 1.0
            stats.append([((i - j) ** 2 * p).sum(), (p / (1 + (i - j) ** 2)).sum(),
                          (p**2).sum(), corr])  # fmt: skip
        out += np.mean(stats, axis=0).tolist()
    return out


def colour_texture_features(crop: np.ndarray) -> np.ndarray:
    """What a crop looks like with no regard to where things are in it.

    Per-channel histograms (8 bins) with mean and standard deviation in RGB and
    HSV, a gradient-magnitude histogram, LBP histograms at radius 1 and 2 and
    co-occurrence statistics: all pooled over the whole crop, so they capture
    colour and texture but no layout.
    """
    rgb = crop.astype(np.float64) / 255.0
    parts: list[np.ndarray | list[float]] = []
    for space in (rgb, rgb_to_hsv(rgb)):
        for c in range(3):
            v = space[..., c]
            parts += [
                np.histogram(v, bins=HIST_BINS, range=(0.0, 1.0))[0] / v.size,
                [v.mean(), v.std()],
            ]
    grey = rgb @ np.array([0.299, 0.587, 0.114]) * 255.0
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    parts += [np.histogram(magnitude, bins=GRADIENT_EDGES)[0] / magnitude.size,
              [magnitude.mean(), magnitude.std()]]  # fmt: skip
    parts += [_local_binary_histogram(grey, 1), _local_binary_histogram(grey, 2)]
    parts.append(_cooccurrence_statistics(grey))
    return np.concatenate([np.ravel(p) for p in parts])


def _logistic_regression(
    x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and biases of multinomial logistic regression with an L2 penalty (L-BFGS)."""
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(x @ w + b, y) + weight_decay * (w**2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    return w.detach(), b.detach()


def feature_classifier_accuracy(images: np.ndarray, labels: np.ndarray, train: np.ndarray) -> float:
    """Test accuracy of logistic regression on ``colour_texture_features``.

    Features are standardised on the train split; the best of three L2
    strengths on the test split is returned, so a badly chosen strength cannot
    hide a cue.
    """
    features = np.stack([colour_texture_features(image) for image in images])
    mean, std = features[train].mean(axis=0), features[train].std(axis=0) + 1e-8
    x = torch.from_numpy((features - mean) / std)
    y = torch.from_numpy(labels)
    classes = int(labels.max()) + 1
    best = 0.0
    for weight_decay in (1e-3, 1e-2, 1e-1):
        w, b = _logistic_regression(x[train], y[train], classes, weight_decay)
        predicted = (x[~train] @ w + b).argmax(dim=1)
        best = max(best, float((predicted == y[~train]).double().mean()))
    return best


def test_colour_and_texture_statistics_do_not_identify_the_species(
    demo_crops: dict[str, np.ndarray],
) -> None:
    """A colour/texture classifier scores at most 2x chance; a per-species tint it finds.

    The control tints each species' crops by its own colour (hues spread around
    the circle, saturation 0.5): the same features and classifier must then
    identify the species, so a pass above is not a classifier that cannot learn.
    """
    images, labels, train = demo_crops["images"], demo_crops["labels"], demo_crops["train"]
    classes = int(labels.max()) + 1
    accuracy = feature_classifier_accuracy(images, labels, train)
    tints = np.array([colorsys.hsv_to_rgb(k / classes, 0.5, 1.0) for k in range(classes)])
    tinted = np.rint(images * tints[labels][:, None, None, :]).astype(np.uint8)
    control = feature_classifier_accuracy(tinted, labels, train)
    print(f"feature classifier accuracy: demo {accuracy:.3f}, tinted control {control:.3f}, "
          f"chance {1 / classes:.3f}")  # fmt: skip
    assert control > 0.5
    assert accuracy <= 2 / classes


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="layout"):
        write_demo_archives(tmp_path, "imagenet", seed=0)
    with pytest.raises(SpeciesganError, match="species_per_dataset"):
        write_demo_archives(tmp_path, "cub", seed=0, species_per_dataset=13)


def test_cli_writes_the_archives(tmp_path: Path) -> None:
    status = main(["demo-data", "--layout", "cub", "--out-dir", str(tmp_path), "--seed", "2",
                   "--settings", '{"species_per_dataset": 2, "images_per_species": 4, "min_size": 64, "max_size": 80}'])  # fmt: skip
    assert status == 0
    assert sum("/images/" in n for n in _members(tmp_path / "CUB_200_2011.tgz")) == 8


def test_stanford_dogs_scale_collection(tmp_path: Path) -> None:
    """The benchmark's full-size writer: real id/size shapes, 100 train per breed, any workers."""
    names = breed_names(120)
    assert len(set(names)) == 120 and names[:12] == list(DOG_BREEDS)
    assert all(re.fullmatch(r"[A-Z][a-z]+_[a-z]+", n) for n in names)
    rng = np.random.default_rng(0)
    sizes = [stanford_dogs_photo_size(rng) for _ in range(4000)]
    long_sides = np.array([max(s) for s in sizes])
    assert 0.75 < np.mean(long_sides == 500) < 0.9
    assert sizes.count((500, 375)) > sizes.count((500, 333)) > 0 and (375, 500) in sizes
    assert long_sides.max() > 1200 and min(min(s) for s in sizes) >= 64

    one = write_stanford_dogs_scale(tmp_path / "one", seed=3, photos=330, breeds=3, workers=1)
    two = write_stanford_dogs_scale(tmp_path / "two", seed=3, photos=330, breeds=3, workers=2)
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    images = _members(one[0])
    annotations = _members(one[1])
    assert len(images) == 330
    boxes = []
    for name, jpeg in images.items():
        match = re.fullmatch(r"Images/(n0\d{7})-([A-Z][a-z]+_[a-z]+)/(\1_\d+)\.jpg", name)
        assert match, name
        root = ET.fromstring(annotations[f"Annotation/{match[1]}-{match[2]}/{match[3]}"])
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
        assert Image.open(io.BytesIO(jpeg)).size == size
        boxes.append(len(root.findall("object")))
    assert 330 < sum(boxes) < 330 * 1.2 and max(boxes) >= 2
    with tarfile.open(one[2]) as tar:
        lists = {
            n: scipy.io.loadmat(io.BytesIO(tar.extractfile(f"{n}_list.mat").read()))["labels"]
            for n in ("file", "train")
        }
    per_breed = np.bincount(lists["file"].ravel().astype(int))[1:]
    assert sum(per_breed) == 330 and len(set(per_breed)) > 1  # uneven, like the real breeds
    trained = np.bincount(lists["train"].ravel().astype(int))[1:]
    assert trained.tolist() == [min(100, n - 1) for n in per_breed]
