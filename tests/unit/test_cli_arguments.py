"""Every subcommand's arguments, as the rules and people call them, stay as recorded.

The rules' shell commands, the DVC stages and people's scripts call
``speciesgan COMMAND --flag ...``; a flag renamed, a default changed or a help text
lost while code moves would break them or their reading.  The parser's structure
(not argparse's formatting, which changes between Python versions) is compared
with ``cli_arguments.json``.  After a deliberate change, rewrite that file:

    PYTHONPATH=src python -m tests.unit.test_cli_arguments > tests/unit/cli_arguments.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from speciesgan.cli import build_parser

SNAPSHOT = Path(__file__).with_name("cli_arguments.json")
PLAIN_TYPES = {int: "int", float: "float", str: "str", Path: "Path", json.loads: "json.loads"}
"""Types recorded by name; the CLI's own checks (--settings, --seed) as "checked"."""


def _action(action: argparse.Action) -> dict[str, Any]:
    kind = None if action.type is None else PLAIN_TYPES.get(action.type, "checked")
    return {
        "class": type(action).__name__,
        "option_strings": list(action.option_strings),
        "dest": action.dest,
        "nargs": action.nargs,
        "const": repr(action.const),
        "default": repr(action.default),
        "type": kind,
        "choices": None if action.choices is None else [str(c) for c in action.choices],
        "required": action.required,
        "help": action.help,
        "metavar": action.metavar,
    }


def _parser(parser: argparse.ArgumentParser) -> dict[str, Any]:
    return {
        "prog": parser.prog,
        "description": parser.description,
        "actions": [
            _action(a) for a in parser._actions if not isinstance(a, argparse._SubParsersAction)
        ],
        "exclusive": [
            [a.dest for a in group._group_actions] for group in parser._mutually_exclusive_groups
        ],
    }


def cli_structure() -> dict[str, Any]:
    """The top parser and each subcommand's (in the order ``--help`` lists them)."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    return {
        "top": _parser(parser),
        "subcommands_required": sub.required,
        "subcommands": [
            {"name": name, "help": helps.get(name), **_parser(subparser)}
            for name, subparser in sub.choices.items()
        ],
    }


def test_every_subcommand_keeps_its_arguments_defaults_and_help() -> None:
    recorded = json.loads(SNAPSHOT.read_text())
    now = cli_structure()
    assert [s["name"] for s in now["subcommands"]] == [s["name"] for s in recorded["subcommands"]]
    for old, new in zip(recorded["subcommands"], now["subcommands"], strict=True):
        assert new == old, f"speciesgan {old['name']}: arguments changed (see this file's doc)"
    assert now == recorded


def dumps(value: Any, indent: str = "") -> str:
    """JSON with one line per argument, so that a change reads as a one-line diff."""
    inner = indent + "  "
    if isinstance(value, dict) and "option_strings" not in value:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


if __name__ == "__main__":
    print(dumps(cli_structure()))
