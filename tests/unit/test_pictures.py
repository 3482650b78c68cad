"""Picture records and ``speciesgan generate --from``: the same picture again, bit for bit.

A real (untrained) generator written by the GAN stage's code; the studio's own
service draws the pictures, the command line redraws them from their records.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from speciesgan.cli import main
from speciesgan.generate.pictures import (
    PNG_TEXT_KEY,
    RENDER_THREADS,
    Picture,
    Renderer,
    make_record,
    picture_from_record,
    record_text,
    render_picture,
)
from speciesgan.studio.service import Studio
from speciesgan.util.errors import SpeciesganError
from tests.helpers.studio_fixtures import SIZE, SPECIES, make_run


def redraw(generator: Path, record_file: Path, out: Path) -> int:
    return main(["generate", "--generator", str(generator), "--from", str(record_file),
                 "--out", str(out)])  # fmt: skip


@pytest.mark.parametrize(
    "request_body",
    [
        {"species": "Border collie", "seed": 7, "n": 16},
        {"species": ["Painted Bunting", "Red fox"], "mix": [0.7, 0.3], "seed": 3, "n": 8},
        {"species": [0, 2, 5], "mix": [0.2, 0.5, 0.3], "seed": 1, "n": 4},
        {"species": "Snow leopard", "seed": 9, "n": 6,
         "around": {"seed": 2, "count": 16, "index": 5}, "step": 0.8},
    ],
)  # fmt: skip
def test_generate_from_redraws_studio_pictures_to_the_same_bytes(
    studio: Studio, run_dir: Path, tmp_path: Path, request_body: dict
) -> None:
    answer = studio.pictures(request_body)
    generator = run_dir / "gan" / "generator.pt"
    for position in (0, len(answer["pictures"]) - 1):
        picture = answer["pictures"][position]
        png = base64.b64decode(picture["png"])
        sidecar = tmp_path / f"{position}.json"
        sidecar.write_text(json.dumps(picture["record"]))
        assert redraw(generator, sidecar, tmp_path / f"out{position}") == 0
        assert (tmp_path / f"out{position}" / f"{picture['name']}.png").read_bytes() == png
        # the PNG alone is enough: it carries the record in its metadata
        saved = tmp_path / f"{position}.png"
        saved.write_bytes(png)
        assert redraw(generator, saved, tmp_path / f"again{position}.png") == 0
        assert (tmp_path / f"again{position}.png").read_bytes() == png
        with Image.open(saved) as image:
            assert json.loads(image.text[PNG_TEXT_KEY]) == picture["record"]
            assert image.size == (SIZE, SIZE)
        written = json.loads((tmp_path / f"again{position}.json").read_text())
        assert written == picture["record"]


def test_pixels_do_not_depend_on_workers_or_order(studio: Studio) -> None:
    pictures = [Picture((1,), (1.0,), 4, 16, i) for i in range(16)]
    one = Renderer(studio.renderer.generator, workers=1)
    try:
        alone = one.render(pictures[::-1])[::-1]
    finally:
        one.close()
    together = studio.renderer.render(pictures)
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))
    assert not np.array_equal(together[0], together[1])  # one latent per picture


def test_workers_draw_on_one_thread_and_leave_others_alone(studio: Studio) -> None:
    before = torch.get_num_threads()
    renderer = Renderer(studio.renderer.generator, workers=2)
    try:
        assert renderer.threads() == [RENDER_THREADS] * 2
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert torch.get_num_threads() == before and later == [before]
    finally:
        renderer.close()


def test_a_mix_at_weight_one_is_the_species_itself(studio: Studio) -> None:
    generator = studio.renderer.generator
    alone = render_picture(generator, Picture((2,), (1.0,), 5, 16, 3))
    mixed = render_picture(generator, Picture((2, 4), (1.0, 0.0), 5, 16, 3))
    stepped = render_picture(generator, Picture((2,), (1.0,), 5, 16, 3, step_seed=1, step_size=0.5))
    assert np.array_equal(alone, mixed)
    assert not np.array_equal(alone, stepped)


def test_another_generator_is_refused(
    studio: Studio, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = studio.pictures({"species": "Red fox", "n": 1})["pictures"][0]["record"]
    (tmp_path / "pic.json").write_text(json.dumps(record))
    other = make_run(tmp_path / "other", seed=1) / "gan" / "generator.pt"
    assert redraw(other, tmp_path / "pic.json", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "was drawn by generator sha256" in err and "use the generator that made it" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["species"][0].update(name="Wolf"), "but the generator's species"),
        (lambda r: r.update(index=99), "index must be between 0 and"),
        (lambda r: r.update(seed=-1), "seed must be between"),
        (lambda r: r.update(version=7), "version 7 is not supported"),
        (lambda r: r.update(format="other"), "not a speciesgan picture record"),
        (lambda r: r["species"][0].update(weight=0.5), "sum to 1"),
        (lambda r: r.update(step={"seed": 1, "size": "far"}), "step size must be a finite"),
        (lambda r: r.update(image_size=64), "px picture"),
    ],
)
def test_a_damaged_record_gets_a_clear_message(
    studio: Studio, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    change, message: str,
) -> None:  # fmt: skip
    record = studio.pictures({"species": "Red fox", "n": 2})["pictures"][1]["record"]
    change(record)
    (tmp_path / "pic.json").write_text(json.dumps(record))
    assert redraw(run_dir / "gan" / "generator.pt", tmp_path / "pic.json", tmp_path / "o") == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unreadable_records_and_flags_are_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = run_dir / "gan" / "generator.pt"
    assert redraw(generator, tmp_path / "missing.json", tmp_path / "o") == 1
    (tmp_path / "bad.json").write_text("{not json")
    assert redraw(generator, tmp_path / "bad.json", tmp_path / "o") == 1
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert redraw(generator, tmp_path / "plain.png", tmp_path / "o") == 1
    argv = ["generate", "Red fox", "--generator", str(generator), "--from", "x.json", "--out", "o"]
    assert main(argv) == 1
    assert main([*argv[:1], *argv[2:], "-n", "4", "--seed", "3", "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert "picture record not found" in err
    assert "bad.json: not a readable picture record" in err
    assert "carries no speciesgan picture record" in err
    assert "--from takes no NAME" in err
    assert "exactly as its record says; drop -n, --seed, --device" in err


def test_record_checks_names_against_ids() -> None:
    picture = Picture((1, 0), (0.25, 0.75), 3, 8, 2, step_seed=4, step_size=0.3)
    record = make_record(picture, SPECIES, "ab" * 32, SIZE)
    assert picture_from_record(record, SPECIES, SIZE) == (picture, record)
    # a browser writes 1.0 as 1: the checked record is the same again
    single = make_record(Picture((2,), (1.0,), 0, 4, 1), SPECIES, "ab" * 32, SIZE)
    retyped = json.loads(json.dumps(single).replace("1.0", "1"))
    assert retyped["species"][0]["weight"] == 1 and isinstance(retyped["species"][0]["weight"], int)
    assert record_text(picture_from_record(retyped, SPECIES, SIZE)[1]) == record_text(single)
    with pytest.raises(SpeciesganError, match="not a SHA-256"):
        picture_from_record({**record, "generator_sha256": "../x"}, SPECIES, SIZE)
    with pytest.raises(SpeciesganError, match="species id must be between"):
        picture_from_record(record, SPECIES[:1], SIZE)
