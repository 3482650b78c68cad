"""process_shard on real files of many kinds: what gets cropped, what gets rejected."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from speciesgan.data.crop import crop_to_box
from speciesgan.data.index import RECORDS_SCHEMA
from speciesgan.data.jpeg_end import jpeg_end_problem
from speciesgan.data.preprocess import (
    IMAGE_SIZE_KEY,
    _request_draft,
    process_shard,
    rejects_path,
)
from speciesgan.util.errors import SpeciesganError

SIZE = 32
NO_BOX = (-1, -1, -1, -1)


def write_records(
    path: Path, photos: list[tuple[Path, tuple[int, int, int, int]]], shard: int = 0
) -> None:
    """Records for ``photos``; each row's species is its position, to find it again."""
    rows = [
        {
            "dataset": "test",
            "file": str(file),
            "species": f"row{i}",
            "species_id": 0,
            "category": "bird",
            "split": "train",
            "box_x0": box[0],
            "box_y0": box[1],
            "box_x1": box[2],
            "box_y1": box[3],
            "shard": shard,
            "sha256": "0" * 64,
        }
        for i, (file, box) in enumerate(photos)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=RECORDS_SCHEMA), path)


def run_shard(tmp_path: Path, photos, name: str = "shard-000", threads: int = 1, **settings):
    records = tmp_path / f"{name}-records.parquet"
    write_records(records, photos)
    images, rows = tmp_path / f"{name}.npy", tmp_path / f"{name}.parquet"
    process_shard(records, 0, images, rows, {"image_size": SIZE, **settings}, threads=threads)
    rejects = pd.read_parquet(rejects_path(rows))
    return np.load(images), pd.read_parquet(rows), rejects, (images, rows, rejects_path(rows))


def solid(path: Path, mode: str, color, size=(60, 40), **save) -> Path:
    Image.new(mode, size, color).save(path, **save)
    return path


def exif_rotated_jpeg(path: Path) -> tuple[Path, tuple[int, int, int, int]]:
    """A JPEG stored sideways with EXIF orientation 6; returns it and the displayed box.

    Displayed: 120 wide, 80 tall, black, a white square at (70, 10)-(110, 50).
    """
    displayed = Image.new("RGB", (120, 80), (0, 0, 0))
    box = (70, 10, 110, 50)
    displayed.paste((255, 255, 255), box)
    stored = displayed.transpose(Image.Transpose.ROTATE_90)  # orientation 6 undoes this
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif.tobytes())
    return path, box


@pytest.fixture
def mixed_photos(tmp_path: Path) -> dict[str, tuple[Path, tuple[int, int, int, int]]]:
    src = tmp_path / "src"
    src.mkdir()
    good = solid(src / "good.jpg", "RGB", (200, 30, 30), quality=95)
    truncated = src / "truncated.jpg"
    noisy = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    )
    noisy.save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    text = src / "notes.jpg"
    text.write_text("this is not a photo\n")
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 40, 20))  # top half blue, bottom half index 0 = transparent
    palette.save(src / "palette.png", transparency=0)
    sixteen = Image.fromarray(np.full((40, 40), 40000, dtype=np.uint16))
    sixteen.save(src / "sixteen.png")
    return {
        "good": (good, (10, 5, 50, 35)),
        "truncated": (truncated, NO_BOX),
        "text": (text, NO_BOX),
        "cmyk": (solid(src / "cmyk.jpg", "CMYK", (0, 255, 255, 0), quality=95), NO_BOX),
        "gray": (solid(src / "gray.png", "L", 90), NO_BOX),
        "palette": (src / "palette.png", NO_BOX),
        "sixteen": (src / "sixteen.png", NO_BOX),
        "rgba": (solid(src / "rgba.png", "RGBA", (0, 0, 0, 0)), NO_BOX),
        "outside": (good, (500, 500, 600, 600)),
    }


