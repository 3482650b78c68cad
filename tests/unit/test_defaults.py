"""Each default is stated once: in ``config.schema.yaml``.

``config.yaml`` states only what differs from the schema at full scale, and the
code fills the settings a caller left out from ``speciesgan.config.section_defaults``
(or, below the config layer, ``speciesgan.util.schema_defaults``, which it reads
through) rather than from values of its own: a dict literal or a ``.get(key, value)``
in ``src/`` that repeats a schema default fails here.  The packages below config
(``BELOW_CONFIG``: the data stages read ``preprocess`` and the datasets' settings
there) are checked for every setting, at any depth of the schema, and for the other
ways a module states a value of its own: a dataclass field, a parameter's default, a
keyword argument, a ``DEFAULT_<KEY>`` constant, or a module constant passed to any
of these.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from speciesgan.config import layer_config, load_schema, section_defaults, validate_config
from speciesgan.util.schema_defaults import ANY_NAME, raw_schema, schema_defaults
from tests.unit.test_layering import LAYERS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "speciesgan"
STAGE_SECTIONS = ("classifier", "judge", "gan", "metrics")
"""Sections whose every setting has a default (the stages resolve them all)."""
REPEATS_ALLOWED = 2
"""A dict literal may share this many (key, default) pairs with a section by chance."""
NOT_YET: set[tuple[str, str]] = set()
"""Known repeats (file, key) left for a change of those files; empty this when fixed."""
BELOW_CONFIG = ("util", "runtime", "data")
"""Packages below ``speciesgan.config`` in the layering (tests/unit/test_layering.py):
they cannot import it, so nothing but this check keeps them from stating defaults of
their own.  Checked thoroughly (``repeated_defaults``)."""


def _same(a: Any, b: Any) -> bool:
    """Equal as the params JSON writes them (so 0 and 0.0, or 1 and True, differ)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _defaults_by_path() -> dict[tuple[str, ...], Any]:
    """(section, key) -> default, at any depth of the schema's objects (``ANY_NAME``
    for a mapping's user-chosen keys, as ``datasets.*.camera_trap.min_confidence``)."""
    found: dict[tuple[str, ...], Any] = {}

    def visit(schema: dict[str, Any], path: tuple[str, ...]) -> None:
        for name, sub in schema.get("properties", {}).items():
            if "default" in sub:
                found[(*path, name)] = sub["default"]
            if isinstance(sub, dict):
                visit(sub, (*path, name))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            visit(extra, (*path, ANY_NAME))

    visit(load_schema(), ())
    return found


def _section_defaults(nested: bool = False) -> dict[str, dict[str, Any]]:
    """Section -> {key: default}: the top-level sections, or (``nested``) every object
    of the schema whose settings have defaults, named by its dotted path."""
    sections: dict[str, dict[str, Any]] = {}
    for path, value in _defaults_by_path().items():
        if len(path) == 2 or (nested and len(path) > 2):
            sections.setdefault(".".join(path[:-1]), {})[path[-1]] = value
    return sections


