"""Which workflow source files define each rule, read from the Snakefile's text.

A DVC stage must go stale when the code of its rule changes, as Snakemake's own
``code`` trigger does.  Snakemake's CLI does not say which file defines a rule, so
the ``include:`` lines of the Snakefile are followed and ``rule NAME:`` lines
collected.  Files that define no rule (``rules/common.smk``: helpers, config
validation, paths) and the Snakefile itself shape every job, so every stage
depends on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from speciesgan.util.errors import SpeciesganError

_INCLUDE = re.compile(r"""^include:\s*["'](?P<path>[^"']+)["']\s*$""")
_RULE = re.compile(r"^(?:rule|checkpoint)\s+(?P<rule>\w+)\s*:")


@dataclass(frozen=True)
class WorkflowSource:
    """Rule -> defining file, and the files every rule depends on (paths relative to root)."""

    rule_files: dict[str, str]
    shared_files: tuple[str, ...]

    def code_deps(self, rule: str) -> list[str]:
        """The Snakefile, the shared helper files, and the file defining ``rule``."""
        if rule not in self.rule_files:
            raise SpeciesganError(
                f"rule {rule} is not defined by `rule {rule}:` in the Snakefile or a file it "
                "includes; the DVC export cannot tell which file's code the stage depends on"
            )
        return list(dict.fromkeys([*self.shared_files, self.rule_files[rule]]))


def read_workflow_source(root: str | Path, snakefile: str = "Snakefile") -> WorkflowSource:
    """Scan ``snakefile`` and, recursively, the files it includes."""
    root = Path(root)
    rule_files: dict[str, str] = {}
    files_without_rules: list[str] = []
    pending = [PurePosixPath(snakefile)]
    seen: set[PurePosixPath] = set()
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            text = (root / path).read_text()
        except FileNotFoundError:
            raise SpeciesganError(f"{root / path} not found (included by the Snakefile)") from None
        defines_rules = False
        for line in text.splitlines():
            include = _INCLUDE.match(line)
            if include:
                pending.append(_normalise(path.parent / include.group("path")))
            rule = _RULE.match(line)
            if rule:
                defines_rules = True
                rule_files[rule.group("rule")] = path.as_posix()
        if not defines_rules or path == PurePosixPath(snakefile):
            files_without_rules.append(path.as_posix())
    return WorkflowSource(rule_files, tuple(files_without_rules))


def _normalise(path: PurePosixPath) -> PurePosixPath:
    """``a/../b`` -> ``b`` without touching the file system."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)