def test_every_kind_of_file_is_cropped_or_rejected_with_a_reason(
    tmp_path: Path, mixed_photos
) -> None:
    names = ["good", "truncated", "text", "cmyk", "gray", "palette", "sixteen", "rgba", "outside"]
    images, kept, rejects, _ = run_shard(tmp_path, [mixed_photos[n] for n in names])
    name_of = {f"row{i}": name for i, name in enumerate(names)}
    kept.index = kept["species"].map(name_of)
    reasons = dict(zip(rejects["species"].map(name_of), rejects["reason"], strict=True))
    assert sorted(reasons) == ["outside", "text", "truncated"]
    assert "truncated" in reasons["truncated"]
    assert "cannot decode image" in reasons["text"]
    assert "outside" in reasons["outside"]
    assert set(rejects["stage"]) == {"crop"}
    assert list(kept.index) == ["good", "cmyk", "gray", "palette", "sixteen", "rgba"]
    assert kept["index"].tolist() == list(range(6))
    assert images.shape == (6, SIZE, SIZE, 3) and images.dtype == np.uint8

    def mean_color(name: str) -> np.ndarray:
        return images[kept.loc[name, "index"]].reshape(-1, 3).mean(axis=0)

    np.testing.assert_allclose(mean_color("good"), (200, 30, 30), atol=6)
    np.testing.assert_allclose(mean_color("cmyk"), (255, 0, 0), atol=12)  # M+Y = red
    np.testing.assert_allclose(mean_color("gray"), (90, 90, 90), atol=1)
    np.testing.assert_allclose(mean_color("sixteen"), (40000 >> 8,) * 3, atol=1)
    np.testing.assert_allclose(mean_color("rgba"), (255, 255, 255), atol=0)  # transparent -> white
    palette = images[kept.loc["palette", "index"]]
    np.testing.assert_allclose(palette[:12].reshape(-1, 3).mean(axis=0), (0, 0, 255), atol=2)
    np.testing.assert_allclose(palette[-12:].reshape(-1, 3).mean(axis=0), (255, 255, 255), atol=2)
    # Crop squares are in source pixels: the 40x30 box in a 60x40 photo -> side 40.
    assert kept.loc["good", ["crop_x0", "crop_y0", "crop_size"]].tolist() == [10, 0, 40]
    # A box-less 60x40 photo is one centred square of the full width (padding above/below).
    assert kept.loc["gray", ["crop_x0", "crop_y0", "crop_size"]].tolist() == [0, -10, 60]


def test_exif_rotated_photo_is_cropped_in_displayed_coordinates(tmp_path: Path) -> None:
    photo, box = exif_rotated_jpeg(tmp_path / "rotated.jpg")
    images, _, rejects, _ = run_shard(tmp_path, [(photo, box)])
    assert rejects.empty
    crop = images[0].astype(float)
    assert crop[4:-4, 4:-4].mean() > 240  # the white square fills the crop
    # The same box read in stored (unrotated) coordinates would be mostly black.
    with Image.open(photo) as stored:
        assert stored.size == (80, 120)
        wrong = crop_to_box(stored.convert("RGB"), box, SIZE)
    assert wrong.mean() < 128


