"""Leeds Butterflies, image folders and photo tables, read from layouts built here.

Each layout is written by hand the way the real one looks (tiny images, masks
drawn with PIL), and the tests check what the index step relies on: species
names, boxes in image pixels with x1/y1 exclusive, splits, categories, and a
reject with a reason for everything unusable.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from speciesgan.data.sources import (
    image_folders,
    leeds_butterflies,
    reader,
    source,
    table,
)
from speciesgan.util.errors import SpeciesganError


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 90, 60)).save(path)
    return path


def _mask(path: Path, size: tuple[int, int], values: dict[tuple[int, int, int, int], int]) -> None:
    """A palette PNG like the Leeds masks: each (x0, y0, x1, y1) region set to its value."""
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    for (x0, y0, x1, y1), value in values.items():
        array[y0:y1, x0:x1] = value
    mask = Image.fromarray(array, mode="L").convert("P")
    mask.putpalette([0, 0, 0, 255, 255, 255, 128, 128, 128, 200, 200, 200] + [0] * 756)
    path.parent.mkdir(parents=True, exist_ok=True)
    mask.save(path)


# ---------------------------------------------------------------- Leeds Butterflies


@pytest.fixture
def leeds(tmp_path: Path) -> Path:
    """An extracted ``leedsbutterfly_dataset_v1.0.zip`` with two classes and bad cases."""
    base = tmp_path / "extracted" / "leedsbutterfly"
    size = (40, 30)
    for stem in ("0010001", "0010002", "0090001", "0090002", "0090003"):
        _image(base / "images" / f"{stem}.jpg", size)
    seg = base / "segmentations"
    _mask(seg / "0010001_seg0.png", size, {(5, 4, 20, 18): 1})
    # value 3 is foreground too; value 2 (stray border pixels) must not widen the box
    _mask(
        seg / "0010002_seg0.png", size, {(0, 0, 40, 2): 2, (10, 10, 12, 25): 1, (12, 5, 30, 12): 3}
    )
    _mask(seg / "0090001_seg0.png", size, {(1, 2, 39, 29): 1})
    _mask(seg / "0090003_seg0.png", size, {(0, 28, 40, 30): 2})  # only background values
    # 0090002 has no mask
    (base / "descriptions").mkdir()
    (base / "descriptions" / "001.txt").write_text(
        'Danaus plexippus\nMonarch\n\n3 1/2-4" (89-102 mm). Very large, with long forewings.\n'
    )
    (base / "descriptions" / "009.txt").write_text(
        "Vanessa atalanta\n\nWings black with red bands.\n"
    )
    return tmp_path / "extracted"


def test_leeds_boxes_come_from_masks_and_names_from_descriptions(leeds: Path) -> None:
    records, rejects = reader("leeds_butterflies")(leeds, "leeds", "butterfly")
    by_name = {Path(r.image_path).name: r for r in records}
    assert sorted(by_name) == ["0010001.jpg", "0010002.jpg", "0090001.jpg"]
    assert by_name["0010001.jpg"].boxes == ((5, 4, 20, 18),)
    assert by_name["0010002.jpg"].boxes == ((10, 5, 30, 25),)
    assert by_name["0090001.jpg"].boxes == ((1, 2, 39, 29),)
    assert by_name["0010001.jpg"].species == "Monarch"  # the common name wins
    assert by_name["0090001.jpg"].species == "Vanessa atalanta"  # no common name given
    assert {r.category for r in records} == {"butterfly"}
    assert {r.split for r in records} == {None}
    assert all(os.path.isabs(r.image_path) for r in records)
    assert [r.image_path for r in records] == sorted(r.image_path for r in records)
    reasons = {Path(r.image_path).name: r.reason for r in rejects}
    assert reasons["0090002.jpg"].startswith("missing mask")
    assert reasons["0090003.jpg"].startswith("empty mask")
    assert {r.stage for r in rejects} == {"source"}


def test_leeds_accepts_the_inner_folder_and_rejects_a_misfit_mask(leeds: Path) -> None:
    inner = leeds / "leedsbutterfly"
    _mask(inner / "segmentations" / "0090001_seg0.png", (20, 20), {(1, 1, 5, 5): 1})
    records, rejects = leeds_butterflies.read(inner, "leeds", "butterfly")
    assert len(records) == 2
    misfit = [r for r in rejects if r.image_path.endswith("0090001.jpg")]
    assert misfit and "20x20" in misfit[0].reason and "40x30" in misfit[0].reason


def test_leeds_binary_255_masks_and_missing_layout(tmp_path: Path) -> None:
    base = tmp_path / "leedsbutterfly"
    _image(base / "images" / "0040001.jpg", (30, 20))
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[3:9, 7:16] = 255
    (base / "segmentations").mkdir()
    Image.fromarray(mask, mode="L").save(base / "segmentations" / "0040001_seg0.png")
    records, _ = leeds_butterflies.read(tmp_path, "leeds", "butterfly")
    assert records[0].boxes == ((7, 3, 16, 9),)
    assert records[0].species == "Common Buckeye"  # published class list, no descriptions/
    with pytest.raises(SpeciesganError, match="images/"):
        leeds_butterflies.read(tmp_path / "nowhere", "leeds", "butterfly")


def test_leeds_description_forms() -> None:
    read = leeds_butterflies.species_from_description
    assert read("Monarch (Danaus plexippus)\n\nText.") == "Monarch"
    assert (
        read("\n\nPieris rapae\nCabbage White\nA small white butterfly seen in 1860.\n")
        == "Cabbage White"
    )
    assert read("Danaus plexippus\n") == "Danaus plexippus"
    assert read("Wings are long and drawn out, 89 mm across.") is None


def test_leeds_is_registered() -> None:
    ((archive, url),) = source("leeds_butterflies").archives.items()
    assert archive == "leedsbutterfly_dataset_v1.0.zip"
    assert url.endswith("/leedsbutterfly/" + archive)


# ---------------------------------------------------------------- image folders


def test_image_folders_without_splits(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _image(root / "Red_Admiral" / "b.JPG")
    _image(root / "Red_Admiral" / "a.jpeg")
    _image(root / "MONARCH" / "x.png")
    _image(root / "MONARCH" / "y.webp")
    _image(root / "MONARCH" / ".hidden.jpg")
    (root / "MONARCH" / "notes.txt").write_text("not a photo")
    (root / "Empty species").mkdir()
    (root / "README.md").write_text("top-level files are not photos of a species")
    records, rejects = reader("image_folders")(root, "mine", "butterfly")
    assert [(Path(r.image_path).name, r.species) for r in records] == [
        ("x.png", "Monarch"),
        ("y.webp", "Monarch"),
        ("a.jpeg", "Red Admiral"),
        ("b.JPG", "Red Admiral"),
    ]
    assert all(r.boxes == () and r.split is None and r.category == "butterfly" for r in records)
    assert [(Path(r.image_path).name, r.species, r.reason) for r in rejects] == [
        ("notes.txt", "Monarch", "not an image file")
    ]


def test_image_folders_with_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "butterflies"
    _image(root / "train" / "RED ADMIRAL" / "1.jpg")
    _image(root / "train" / "ADONIS" / "1.jpg")
    _image(root / "valid" / "RED ADMIRAL" / "2.jpg")
    _image(root / "test" / "Red Admiral" / "3.jpg")
    records, rejects = image_folders.read(root, "kaggle", "butterfly")
    got = sorted((r.split, r.species, Path(r.image_path).name) for r in records)
    assert got == [
        ("test", "Red Admiral", "2.jpg"),
        ("test", "Red Admiral", "3.jpg"),
        ("train", "Adonis", "1.jpg"),
        ("train", "Red Admiral", "1.jpg"),
    ]
    assert rejects == []


def test_image_folders_refuses_ambiguous_or_empty_roots(tmp_path: Path) -> None:
    _image(tmp_path / "mixed" / "train" / "Monarch" / "1.jpg")
    _image(tmp_path / "mixed" / "Monarch" / "2.jpg")
    with pytest.raises(SpeciesganError, match="Monarch"):
        image_folders.read(tmp_path / "mixed", "d", "butterfly")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpeciesganError, match="no species folders"):
        image_folders.read(tmp_path / "empty", "d", "butterfly")


def test_readable_species_names() -> None:
    assert image_folders.readable_species("RED ADMIRAL") == "Red Admiral"
    assert image_folders.readable_species("CRIMSON-PATCHED_LONGWING") == "Crimson-patched Longwing"
    assert image_folders.readable_species("Border_collie") == "Border collie"
    assert image_folders.readable_species("n02106166-Border_collie") == "n02106166-Border collie"


# ---------------------------------------------------------------- photo tables


def _table_fixture(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    _image(photos / "a.jpg")
    _image(photos / "b.jpg")
    _image(photos / "c.jpg")
    _image(tmp_path / "elsewhere" / "d.png")
    frame = pd.DataFrame(
        [
            ("photos/a.jpg", "Monarch", "", "train", "1", "2", "30", "25"),
            ("photos/a.jpg", "Monarch", "", "train", "0", "0", "10.4", "9.6"),
            ("photos/b.jpg", "Robin", "bird", "TEST", "", "", "", ""),
            ("photos/c.jpg", "Monarch", "", "", "3", "", "9", "9"),
            (str(tmp_path / "elsewhere" / "d.png"), "Monarch", "", "valid", "", "", "", ""),
            ("photos/missing.jpg", "Monarch", "", "train", "", "", "", ""),
            ("photos/a.jpg", "Monarch", "", "holdout", "", "", "", ""),
            ("photos/b.jpg", "Robin", "bird", "test", "one", "2", "3", "4"),
        ],
        columns=["path", "species", "category", "split", "x0", "y0", "x1", "y1"],
    )
    out = tmp_path / "list.csv"
    frame.to_csv(out, index=False)
    return out


def test_table_records_and_rejects(tmp_path: Path) -> None:
    records, rejects = reader("table")(_table_fixture(tmp_path), "listed", "butterfly")
    got = {Path(r.image_path).name: (r.species, r.category, r.split, r.boxes) for r in records}
    assert got == {
        "a.jpg": ("Monarch", "butterfly", "train", ((0, 0, 10, 10), (1, 2, 30, 25))),
        "b.jpg": ("Robin", "bird", "test", ()),
        "c.jpg": ("Monarch", "butterfly", None, ()),  # partly given box: no box
        "d.png": ("Monarch", "butterfly", "test", ()),
    }
    assert all(os.path.isabs(r.image_path) for r in records)
    reasons = sorted((Path(r.image_path).name, r.reason) for r in rejects)
    assert [name for name, _ in reasons] == ["a.jpg", "b.jpg", "missing.jpg"]
    assert "unknown split 'holdout'" in reasons[0][1]
    assert "box is not numbers" in reasons[1][1] and "'one'" in reasons[1][1]
    assert reasons[2][1] == "file not found"


def test_table_parquet_and_conflicting_rows(tmp_path: Path) -> None:
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "b.jpg")
    frame = pd.DataFrame(
        {"path": ["a.jpg", "b.jpg", "b.jpg"], "species": ["Monarch", "Monarch", "Painted Lady"]}
    )
    out = tmp_path / "list.parquet"
    frame.to_parquet(out)
    records, rejects = table.read(out, "listed", "butterfly")
    assert [(Path(r.image_path).name, r.species, r.split, r.boxes) for r in records] == [
        ("a.jpg", "Monarch", None, ())
    ]
    assert (
        len(rejects) == 1
        and "disagree" in rejects[0].reason
        and "Painted Lady" in rejects[0].reason
    )


@pytest.mark.parametrize("missing", ["path", "species"])
def test_table_missing_required_column_names_it(tmp_path: Path, missing: str) -> None:
    out = tmp_path / "list.csv"
    pd.DataFrame({"path": ["a.jpg"], "species": ["Monarch"]}).drop(columns=[missing]).to_csv(
        out, index=False
    )
    with pytest.raises(SpeciesganError) as error:
        table.read(out, "listed", "butterfly")
    assert missing in str(error.value) and str(out) in str(error.value)


def test_table_partial_box_columns_are_an_error(tmp_path: Path) -> None:
    out = tmp_path / "list.csv"
    pd.DataFrame({"path": ["a.jpg"], "species": ["M"], "x0": [1], "y0": [2]}).to_csv(
        out, index=False
    )
    with pytest.raises(SpeciesganError, match="x1"):
        table.read(out, "listed", "butterfly")
