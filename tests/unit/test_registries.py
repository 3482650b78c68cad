"""The registries: what the code looks up by name is what the config may name.

Sources, GAN models, adversarial losses, classifier architectures and metrics
are each looked up by name in one ``Registry`` (``speciesgan.util.registry``).
The config schema either lists the names itself (a test below keeps each such
enum equal to its registry) or has them filled in from the registry
(``x-registry``: the dataset formats).
"""

from __future__ import annotations

import argparse

import pytest
import torch

from speciesgan.config import load_schema, registered_names, validate_config
from speciesgan.data import sources
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.registry import Registry


def _schema_enum(*path: str) -> list[str]:
    node = load_schema()
    for key in path:
        node = node["properties"][key] if key != "*" else node["additionalProperties"]
    return list(node["enum"])


# ---------------------------------------------------------------- the helper
def test_a_registry_keeps_order_refuses_a_name_twice_and_names_the_known_ones() -> None:
    colours: Registry[int] = Registry("paint.colour")
    assert colours.add("red", 1) == 1
    colours.add("blue", 2)
    assert list(colours) == ["red", "blue"] and colours["blue"] == 2 and len(colours) == 2
    assert "red" in colours and "green" not in colours and ["unhashable"] not in colours
    with pytest.raises(ValueError, match="two paint.colour entries named 'red'"):
        colours.add("red", 3)
    with pytest.raises(SpeciesganError, match=r"paint.colour must be one of \['red', 'blue'\]"):
        colours.pick("green")
    with pytest.raises(KeyError):  # a plain lookup fails as a dict's does
        colours["green"]


# ---------------------------------------------------------------- sources
def test_the_config_allows_exactly_the_registered_formats() -> None:
    assert sources.formats() == [
        "cub", "iwildcam", "leeds_butterflies", "stanford_dogs",
        "demo_cub", "demo_iwildcam", "demo_stanford_dogs",
        "image_folders", "table",
    ]  # fmt: skip
    assert _schema_enum("datasets", "*", "format") == sources.formats()
    assert registered_names("local formats") == ["image_folders", "table"]
    assert registered_names("detection formats") == ["iwildcam"]


def test_every_source_is_readable_and_fetchable_or_local() -> None:
    for name, source in sources.registered().items():
        assert callable(source.read), name
        assert source.local != bool(source.archives), f"{name}: archives xor read in place"
        for archive, url in source.archives.items():
            assert "/" not in archive and url.startswith(("http://", "https://")), name
        assert sources.source(name) is source
        if source.demo:
            assert sources.source(f"demo_{name}") is source
    with pytest.raises(ValueError, match="unknown dataset format 'demo_table'"):
        sources.source("demo_table")  # a local format has no demo twin


def test_the_demo_writer_writes_the_sources_that_have_a_demo() -> None:
    from speciesgan.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (layout,) = [a for a in sub.choices["demo-data"]._actions if a.dest == "layout"]
    assert set(layout.choices) == {n for n, s in sources.registered().items() if s.demo}


def test_a_local_format_needs_a_path_and_a_detection_format_its_detections() -> None:
    base = {"use_datasets": ["x"], "results_dir": "results/x"}
    with pytest.raises(SpeciesganError, match="datasets.x.path: required"):
        validate_config({**base, "datasets": {"x": {"format": "table", "category": "dog"}}})
    with pytest.raises(SpeciesganError, match="datasets.x.detections: required"):
        validate_config({**base, "datasets": {"x": {"format": "iwildcam", "category": "dog"}}})
    with pytest.raises(SpeciesganError, match="datasets.x.format: 'nope' is not one of 'cub'"):
        validate_config({**base, "datasets": {"x": {"format": "nope", "category": "dog"}}})


# ---------------------------------------------------------------- models and losses
def test_the_schema_lists_every_gan_model_loss_and_classifier_arch() -> None:
    from speciesgan.classifier.model import CLASSIFIER_ARCHS
    from speciesgan.gan.loss import ADVERSARIAL_LOSSES
    from speciesgan.gan.networks import GAN_MODELS

    assert _schema_enum("gan", "model") == list(GAN_MODELS)
    assert _schema_enum("gan", "loss") == list(ADVERSARIAL_LOSSES)
    assert _schema_enum("classifier", "arch") == list(CLASSIFIER_ARCHS)
    assert CLASSIFIER_ARCHS["small_cnn"].imagenet is None  # the judge shares nothing with ImageNet


def test_an_unknown_model_loss_or_arch_is_refused_by_name() -> None:
    from speciesgan.classifier.model import build_classifier_network
    from speciesgan.gan.loss import discriminator_loss
    from speciesgan.gan.networks import build_networks

    with pytest.raises(SpeciesganError, match="gan.model must be one of"):
        build_networks({"model": "stylegan"}, 3, 32)
    with pytest.raises(SpeciesganError, match="gan.loss must be one of"):
        discriminator_loss("least-squares", torch.zeros(2), torch.zeros(2))
    with pytest.raises(SpeciesganError, match="classifier.arch must be one of"):
        build_classifier_network("vgg", 3, "none")