def test_reduced_scale_jpeg_decode_matches_full_decode(tmp_path: Path) -> None:
    """The draft (DCT-scaled) path must crop the same place as a full decode."""
    y, x = np.mgrid[0:480, 0:640]
    pixels = np.stack([x * 255 // 640, y * 255 // 480, (x // 80 + y // 80) % 2 * 255], axis=-1)
    path = tmp_path / "large.jpg"
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)
    box = (200, 100, 520, 420)  # 320 px square -> a 1/8 decode still has 40 px across
    images, _, _, _ = run_shard(tmp_path, [(path, box)])
    with Image.open(path) as full:
        reference = crop_to_box(full.convert("RGB"), box, SIZE)
    difference = np.abs(images[0].astype(int) - reference.astype(int))
    assert difference.mean() < 6


def test_output_is_byte_identical_on_rerun_and_across_thread_counts(
    tmp_path: Path, mixed_photos
) -> None:
    rotated = exif_rotated_jpeg(tmp_path / "rotated.jpg")
    photos = [mixed_photos[n] for n in ("good", "text", "cmyk", "palette")] + [rotated]
    outputs = [
        run_shard(tmp_path, photos, name=name, threads=threads)[3]
        for name, threads in (("a", 1), ("b", 1), ("c", 2))
    ]
    for kind in range(3):  # .npy, rows, rejects
        contents = {files[kind].read_bytes() for files in outputs}
        assert len(contents) == 1, outputs[0][kind].name
    assert pq.read_schema(outputs[0][1]).metadata[IMAGE_SIZE_KEY] == str(SIZE).encode()


def test_only_the_requested_shard_is_processed(tmp_path: Path, mixed_photos) -> None:
    records = tmp_path / "records.parquet"
    write_records(records, [mixed_photos["good"]], shard=1)
    process_shard(records, 0, tmp_path / "s0.npy", tmp_path / "s0.parquet", {"image_size": SIZE})
    assert np.load(tmp_path / "s0.npy").shape == (0, SIZE, SIZE, 3)
    assert pd.read_parquet(tmp_path / "s0.parquet").empty
    assert pd.read_parquet(tmp_path / "rejects-s0.parquet").empty


def test_bad_settings_and_missing_records_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(SpeciesganError, match="pad_mode"):
        process_shard(
            tmp_path / "r.parquet",
            0,
            tmp_path / "a.npy",
            tmp_path / "a.parquet",
            {"pad_mode": "wrap"},
        )
    with pytest.raises(SpeciesganError, match="r.parquet"):
        process_shard(tmp_path / "r.parquet", 0, tmp_path / "a.npy", tmp_path / "a.parquet", {})
    assert not (tmp_path / "a.npy").exists()


def test_rejects_file_sits_beside_the_rows_file() -> None:
    """The Snakemake rule declares shards/rejects-NNN.parquet next to shard-NNN.parquet."""
    assert rejects_path(Path("d/shards/shard-007.parquet")) == Path("d/shards/rejects-007.parquet")


@pytest.mark.parametrize(("side", "expected"), [(127, 1.0), (255, 1.0), (256, 2.0), (375, 2.0)])
def test_jpeg_decodes_at_the_coarsest_scale_that_keeps_the_crop_size(
    tmp_path: Path, side: int, expected: float
) -> None:
    """A 500x375 photo cropped to 128 px: half scale as soon as the crop is 256 px across.

    Pillow floors ``W // w`` per axis, so asking for the rounded-up half size
    (188 of 375 rows) would silently decode at full scale.
    """
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (500, 375), (90, 140, 60)).save(path, quality=85)
    with Image.open(path) as image:
        assert _request_draft(image, side, 128) == expected
        image.load()
        assert image.size == (math.ceil(500 / expected), math.ceil(375 / expected))
        assert side / expected >= 128 or expected == 1.0


def test_resample_filter_is_a_setting_and_bad_names_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pixels = np.asarray(
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((400, 300))
    )
    path = tmp_path / "p.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    box = (50, 20, 330, 290)
    crops = {}
    for resample in ("lanczos", "bilinear"):
        records = tmp_path / f"{resample}.parquet"
        write_records(records, [(path, box)], shard=0)
        process_shard(
            records,
            0,
            tmp_path / f"{resample}.npy",
            tmp_path / f"{resample}-rows.parquet",
            {"image_size": SIZE, "resample": resample},
        )
        crops[resample] = np.load(tmp_path / f"{resample}.npy")[0].astype(int)
    difference = np.abs(crops["lanczos"] - crops["bilinear"])
    assert 0 < difference.mean() < 6  # a different filter, the same picture
    with pytest.raises(SpeciesganError, match="preprocess.resample"):
        process_shard(records, 0, tmp_path / "x.npy", tmp_path / "x.parquet", {"resample": "box"})


def noisy_jpeg(path: Path, size: tuple[int, int] = (200, 200), seed: int = 0) -> Path:
    """A JPEG of noise: no row of a real decode is ever flat grey."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def cut_with_end_marker(path: Path, keep: float) -> Path:
    """Keep the first ``keep`` of the file and append an EOI marker, as a repair tool would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] + b"\xff\xd9")
    return path


