"""Each default is stated once: in ``config.schema.yaml``.

``config.yaml`` states only what differs from the schema at full scale, and the
code fills the settings a caller left out from ``speciesgan.config.section_defaults``
rather than from values of its own: a dict literal or a ``.get(key, value)`` in
``src/`` that repeats a schema default fails here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from speciesgan.config import load_schema, section_defaults, validate_config
from speciesgan.util.schema_defaults import ANY_NAME, raw_schema, schema_defaults

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "speciesgan"
STAGE_SECTIONS = ("classifier", "judge", "gan", "metrics")
"""Sections whose every setting has a default (the stages resolve them all)."""
REPEATS_ALLOWED = 2
"""A dict literal may share this many (key, default) pairs with a section by chance."""
NOT_YET: set[tuple[str, str]] = set()
"""Known repeats (file, key) left for a change of those files; empty this when fixed."""


def _same(a: Any, b: Any) -> bool:
    """Equal as the params JSON writes them (so 0 and 0.0, or 1 and True, differ)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _defaults_by_path() -> dict[tuple[str, ...], Any]:
    """(section, key) -> default, at any depth of the schema's objects."""
    found: dict[tuple[str, ...], Any] = {}

    def visit(schema: dict[str, Any], path: tuple[str, ...]) -> None:
        for name, sub in schema.get("properties", {}).items():
            if "default" in sub:
                found[(*path, name)] = sub["default"]
            if isinstance(sub, dict):
                visit(sub, (*path, name))

    visit(load_schema(), ())
    return found


def _section_defaults() -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for path, value in _defaults_by_path().items():
        if len(path) == 2:
            sections.setdefault(path[0], {})[path[1]] = value
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


def _constant(node: ast.AST) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def repeated_defaults(path: Path) -> list[str]:
    """Where ``path`` repeats schema defaults: a dict literal sharing more than
    ``REPEATS_ALLOWED`` (key, default) pairs with one section, or ``x.get(key,
    value)`` whose value is the default of that key in a stage section."""
    sections = _section_defaults()
    stage_keys: dict[str, list[Any]] = {}
    for section in STAGE_SECTIONS:
        for key, value in sections[section].items():
            stage_keys.setdefault(key, []).append(value)
    name = path.relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Dict):
            pairs = []
            for key_node, value_node in zip(node.keys, node.values, strict=True):
                is_key, key = _constant(key_node) if key_node is not None else (False, None)
                is_value, value = _constant(value_node)
                if is_key and is_value and isinstance(key, str):
                    pairs.append((key, value))
            for section, defaults in sections.items():
                same = [k for k, v in pairs if k in defaults and _same(defaults[k], v)]
                if len(same) > REPEATS_ALLOWED:
                    found.append(f"{path}:{node.lineno}: {section} defaults {same}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
        ):
            is_key, key = _constant(node.args[0])
            is_value, value = _constant(node.args[1])
            if is_key and is_value and isinstance(key, str) and key in stage_keys:
                known = (name, key) in NOT_YET
                if not known and any(_same(value, default) for default in stage_keys[key]):
                    found.append(f"{path}:{node.lineno}: .get({key!r}, {value!r})")
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
