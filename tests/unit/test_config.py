"""Config validation: a value that would fail a late stage is refused at load time.

A bad value must stop the run before the download, crops and classifier have
spent their hours, with a message naming the key.  The supported values come
from the code that uses them (networks, DiffAugment, archive layouts); the
consistency tests below keep the config checks and that code in step.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from speciesgan.config import load_schema, validate_config
from speciesgan.data.sources import source
from speciesgan.util.errors import SpeciesganError

REPO = Path(__file__).resolve().parents[2]


def _smoke() -> dict[str, Any]:
    return yaml.safe_load((REPO / "configs/smoke.yaml").read_text())


def _problem(config: dict[str, Any]) -> str:
    with pytest.raises(SpeciesganError) as error:
        validate_config(config)
    return str(error.value)


def test_smoke_config_is_valid() -> None:
    validate_config(_smoke())


@pytest.mark.parametrize("size", [48, 24, 512, 100])
def test_image_size_the_networks_cannot_build_is_refused(size: int) -> None:
    config = _smoke()
    config["preprocess"]["image_size"] = size
    message = _problem(config)
    assert "config key preprocess.image_size" in message and str(size) in message


def test_schema_image_sizes_are_exactly_those_the_networks_build() -> None:
    from speciesgan.gan.networks import num_blocks

    allowed = set(load_schema()["properties"]["preprocess"]["properties"]["image_size"]["enum"])
    buildable = set()
    for size in range(1, 2049):
        try:
            num_blocks(size)
        except SpeciesganError:
            continue
        buildable.add(size)
    assert allowed == buildable


@pytest.mark.parametrize("policy", ["colour", "translation,flip", "cutout,,zoom"])
def test_unknown_diffaugment_policy_is_refused(policy: str) -> None:
    config = _smoke()
    config["gan"]["diffaugment"] = policy
    message = _problem(config)
    assert "config key gan.diffaugment" in message
    assert "known: color, translation, cutout" in message


@pytest.mark.parametrize("policy", ["", "color", "cutout,translation", "translation,cutout,color"])
def test_known_diffaugment_policies_pass(policy: str) -> None:
    config = _smoke()
    config["gan"]["diffaugment"] = policy
    validate_config(config)


def test_unknown_policy_in_an_ablation_variant_names_the_variant() -> None:
    config = _smoke()
    config["ablation"] = {"enabled": True, "variants": {"aug": {"gan": {"diffaugment": "blur"}}}}
    assert "config key ablation.variants.aug.gan.diffaugment" in _problem(config)


def test_diffaugment_names_match_the_augment_module() -> None:
    from speciesgan.config import DIFFAUGMENT_OPS
    from speciesgan.gan.augment import OPS

    assert tuple(OPS) == DIFFAUGMENT_OPS


@pytest.mark.parametrize(("gpus", "batch"), [(3, 8), (2, 9), (3, None)])
def test_gpus_that_do_not_divide_the_batch_are_refused(gpus: int, batch: int | None) -> None:
    config = _smoke()
    config["gan"]["gpus"] = gpus
    if batch is None:  # training's default batch size applies
        del config["gan"]["batch_size"]
    else:
        config["gan"]["batch_size"] = batch
    message = _problem(config)
    assert "config key gan.gpus" in message and "gan.batch_size" in message


def test_gpus_that_divide_the_batch_pass() -> None:
    config = _smoke()
    config["gan"]["gpus"] = 4
    config["gan"]["batch_size"] = 8
    validate_config(config)


def test_default_batch_size_is_the_training_default() -> None:
    from speciesgan.gan.training_loop import DEFAULTS

    config = _smoke()
    del config["gan"]["batch_size"]
    assert validate_config(config)["gan"]["batch_size"] == DEFAULTS["batch_size"]


def test_every_gan_key_the_schema_allows_is_one_training_accepts() -> None:
    """A schema key train-gan does not know would stop every training at its first line."""
    from speciesgan.gan.training_loop import DEFAULTS

    schema_keys = set(load_schema()["properties"]["gan"]["properties"]) - {"gpus"}
    assert schema_keys == set(DEFAULTS)


@pytest.mark.parametrize("section", ["classifier", "gan"])
def test_sampling_modes_validate_and_unset_adds_no_key(section: str) -> None:
    """Unset stays unset (a stage default): existing runs' params, and so their jobs, stay put."""
    assert "sampling" not in validate_config(_smoke())[section]
    config = _smoke()
    config[section]["sampling"] = "balanced"
    assert validate_config(config)[section]["sampling"] == "balanced"
    config[section]["sampling"] = "uniform"
    assert f"config key {section}.sampling" in _problem(config)


def test_every_classifier_key_the_schema_allows_is_one_training_accepts() -> None:
    from speciesgan.classifier.train import DEFAULTS

    schema_keys = set(load_schema()["properties"]["classifier"]["properties"])
    assert schema_keys == set(DEFAULTS)


