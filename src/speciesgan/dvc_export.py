"""Generate ``dvc.yaml`` (and its params file) from the Snakemake job graph.

Snakemake is the only executor; DVC only versions what Snakemake made.  To let
``dvc status`` say *which* stage a code or config change makes stale, the
Snakemake graph is mirrored one job per DVC stage:

- ``deps``: the job's input files and the ``rules/*.smk`` file defining its rule;
- ``params``: the job's evaluated params and its rule's shell command template,
  written to ``dvc-params.yaml`` under the stage's name.  These are exactly the
  two things Snakemake's own ``params`` and ``code`` rerun triggers compare, so
  DVC and Snakemake agree on staleness;
- ``outs``: outputs, logs and benchmark files (the published ``results/`` is
  complete, byte for byte); ``train_gan`` additionally owns the GAN resume
  checkpoint directory, marked ``persist`` so ``dvc repro`` never deletes the
  state an interrupted training run resumes from;
- ``cmd``: a Snakemake call that builds exactly that job's outputs with the same
  config files, so ``dvc repro`` still works (and still goes through Snakemake).

The files are a pure function of the workflow and the config files given, so
regenerating with the same config gives byte-identical files (no git diff).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from speciesgan.atomic import write_text
from speciesgan.errors import SpeciesganError
from speciesgan.snakemake_dag import Job, read_jobs

DVC_YAML = "dvc.yaml"
PARAMS_FILE = "dvc-params.yaml"

PERSISTENT_PARAM_OUTS: dict[str, tuple[str, ...]] = {"train_gan": ("checkpoints",)}
"""Rule -> names of params that are directories the job writes but Snakemake does
not own.  ``train_gan``'s checkpoint folder is deliberately not a rule output
(Snakemake would delete it when a job fails, which is when it is needed); DVC
still versions it so a published run can be extended (more ``gan.steps``)
without retraining from step 0."""


@dataclass(frozen=True)
class Export:
    """What :func:`export_dvc` wrote, and the jobs it mirrored (for restore)."""

    dvc_yaml: Path
    params_file: Path
    stages: dict[str, Job]


def stage_name(job: Job) -> str:
    """``rule`` or ``rule-wildcard1-wildcard2`` in wildcard order, made DVC-safe.

    DVC accepts only letters, digits, ``_`` and ``-`` in stage names; anything else
    (the ``.`` of an archive name) becomes ``_``.
    """
    parts = [job.rule, *job.wildcards.values()]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(parts))


def snakemake_command(
    targets: Sequence[str], configfiles: Sequence[str], extra: Sequence[str] = ()
) -> list[str]:
    """A ``snakemake`` argv; targets go first because ``--configfile`` takes several files."""
    command = ["snakemake", *targets, *extra]
    if configfiles:
        command += ["--configfile", *configfiles]
    return command


def stage_cmd(job: Job, configfiles: Sequence[str]) -> str:
    """The DVC ``cmd``: Snakemake builds this job's outputs and nothing upstream.

    ``--allowed-rules`` keeps it to this rule: DVC itself runs the stages in
    dependency order, and must not see one stage quietly rebuild another's outs.
    """
    argv = snakemake_command(
        job.outputs, configfiles, ["--cores", "all", "--allowed-rules", job.rule]
    )
    return shlex.join(argv)


def build_dvc_files(
    jobs: Sequence[Job], configfiles: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Job]]:
    """(dvc.yaml content, params file content, stage name -> job)."""
    stages: dict[str, Any] = {}
    params: dict[str, Any] = {}
    by_name: dict[str, Job] = {}
    for job in jobs:
        if not job.outputs:  # the `all` target: nothing to version, and DVC needs outs or cmd
            continue
        name = stage_name(job)
        if name in by_name:
            raise SpeciesganError(
                f"two Snakemake jobs map to the DVC stage name {name!r}; "
                "make the rule's wildcard values differ in letters or digits"
            )
        by_name[name] = job
        outs: list[Any] = [*job.outputs, *job.logs, *job.benchmarks]
        for param in PERSISTENT_PARAM_OUTS.get(job.rule, ()):
            if param in job.params and job.params[param]:
                outs.append({str(job.params[param]): {"persist": True}})
        params[name] = {"params": job.params, "shell": job.shell}
        stages[name] = {
            "cmd": stage_cmd(job, configfiles),
            "deps": [*dict.fromkeys([*job.inputs, job.rule_file])],
            "params": [{PARAMS_FILE: [name]}],
            "outs": outs,
        }
    return {"stages": stages}, params, by_name


def _header(configfiles: Sequence[str], what: str) -> str:
    regenerate = shlex.join(["speciesgan", "dvc-export", *_config_args(configfiles)])
    return (
        f"# {what}, generated from the Snakemake job graph of `all`; do not edit by hand.\n"
        f"# Regenerate with:  {regenerate}\n"
        "# (`speciesgan publish` and `speciesgan restore` regenerate it themselves.)\n"
    )


def _config_args(configfiles: Sequence[str]) -> list[str]:
    args: list[str] = []
    for configfile in configfiles:
        args += ["--configfile", configfile]
    return args


def _dump(data: Any) -> str:
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True
    )


def export_dvc(
    workdir: str | os.PathLike[str], configfiles: Sequence[str], jobs: Sequence[Job] | None = None
) -> Export:
    """Write ``dvc.yaml`` and ``dvc-params.yaml`` in ``workdir`` for ``all`` under ``configfiles``.

    ``jobs`` may be passed when the caller already read the graph.
    """
    workdir = Path(workdir).resolve()
    configfiles = [Path(c).as_posix() for c in configfiles]
    if jobs is None:
        jobs = read_jobs(workdir, configfiles)
    dvc_yaml, params, by_name = build_dvc_files(jobs, configfiles)
    write_text(workdir / DVC_YAML, _header(configfiles, "DVC stages") + _dump(dvc_yaml))
    write_text(
        workdir / PARAMS_FILE,
        _header(configfiles, "Per-stage Snakemake params and rule code for DVC")
        + yaml.safe_dump(params, sort_keys=True, default_flow_style=False, width=1000),
    )
    return Export(workdir / DVC_YAML, workdir / PARAMS_FILE, by_name)
