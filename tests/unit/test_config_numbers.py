"""Every numeric config key: NaN, infinity and integers beyond 64 bits are refused by name.

JSON Schema's ``number`` admits NaN and infinity and its ``integer`` has no size
limit; these reached training before (``gan.ema_decay: .nan`` gave a generator of
NaN weights, a seed of 10**23 an overflow deep inside).  The fuzz test draws
values for each numeric key the schema declares and checks that the config is
either accepted or refused with a message naming that key.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from speciesgan.cli import main
from speciesgan.config import load_schema, validate_config
from speciesgan.util.errors import SpeciesganError

REPO = Path(__file__).resolve().parents[2]
SMOKE = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())


def _numeric_keys(schema: dict[str, Any], config: Any, path: tuple[str, ...] = ()) -> list:
    """(key path, schema) for every number/integer property, following the smoke
    config's own names under mappings of free keys (datasets, variants)."""
    found = []
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if path and ("number" in kinds or "integer" in kinds):
        found.append((path, schema))
    for name, sub in schema.get("properties", {}).items():
        below = config.get(name, {}) if isinstance(config, dict) else {}
        found += _numeric_keys(sub, below, (*path, name))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and isinstance(config, dict):
        for name in sorted(config)[:1]:
            if name not in schema.get("properties", {}):
                found += _numeric_keys(extra, config[name], (*path, name))
    return found


NUMERIC_KEYS = _numeric_keys(load_schema(), SMOKE)


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(SMOKE)
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return config


def test_every_numeric_key_of_the_schema_is_covered() -> None:
    names = {".".join(path) for path, _ in NUMERIC_KEYS}
    assert {"seed", "gan.ema_decay", "gan.lr_g", "gan.steps", "threads"} <= names
    assert len(names) > 30


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("gan.ema_decay", math.nan, "nan is not a finite number"),
        ("gan.lr_g", math.nan, "nan is not a finite number"),
        ("gan.lr_d", math.inf, "inf is not a finite number"),
        ("classifier.lr", -math.inf, "-inf is not a finite number"),
        ("seed", 10**23, f"{10**23} does not fit in a 64-bit integer"),
        ("gan.steps", 2**64, f"{2**64} does not fit in a 64-bit integer"),
    ],
)
def test_non_finite_and_oversized_numbers_are_refused_naming_the_key(
    key: str, value: float, says: str
) -> None:
    with pytest.raises(SpeciesganError) as error:
        validate_config(_with(tuple(key.split(".")), value))
    assert f"config key {key}: {says}" in str(error.value)


def test_largest_seed_is_accepted() -> None:
    assert validate_config(_with(("seed",), 2**63 - 1))["seed"] == 2**63 - 1


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**63 - 1, 0, -1]),
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(NUMERIC_KEYS), value=NUMBERS)
def test_any_number_for_any_numeric_key_is_accepted_or_refused_by_name(key, value) -> None:
    path, _ = key
    name = ".".join(path)
    try:
        result = validate_config(_with(path, value))
    except SpeciesganError as error:
        # the key itself, or the section holding it when the section is refused
        # whole (camera_trap settings on a dataset that is not a camera trap)
        named = [".".join(path[:k]) for k in range(len(path), 0, -1)][: max(1, len(path) - 1)]
        assert any(f"config key {key}:" in str(error) for key in named), (name, str(error))
        return
    accepted = result
    for part in path:
        accepted = accepted[part]
    if isinstance(accepted, float):
        assert math.isfinite(accepted)
    else:
        assert -(2**63) <= accepted < 2**63


def test_check_config_names_a_nan_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("gan:\n  ema_decay: .nan\n")
    assert main(["check-config", str(path), "--base", str(REPO / "configs/smoke.yaml")]) == 1
    assert "config key gan.ema_decay: nan is not a finite number" in capsys.readouterr().err


ALIAS_BOMB = """\
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_yaml_alias_bomb_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10**9 values from a few lines: refused by size, not expanded into memory."""
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert main(["check-config", str(path), "--alone"]) == 1
    error = capsys.readouterr().err
    assert str(path) in error and "expands to more than" in error and len(error) < 1000


def test_stage_settings_given_by_hand_refuse_nan_and_huge_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stage run by hand gets the same checks: JSON admits NaN, argparse any integer."""
    args = ["train-gan", "--manifest", str(tmp_path / "m.parquet"), "--out-generator",
            str(tmp_path / "g.pt"), "--out-log", str(tmp_path / "log.csv"),
            "--checkpoint-dir", str(tmp_path / "ckpt")]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*args, "--settings", '{"lr_g": NaN}'])
    assert "--settings: lr_g: nan is not a finite number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--seed", str(10**23)])
    assert "--seed must be from 0 to 2**63 - 1" in capsys.readouterr().err
