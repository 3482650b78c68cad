"""``speciesgan generate``: pictures of a species by name, and species names that clash.

Everything is real: a tiny DCGAN written by the GAN stage's own ``save_generator``,
the command line's ``main``, and the index stage's ``index_records``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from speciesgan.cli import main
from speciesgan.data.index import check_species_names, index_records
from speciesgan.data.sources import SourceRecord
from speciesgan.generate.sample import GRID_PADDING, resolve_species, write_sample_grids
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.names import slugify

SPECIES = ["Border collie", "Painted Bunting", "Ringed Plover"]
SIZE = 16


def make_generator(path: Path, species: list[str] = SPECIES, raw: bool = False) -> Path:
    """A generator.pt written by the GAN stage's code (random weights, tiny DCGAN)."""
    from speciesgan.gan.networks import build_networks, save_generator

    settings = {"model": "dcgan", "z_dim": 8, "embed_dim": 4, "g_channels": 4, "d_channels": 4}
    generator, _ = build_networks(settings, len(species), SIZE, seed=0)
    other = build_networks(settings, len(species), SIZE, seed=1)[0] if raw else None
    save_generator(path, generator, settings, species, SIZE, raw=other)
    return path


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_generator(tmp_path_factory.mktemp("gen") / "generator.pt", raw=True)


def generate(generator: Path, *args: str) -> int:
    return main(["generate", "--generator", str(generator), *args])


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".png"}


