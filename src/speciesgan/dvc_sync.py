"""Publish a finished run to a DVC remote, and restore it in a fresh clone without rerunning.

Why this is more than ``dvc push`` / ``dvc pull``: DVC's cache is content-addressed
and keeps no modification times, and a fresh clone has no ``.snakemake/``
metadata, so after a plain ``dvc pull`` Snakemake sees inputs newer than outputs
and jobs without provenance, and plans to rerun nearly everything (GAN training
included).  ``snakemake --touch --forceall`` repairs mtimes and metadata, but it
would equally "repair" outputs that really are stale.  So touching is only done
after DVC has compared the pulled outputs against the current rules and config:

- :func:`publish` refuses unless Snakemake has nothing to do for the config,
  regenerates ``dvc.yaml``, records hashes (``dvc commit``), re-touches (DVC's
  checkout rewrites files), and pushes.
- :func:`restore` pulls, regenerates ``dvc.yaml`` for the config it is given,
  asks ``dvc status`` which stages are stale, touches only the jobs that are not
  stale and not downstream of a stale one, and prints the command that reruns the
  rest.  Staleness is never hidden: an edited setting shows up as a stale stage.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speciesgan.atomic import write_text
from speciesgan.dvc_export import DVC_YAML, PARAMS_FILE, export_dvc, snakemake_command
from speciesgan.errors import SpeciesganError
from speciesgan.snakemake_dag import Job

DEFAULT_REMOTE = "/tmp/speciesgan-dvc-remote"
"""The remote `dvc init` is configured with in this repository: an absolute local
folder works for every clone on one machine and in CI; a lab points it at shared
storage, S3 or SSH with ``dvc remote add -d`` (see docs/reproduce.md)."""


def _tool_env() -> dict[str, str]:
    """This interpreter's bin/ first on PATH, so rules find the same `speciesgan`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _tool(name: str) -> list[str]:
    """How to call ``snakemake`` or ``dvc``: the copy next to this interpreter if any."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        raise SpeciesganError(f"`{name}` not found on PATH; install the 'workflow' extra")
    return [found]


def _run(
    workdir: Path, argv: Sequence[str], what: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    tool = argv[0]
    result = subprocess.run(
        [*_tool(tool), *argv[1:]], cwd=workdir, env=_tool_env(), capture_output=True, text=True
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise SpeciesganError(
            f"{what} failed (`{shlex.join(argv)}` in {workdir}):\n{output[-3000:]}"
        )
    return result


@dataclass(frozen=True)
class Plan:
    """What ``snakemake -n`` would run: rule -> job count, and its own words."""

    jobs: dict[str, int]
    text: str

    @property
    def nothing_to_do(self) -> bool:
        return not self.jobs


def parse_plan(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's "Job stats" table ({} when nothing to do)."""
    jobs: dict[str, int] = {}
    in_table = False
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("job") and stripped.endswith("count"):
            in_table = True
            continue
        if not in_table or stripped.startswith("---"):
            continue
        match = re.fullmatch(r"(\w+)\s+(\d+)", stripped)
        if not match or match.group(1) == "total":
            break
        jobs[match.group(1)] = int(match.group(2))
    return jobs


def dry_run(workdir: Path, configfiles: Sequence[str], extra: Sequence[str] = ()) -> Plan:
    result = _run(
        workdir, snakemake_command(["all"], configfiles, ["-n", *extra]), "the Snakemake dry run"
    )
    text = result.stdout + result.stderr
    return Plan(parse_plan(text), text)


def _reasons(plan: Plan) -> str:
    """The "Reasons:" block of a dry run, or its tail."""
    text = plan.text
    start = text.find("Reasons:")
    block = text[start:] if start >= 0 else text[-2000:]
    return block.split("\nThis was a dry-run")[0].strip()


@dataclass
class Timings:
    """Wall seconds per step, printed at the end so users see where time goes."""

    seconds: dict[str, float] = field(default_factory=dict)

    def step(self, name: str, start: float) -> None:
        self.seconds[name] = round(time.perf_counter() - start, 2)


