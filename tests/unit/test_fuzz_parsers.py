"""Property-based fuzzing of the dataset parsers: bad input is a reject or a named error.

Every parser of a file a dataset brings (VOC XML annotations and the MATLAB split
lists of Stanford Dogs, the CUB-200-2011 tables, CSV/parquet photo tables, image
folder names, Leeds masks and descriptions, the index's source arguments) gets
well-formed, subtly wrong and plainly broken input.  What a user relies on: the
run either goes on, with each unusable photo counted as a reject and every record
pointing at a real file with a box inside the photo's coordinates, or it stops
with a SpeciesganError that names the file at fault -- never with a traceback.

Bounded and reproducible: a fixed number of examples per parser, derandomized,
no example database (nothing is written into the checkout).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.io
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from speciesgan.data.index import parse_source_arg, parse_sources_json
from speciesgan.data.sources import Reject, SourceRecord, cub, image_folders, stanford_dogs, table
from speciesgan.data.sources import leeds_butterflies as leeds
from speciesgan.util.errors import SpeciesganError

T = TypeVar("T")

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=30)

# Text a number field may hold in a broken file: numbers, non-finite and
# overlong ones, Unicode digits int() refuses, and plain junk.
NUMBER_TEXT = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", " ", "nan", "inf", "-inf", "1e400", "-1e400", "Infinity", "0x1f", "1_0", "²", "٣"]
    ),
    st.sampled_from(["9" * 5000, "1" + "0" * 4400]),
    st.text(max_size=6),
)
COORDINATE = st.one_of(st.integers(-5, 60).map(str), NUMBER_TEXT)
"""Mostly plausible pixel values, so that fuzzed files also reach the code past the checks."""
MOSTLY = st.sampled_from([True, True, True, True, False])
"""True four times in five (and when shrunk): a field as it should be, a file valid."""
JUNK = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode))


def _mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` truncated, or with a few bytes overwritten: a file damaged in transit."""
    positions = st.integers(0, max(len(data) - 1, 0))
    truncated = positions.map(lambda n: data[:n])
    flips = st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=8)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for at, value in changes:
            out[at] = value
        return bytes(out)

    return st.one_of(truncated, flips.map(flip))


def _outcome(call: Callable[[], T], names: Sequence[str | Path]) -> T | None:
    """The parser's result, or None after a SpeciesganError naming one of ``names``.

    Any other exception propagates, which is the failure this module looks for.
    """
    try:
        result = call()
    except SpeciesganError as error:
        message = str(error)
        assert any(str(name) in message for name in names), (message, names)
        event("SpeciesganError")
        return None
    event("parsed")
    return result


def _check_records(records: list[SourceRecord], rejects: list[Reject], dataset: str) -> None:
    """What the index step relies on from any source's output."""
    event(f"records: {min(len(records), 2)}+, rejects: {min(len(rejects), 2)}+")
    for record in records:
        assert record.dataset == dataset and isinstance(record.species, str)
        assert os.path.isfile(record.image_path), record
        assert record.split in (None, "train", "test"), record
        for x0, y0, x1, y1 in record.boxes:
            assert 0 <= x0 < x1 and 0 <= y0 < y1, record
    for reject in rejects:
        assert reject.dataset == dataset and reject.reason and reject.stage == "source"


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def _photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (90, 120, 60)).save(path)
    return path


# ---------------------------------------------------------------- Stanford Dogs


