"""Read the Snakemake job graph for a target, as plain data.

This is the only module that touches Snakemake's internals (the Python API down
to ``workflow.dag``); everything else in the DVC integration works on the
:class:`Job` records it returns.  Those internals are not a stable interface,
which is why ``pyproject.toml`` pins snakemake to 9.27.1 and ``tests/test_reproduce.py``
checks this reader against the real workflow.

The graph is built with ``forceall`` so that every job of the target appears,
whether or not its outputs exist, and without taking Snakemake's directory lock
(reading the plan must not block, or be blocked by, a running workflow).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speciesgan.errors import SpeciesganError


@dataclass(frozen=True)
class Job:
    """One Snakemake job, with every path relative to the workflow directory."""

    rule: str
    wildcards: dict[str, str]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    directory_outputs: frozenset[str]
    logs: tuple[str, ...]
    benchmarks: tuple[str, ...]
    params: dict[str, Any]
    shell: str | None
    rule_file: str


def _plain(value: Any) -> Any:
    """A param value as YAML-safe data (Snakemake hands out Namedlists and paths)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _relative(path: str, workdir: Path) -> str:
    absolute = Path(path)
    if absolute.is_absolute():
        with contextlib.suppress(ValueError):
            return absolute.relative_to(workdir).as_posix()
    return Path(path).as_posix()


def read_jobs(
    workdir: Path, configfiles: Sequence[str | os.PathLike[str]], target: str = "all"
) -> list[Job]:
    """All jobs needed for ``target``, upstream first (deterministic order).

    ``configfiles`` are given as a user would to ``--configfile`` (relative to
    ``workdir``), layered over the Snakefile's own ``configfile:``.  A config the
    workflow rejects becomes a :class:`SpeciesganError` carrying Snakemake's message.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    workdir = Path(workdir).resolve()
    if not (workdir / "Snakefile").exists():
        raise SpeciesganError(f"{workdir}/Snakefile not found: run this in the repository root")
    for configfile in configfiles:
        if not (workdir / configfile).exists():
            raise SpeciesganError(f"config file {configfile} not found in {workdir}")
    previous_cwd = os.getcwd()
    captured = io.StringIO()
    logging.disable(logging.INFO)  # Snakemake logs through the root logger the CLI configured
    try:
        with (
            contextlib.redirect_stderr(captured),
            SnakemakeApi(OutputSettings(quiet={Quietness.ALL}, enable_file_logging=False)) as api,
        ):
            workflow_api = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[workdir / c for c in configfiles]),
                snakefile=workdir / "Snakefile",
                workdir=workdir,
            )
            workflow_api.dag(DAGSettings(targets={target}, forceall=True))
            workflow = workflow_api._workflow
            workflow._prepare_dag(
                forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
            )
            workflow._build_dag()
            dag_jobs = [
                job
                for level in workflow.dag.toposorted()
                for job in sorted(
                    level, key=lambda j: (j.rule.name, sorted(j.wildcards_dict.items()))
                )
            ]
            return _convert(dag_jobs, workdir)
    except SpeciesganError:
        raise
    except Exception as exc:  # Snakemake raises many types; the user needs its message
        detail = str(exc).strip() or captured.getvalue().strip()[-2000:]
        raise SpeciesganError(
            f"Snakemake could not build the job graph for '{target}' with config "
            f"{' '.join(map(str, configfiles)) or '(default)'}: {detail}"
        ) from None
    finally:
        logging.disable(logging.NOTSET)
        os.chdir(previous_cwd)


def _convert(dag_jobs: list[Any], workdir: Path) -> list[Job]:
    jobs = []
    for job in dag_jobs:
        inputs = tuple(_relative(str(f), workdir) for f in job.input)
        outputs = tuple(_relative(str(f), workdir) for f in job.output)
        jobs.append(
            Job(
                rule=job.rule.name,
                wildcards={str(k): str(v) for k, v in job.wildcards_dict.items()},
                inputs=inputs,
                outputs=outputs,
                directory_outputs=frozenset(
                    _relative(str(f), workdir) for f in job.output if f.is_directory
                ),
                logs=tuple(_relative(str(f), workdir) for f in job.log),
                benchmarks=(_relative(str(job.benchmark), workdir),) if job.benchmark else (),
                params={str(k): _plain(v) for k, v in job.params.items()},
                shell=job.rule.shellcmd,
                rule_file=_relative(str(job.rule.snakefile), workdir),
            )
        )
    return jobs