def test_ablation_variant_cannot_set_gpus() -> None:
    # variants train in one process (rules/ablation.smk); training refuses a `gpus` key
    config = _smoke()
    config["ablation"] = {"enabled": True, "variants": {"big": {"gan": {"gpus": 2}}}}
    assert "config key ablation.variants.big.gan.gpus" in _problem(config)


@pytest.mark.parametrize(
    ("fmt", "archive"),
    [
        ("stanford_dogs", "Images.tar"),
        ("demo_stanford_dogs", "CUB_200_2011.tgz"),
        ("cub", "images.tar"),
        ("leeds_butterflies", "leeds.zip"),
    ],
)
def test_files_entry_for_an_archive_the_format_lacks_is_refused(fmt: str, archive: str) -> None:
    config = _smoke()
    config["datasets"]["smoke_dogs"] = {
        "format": fmt,
        "category": "dog",
        "files": {archive: {"url": "https://example.org/x", "sha256": "0" * 64}},
    }
    message = _problem(config)
    assert f"config key datasets.smoke_dogs.files.{archive}" in message
    for known in source(fmt).archives:
        assert known in message


def test_files_entry_for_a_local_format_is_refused() -> None:
    config = _smoke()
    config["datasets"]["mine"] = {
        "format": "image_folders",
        "category": "dog",
        "path": "photos",
        "files": {"photos.zip": {"url": "https://example.org/photos.zip"}},
    }
    message = _problem(config)
    assert "config key datasets.mine.files.photos.zip" in message and "path" in message


def test_files_entries_for_the_formats_archives_pass() -> None:
    config = _smoke()
    for name in ("smoke_dogs", "smoke_birds"):
        spec = config["datasets"][name]
        spec["files"] = {
            archive: {"url": f"file:///mirror/{archive}"}
            for archive in source(spec["format"]).archives
        }
    validate_config(copy.deepcopy(config))


# ---------------------------------------------------------------- check-config


def _check_config(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from speciesgan.cli import main

    code = main(["check-config", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_config_layers_the_ablation_overlay_over_demo_and_config_yaml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the README's command: snakemake all --configfile configs/demo.yaml configs/ablation.yaml
    monkeypatch.chdir(REPO)
    code, output = _check_config(capsys, "configs/demo.yaml", "configs/ablation.yaml")
    assert code == 0, output
    assert "config.yaml + configs/demo.yaml + configs/ablation.yaml: OK" in output


def test_check_config_layers_one_overlay_over_config_yaml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, output = _check_config(capsys, "configs/ablation.yaml")
    assert code == 0, output


def test_check_config_bad_overlay_value_names_the_key_and_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.yaml"
    bad.write_text("ablation:\n  variants:\n    v1: {gan: {loss: squared}}\n")
    code, output = _check_config(capsys, "configs/demo.yaml", "configs/ablation.yaml", str(bad))
    assert code == 1
    assert "config key ablation.variants.v1.gan.loss" in output and str(bad) in output
    assert "required but missing" not in output  # the overlay is judged over its base


def test_check_config_refuses_a_variant_that_inherits_the_species_term_without_its_head(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A variant is the main gan section plus its overrides: a resnet variant under a
    projected recipe inherits the species term, which only the projected head has.
    Training would refuse it hours into a run; the check at start must name it."""
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.yaml"
    bad.write_text("ablation:\n  variants:\n    v1: {gan: {model: resnet}}\n")
    code, output = _check_config(capsys, "configs/demo.yaml", str(bad))
    assert code == 1
    assert (
        "config key ablation.variants.v1.gan.species_loss_weight: needs model projected" in output
    )


def test_check_config_alone_checks_the_file_by_itself(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, output = _check_config(capsys, "--alone", "configs/ablation.yaml")
    assert code == 1 and "config key results_dir: required but missing" in output
    code, output = _check_config(capsys, "--alone", "configs/smoke.yaml")
    assert code == 0 and "configs/smoke.yaml: OK" in output


def test_check_config_without_the_base_file_says_how_to_proceed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO / "configs")  # no config.yaml here
    code, output = _check_config(capsys, "demo.yaml")
    assert code == 1 and "config.yaml" in output and "--alone" in output
    code, output = _check_config(capsys, "--base", "../config.yaml", "demo.yaml", "ablation.yaml")
    assert code == 0, output


@pytest.mark.parametrize(
    ("base", "overlay"),
    [
        ({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": {"f": None}}),
        ({"a": 1}, {"a": {"b": 2}}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": 2}}),
        ({"a": {"b": 1}}, {"a": None}),
        ({"a": {"b": 1}}, {"a": {}}),
    ],
)
def test_layering_is_snakemakes(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    from snakemake.utils import update_config

    from speciesgan.config import layer_config

    expected = copy.deepcopy(base)
    update_config(expected, copy.deepcopy(overlay))
    before = copy.deepcopy(base)
    assert layer_config(base, overlay) == expected
    assert base == before  # the inputs are left alone
