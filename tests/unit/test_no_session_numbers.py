"""No tracked file explains anything by a work session's number.

A session number means nothing to a reader of the repository; a decision is
explained by what was measured and when (a figure, a commit, a date).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SESSION_NUMBER = re.compile(r"\bsessions?[-\s]?\d+", re.IGNORECASE)
"""The word session (or sessions) then a number, after a space, a hyphen or nothing; any case."""


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def session_numbers(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line naming a session by its number."""
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if SESSION_NUMBER.search(line)
    ]


def test_the_pattern_finds_session_numbers_and_nothing_else() -> None:
    word = "session"  # spelt apart, so this file passes its own test
    text = f"a\n## {word.title()} 9: x\nsee {word} 11.\nthe {word}-4 runs\nthe test {word} starts\n"
    assert [n for n, _ in session_numbers(text)] == [2, 3, 4]


def test_no_tracked_file_names_a_session_number() -> None:
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary file
        found += [
            f"{path.relative_to(REPO)}:{number}: {line}" for number, line in session_numbers(text)
        ]
    assert not found, (
        "say what was measured and when (a commit, a date), not in which session:\n"
        + "\n".join(found)
    )