def publish(
    workdir: str | os.PathLike[str],
    configfiles: Sequence[str],
    remote: str | None = None,
    push: bool = True,
) -> Timings:
    """Version a finished, up-to-date run and push it to the DVC remote.

    Refuses (``SpeciesganError``) when ``snakemake -n all`` plans any job: a
    published run must be what the committed rules and config produce.
    """
    workdir = Path(workdir).resolve()
    configfiles = [Path(c).as_posix() for c in configfiles]
    _require_dvc_repo(workdir)
    timings = Timings()
    start = time.perf_counter()
    plan = dry_run(workdir, configfiles)
    if not plan.nothing_to_do:
        planned = ", ".join(f"{rule} ({n})" for rule, n in plan.jobs.items())
        rerun = shlex.join(snakemake_command(["all"], configfiles, ["--cores", "all"]))
        raise SpeciesganError(
            f"refusing to publish: for config {' '.join(configfiles) or '(default)'} "
            f"Snakemake would still run {planned}. Bring the run up to date first "
            f"(`{rerun}`), then publish.\n{_reasons(plan)}"
        )
    timings.step("check", start)

    start = time.perf_counter()
    export_dvc(workdir, configfiles)
    timings.step("export", start)

    start = time.perf_counter()
    _run(workdir, ["dvc", "commit", "--force", "--quiet"], "dvc commit")
    timings.step("dvc commit", start)

    start = time.perf_counter()
    # DVC's checkout after commit rewrites files in arbitrary order; the run was
    # verified current above, so restoring Snakemake's view of it is safe.
    _touch(workdir, configfiles, ["all"])
    timings.step("snakemake --touch", start)

    if push:
        start = time.perf_counter()
        _run(workdir, ["dvc", "push", *(["--remote", remote] if remote else [])], "dvc push")
        timings.step("dvc push", start)
    print(
        f"Published {DVC_YAML}, dvc.lock and {PARAMS_FILE} for config "
        f"{' '.join(configfiles) or '(default)'}. Record them in git:\n"
        f"  git add {DVC_YAML} dvc.lock {PARAMS_FILE} .dvcignore .dvc/config && "
        "git commit -m 'Publish results'"
    )
    _print_timings(timings)
    return timings


DVCIGNORE_ENTRY = ".snakemake_timestamp"
"""Snakemake writes this marker into every ``directory()`` output and rewrites it on
``--touch``; were DVC to hash it, every touched directory would look modified."""


def _require_dvc_repo(workdir: Path) -> None:
    """A DVC repository whose ``.dvcignore`` hides Snakemake's directory markers."""
    if not (workdir / ".dvc").is_dir():
        raise SpeciesganError(f"{workdir} is not a DVC repository (no .dvc/): run `dvc init` there")
    dvcignore = workdir / ".dvcignore"
    text = dvcignore.read_text() if dvcignore.exists() else ""
    if DVCIGNORE_ENTRY not in text.split():
        separator = "" if not text or text.endswith("\n") else "\n"
        write_text(dvcignore, f"{text}{separator}{DVCIGNORE_ENTRY}\n")


def _touch(workdir: Path, configfiles: Sequence[str], targets: Sequence[str]) -> None:
    _run(
        workdir,
        snakemake_command(targets, configfiles, ["--touch", "--forceall", "--cores", "1"]),
        "snakemake --touch",
    )


