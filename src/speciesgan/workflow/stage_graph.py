"""Walk the exported stages as a graph: what a target needs, what a stale stage spoils.

``speciesgan restore --target`` pulls a target and everything upstream of it (what
Snakemake needs to call the target current), and a stale stage spoils everything
downstream of it.  Both follow the job graph through file names: a stage reads
what another one writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from speciesgan.util.errors import SpeciesganError
from speciesgan.workflow.snakemake_dag import Job


def _producers(stages: Mapping[str, Job]) -> dict[str, str]:
    return {out: name for name, job in stages.items() for out in job.outputs}


def downstream_closure(stages: Mapping[str, Job], roots: set[str]) -> set[str]:
    """``roots`` and every stage that (transitively) reads their outputs."""
    producer = _producers(stages)
    closure = set(roots)
    changed = True
    while changed:
        changed = False
        for name, job in stages.items():
            if name not in closure and any(producer.get(f) in closure for f in job.inputs):
                closure.add(name)
                changed = True
    return closure


def upstream_closure(stages: Mapping[str, Job], roots: Iterable[str]) -> set[str]:
    """``roots`` and every stage whose outputs they (transitively) read."""
    producer = _producers(stages)
    closure: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        pending += [producer[f] for f in stages[name].inputs if f in producer]
    return closure


def _files(job: Job) -> tuple[str, ...]:
    return (*job.outputs, *job.logs, *job.benchmarks)


def select_stages(stages: Mapping[str, Job], run: str, targets: Sequence[str]) -> list[str]:
    """Stage names for ``targets``: each a stage name (with or without the ``run-``
    prefix), a rule name (all its jobs), or a file or folder a stage writes."""
    selected: list[str] = []
    for target in targets:
        if target in stages:
            found = [target]
        elif f"{run}-{target}" in stages:
            found = [f"{run}-{target}"]
        else:
            found = [name for name, job in stages.items() if job.rule == target]
        if not found:
            path = PurePosixPath(target).as_posix().rstrip("/")
            found = [
                name
                for name, job in stages.items()
                if any(path == f or path.startswith(f + "/") for f in _files(job))
            ]
        if not found:
            examples = ", ".join(list(stages)[-3:])
            raise SpeciesganError(
                f"--target {target}: no stage of run {run!r} has that name, rule or output "
                f"(stages are e.g. {examples}; `dvc stage list` lists them all)"
            )
        selected += [name for name in found if name not in selected]
    return selected
