"""Read the Snakemake job graph for a target, as plain data, from Snakemake's own CLI.

The DVC export needs, per job: its rule, wildcards, inputs, outputs, logs and
benchmark.  ``snakemake --dry-run --forceall --printshellcmds`` prints exactly
that for every job of a target, in a format that has been stable across
Snakemake releases (it is what users read).  Parsing that text, rather than
reaching into Snakemake's Python objects, is what lets the workflow run with
whatever Snakemake 9 a cluster provides.

``--forceall`` makes every job of the target appear whether or not its outputs
exist; a dry run takes no directory lock, so reading the plan neither blocks nor
is blocked by a running workflow.

Limitation of the text format: Snakemake joins a job's files with ``", "``, so a
path containing ``", "`` cannot be told apart from two paths.  The exporter
rejects configs whose paths contain it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speciesgan.util.errors import SpeciesganError
from speciesgan.util.tools import tool, tool_env

LIST_SEPARATOR = ", "
"""How Snakemake joins the files of one job field in its job summaries."""

_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>\w+):$")
_FIELD = re.compile(r"^    (?P<key>\w+): (?P<value>.*)$")
_TIMESTAMP = re.compile(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$")


@dataclass(frozen=True)
class Job:
    """One Snakemake job, every path relative to the workflow directory."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()
    benchmarks: tuple[str, ...] = ()
    shell: str | None = None


def dry_run_text(
    workdir: Path, configfiles: Sequence[str], targets: Sequence[str] = ("all",)
) -> str:
    """The output of ``snakemake TARGETS -n --forceall -p --configfile ...`` in ``workdir``."""
    argv = [*targets, "--dry-run", "--forceall", "--printshellcmds"]
    if configfiles:
        argv += ["--configfile", *configfiles]
    env = tool_env()
    # A user's default profile may set `quiet`, which hides the job summaries read here.
    env.pop("SNAKEMAKE_PROFILE", None)
    result = subprocess.run(
        [*tool("snakemake"), *argv], cwd=workdir, env=env, capture_output=True, text=True
    )
    text = result.stdout + result.stderr
    if result.returncode != 0:
        raise SpeciesganError(
            f"Snakemake could not plan {' '.join(targets)} with config "
            f"{' '.join(configfiles) or '(default)'} in {workdir}:\n{_error_part(text)}"
        )
    return text


def _error_part(text: str) -> str:
    """The part of Snakemake's output that explains a failure (its tail, without the banner)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-30:])


def _files(value: str) -> tuple[str, ...]:
    return tuple(value.split(LIST_SEPARATOR)) if value else ()


def _wildcards(value: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in value.split(LIST_SEPARATOR) if "=" in item)
    return {name: wildcard for name, wildcard in pairs}


def parse_jobs(text: str) -> list[Job]:
    """Jobs from a dry run's job summaries, in the order printed.

    A summary is a ``rule NAME:`` line followed by indented ``key: value`` lines and,
    with ``--printshellcmds``, a ``Shell command:`` line.  A rule with a
    ``message:`` prints its message instead of its files; that is refused, because
    the graph would silently lose the job's files.
    """
    jobs: list[Job] = []
    current: dict[str, str] | None = None
    rule = ""
    shell: list[str] | None = None

    def finish() -> None:
        if current is None:
            return
        jobs.append(
            Job(
                rule=rule,
                wildcards=_wildcards(current.get("wildcards", "")),
                inputs=_files(current.get("input", "")),
                outputs=_files(current.get("output", "")),
                logs=_files(current.get("log", "")),
                benchmarks=_files(current.get("benchmark", "")),
                shell=None if not shell or shell == ["None"] else "\n".join(shell),
            )
        )

    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            finish()
            current, rule, shell = {}, header.group("rule"), None
            continue
        if current is None:
            continue
        if line.startswith("Shell command: "):
            shell = [line.removeprefix("Shell command: ")]
            continue
        if shell is not None:
            if not line.strip() or _TIMESTAMP.match(line) or line.startswith("Job stats:"):
                finish()
                current, shell = None, None
            else:
                shell.append(line)
            continue
        match = _FIELD.match(line)
        if match:
            current[match.group("key")] = match.group("value")
        elif re.match(r"^Job \d+: ", line):
            raise SpeciesganError(
                f"rule {rule} has a `message:`, so Snakemake's dry run hides its files; "
                "the DVC export needs them (remove the message or keep it out of `all`)"
            )
        else:
            finish()
            current = None
    finish()
    return jobs


def toposort(jobs: Sequence[Job]) -> list[Job]:
    """Jobs upstream first; ties by rule and wildcards, so the order is reproducible."""
    producer = {out: index for index, job in enumerate(jobs) for out in job.outputs}
    upstream = [
        {producer[f] for f in job.inputs if f in producer and producer[f] != index}
        for index, job in enumerate(jobs)
    ]
    order: list[Job] = []
    done: set[int] = set()
    while len(done) < len(jobs):
        ready = [i for i in range(len(jobs)) if i not in done and upstream[i] <= done]
        if not ready:
            raise SpeciesganError("the dry run's jobs form a cycle; cannot order them")
        ready.sort(key=lambda i: (jobs[i].rule, sorted(jobs[i].wildcards.items())))
        order += [jobs[i] for i in ready]
        done.update(ready)
    return order


def read_jobs(
    workdir: str | os.PathLike[str],
    configfiles: Sequence[str | os.PathLike[str]],
    targets: Sequence[str] = ("all",),
) -> list[Job]:
    """All jobs needed for ``targets`` under ``configfiles`` (relative to ``workdir``).

    A config the workflow rejects becomes a :class:`SpeciesganError` carrying
    Snakemake's message (which names the offending key).
    """
    workdir = Path(workdir).resolve()
    if not (workdir / "Snakefile").exists():
        raise SpeciesganError(f"{workdir}/Snakefile not found: run this in the repository root")
    names = [Path(c).as_posix() for c in configfiles]
    for configfile in names:
        if not (workdir / configfile).exists():
            raise SpeciesganError(f"config file {configfile} not found in {workdir}")
    jobs = parse_jobs(dry_run_text(workdir, names, targets))
    if not jobs:
        raise SpeciesganError(
            f"the Snakemake dry run for {' '.join(targets)} in {workdir} listed no jobs"
        )
    return toposort(jobs)