def test_generate_writes_n_pictures_of_the_right_size(generator_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert generate(generator_file, "Border collie", "-n", "5", "--out", str(out)) == 0
    files = pngs(out)
    assert sorted(files) == [f"border-collie-{i:03d}.png" for i in range(5)]
    assert sorted(p.name for p in out.iterdir()) == sorted(files)  # no temporary files left
    for name in files:
        with Image.open(out / name) as image:
            assert image.size == (SIZE, SIZE) and image.mode == "RGB"
    pictures = [np.asarray(Image.open(out / name)) for name in sorted(files)]
    assert not all(np.array_equal(pictures[0], p) for p in pictures[1:])  # one latent each


def test_generate_defaults_to_16_pictures(generator_file: Path, tmp_path: Path) -> None:
    assert generate(generator_file, "Ringed Plover", "--out", str(tmp_path)) == 0
    assert len(pngs(tmp_path)) == 16


def test_same_seed_same_bytes_other_seed_other_pictures(
    generator_file: Path, tmp_path: Path
) -> None:
    for folder, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        argv = ["Painted Bunting", "-n", "4", "--seed", seed, "--out", str(tmp_path / folder)]
        assert generate(generator_file, *argv) == 0
    first = pngs(tmp_path / "a")
    assert first == pngs(tmp_path / "b")
    other = pngs(tmp_path / "c")
    assert sorted(other) == sorted(first)
    assert all(other[name] != first[name] for name in first)


def test_raw_weights_give_other_pictures(generator_file: Path, tmp_path: Path) -> None:
    for weights in ("ema", "raw"):
        argv = ["Painted Bunting", "-n", "2", "--weights", weights]
        assert generate(generator_file, *argv, "--out", str(tmp_path / weights)) == 0
    assert pngs(tmp_path / "ema") != pngs(tmp_path / "raw")


@pytest.mark.parametrize(
    "typed",
    ["border collie", "BORDER COLLIE", "Border_collie", "border-collie", "  Border  collie ",
     "bordercollie", "Border.Collie!"],
)  # fmt: skip
def test_names_ignore_case_and_punctuation(
    generator_file: Path, tmp_path: Path, typed: str
) -> None:
    assert generate(generator_file, typed, "-n", "2", "--out", str(tmp_path / "typed")) == 0
    assert generate(generator_file, "Border collie", "-n", "2", "--out", str(tmp_path / "ok")) == 0
    assert pngs(tmp_path / "typed") == pngs(tmp_path / "ok")  # same species, same file names


def test_resolve_species_matches_punctuation_only_when_unambiguous() -> None:
    species = ["Border_collie", "Painted Bunting", "Ab 1", "Ab.1", "AB", "Ab"]
    assert resolve_species("border collie", species) == 0
    assert resolve_species("painted-bunting", species) == 1
    assert resolve_species("Ab.1", species) == 3  # exact spelling wins
    assert resolve_species("AB", species) == 4
    with pytest.raises(SpeciesganError, match=r"ambiguous.*'Ab 1', 'Ab\.1'"):
        resolve_species("ab_1", species)
    with pytest.raises(SpeciesganError, match=r"ambiguous.*'AB', 'Ab'"):
        resolve_species("ab", species)
    with pytest.raises(SpeciesganError, match="cannot tell them apart"):
        resolve_species("Owl", ["Owl", "Owl"])
    # non-ASCII names are not lumped together (slugify maps both to "species")
    assert resolve_species("Grünfink", ["Grünfink", "Grünling"]) == 0
    with pytest.raises(SpeciesganError, match="unknown species"):
        resolve_species("Ñandú", ["Grünfink", "Grünling"])


def test_unknown_name_fails_cleanly_with_close_matches(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert generate(generator_file, "Border colie", "--out", str(out)) == 1
    captured = capsys.readouterr()
    assert "speciesgan generate: error: unknown species 'Border colie'" in captured.err
    assert "close matches: 'Border collie'" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


def test_grid_writes_one_image_that_fits_n_tiles(generator_file: Path, tmp_path: Path) -> None:
    grid = ["-n", "6", "--grid", "--out"]
    assert generate(generator_file, "ringed plover", *grid, str(tmp_path)) == 0
    assert sorted(pngs(tmp_path)) == ["ringed-plover.png"]
    with Image.open(tmp_path / "ringed-plover.png") as image:
        columns, rows = 3, 2  # ceil(sqrt(6)) columns
        assert image.size == (
            GRID_PADDING + columns * (SIZE + GRID_PADDING),
            GRID_PADDING + rows * (SIZE + GRID_PADDING),
        )
    target = tmp_path / "nested" / "Plovers.PNG"
    assert generate(generator_file, "Ringed Plover", *grid, str(target)) == 0
    assert target.read_bytes() == (tmp_path / "ringed-plover.png").read_bytes()


def test_png_out_without_grid_is_refused(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(generator_file, "Ringed Plover", "--out", str(tmp_path / "x.png")) == 1
    assert "use --grid" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_mix_blends_two_species(generator_file: Path, tmp_path: Path) -> None:
    mix = ["--mix", "border collie", "Painted-Bunting", "-n", "3"]
    assert generate(generator_file, *mix, "--alpha", "0.3", "--out", str(tmp_path / "m")) == 0
    names = sorted(pngs(tmp_path / "m"))
    assert names == [f"border-collie-x-painted-bunting-0.3-{i:03d}.png" for i in range(3)]
    # alpha 0 is the first species itself, with the same latents
    assert generate(generator_file, *mix, "--alpha", "0", "--out", str(tmp_path / "zero")) == 0
    assert generate(generator_file, "Border collie", "-n", "3", "--out", str(tmp_path / "bc")) == 0
    assert list(pngs(tmp_path / "zero").values()) == list(pngs(tmp_path / "bc").values())
    assert list(pngs(tmp_path / "m").values()) != list(pngs(tmp_path / "bc").values())
    assert generate(generator_file, *mix, "--grid", "--out", str(tmp_path / "mix.png")) == 0
    assert (tmp_path / "mix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("alpha", ["-0.1", "1.5", "nan"])
def test_mix_rejects_alpha_outside_0_1(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], alpha: str
) -> None:
    argv = ["--mix", "Border collie", "Ringed Plover", "--alpha", alpha, "--out", str(tmp_path)]
    assert generate(generator_file, *argv) == 1
    assert "--alpha must be between 0 and 1" in capsys.readouterr().err
    assert pngs(tmp_path) == {}


def test_exactly_one_of_name_or_mix(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(generator_file, "--out", str(tmp_path)) == 1
    both = ["Ringed Plover", "--mix", "Border collie", "Ringed Plover", "--out", str(tmp_path)]
    assert generate(generator_file, *both) == 1
    err = capsys.readouterr().err
    assert err.count("exactly one of a species NAME or --mix") == 2
    assert generate(generator_file, "Ringed Plover", "-n", "0", "--out", str(tmp_path)) == 1
    assert pngs(tmp_path) == {}


def test_sample_subcommand_still_works(generator_file: Path, tmp_path: Path) -> None:
    settings = json.dumps({"per_species": 2, "grid_columns": 2})
    argv = ["sample", "--generator", str(generator_file), "--settings", settings]
    assert main([*argv, "--out-dir", str(tmp_path)]) == 0
    assert sorted(pngs(tmp_path / "species")) == [
        "border-collie.png", "painted-bunting.png", "ringed-plover.png",
    ]  # fmt: skip


def test_sample_grids_refuse_colliding_slugs(tmp_path: Path) -> None:
    generator = make_generator(tmp_path / "old.pt", ["Ab 1", "Ab.1", "Owl"])
    from speciesgan.generate.sample import _load

    model, meta = _load(generator)
    with pytest.raises(SpeciesganError, match=r"'Ab 1' and 'Ab\.1' -> species/ab-1\.png"):
        write_sample_grids(model, list(meta["species"]), tmp_path / "grids", seed=0)
    assert not (tmp_path / "grids").exists()  # refused before anything is written


# --- species names that clash are refused by the index stage ---------------------------


def photos(root: Path, dataset: str, species: str, category: str, n: int, seed: int):
    records = []
    for i in range(n):
        path = root / dataset / species / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed * 100 + i)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)
        records.append(SourceRecord(dataset, str(path), species, category))
    return records


def run_index(tmp_path: Path, records: list[SourceRecord]) -> Path:
    out = tmp_path / "records.parquet"
    index_records(records, [], out, tmp_path / "rejects.parquet", {}, seed=0)
    return out


def test_index_refuses_names_equal_after_slugify(tmp_path: Path) -> None:
    records = (
        photos(tmp_path, "dogs", "Border_collie", "dog", 5, 1)
        + photos(tmp_path, "more_dogs", "border-collie", "dog", 5, 2)
        + photos(tmp_path, "birds", "Ab 1", "bird", 5, 3)
        + photos(tmp_path, "birds", "Ab.1", "bird", 5, 4)
        + photos(tmp_path, "birds", "Owl", "bird", 5, 5)
    )
    with pytest.raises(SpeciesganError) as caught:
        run_index(tmp_path, records)
    message = str(caught.value)
    assert message.startswith("2 group(s) of species")
    assert "bird/'Ab 1' (dataset birds) and bird/'Ab.1' (dataset birds) -> 'ab-1'" in message
    assert (
        "dog/'Border_collie' (dataset dogs) and dog/'border-collie' (dataset more_dogs)"
        " -> 'border-collie'" in message
    )
    assert "Owl" not in message
    assert not (tmp_path / "records.parquet").exists()


def test_index_refuses_one_name_in_two_categories(tmp_path: Path) -> None:
    records = [
        SourceRecord("a", "/x/1.png", "Jack", "dog"),
        SourceRecord("b", "/x/2.png", "Jack", "bird"),
        SourceRecord("c", "/x/3.png", "jack", "bird"),
    ]
    with pytest.raises(SpeciesganError, match=r"bird/'Jack' \(dataset b\) and bird/'jack'"):
        check_species_names(records)
    with pytest.raises(SpeciesganError, match=r"and dog/'Jack' \(dataset a\) -> 'jack'"):
        check_species_names(records)


def test_index_accepts_distinct_names(tmp_path: Path) -> None:
    records = photos(tmp_path, "dogs", "Border_collie", "dog", 5, 1) + photos(
        tmp_path, "birds", "Painted Bunting", "bird", 5, 2
    )
    check_species_names(records)
    assert run_index(tmp_path, records).exists()


NON_LATIN = ["柴犬", "秋田犬", "\u05db\u05dc\u05d1 \u05e8\u05d5\u05e2\u05d4\u200f", "Λύκος"]
"""Shiba, Akita, a Hebrew name ending in a right-to-left mark, a Greek name."""


def test_distinct_non_latin_names_index_and_sample_to_distinct_files(tmp_path: Path) -> None:
    records = [
        record
        for i, name in enumerate(NON_LATIN)
        for record in photos(tmp_path, "pets", name, "dog", 5, i + 1)
    ]
    run_index(tmp_path, records)  # no clash claimed
    slugs = [slugify(name) for name in NON_LATIN]
    assert len(set(slugs)) == len(NON_LATIN) and "species" not in slugs
    assert "\u200f" not in slugs[2]  # the direction mark is not part of a file name
    generator = make_generator(tmp_path / "g.pt", NON_LATIN)
    from speciesgan.generate.sample import _load

    model, meta = _load(generator)
    write_sample_grids(model, list(meta["species"]), tmp_path / "grids", seed=0, per_species=2)
    written = sorted(p.name for p in (tmp_path / "grids" / "species").glob("*.png"))
    assert written == sorted(f"{slug}.png" for slug in slugs)
    assert resolve_species("秋田犬", NON_LATIN) == 1


def test_names_without_letters_or_very_long_get_distinct_hashed_slugs() -> None:
    assert slugify("Border_collie") == "border-collie"  # Latin names keep their slugs
    assert slugify("???") != slugify("!!!")
    long_a, long_b = "Canis " * 40 + "a", "Canis " * 40 + "b"
    assert slugify(long_a) != slugify(long_b)
    assert all(len(slugify(n).encode()) <= 120 for n in (long_a, "犬" * 200))


def test_generate_refuses_a_huge_n_before_making_anything(
    generator_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert generate(generator_file, "Border collie", "-n", "100000000", "--out", str(out)) == 1
    error = capsys.readouterr().err
    assert "--max-pictures 100000000" in error and "Traceback" not in error
    assert not out.exists()
    assert generate(generator_file, "Border collie", "-n", "2000", "--grid", "--out", str(out)) == 1
    assert "--grid holds at most" in capsys.readouterr().err


def test_generate_streams_in_chunks_with_the_same_pictures(
    generator_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pictures are made a chunk at a time; a run of n <= one chunk is unchanged by it."""
    import speciesgan.generate.sample as sample

    whole = tmp_path / "whole"
    assert generate(generator_file, "Painted Bunting", "-n", "12", "--out", str(whole)) == 0
    made: list[int] = []
    original = sample.images_from_latents

    def counting(*args, **kwargs):
        images = original(*args, **kwargs)
        made.append(len(images))
        return images

    monkeypatch.setattr(sample, "images_from_latents", counting)
    monkeypatch.setattr(sample, "GENERATE_CHUNK", 5)
    chunked = tmp_path / "chunked"
    assert generate(generator_file, "Painted Bunting", "-n", "12", "--out", str(chunked)) == 0
    assert made == [5, 5, 2]  # never more than a chunk in memory
    assert sorted(pngs(chunked)) == sorted(pngs(whole))
    first = tmp_path / "first"
    assert generate(generator_file, "Painted Bunting", "-n", "5", "--out", str(first)) == 0
    assert all(pngs(chunked)[name] == data for name, data in pngs(first).items())


def test_generate_on_a_full_disk_removes_what_it_wrote(
    generator_file: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_disk / "pictures"
    assert generate(generator_file, "Border collie", "-n", "5000", "--out", str(out)) == 1
    error = capsys.readouterr().err
    assert "no space left" in error and "5,000 pictures need about" in error
    assert str(out) in error and "Traceback" not in error
    assert list(out.iterdir()) == []  # nothing partial


def test_sigterm_during_sample_leaves_no_folder_and_says_so(tmp_path: Path) -> None:
    """A killed sample job leaves neither a half-written samples folder nor temporaries."""
    import os
    import signal
    import subprocess
    import sys
    import time

    species = [f"Species {i}" for i in range(600)]
    generator = make_generator(tmp_path / "g.pt", species)
    out = tmp_path / "results" / "samples"
    process = subprocess.Popen(
        [sys.executable, "-m", "speciesgan", "sample", "--generator", str(generator),
         "--out-dir", str(out), "--seed", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120

    def grids_begun() -> bool:  # mid-way through the grids, wherever they are written
        return bool(
            list(out.parent.glob(".samples.*/species/*.png")) + list(out.glob("species/*.png"))
        )

    while not grids_begun():
        assert process.poll() is None and time.monotonic() < deadline, "sample ended first"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr and "nothing partial" in stderr
    assert list(out.parent.iterdir()) == []  # no samples folder, no staging folder
    # a rerun makes the whole folder
    assert (
        main(["sample", "--generator", str(generator), "--out-dir", str(out), "--seed", "0"]) == 0
    )
    assert (out / "index.json").is_file() and len(list((out / "species").iterdir())) == 600