def test_config_yaml_states_only_what_differs_from_the_schema() -> None:
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    defaults = _defaults_by_path()
    repeated = []

    def visit(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            where = (*path, key)
            if where in defaults and _same(defaults[where], value):
                repeated.append(".".join(where))
            elif isinstance(value, dict):
                visit(value, where)

    visit(base, ())
    assert not repeated, f"config.yaml repeats schema defaults: {repeated}"


@pytest.mark.parametrize("section", STAGE_SECTIONS)
def test_every_stage_setting_has_one_schema_default(section: str) -> None:
    properties = load_schema()["properties"][section]["properties"]
    missing = sorted(name for name, spec in properties.items() if "default" not in spec)
    assert not missing, f"{section}: settings without a schema default: {missing}"
    assert set(section_defaults(section)) == set(properties)


def test_one_reader_of_the_defaults() -> None:
    """``config.section_defaults`` is the util reader's answer (which the data layer,
    below config, asks directly): equal for every section, and both the schema's as
    ``load_schema`` gives it (the registry fills enums, never defaults)."""
    schema = load_schema()
    sections = [name for name, spec in schema["properties"].items() if "properties" in spec]
    assert {"preprocess", "gan", "classifier", "judge", "metrics"} <= set(sections)
    for section in sections:
        expected = {
            name: spec["default"]
            for name, spec in schema["properties"][section]["properties"].items()
            if "default" in spec
        }
        assert section_defaults(section) == schema_defaults(section) == expected, section
    assert raw_schema() is raw_schema()  # parsed once
    mine = schema_defaults("preprocess")
    mine.clear()  # a copy: the next caller's is whole
    assert schema_defaults("preprocess")


def test_nested_defaults_are_read_through_user_named_keys() -> None:
    dataset = load_schema()["properties"]["datasets"]["additionalProperties"]
    camera_trap = dataset["properties"]["camera_trap"]["properties"]
    expected = {name: spec["default"] for name, spec in camera_trap.items() if "default" in spec}
    assert schema_defaults("datasets", ANY_NAME, "camera_trap") == expected


def test_stages_resolve_from_the_schema() -> None:
    from speciesgan.classifier.train import resolve_settings as classifier_settings
    from speciesgan.gan.training_loop import resolve_settings as gan_settings
    from speciesgan.metrics.evaluate import DEFAULTS as METRICS

    gan = {k: v for k, v in section_defaults("gan").items() if k != "gpus"}
    assert gan_settings({}) == gan
    assert classifier_settings({}) == section_defaults("classifier")
    assert section_defaults("metrics") == METRICS


def test_stage_defaults_stay_out_of_the_validated_config() -> None:
    """``x-stage-default`` settings: unset stays unset, so older runs keep their params."""
    config = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    validated = validate_config(config)
    schema = load_schema()["properties"]
    for section in STAGE_SECTIONS:
        for name, spec in schema[section]["properties"].items():
            if spec.get("x-stage-default") and name not in config.get(section, {}):
                assert name not in validated[section], f"{section}.{name}"
            elif name not in config.get(section, {}):
                assert _same(validated[section][name], spec["default"]), f"{section}.{name}"


def test_the_data_stages_later_defaults_stay_out_of_the_validated_config() -> None:
    """The defaults the schema stated only in words before the data stages read them
    from it (preprocess.small_species and greyscale, every camera_trap setting) are
    ``x-stage-default``: a config that leaves them unset validates as it did, so its
    params (and the data stages) stay as they were."""
    schema = load_schema()["properties"]
    dataset = schema["datasets"]["additionalProperties"]["properties"]
    camera_trap = dataset["camera_trap"]["properties"]
    later = [schema["preprocess"]["properties"][k] for k in ("small_species", "greyscale")]
    later += [spec for k, spec in camera_trap.items() if k != "splits"]
    later += list(camera_trap["splits"]["properties"].values())
    assert all("default" in spec and spec.get("x-stage-default") for spec in later)

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "configs" / "demo_camera_traps.yaml").read_text())
    config = layer_config(base, overlay)
    for key in ("small_species", "greyscale"):
        del config["preprocess"][key]
    config["datasets"]["demo_cams"]["camera_trap"] = {"frames": "interval", "splits": {}}
    validated = validate_config(config)
    assert validated["datasets"]["demo_cams"]["camera_trap"] == {
        "frames": "interval",
        "splits": {},
    }
    assert not {"small_species", "greyscale"} & set(validated["preprocess"])


