"""Publish a finished run to a DVC remote, and restore it in a fresh clone without rerunning.

Why this is more than ``dvc push`` / ``dvc pull``: DVC's cache is content-addressed
and keeps no modification times, and a fresh clone has no ``.snakemake/``
metadata, so after a plain ``dvc pull`` Snakemake sees inputs newer than outputs
and jobs without provenance, and plans to rerun nearly everything (GAN training
included).  ``snakemake --touch --forceall`` repairs mtimes and metadata, but it
would equally "repair" outputs that really are stale.  So touching is only done
after DVC has compared the pulled outputs against the current rules and config:

- :func:`publish` refuses unless Snakemake has nothing to do for the config,
  regenerates the config's block of ``dvc.yaml``, records the hashes of that
  block's outputs (``dvc commit``), re-touches (DVC's checkout rewrites files), and
  pushes them.  Other configs' stages and lock entries are left alone.
- :func:`restore` regenerates the block for the config it is given, pulls its
  outputs (or, with targets, only what the targets need), asks ``dvc status``
  which stages are stale, touches only the jobs that are not stale and not
  downstream of a stale one, and prints the command that reruns the rest.
  Staleness is never hidden: an edited setting shows up as a stale stage.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from speciesgan.metrics.headline import HEADLINE_NAME
from speciesgan.util.atomic import write_text
from speciesgan.util.errors import SpeciesganError
from speciesgan.util.tools import run_tool
from speciesgan.workflow.dvc_export import DVC_YAML, Export, export_dvc, snakemake_command
from speciesgan.workflow.dvc_remote import resolve_remote
from speciesgan.workflow.stage_graph import downstream_closure, select_stages, upstream_closure


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


def dry_run(
    workdir: Path,
    configfiles: Sequence[str],
    targets: Sequence[str] = ("all",),
    extra: Sequence[str] = (),
) -> Plan:
    result = run_tool(
        workdir, snakemake_command(targets, configfiles, ["-n", *extra]), "the Snakemake dry run"
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


def _stage_targets(names: Sequence[str]) -> list[str]:
    """DVC targets naming stages of dvc.yaml (never mistaken for a file of that name)."""
    return [f"{DVC_YAML}:{name}" for name in names]


def _remote_args(remote: str | None) -> list[str]:
    return ["--remote", remote] if remote else []


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
    remote_name = resolve_remote(workdir, remote) if push else None
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
    export = export_dvc(workdir, configfiles)
    targets = _stage_targets(list(export.stages))
    timings.step("export", start)

    start = time.perf_counter()
    run_tool(workdir, ["dvc", "commit", "--force", "--quiet", *targets], "dvc commit")
    timings.step("dvc commit", start)

    start = time.perf_counter()
    # DVC's checkout after commit rewrites files in arbitrary order; the run was
    # verified current above, so restoring Snakemake's view of it is safe.
    _touch(workdir, configfiles, ["all"])
    timings.step("snakemake --touch", start)

    if push:
        start = time.perf_counter()
        run_tool(workdir, ["dvc", "push", *_remote_args(remote_name), *targets], "dvc push")
        timings.step("dvc push", start)
    params_file = export.params_file.relative_to(workdir).as_posix()
    # the headline metrics are cache: false: git, not the DVC remote, carries them
    headlines = sorted(
        out
        for job in export.stages.values()
        for out in job.outputs
        if out.endswith(f"/{HEADLINE_NAME}") and (workdir / out).is_file()
    )
    print(
        f"Published run {export.run!r} ({len(export.stages)} stages) for config "
        f"{' '.join(configfiles) or '(default)'}. Record it in git:\n"
        f"  git add {shlex.join([DVC_YAML, 'dvc.lock', params_file, '.dvcignore', *headlines])} && "
        f"git commit -m 'Publish {export.run} results'"
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
    run_tool(
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
    pulled_stages: tuple[str, ...] = ()


IGNORED_CHANGES = frozenset({"changed command"})
"""A stage's ``cmd`` names its params file and outputs, not what they hold; a
changed command alone (another run taking over a shared download stage) makes
nothing stale.  What the config *says* is compared through the params, and the
outputs a command builds are compared as ``outs``."""


def stale_stages(workdir: Path, names: Sequence[str] = ()) -> dict[str, list[str]]:
    """Stage -> what ``dvc status`` says changed (deps, params, outs, missing lock entry)."""
    result = run_tool(workdir, ["dvc", "status", "--json", *_stage_targets(names)], "dvc status")
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


def _locked_stages(workdir: Path) -> set[str]:
    lock = yaml.safe_load((workdir / "dvc.lock").read_text()) or {}
    return set(lock.get("stages") or {})


def restore(
    workdir: str | os.PathLike[str],
    configfiles: Sequence[str],
    remote: str | None = None,
    targets: Sequence[str] = (),
) -> RestoreResult:
    """Pull the published outputs and make Snakemake see exactly what is current.

    ``targets`` (stage names, rule names or output paths) limit the pull to what
    they need: their stages and everything upstream.  Without targets, every
    stage of this config's run is pulled.
    """
    workdir = Path(workdir).resolve()
    configfiles = [Path(c).as_posix() for c in configfiles]
    _require_dvc_repo(workdir)
    if not (workdir / "dvc.lock").exists():
        raise SpeciesganError(
            f"{workdir}/dvc.lock not found: nothing was published "
            "(run `speciesgan publish` where the results were made)"
        )
    remote_name = resolve_remote(workdir, remote)
    timings = Timings()
    start = time.perf_counter()
    export = export_dvc(workdir, configfiles)
    selected = select_stages(export.stages, export.run, targets) if targets else []
    needed = upstream_closure(export.stages, selected) if targets else set(export.stages)
    ordered = [name for name in export.stages if name in needed]
    timings.step("export", start)

    start = time.perf_counter()
    published = [name for name in ordered if name in _locked_stages(workdir)]
    run_tool(
        workdir,
        ["dvc", "pull", *_remote_args(remote_name), *_stage_targets(published)],
        "dvc pull",
    )
    timings.step("dvc pull", start)

    start = time.perf_counter()
    stale = stale_stages(workdir, ordered)
    unknown = sorted(set(stale) - needed)
    if unknown:  # cannot happen with the targets given; guard against surprises
        raise SpeciesganError(f"dvc status names stages not asked about: {', '.join(unknown)}")
    timings.step("dvc status", start)

    start = time.perf_counter()
    goal = [o for name in selected for o in export.stages[name].outputs] or ["all"]
    rerun_command = _touch_current(workdir, configfiles, export, ordered, stale, goal)
    timings.step("snakemake --touch", start)

    start = time.perf_counter()
    plan = dry_run(workdir, configfiles, goal)
    timings.step("snakemake -n", start)

    if stale:
        print("Stale after restore (the config or rules differ from what was published):")
        for name in sorted(stale):
            print(f"  {name}: {'; '.join(stale[name])}")
        print(f"Rerun them and what follows with:\n  {rerun_command}")
    planned = ", ".join(f"{rule} {n}" for rule, n in plan.jobs.items()) or "nothing to do"
    print(f"pulled {len(published)} stage(s); snakemake -n {' '.join(goal)}: {planned}")
    _print_timings(timings)
    return RestoreResult(
        tuple(sorted(stale)), rerun_command, plan, timings, pulled_stages=tuple(published)
    )


def _touch_current(
    workdir: Path,
    configfiles: Sequence[str],
    export: Export,
    names: Sequence[str],
    stale: dict[str, list[str]],
    goal: Sequence[str],
) -> str | None:
    """Touch the jobs of ``names`` that are current; the rerun command if any are stale."""
    if not stale:
        _touch(workdir, configfiles, goal)
        return None
    stages = {name: export.stages[name] for name in names}
    affected = downstream_closure(stages, set(stale))
    current = [out for name in names if name not in affected for out in stages[name].outputs]
    if current:
        _touch(workdir, configfiles, current)
    forced = [out for name in sorted(stale) for out in stages[name].outputs]
    return shlex.join(
        snakemake_command(goal, configfiles, ["--cores", "all", "--forcerun", *forced])
    )