@st.composite
def voc_xml(draw: st.DrawFn) -> bytes:
    """A VOC annotation, mostly plausible, whose any tag may be missing or hold anything."""

    def tag(name: str, plausible: int) -> str:
        if not draw(MOSTLY) and draw(st.booleans()):
            return ""  # missing
        text = str(plausible) if draw(MOSTLY) else draw(NUMBER_TEXT)
        return f"<{name}>{escape(text) if draw(MOSTLY) else text}</{name}>"

    parts = ["<annotation>"]
    width, height = draw(st.integers(1, 80)), draw(st.integers(1, 80))
    if draw(MOSTLY):
        parts.append(f"<size>{tag('width', width)}{tag('height', height)}</size>")
    for _ in range(draw(st.integers(0, 3))):
        x0, y0 = draw(st.integers(-2, 60)), draw(st.integers(-2, 60))
        x1, y1 = x0 + draw(st.integers(-2, 60)), y0 + draw(st.integers(-2, 60))
        values = {"xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1}
        box = "".join(tag(name, value) for name, value in values.items())
        parts.append(f"<object><bndbox>{box}</bndbox></object>" if draw(MOSTLY) else "<object/>")
    parts.append("</annotation>")
    return "".join(parts).encode()


VALID_VOC = (
    b"<annotation><size><width>40</width><height>30</height></size><object><bndbox>"
    b"<xmin>2</xmin><ymin>3</ymin><xmax>30</xmax><ymax>25</ymax></bndbox></object></annotation>"
)
FOLDER, STEM = "n02085620-Chihuahua", "n02085620_7"


def _dogs_tree(root: Path, annotation: bytes) -> Path:
    _photo(root / "Images" / FOLDER / f"{STEM}.jpg")
    _write(root / "Annotation" / FOLDER / STEM, annotation)
    return root


@FUZZ
@given(st.one_of(voc_xml(), _mutated(VALID_VOC), JUNK))
def test_voc_annotations(annotation: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _dogs_tree(Path(tmp), annotation)
        found = _outcome(lambda: stanford_dogs.read(root, "dogs", "dog"), [root])
        assert found is not None  # one bad annotation rejects one photo, not the dataset
        records, rejects = found
        assert len(records) + len(rejects) == 1
        _check_records(records, rejects, "dogs")


def _cells(strings: list[str]) -> np.ndarray:
    cells = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cells[i, 0] = np.array([text])
    return cells


def _mat(variables: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, format="5", oned_as="column")
    return buffer.getvalue()


VALID_MAT = _mat({"file_list": _cells([f"{FOLDER}/{STEM}.jpg", f"{FOLDER}/other.jpg"])})


def _bad_type_tag(data: bytes) -> bytes:
    """``data`` with the type tag of the last string's text (miUTF8) made unknown.

    One such byte made scipy 1.17's MAT reader segfault, taking the index job with it.
    """
    at = data.rindex((16).to_bytes(4, "little"))  # miUTF8, then the byte count
    return data[:at] + b"\x10\xa4" + data[at + 2 :]


MAT_TEXT = st.text(
    st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",), exclude_characters="\x00"),
    max_size=30,
)  # MATLAB v5 stores text as UTF-16 code units


@st.composite
def mat_lists(draw: st.DrawFn) -> bytes:
    """A MAT file whose ``file_list`` (or a misnamed variable) holds unexpected values."""
    value = draw(
        st.one_of(
            st.lists(st.one_of(st.just(f"{FOLDER}/{STEM}.jpg"), MAT_TEXT), max_size=4).map(_cells),
            st.lists(st.floats(allow_nan=True), max_size=4).map(np.array),
            MAT_TEXT.map(np.str_),
            st.just(np.zeros((0, 0))),
            st.just({"a": np.array([1.0])}),
        )
    )
    name = "file_list" if draw(MOSTLY) else draw(st.sampled_from(["filelist", "file_list_"]))
    return _mat({name: value})


MAT_FILES = st.sampled_from(["lists", "lists", "damaged", "junk"]).flatmap(
    lambda kind: {"lists": mat_lists(), "damaged": _mutated(VALID_MAT), "junk": JUNK}[kind]
)  # a loadable file half of the time, so the split assignment is exercised too


@settings(FUZZ, max_examples=20)  # each list is read in a child process (~0.3 s)
@given(MAT_FILES, st.sampled_from(["train", "test"]))
@example(_bad_type_tag(VALID_MAT), "train")
def test_matlab_split_lists(data: bytes, split: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _dogs_tree(Path(tmp), VALID_VOC)
        mat = _write(root / stanford_dogs.SPLIT_LISTS[split], data)
        found = _outcome(lambda: stanford_dogs.read(root, "dogs", "dog"), [mat])
        if found is not None:
            records, rejects = found
            assert len(records) == 1 and not rejects
            assert records[0].split in (split, None)  # listed in this split's file, or not
            _check_records(records, rejects, "dogs")


# ---------------------------------------------------------------- CUB-200-2011

CUB_TABLES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "bounding_boxes.txt",
    "train_test_split.txt",
)
VALID_CUB = {
    "images.txt": "1 001.Black_footed_Albatross/a.jpg\n2 001.Black_footed_Albatross/b.jpg\n",
    "classes.txt": "1 001.Black_footed_Albatross\n",
    "image_class_labels.txt": "1 1\n2 1\n",
    "bounding_boxes.txt": "1 2.0 3.0 20.0 15.5\n2 0 0 40 30\n",
    "train_test_split.txt": "1 1\n2 0\n",
}
CUB_ID = st.one_of(st.sampled_from(["1", "2", "3"]), NUMBER_TEXT)


@st.composite
def cub_table(draw: st.DrawFn, name: str) -> bytes:
    """One CUB table: the valid one, lines of fuzzed fields, or broken bytes."""
    valid = VALID_CUB[name].encode()
    if draw(MOSTLY):
        return valid
    kind = draw(st.sampled_from(["rows", "fields", "mutated", "junk"]))
    if kind == "mutated":
        return draw(_mutated(valid))
    if kind == "junk":
        return draw(JUNK)
    field = st.one_of(
        COORDINATE, st.sampled_from(["001.Black_footed_Albatross/a.jpg", "../x", "1", "0"])
    )
    if kind == "rows":  # the table's shape, with any values
        width = len(VALID_CUB[name].split("\n")[0].split())
        row = st.tuples(CUB_ID, st.lists(field, min_size=width - 1, max_size=width - 1))
        lines = [[i, *rest] for i, rest in draw(st.lists(row, max_size=4))]
    else:
        lines = draw(st.lists(st.lists(st.one_of(CUB_ID, field), max_size=6), max_size=4))
    return "".join(" ".join(line) + "\n" for line in lines).encode()


@FUZZ
@given(st.fixed_dictionaries({name: cub_table(name) for name in CUB_TABLES}))
def test_cub_tables(tables: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / cub.TOP_FOLDER
        _photo(base / "images" / "001.Black_footed_Albatross" / "a.jpg")
        _photo(base / "images" / "001.Black_footed_Albatross" / "b.jpg")
        for name, data in tables.items():
            _write(base / name, data)
        found = _outcome(lambda: cub.read(Path(tmp), "birds", "bird"), [base])
        if found is not None:
            records, rejects = found
            _check_records(records, rejects, "birds")


# ---------------------------------------------------------------- photo tables

COLUMNS = ("path", "species", "category", "split", "x0", "y0", "x1", "y1", "extra")
CELL = st.one_of(
    st.sampled_from(["a.jpg", "b.png", "missing.jpg", "../a.jpg", "Monarch", "train", "val"]),
    NUMBER_TEXT,
    st.text(max_size=12),
)


def _columns(draw: st.DrawFn) -> list[str]:
    """Column names, mostly with the required ``path`` and ``species``."""
    columns = draw(st.lists(st.sampled_from(COLUMNS), unique=True, max_size=len(COLUMNS)))
    if draw(MOSTLY):
        columns = ["path", "species", *(c for c in columns if c not in ("path", "species"))]
    return columns


@st.composite
def table_frames(draw: st.DrawFn) -> pd.DataFrame:
    columns = _columns(draw)
    rows = draw(st.lists(st.lists(CELL, min_size=len(columns), max_size=len(columns)), max_size=6))
    return pd.DataFrame(rows, columns=columns)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8", errors="surrogatepass")


def _read_photo_table(name: str, data: bytes) -> None:
    """``data`` as a photo table named ``name`` beside two real photos: a reject or valid records."""
    with tempfile.TemporaryDirectory() as tmp:
        _photo(Path(tmp) / "a.jpg")
        _photo(Path(tmp) / "b.png")
        path = _write(Path(tmp) / name, data)
        found = _outcome(lambda: table.read(path, "listed", "butterfly"), [path])
        if found is not None:
            _check_records(*found, "listed")


VALID_CSV = b"path,species,split,x0,y0,x1,y1\na.jpg,Monarch,train,1,2,30,25\nb.png,Robin,,,,,\n"


@FUZZ
@given(st.one_of(table_frames().map(_csv), _mutated(VALID_CSV), JUNK))
def test_csv_photo_tables(data: bytes) -> None:
    _read_photo_table("photos.csv", data)


PARQUET_VALUE = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    CELL,
    st.binary(max_size=8),
)


@st.composite
def parquet_tables(draw: st.DrawFn) -> bytes:
    """A real parquet file whose columns hold any type (numbers, nulls, bytes, lists)."""
    columns = _columns(draw)
    n = draw(st.integers(0, 5))
    arrays = {}
    for column in columns:
        kind = draw(st.sampled_from(["string", "int", "float", "binary", "list", "mixed"]))
        if kind == "string":
            values = draw(st.lists(st.one_of(st.none(), CELL), min_size=n, max_size=n))
        elif kind == "int":
            values = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
        elif kind == "float":
            values = draw(st.lists(st.floats(allow_nan=True), min_size=n, max_size=n))
        elif kind == "binary":
            values = draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n))
        elif kind == "list":
            values = draw(st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=n, max_size=n))
        else:
            values = [str(v) for v in draw(st.lists(PARQUET_VALUE, min_size=n, max_size=n))]
        arrays[column] = pa.array(values)
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays) if arrays else pa.table({}), buffer)
    return buffer.getvalue()


