"""docs/faults.md: the fault table names tests that exist, and covers every item of issues 15
and 28.

The table is what a user reads to learn what happens when something goes wrong;
a renamed or deleted test would leave a row whose evidence is gone, silently.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAULTS = REPO / "docs" / "faults.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^\]`]*)\])?`")
ITEMS = [str(number) for number in range(1, 13)] + ["Fuzz"] + [f"P{n}" for n in range(1, 11)]
"""Issue 15's items 1-12 and its fuzzing run, then issue 28's items as P1-P10."""


def _rows() -> list[list[str]]:
    """The table's body rows, split into cells (the header and the rule skipped)."""
    lines = [line for line in FAULTS.read_text().splitlines() if line.startswith("| ")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]
    assert rows[0] == ["fault", "defence", "test", "outcome"], rows[0]
    return rows[1:]


def _parametrize_ids(source: str, name: str) -> str:
    """The source from ``name``'s decorators to its end: where its parameter ids are."""
    start = source.index(f"def {name}(")
    decorators = source.rfind("\n\n", 0, start)
    end = source.find("\ndef ", start + 1)
    return source[decorators : end if end != -1 else len(source)]


def test_every_row_has_four_cells_and_evidence() -> None:
    rows = _rows()
    assert len(rows) >= 40
    for row in rows:
        assert len(row) == 4, row
        assert all(row), row
        assert TEST_REF.search(row[2]) or row[2] == "(none)", row


def test_every_named_test_exists() -> None:
    references = TEST_REF.findall(FAULTS.read_text())
    assert len(references) >= 60
    for path, name, ids in references:
        file = REPO / path
        assert file.is_file(), f"docs/faults.md names {path}, which does not exist"
        source = file.read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), (
            f"docs/faults.md names {path}::{name}, which is not a test in that file"
        )
        declared = _parametrize_ids(source, name)
        for case in filter(None, ids.split(",")):
            # an id is a word given in ids=[...] or the parameter value itself
            assert re.search(rf"[\"']{re.escape(case)}[\"']", declared), (
                f"docs/faults.md names {path}::{name}[{case}], an unknown parameter id"
            )


def test_every_item_of_issues_15_and_28_has_a_row() -> None:
    covered = {match.group(1) for row in _rows() if (match := re.match(r"\*\*(\w+)\.\*\*", row[0]))}
    assert covered == set(ITEMS)