@pytest.mark.parametrize("image_size", [SIZE, 128], ids=["draft-decode", "full-decode"])
def test_truncated_jpeg_with_an_end_marker_is_a_counted_reject_not_a_grey_crop(
    tmp_path: Path, image_size: int
) -> None:
    """libjpeg fills missing data with grey and Pillow reports success when the file ends in EOI."""
    good = noisy_jpeg(tmp_path / "good.jpg", seed=1)
    cut = cut_with_end_marker(noisy_jpeg(tmp_path / "cut.jpg"), keep=0.5)
    with Image.open(cut) as image:
        image.load()  # Pillow alone accepts it: this is the gap being closed
    images, kept, rejects, _ = run_shard(
        tmp_path, [(good, NO_BOX), (cut, NO_BOX)], image_size=image_size
    )
    assert kept["species"].tolist() == ["row0"]
    assert images.shape[0] == 1
    assert rejects["species"].tolist() == ["row1"]
    assert "truncated" in rejects["reason"].iloc[0]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 90 Mpx, as found
def test_huge_header_over_a_few_pixels_of_data_is_rejected(tmp_path: Path) -> None:
    """A 9500x9500 header over 16x16 of coded data would otherwise crop to flat grey."""
    path = noisy_jpeg(tmp_path / "tiny.jpg", size=(16, 16))
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 9500, 9500)  # height, width after length, precision
    path.write_bytes(bytes(data))
    with Image.open(path) as image:
        assert image.size == (9500, 9500)
    images, kept, rejects, _ = run_shard(tmp_path, [(path, NO_BOX)])
    assert kept.empty and images.shape[0] == 0
    assert "truncated" in rejects["reason"].iloc[0]


def test_photos_and_boxes_under_the_minimum_size_are_counted_rejects(tmp_path: Path) -> None:
    """A 1x1 photo or a 1-pixel box would be blown up to the crop size; a minimum refuses them."""
    tiny = solid(tmp_path / "tiny.png", "RGB", (10, 200, 10), size=(1, 1))
    strip = solid(tmp_path / "strip.png", "RGB", (10, 200, 10), size=(300, 20))
    photo = noisy_jpeg(tmp_path / "photo.jpg")
    photos = [
        (tiny, NO_BOX),
        (strip, NO_BOX),
        (photo, (50, 50, 51, 51)),  # a 1-pixel box
        (photo, (50, 50, 70, 60)),  # 20x10: under the default of 32
        (photo, (50, 50, 90, 60)),  # 40x10: the crop square is 40 px of real photo
        (photo, NO_BOX),
    ]
    images, kept, rejects, _ = run_shard(tmp_path, photos)
    assert kept["species"].tolist() == ["row4", "row5"]
    assert images.shape[0] == 2
    reasons = dict(zip(rejects["species"], rejects["reason"], strict=True))
    assert sorted(reasons) == ["row0", "row1", "row2", "row3"]
    assert all("preprocess.min_box_size=32" in r for r in reasons.values())
    assert "1x1" in reasons["row0"] and "300x20" in reasons["row1"]
    assert "1x1" in reasons["row2"] and "20x10" in reasons["row3"]

    _, kept, rejects, _ = run_shard(tmp_path, photos, name="lenient", min_box_size=1)
    assert len(kept) == 6 and rejects.empty
    with pytest.raises(SpeciesganError, match="preprocess.min_box_size"):
        run_shard(tmp_path, photos, name="bad", min_box_size=0)


def test_min_box_size_is_a_documented_preprocess_setting_with_a_default() -> None:
    from speciesgan.config import load_schema

    setting = load_schema()["properties"]["preprocess"]["properties"]["min_box_size"]
    assert setting["default"] == 32 and setting["minimum"] == 1 and setting["description"]