def _print_timings(timings: Timings) -> None:
    print("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.seconds.items()))


@dataclass(frozen=True)
class RestoreResult:
    """Stale DVC stages, the command that reruns them, and the final dry run."""

    stale_stages: tuple[str, ...]
    rerun_command: str | None
    plan: Plan
    timings: Timings


IGNORED_CHANGES = frozenset({"changed command"})
"""A stage's ``cmd`` names the config *files* (``--configfile a.yaml b.yaml``), so
restoring under an extra or renamed config file changes every stage's command.
That alone makes nothing stale: what the config *says* is compared through the
params file, and the outputs a command builds are compared as ``outs``."""


def stale_stages(workdir: Path) -> dict[str, list[str]]:
    """Stage -> what ``dvc status`` says changed (deps, params, outs, missing lock entry)."""
    result = _run(workdir, ["dvc", "status", "--json"], "dvc status")
    text = result.stdout.strip()
    try:
        status = json.loads(text) if text else {}
    except json.JSONDecodeError:
        raise SpeciesganError(
            f"`dvc status --json` in {workdir} printed no JSON:\n{text[-2000:]}"
        ) from None
    stale: dict[str, list[str]] = {}
    for key, changes in status.items():
        name = key.split(":", 1)[1] if ":" in key else key  # "dvc.yaml:stage" in some versions
        reasons = [
            json.dumps(c, sort_keys=True) if not isinstance(c, str) else c
            for c in changes
            if not (isinstance(c, str) and c in IGNORED_CHANGES)
        ]
        if reasons:
            stale[name] = reasons
    return stale


def downstream_closure(stages: dict[str, Job], roots: set[str]) -> set[str]:
    """``roots`` and every stage that (transitively) reads their outputs."""
    producer = {out: name for name, job in stages.items() for out in job.outputs}
    closure = set(roots)
    changed = True
    while changed:
        changed = False
        for name, job in stages.items():
            if name in closure:
                continue
            if any(producer.get(f) in closure for f in job.inputs):
                closure.add(name)
                changed = True
    return closure


def restore(
    workdir: str | os.PathLike[str], configfiles: Sequence[str], remote: str | None = None
) -> RestoreResult:
    """Pull the published outputs and make Snakemake see exactly what is current."""
    workdir = Path(workdir).resolve()
    configfiles = [Path(c).as_posix() for c in configfiles]
    _require_dvc_repo(workdir)
    if not (workdir / "dvc.lock").exists():
        raise SpeciesganError(
            f"{workdir}/dvc.lock not found: nothing was published "
            "(run `speciesgan publish` where the results were made)"
        )
    timings = Timings()
    start = time.perf_counter()
    _run(workdir, ["dvc", "pull", *(["--remote", remote] if remote else [])], "dvc pull")
    timings.step("dvc pull", start)

    start = time.perf_counter()
    export = export_dvc(workdir, configfiles)
    timings.step("export", start)

    start = time.perf_counter()
    stale = stale_stages(workdir)
    unknown = sorted(set(stale) - set(export.stages))
    if unknown:  # cannot happen with a freshly exported dvc.yaml; guard against surprises
        raise SpeciesganError(f"dvc status names stages not in {DVC_YAML}: {', '.join(unknown)}")
    timings.step("dvc status", start)

    start = time.perf_counter()
    rerun_command = None
    if not stale:
        _touch(workdir, configfiles, ["all"])
    else:
        affected = downstream_closure(export.stages, set(stale))
        current = [name for name in export.stages if name not in affected]
        targets = [out for name in current for out in export.stages[name].outputs]
        if targets:
            _touch(workdir, configfiles, targets)
        forced = [out for name in sorted(stale) for out in export.stages[name].outputs]
        rerun_command = shlex.join(
            snakemake_command(["all"], configfiles, ["--cores", "all", "--forcerun", *forced])
        )
    timings.step("snakemake --touch", start)

    start = time.perf_counter()
    plan = dry_run(workdir, configfiles)
    timings.step("snakemake -n", start)

    if stale:
        print("Stale after restore (the config or rules differ from what was published):")
        for name in sorted(stale):
            print(f"  {name}: {'; '.join(stale[name])}")
        print(f"Rerun them and what follows with:\n  {rerun_command}")
    planned = ", ".join(f"{rule} {n}" for rule, n in plan.jobs.items()) or "nothing to do"
    print(f"snakemake -n all: {planned}")
    _print_timings(timings)
    return RestoreResult(tuple(sorted(stale)), rerun_command, plan, timings)
