"""Source readers, checked against hand-written real-format fixtures and demo archives.

The hand-written fixtures pin the real layouts (so a demo writer and a reader that
agree on a wrong layout still fail); the demo round trip checks the pair end to end
through extraction.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from speciesgan.data.demo import write_demo_archives
from speciesgan.data.extract import extract_archives
from speciesgan.data.sources import cub as cub_source
from speciesgan.data.sources import reader, source, stanford_dogs
from speciesgan.util.errors import SpeciesganError

SPECIES, IMAGES = 3, 12


def _jpeg(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 90, 60)).save(path)


def _voc(
    folder: str, stem: str, width: int, height: int, boxes: list[tuple[int, int, int, int]]
) -> str:
    objects = "".join(
        f"""
        <object>
            <name>Border_collie</name>
            <pose>Unspecified</pose>
            <truncated>0</truncated>
            <difficult>0</difficult>
            <bndbox>
                <xmin>{x0}</xmin>
                <ymin>{y0}</ymin>
                <xmax>{x1}</xmax>
                <ymax>{y1}</ymax>
            </bndbox>
        </object>"""
        for x0, y0, x1, y1 in boxes
    )
    return textwrap.dedent(f"""\
        <annotation>
            <folder>{folder}</folder>
            <filename>{stem}</filename>
            <source>
                <database>ImageNet database</database>
            </source>
            <size>
                <width>{width}</width>
                <height>{height}</height>
                <depth>3</depth>
            </size>
            <segment>0</segment>{objects}
        </annotation>
        """)


def _matlab_list(path: Path, files: list[str], labels: list[int]) -> None:
    """A list file as the real lists.tar has it: N x 1 cells of strings, labels N x 1."""
    cells = np.empty((len(files), 1), dtype=object)
    annos = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        cells[i, 0] = np.array([f])
        annos[i, 0] = np.array([f.removesuffix(".jpg")])
    scipy.io.savemat(path, {"file_list": cells, "annotation_list": annos,
                            "labels": np.array(labels, dtype=np.float64).reshape(-1, 1)})  # fmt: skip


@pytest.fixture
def dogs_tree(tmp_path: Path) -> Path:
    chi, bc = "n02085620-Chihuahua", "n02106166-Border_collie"
    _jpeg(tmp_path / "Images" / chi / "n02085620_10074.jpg")
    _jpeg(tmp_path / "Images" / chi / "n02085620_7.jpg")  # no annotation
    _jpeg(tmp_path / "Images" / bc / "n02106166_1031.jpg")
    _jpeg(tmp_path / "Images" / bc / "n02106166_55.jpg")  # broken XML
    (tmp_path / "Annotation" / chi).mkdir(parents=True)
    (tmp_path / "Annotation" / bc).mkdir(parents=True)
    (tmp_path / "Annotation" / chi / "n02085620_10074").write_text(
        _voc("02085620", "n02085620_10074", 40, 30, [(1, 3, 40, 30)])
    )
    (tmp_path / "Annotation" / bc / "n02106166_1031").write_text(
        _voc("02106166", "n02106166_1031", 40, 30, [(2, 2, 10, 12), (20, 5, 45, 31)])
    )
    (tmp_path / "Annotation" / bc / "n02106166_55").write_text("<annotation><size>")
    _matlab_list(tmp_path / "train_list.mat", [f"{chi}/n02085620_10074.jpg"], [1])
    _matlab_list(tmp_path / "test_list.mat", [f"{bc}/n02106166_1031.jpg"], [2])
    return tmp_path


def test_stanford_dogs_real_format_fixture(dogs_tree: Path) -> None:
    records, rejects = stanford_dogs.read(dogs_tree, "dogs", "dog")
    by_name = {Path(r.image_path).name: r for r in records}
    assert sorted(by_name) == ["n02085620_10074.jpg", "n02106166_1031.jpg"]
    chihuahua = by_name["n02085620_10074.jpg"]
    assert chihuahua.species == "Chihuahua" and chihuahua.category == "dog"
    assert chihuahua.boxes == ((0, 2, 40, 30),)  # VOC 1-based inclusive -> 0-based exclusive
    assert chihuahua.split == "train"
    collie = by_name["n02106166_1031.jpg"]
    assert collie.species == "Border collie"
    assert collie.boxes == ((1, 1, 10, 12), (19, 4, 40, 30))  # second box clipped to 40 x 30
    assert collie.split == "test"
    assert Path(collie.image_path).is_absolute()
    reasons = {Path(r.image_path).name: r.reason for r in rejects}
    assert reasons["n02085620_7.jpg"] == "missing annotation"
    assert reasons["n02106166_55.jpg"].startswith("bad annotation")
    assert all(r.stage == "source" for r in rejects)
    assert [r.image_path for r in records] == sorted(r.image_path for r in records)


def test_stanford_dogs_without_lists_has_no_split(dogs_tree: Path) -> None:
    (dogs_tree / "train_list.mat").unlink()
    (dogs_tree / "test_list.mat").unlink()
    records, _ = stanford_dogs.read(dogs_tree, "dogs", "dog")
    assert {r.split for r in records} == {None}


def test_stanford_dogs_wrong_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="Images/"):
        stanford_dogs.read(tmp_path, "dogs", "dog")


CUB_TABLES = {
    "images.txt": """\
        1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg
        2 001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg
        3 002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg
        """,
    "classes.txt": "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n",
    "image_class_labels.txt": "1 1\n2 1\n3 2\n",
    "bounding_boxes.txt": "1 60.0 27.0 325.0 304.0\n2 139.0 30.0 153.0 264.0\n3 14.5 112.0 388.0 186.0\n",
    "train_test_split.txt": "1 0\n2 1\n3 1\n",
}


@pytest.fixture
def cub_tree(tmp_path: Path) -> Path:
    base = tmp_path / "CUB_200_2011"
    base.mkdir()
    for name, text in CUB_TABLES.items():
        (base / name).write_text(textwrap.dedent(text))
    _jpeg(base / "images" / "001.Black_footed_Albatross" / "Black_Footed_Albatross_0046_18.jpg")
    _jpeg(base / "images" / "002.Laysan_Albatross" / "Laysan_Albatross_0002_1027.jpg")
    return tmp_path  # image 2 is listed but missing on disk


@pytest.mark.parametrize("inside", [False, True], ids=["extract-root", "CUB_200_2011"])
def test_cub_real_format_fixture(cub_tree: Path, inside: bool) -> None:
    root = cub_tree / "CUB_200_2011" if inside else cub_tree
    records, rejects = cub_source.read(root, "birds", "bird")
    assert [Path(r.image_path).name for r in records] == [
        "Black_Footed_Albatross_0046_18.jpg", "Laysan_Albatross_0002_1027.jpg",
    ]  # fmt: skip
    albatross, laysan = records
    assert albatross.species == "Black footed Albatross" and laysan.species == "Laysan Albatross"
    assert albatross.boxes == ((60, 27, 385, 331),)  # x y w h -> x0 y0 x1 y1
    assert laysan.boxes == ((14, 112, 402, 298),)  # round(14.5) == 14, round(402.5) == 402
    assert (albatross.split, laysan.split) == ("test", "train")
    assert [(Path(r.image_path).name, r.reason) for r in rejects] == [
        ("Black_Footed_Albatross_0009_34.jpg", "missing image file")
    ]


def test_cub_malformed_table_names_file_and_line(cub_tree: Path) -> None:
    (cub_tree / "CUB_200_2011" / "image_class_labels.txt").write_text("1 1\n2\n3 2\n")
    with pytest.raises(SpeciesganError, match=r"image_class_labels.txt:2"):
        cub_source.read(cub_tree, "birds", "bird")


# ---------------------------------------------------------------- demo round trips


@pytest.fixture(scope="module")
def demo_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for layout in ("stanford_dogs", "cub"):
        base = tmp_path_factory.mktemp(layout)
        archives = write_demo_archives(base / "archives", layout, seed=3, species_per_dataset=SPECIES,
                                       images_per_species=IMAGES, min_size=64, max_size=96)  # fmt: skip
        assert [a.name for a in archives] == list(source(layout).archives)
        extract_archives(archives, base / "extracted")
        roots[layout] = base / "extracted"
    return roots


def test_demo_stanford_dogs_round_trip(demo_roots: dict[str, Path]) -> None:
    root = demo_roots["stanford_dogs"]
    records, rejects = reader("demo_stanford_dogs")(root, "demo_dogs", "dog")
    assert rejects == []
    assert len(records) == SPECIES * IMAGES
    assert {r.species for r in records} == {"Striped hound", "Marsh terrier", "Northern spaniel"}
    assert any(len(r.boxes) == 2 for r in records), "seed 3 should give at least one two-dog photo"
    train = {str(cell[0][0]) for cell in scipy.io.loadmat(root / "train_list.mat")["file_list"]}
    assert 0.7 * len(records) <= len(train) <= 0.9 * len(records)
    assert {r.split for r in records} == {"train", "test"}
    for r in records:
        rel = "/".join(Path(r.image_path).parts[-2:])
        assert (r.split == "train") == (rel in train)
        width, height = Image.open(r.image_path).size
        for x0, y0, x1, y1 in r.boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert max(x1 - x0, y1 - y0) >= 0.3 * min(width, height)


def test_demo_stanford_dogs_missing_annotation_is_a_reject(demo_roots: dict[str, Path]) -> None:
    root = demo_roots["stanford_dogs"]
    records, _ = stanford_dogs.read(root, "d", "dog")
    victim = Path(records[5].image_path)
    annotation = root / "Annotation" / victim.parent.name / victim.stem
    saved = annotation.read_bytes()
    annotation.unlink()
    try:
        records_after, rejects = stanford_dogs.read(root, "d", "dog")
    finally:
        annotation.write_bytes(saved)
    assert len(records_after) == len(records) - 1
    assert [(r.image_path, r.reason) for r in rejects] == [(str(victim), "missing annotation")]


def test_demo_cub_round_trip(demo_roots: dict[str, Path]) -> None:
    root = demo_roots["cub"]
    records, rejects = reader("demo_cub")(root, "demo_birds", "bird")
    assert rejects == []
    assert len(records) == SPECIES * IMAGES
    assert {r.species for r in records} == {"Spotted Warbler", "Ringed Plover", "Crested Finch"}
    assert {r.split for r in records} == {"train", "test"}
    for r in records:
        assert len(r.boxes) == 1
        width, height = Image.open(r.image_path).size
        x0, y0, x1, y1 = r.boxes[0]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