def test_crop_shard_killed_before_its_renames_leaves_debris_the_rerun_removes(
    tmp_path: Path,
) -> None:
    from tests.helpers.killed_run import run_killed_at_rename

    photos = [(noisy_jpeg(tmp_path / f"p{i}.jpg", seed=i), NO_BOX) for i in range(3)]
    records = tmp_path / "records.parquet"
    write_records(records, photos)
    shards = tmp_path / "shards"
    images, rows = shards / "shard-000.npy", shards / "shard-000.parquet"
    run_killed_at_rename(
        f"""
        from pathlib import Path
        from speciesgan.data.preprocess import process_shard
        process_shard(Path({str(records)!r}), 0, Path({str(images)!r}), Path({str(rows)!r}),
                      {{"image_size": {SIZE}}})
        """
    )
    debris = sorted(p.name for p in shards.iterdir())
    assert len(debris) == 1 and debris[0].startswith(".shard-000.npy.")
    process_shard(records, 0, images, rows, {"image_size": SIZE})
    assert sorted(p.name for p in shards.iterdir()) == [
        "rejects-000.parquet",
        "shard-000.npy",
        "shard-000.parquet",
    ]


def padded_with_zeros(path: Path, keep: float) -> Path:
    """The first ``keep`` of a JPEG, zero-padded to its full length (a preallocated file
    that a download never finished)."""
    data = path.read_bytes()
    cut = data[: int(len(data) * keep)]
    path.write_bytes(cut + bytes(len(data) - len(cut)))
    return path


@pytest.mark.parametrize("keep", [0.4, 0.97])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_cut_jpeg_padded_with_zeros_is_a_counted_reject(
    tmp_path: Path, keep: float, progressive: bool
) -> None:
    good = noisy_jpeg(tmp_path / "good.jpg", seed=1)
    source = tmp_path / "cut.jpg"
    with Image.open(noisy_jpeg(source)) as image:
        image.load()
        image.save(source, quality=90, progressive=progressive)
    padded = padded_with_zeros(source, keep)
    images, kept, rejects, _ = run_shard(tmp_path, [(good, NO_BOX), (padded, NO_BOX)])
    assert kept["species"].tolist() == ["row0"] and images.shape[0] == 1
    assert rejects["species"].tolist() == ["row1"]
    assert "truncated JPEG data" in rejects["reason"].iloc[0]


def test_complete_jpegs_with_trailers_and_restart_markers_are_kept(tmp_path: Path) -> None:
    """What real files carry after or inside their data is not mistaken for a cut."""
    plain = noisy_jpeg(tmp_path / "plain.jpg", seed=1)
    trailer = noisy_jpeg(tmp_path / "trailer.jpg", seed=2)
    trailer.write_bytes(trailer.read_bytes() + b"\x00" * 512 + b"SEFT trailer")  # camera data
    restarts = tmp_path / "restarts.jpg"
    with Image.open(noisy_jpeg(tmp_path / "src.jpg", seed=3)) as image:
        image.load()
        image.save(restarts, quality=90, restart_marker_blocks=1, progressive=True)
    for path in (plain, trailer, restarts):
        assert jpeg_end_problem(path.read_bytes()) is None, path
    images, kept, rejects, _ = run_shard(
        tmp_path, [(p, NO_BOX) for p in (plain, trailer, restarts)]
    )
    assert len(kept) == 3 and rejects.empty


def test_crop_shard_on_a_full_disk_names_the_file_and_keeps_nothing_partial(
    tmp_path: Path, small_disk: Path
) -> None:
    photos = [(noisy_jpeg(tmp_path / f"{i}.jpg", seed=i), NO_BOX) for i in range(12)]
    records = tmp_path / "records.parquet"
    write_records(records, photos)
    images, rows = small_disk / "shard-000.npy", small_disk / "shard-000.parquet"
    with pytest.raises(SpeciesganError) as error:
        process_shard(records, 0, images, rows, {"image_size": 128})  # 12 x 48 KiB > 512 KiB
    message = str(error.value)
    assert str(images) in message and "no space left" in message and "MB free" in message
    assert list(small_disk.iterdir()) == []  # no partial shard, no temporary