def _constant(node: ast.AST) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _same_number(a: Any, b: Any) -> bool:
    """Equal as values a stage computes with: 60 and 60.0 alike (``float(...)``), but
    not True and 1."""
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    return _same(a, b) or (numbers and a == b)


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Name -> value of each module-level ``NAME = literal``."""
    constants = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and value is not None:
            is_value, constant = _constant(value)
            if is_value:
                constants[target.id] = constant
    return constants


def _named_values(tree: ast.Module) -> list[tuple[str, ast.expr, str]]:
    """(name, value, what) for each value a module gives a name: dataclass fields and
    class attributes, parameters' defaults, keyword arguments, ``DEFAULT_<KEY>``
    constants (as ``key``)."""
    found: list[tuple[str, ast.expr, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if item.value is not None:
                        found.append((item.target.id, item.value, "field"))
                elif isinstance(item, ast.Assign):
                    for target in item.targets:
                        if isinstance(target, ast.Name):
                            found.append((target.id, item.value, "class attribute"))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            with_default = positional[len(positional) - len(args.defaults) :]
            pairs = list(zip(with_default, args.defaults, strict=True))
            keyword_only = zip(args.kwonlyargs, args.kw_defaults, strict=True)
            pairs += [(arg, default) for arg, default in keyword_only if default is not None]
            found += [(arg.arg, default, "parameter") for arg, default in pairs]
        elif isinstance(node, ast.Call):
            found += [(k.arg, k.value, "keyword") for k in node.keywords if k.arg is not None]
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.startswith("DEFAULT_"):
                key = target.id.removeprefix("DEFAULT_").lower()
                found.append((key, value, "constant"))
    return found


def repeated_defaults(path: Path, thorough: bool | None = None) -> list[str]:
    """Where ``path`` repeats schema defaults: a dict literal sharing more than
    ``REPEATS_ALLOWED`` (key, default) pairs with one section, or ``x.get(key,
    value)`` whose value is the default of that key in a stage section.

    ``thorough`` (the default for the ``BELOW_CONFIG`` packages): every section, at
    any depth of the schema, and the ``_named_values`` too (a setting's name given its
    default), with module constants (``DEFAULT_MIN_BOX_SIZE``) seen through.
    """
    if thorough is None:
        below = [PACKAGE / package for package in BELOW_CONFIG]
        thorough = any(path.is_relative_to(folder) for folder in below)
    sections = _section_defaults(nested=thorough)
    checked = sections if thorough else {s: sections[s] for s in STAGE_SECTIONS}
    keys: dict[str, list[Any]] = {}
    for defaults in checked.values():
        for key, value in defaults.items():
            keys.setdefault(key, []).append(value)
    name = path.relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else path.name
    tree = ast.parse(path.read_text(), str(path))
    constants = _module_constants(tree) if thorough else {}
    same = _same_number if thorough else _same

    def value_of(node: ast.AST) -> tuple[bool, Any]:
        if isinstance(node, ast.Name) and node.id in constants:
            return True, constants[node.id]
        return _constant(node)

    def repeats(key: Any, node: ast.AST) -> bool:
        is_value, value = value_of(node)
        if not (is_value and isinstance(key, str) and key in keys) or (name, key) in NOT_YET:
            return False
        return any(same(value, default) for default in keys[key])

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            pairs = []
            for key_node, value_node in zip(node.keys, node.values, strict=True):
                is_key, key = _constant(key_node) if key_node is not None else (False, None)
                is_value, value = value_of(value_node)
                if is_key and is_value and isinstance(key, str):
                    pairs.append((key, value))
            for section, defaults in sections.items():
                shared = [k for k, v in pairs if k in defaults and same(defaults[k], v)]
                if len(shared) > REPEATS_ALLOWED:
                    found.append(f"{path}:{node.lineno}: {section} defaults {shared}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
        ):
            is_key, key = _constant(node.args[0])
            if is_key and repeats(key, node.args[1]):
                found.append(f"{path}:{node.lineno}: .get({key!r}, {ast.unparse(node.args[1])})")
    if thorough:
        for key, value, what in _named_values(tree):
            if repeats(key, value):
                found.append(f"{path}:{value.lineno}: {what} {key} = {ast.unparse(value)}")
    return found


def test_the_code_states_no_schema_default() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in repeated_defaults(path)]
    assert not found, "defaults stated in the code as well as the schema:\n" + "\n".join(found)


def test_the_check_finds_a_repeated_default(tmp_path: Path) -> None:
    """The old ``DEFAULTS`` dicts are what the check above must catch."""
    module = tmp_path / "stage.py"
    module.write_text(
        'DEFAULTS = {"steps": 2000, "batch_size": 64, "z_dim": 64, "other": 1}\n'
        'size = settings.get("g_channels", 64)\n'
    )
    hits = repeated_defaults(module)
    assert any("gan defaults" in hit for hit in hits)
    assert any("g_channels" in hit for hit in hits)


OLD_DATA_DEFAULTS = """
from dataclasses import dataclass

DEFAULT_MIN_BOX_SIZE = 32
DEFAULT_PAD_MODE = "edge"
SPLITS = {"train": "train", "id_val": "train", "id_test": "test", "val": "ood", "test": "ood"}

@dataclass(frozen=True)
class IndexSettings:
    min_images_per_species: int = 5
    small_species: str = "stop"

@dataclass(frozen=True)
class CameraTrapOptions:
    min_confidence: float = 0.8
    frame_interval_seconds: float = 60

def crop(path, resample: str = "lanczos", min_box_size: int = DEFAULT_MIN_BOX_SIZE):
    return path

def shard(settings):
    box = int(settings.get("min_box_size", DEFAULT_MIN_BOX_SIZE))
    minimum = settings.get("min_images_per_species", 5)
    return crop(settings, greyscale="keep", box=box, minimum=minimum)
"""
"""The data layer's own copies of schema defaults, as they were: each must be caught."""


def test_the_check_finds_the_data_layers_own_defaults(tmp_path: Path) -> None:
    module = tmp_path / "data_stage.py"
    module.write_text(OLD_DATA_DEFAULTS)
    hits = "\n".join(repeated_defaults(module, thorough=True))
    for stated in (
        "constant min_box_size = 32",
        "constant pad_mode = 'edge'",
        "datasets.*.camera_trap.splits defaults",
        "field min_images_per_species = 5",
        "field small_species = 'stop'",
        "field min_confidence = 0.8",
        "field frame_interval_seconds = 60",
        "parameter resample = 'lanczos'",
        "parameter min_box_size = DEFAULT_MIN_BOX_SIZE",
        ".get('min_box_size', DEFAULT_MIN_BOX_SIZE)",
        ".get('min_images_per_species', 5)",
        "keyword greyscale = 'keep'",
    ):
        assert stated in hits, f"{stated!r} not found in:\n{hits}"
    assert len(hits.splitlines()) == 12
    # outside the packages below config only the stage sections' .get and dicts count
    assert repeated_defaults(module, thorough=False) == []


def test_the_packages_below_config_are_checked_thoroughly() -> None:
    layers = [name for name, _ in LAYERS]
    assert list(BELOW_CONFIG) == layers[: layers.index("config")]
    for package in BELOW_CONFIG:
        assert (PACKAGE / package / "__init__.py").is_file(), package