def _valid_parquet() -> bytes:
    buffer = io.BytesIO()
    frame = pd.DataFrame({"path": ["a.jpg", "b.png"], "species": ["Monarch", "Robin"]})
    pq.write_table(pa.Table.from_pandas(frame), buffer)
    return buffer.getvalue()


@FEW
@given(st.one_of(parquet_tables(), _mutated(_valid_parquet()), JUNK))
def test_parquet_photo_tables(data: bytes) -> None:
    _read_photo_table("photos.parquet", data)


# ---------------------------------------------------------------- image folders

NAME = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1, max_size=24
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)


@FEW
@given(
    st.lists(
        st.tuples(st.sampled_from(["", "train", "Valid", "test"]), NAME, NAME),
        min_size=1,
        max_size=6,
    )
)
def test_image_folder_names(files: list[tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for split, species, name in files:
            _write(root / split / species / name, b"not decoded here")
        found = _outcome(lambda: image_folders.read(root, "folders", "butterfly"), [root])
        if found is not None:
            _check_records(*found, "folders")


# ---------------------------------------------------------------- Leeds Butterflies


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    return buffer.getvalue()


VALID_MASK = _png(np.pad(np.ones((10, 20), dtype=np.uint8), ((10, 10), (10, 10))))


@FEW
@given(
    st.one_of(_mutated(VALID_MASK), JUNK),
    st.one_of(st.text(max_size=200), st.sampled_from(["Danaus plexippus\nMonarch\n\nText."])),
)
def test_leeds_masks_and_descriptions(mask: bytes, description: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / leeds.TOP_FOLDER
        _photo(base / "images" / "0010001.jpg")  # 40 x 30, as the valid mask
        _write(base / "segmentations" / "0010001_seg0.png", mask)
        _write(base / "descriptions" / "001.txt", description.encode("utf-8", "surrogatepass"))
        found = _outcome(lambda: leeds.read(Path(tmp), "leeds", "butterfly"), [base])
        assert found is not None
        records, rejects = found
        assert len(records) + len(rejects) == 1
        _check_records(records, rejects, "leeds")


# ---------------------------------------------------------------- index arguments


SOURCE_JSON = st.lists(
    st.dictionaries(
        st.sampled_from(["name", "format", "category", "root", "extra"]),
        st.one_of(st.text(max_size=6), st.integers(), st.none()),
    ),
    max_size=3,
).map(json.dumps)


@FUZZ
@given(st.one_of(st.text(max_size=40), st.text(alphabet=':{}[]",a ', max_size=40), SOURCE_JSON))
def test_source_arguments(text: str) -> None:
    one = _outcome(lambda: parse_source_arg(text), ["--source"])
    several = _outcome(lambda: parse_sources_json(text), ["--sources"])
    for name, fmt, category, root in ([one] if one else []) + (several or []):
        assert name and fmt and category and isinstance(root, Path)
