"""docs/architecture.md matches the code: its rules, modules, commands and layers exist.

The document is what a newcomer reads first; a renamed rule, a moved module or a
dropped subcommand would leave it describing code that is not there.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from speciesgan.cli import build_parser
from tests.unit.test_layering import LAYERS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"
SRC = REPO / "src"
RULE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
MODULE_PATH = re.compile(r"\bspeciesgan(?:\.\w+)+")
FILE_PATH = re.compile(r"\bsrc/speciesgan/[\w/.]*\w")
COMMAND = re.compile(r"`speciesgan ([a-z][a-z0-9-]*)")
METADATA_KEYS = {"speciesgan.image_size", "speciesgan.images_sha256", "speciesgan.rejects_sha256"}
"""Parquet metadata keys the document describes: dotted, but not module paths."""


def doc() -> str:
    return DOC.read_text()


def defined_rules() -> set[str]:
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    return {name for path in files for name in RULE.findall(path.read_text())}


def stage_table_rules() -> set[str]:
    """The backticked names in the 'rule' column of the stages table (not in parentheses)."""
    section = doc().split("## Stages: rules and commands", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    cells = [re.sub(r"\([^)]*\)", "", row.split(" | ")[1]) for row in rows]  # no wildcards
    return {name for cell in cells for name in re.findall(r"`(\w+)`", cell)}


def test_every_rule_the_table_names_exists_and_every_rule_is_named() -> None:
    named, defined = stage_table_rules(), defined_rules()
    assert named, "no rules found in the stages table"
    assert not named - defined, (
        f"docs/architecture.md names rules that do not exist: {sorted(named - defined)}"
    )
    assert not defined - named - {"all"}, (
        f"rules missing from docs/architecture.md's stages table: {sorted(defined - named - {'all'})}"
    )
    assert "The rule `all`" in doc()


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def module_path_problem(dotted: str) -> str | None:
    """Why ``speciesgan.a.b[.name]`` names nothing in src/, or None when it exists."""
    parts = dotted.split(".")
    path, rest = SRC / parts[0], parts[1:]
    while rest and ((path / rest[0]).is_dir() or (path / f"{rest[0]}.py").is_file()):
        path = path / rest[0]
        rest = rest[1:]
    if not rest:
        return None
    module = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if len(rest) == 1 and module.is_file() and rest[0] in _top_level_names(module):
        return None
    return (
        f"{dotted}: {'.'.join(rest)} is not a module of, nor defined in, {module.relative_to(REPO)}"
    )


def test_every_module_path_it_names_exists() -> None:
    dotted = sorted(set(MODULE_PATH.findall(doc())) - METADATA_KEYS)
    assert len(dotted) >= 20
    problems = [p for p in map(module_path_problem, dotted) if p]
    assert not problems, "docs/architecture.md names:\n" + "\n".join(problems)
    files = sorted(set(FILE_PATH.findall(doc())))
    missing = [f for f in files if not (REPO / f).exists()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_the_module_path_check_catches_a_wrong_name() -> None:
    assert module_path_problem("speciesgan.data.index.build_index") is None
    assert module_path_problem("speciesgan.runtime") is None
    assert module_path_problem("speciesgan.data.index.no_such_function") is not None
    assert module_path_problem("speciesgan.sample") is not None


def test_every_package_is_described() -> None:
    packages = sorted(
        p.name for p in (SRC / "speciesgan").iterdir() if (p / "__init__.py").is_file()
    )
    missing = [name for name in packages if f"`speciesgan.{name}`" not in doc()]
    assert not missing, f"packages missing from docs/architecture.md: {missing}"


def test_every_command_it_names_is_a_subcommand() -> None:
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    named = set(COMMAND.findall(doc()))
    assert len(named) >= 15
    unknown = sorted(named - set(subparsers.choices))
    assert not unknown, f"docs/architecture.md names commands the CLI lacks: {unknown}"


def test_the_layer_order_is_the_tested_one() -> None:
    line = next(line for line in doc().splitlines() if line.startswith("Layers: "))
    assert re.findall(r"`([^`]+)`", line) == [name for name, _ in LAYERS]
