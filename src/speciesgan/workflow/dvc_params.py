"""Which config keys each rule's job reads: the ``params`` of its DVC stage.

Every stage tracks keys of one params file, the merged config of its run (see
:mod:`speciesgan.workflow.dvc_export`), so ``dvc status`` and ``dvc params diff`` name
settings as users write them (``gan.steps``).  A stage must list exactly the keys
its rule's Snakemake ``params`` are computed from: fewer, and DVC would call a
stage current that Snakemake reruns; more, and ``speciesgan restore`` would rerun
jobs Snakemake considers current.  ``tests/e2e/test_reproduce.py`` checks the two
agree for real config edits.  A rule missing here is an error, so a new rule
cannot be exported without deciding its keys.

``section.*`` stands for every key of that section; keys absent from the config
(an optional setting left unset) are left out, as DVC refuses to track a key a
params file does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from speciesgan.classifier.judge import TRAINING_KEYS as JUDGE_TRAINING_KEYS
from speciesgan.util.errors import SpeciesganError

Config = Mapping[str, Any]
Wildcards = Mapping[str, str]


def _demo(config: Config, wildcards: Wildcards) -> list[str]:
    return ["demo.*", "seed"]


def _download(config: Config, wildcards: Wildcards) -> list[str]:
    dataset = wildcards["dataset"]
    return [f"datasets.{dataset}.format", f"datasets.{dataset}.files"]


def _download_detections(config: Config, wildcards: Wildcards) -> list[str]:
    dataset = wildcards["dataset"]
    return [f"datasets.{dataset}.detections", f"datasets.{dataset}.detections_sha256"]


def _extract(config: Config, wildcards: Wildcards) -> list[str]:
    return []


def _index(config: Config, wildcards: Wildcards) -> list[str]:
    keys = ["use_datasets", "downloads_dir", "seed"]
    keys += [f"preprocess.{k}" for k in ("test_fraction", "shards", "box_mode")]
    keys += ["preprocess.min_images_per_species"]
    keys += ["preprocess.small_species"]
    for name in config["use_datasets"]:
        fields = ("format", "category", "path", "detections", "camera_trap")
        keys += [f"datasets.{name}.{field}" for field in fields]
    return keys


def _crop_shard(config: Config, wildcards: Wildcards) -> list[str]:
    keys = ("image_size", "pad_mode", "resample", "min_box_size", "greyscale")
    return [f"preprocess.{k}" for k in keys]


def _manifest(config: Config, wildcards: Wildcards) -> list[str]:
    return ["preprocess.min_images_per_species", "preprocess.small_species"]


def _train_classifier(config: Config, wildcards: Wildcards) -> list[str]:
    if wildcards.get("role") == "judge":  # its own recipe (speciesgan.classifier.judge)
        return [f"judge.{key}" for key in JUDGE_TRAINING_KEYS] + ["seed"]
    return ["classifier.*", "seed"]


def _train_gan(config: Config, wildcards: Wildcards) -> list[str]:
    # threads, stage_threads and gan.gpus are resources, not params: they say how training runs
    return [*_main_gan_without_gpus(config), "seed"]


def _sample(config: Config, wildcards: Wildcards) -> list[str]:
    return ["sample.*", "seed"]


def _real_features(config: Config, wildcards: Wildcards) -> list[str]:
    return ["metrics.*"]


def _evaluate(config: Config, wildcards: Wildcards) -> list[str]:
    # the judge's verdict counts from judge.min_accuracy
    return ["metrics.*", "judge.min_accuracy", "seed"]


def _cas(config: Config, wildcards: Wildcards) -> list[str]:
    return ["classifier.*", "seed"]  # CAS trains with the eval classifier's recipe


def _report(config: Config, wildcards: Wildcards) -> list[str]:
    return []


def _main_gan_without_gpus(config: Config) -> list[str]:
    """The main ``gan`` section minus its GPU count (a resource, not a setting)."""
    return [f"gan.{key}" for key in config["gan"] if key != "gpus"]


def _train_gan_variant(config: Config, wildcards: Wildcards) -> list[str]:
    run = wildcards["run"]
    return [*_main_gan_without_gpus(config), f"ablation.variants.{run}.gan", "seed"]


def _evaluate_variant(config: Config, wildcards: Wildcards) -> list[str]:
    variant = wildcards["variant"]
    return ["metrics.*", f"ablation.variants.{variant}.weights", "seed"]


def _ablation_table(config: Config, wildcards: Wildcards) -> list[str]:
    return [*_main_gan_without_gpus(config), "ablation.variants"]


RULE_KEYS: dict[str, Callable[[Config, Wildcards], list[str]]] = {
    "demo_stanford_dogs": _demo,
    "demo_cub": _demo,
    "demo_iwildcam": _demo,
    "download": _download,
    "download_detections": _download_detections,
    "extract": _extract,
    "index": _index,
    "crop_shard": _crop_shard,
    "manifest": _manifest,
    "train_classifier": _train_classifier,
    "train_gan": _train_gan,
    "sample": _sample,
    "real_features": _real_features,
    "evaluate": _evaluate,
    "cas": _cas,
    "report": _report,
    "train_gan_variant": _train_gan_variant,
    "evaluate_variant": _evaluate_variant,
    "ablation_table": _ablation_table,
}


def has_key(config: Config, dotted: str) -> bool:
    """Whether ``a.b.c`` names a value in the nested ``config``."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _expand(config: Config, key: str) -> list[str]:
    if not key.endswith(".*"):
        return [key]
    section = key[: -len(".*")]
    node: Any = config
    for part in section.split("."):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return [f"{section}.{child}" for child in node] if isinstance(node, Mapping) else []


def stage_params(rule: str, wildcards: Wildcards, config: Config) -> list[str]:
    """The config keys the job of ``rule`` with ``wildcards`` reads, present in ``config``."""
    if rule not in RULE_KEYS:
        raise SpeciesganError(
            f"rule {rule} has no entry in speciesgan.workflow.dvc_params.RULE_KEYS: add the config "
            "keys its params are computed from, so its DVC stage goes stale when they change"
        )
    keys = [k for key in RULE_KEYS[rule](config, wildcards) for k in _expand(config, key)]
    return [key for key in dict.fromkeys(keys) if has_key(config, key)]
