"""Generate ``dvc.yaml`` and the run's params file from the Snakemake job graph.

Snakemake is the only executor; DVC versions what Snakemake made and shows it
with its own commands (``dvc metrics show``, ``dvc plots show``, ``dvc params
diff``, ``dvc exp show``).  The Snakemake graph of ``all`` is mirrored one job per
DVC stage:

- ``params``: the config keys the job reads (:mod:`speciesgan.workflow.dvc_params`), in
  ``params/<run>.yaml``, the run's merged and validated config as nested YAML.  So
  DVC reports ``gan.steps: 1800 -> 2400``, and ``dvc exp run -S`` edits the file
  the stage commands actually read;
- ``deps``: the job's inputs, the Snakefile, ``rules/common.smk`` and the file
  defining the rule (a rule edit makes its stages stale, as Snakemake's code
  trigger does);
- ``outs`` / ``metrics``: outputs, logs and benchmarks; the evaluation's and the
  classifiers' ``headline.json`` (a few numbers, kept in git) are ``metrics``.  ``train_gan`` also owns its
  resume checkpoint folder, ``persist`` so ``dvc repro`` never deletes it;
- ``cmd``: Snakemake building exactly that job's outputs from the params file
  (through ``speciesgan dvc-stage``, which adds ``--profile $SPECIESGAN_PROFILE``
  when set, so ``dvc repro`` on a cluster submits SLURM jobs).

Several configs live side by side: a run is named after its ``results_dir``
(``results/smoke`` -> ``smoke``), its stages are ``smoke-<rule>[-<wildcards>]``,
and exporting one run replaces only the stages made from its params file.  Jobs
writing outside ``results_dir`` (demo archives, downloads, extraction) are shared
by every config using that dataset and carry no run prefix.  Top-level ``plots``
show the GAN losses, FID by training step and classifier accuracy by epoch.

The files are a pure function of the workflow, the config files and the other
runs already in ``dvc.yaml``: exporting again gives byte-identical files.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from speciesgan.config import load_config
from speciesgan.metrics.headline import HEADLINE_NAME
from speciesgan.util.atomic import write_text
from speciesgan.util.errors import SpeciesganError
from speciesgan.workflow.code_version import shell_command, stage_files
from speciesgan.workflow.dvc_params import stage_params
from speciesgan.workflow.snakemake_dag import LIST_SEPARATOR, Job, read_jobs
from speciesgan.workflow.workflow_source import read_workflow_source

DVC_YAML = "dvc.yaml"
PARAMS_DIR = "params"
BASE_CONFIG = "config.yaml"

PERSISTENT_OUTS: dict[str, str] = {
    "train_gan": "{results_dir}/gan/checkpoints",
    "train_gan_variant": "{results_dir}/ablation/runs/{run}/checkpoints",
}
"""Rule -> folder the job writes but Snakemake does not own.  A training run's
checkpoint folder is deliberately not a rule output (Snakemake deletes a failed
job's outputs, and a failed job is when it is needed); DVC still versions it so a
published run can be extended (more ``gan.steps``) without retraining from step 0."""

METRIC_RULES = frozenset({"train_classifier", "evaluate", "cas", "evaluate_variant"})
"""Rules whose ``headline.json`` output is a DVC metric (``dvc metrics show``).

Only the headline: ``metrics.json`` (everything measured, notes in prose) made
``dvc metrics show`` one table of about 300 columns (:mod:`speciesgan.metrics.headline`).
The headline is ``cache: false``: git keeps it (``.gitignore`` lets it through), so
a fresh clone shows and diffs the figures before any ``dvc pull``.  A stage lists
it under ``metrics`` only once the file exists when the block is written
(``publish``, ``restore``, or an export after a run): DVC warns about every metric
file it cannot find, and the block of a config that was exported but never run
(like the demo's in this repository) would make every clone warn."""

LEGACY_PARAMS_FILE = "dvc-params.yaml"
"""The per-stage params file of earlier exports; stages reading it are replaced."""


@dataclass(frozen=True)
class Export:
    """What :func:`export_dvc` wrote: the run's name, its params file and its stages."""

    dvc_yaml: Path
    params_file: Path
    run: str
    stages: dict[str, Job]


def run_name(results_dir: str) -> str:
    """``results/smoke`` -> ``smoke``: the stage-name prefix of one config's run.

    Letters, digits and ``_`` only, so the ``-`` after it cannot be part of it.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", PurePosixPath(results_dir.rstrip("/")).name)
    if not name:
        raise SpeciesganError(f"config key results_dir: {results_dir!r} names no folder")
    return name


def params_file_for(run: str) -> str:
    return f"{PARAMS_DIR}/{run}.yaml"


def stage_name(job: Job, run: str | None) -> str:
    """``[run-]rule[-wildcard...]``, made DVC-safe (``.`` of an archive name -> ``_``)."""
    parts = [*([run] if run else []), job.rule, *job.wildcards.values()]
    return re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(parts))


def snakemake_command(
    targets: Sequence[str], configfiles: Sequence[str], extra: Sequence[str] = ()
) -> list[str]:
    """A ``snakemake`` argv; targets go first because ``--configfile`` takes several files."""
    command = ["snakemake", *targets, *extra]
    if configfiles:
        command += ["--configfile", *configfiles]
    return command


PROFILE_ENV = "SPECIESGAN_PROFILE"
"""The Snakemake profile ``dvc repro`` and ``dvc exp run`` run the stages with, e.g.
``slurm`` on a cluster: ``export SPECIESGAN_PROFILE=slurm``.  Several, separated by
``:`` as in PATH, are given in that order (a later one overrides keys of an earlier
one).  Unset: local cores."""


def stage_cmd(job: Job, params_file: str) -> str:
    """The DVC ``cmd``: ``speciesgan dvc-stage``, which runs :func:`stage_snakemake_argv`.

    Not ``snakemake`` itself: the profile is the user's choice at run time (a
    laptop, a cluster), not part of what a stage computes, so it must not be
    written into ``dvc.yaml`` (DVC would call every stage changed when it
    differs), and an environment variable read by a shell expression would
    depend on the user's shell (``${VAR:+...}`` fails in csh and fish).
    """
    argv = ["speciesgan", "dvc-stage", *job.outputs, "--rule", job.rule]
    return shlex.join([*argv, "--configfile", params_file])


def stage_snakemake_argv(
    targets: Sequence[str],
    rule: str,
    configfile: str,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The Snakemake command of one DVC stage: this job's outputs and nothing upstream.

    ``--allowed-rules`` keeps it to this rule: DVC itself runs the stages in
    dependency order, and must not see one stage quietly rebuild another's outs.
    The params file is the whole merged config, so it is the only config needed.
    ``$SPECIESGAN_PROFILE`` adds ``--profile``: with ``slurm`` each job is a SLURM
    job, as under ``snakemake --profile slurm``, instead of a process on the login node.
    """
    environ = os.environ if environ is None else environ
    extra = ["--cores", "all", "--allowed-rules", rule]
    for profile in environ.get(PROFILE_ENV, "").split(os.pathsep):
        if profile.strip():
            extra += ["--profile", profile.strip()]
    return snakemake_command(targets, [configfile], extra)


def package_deps(job: Job, config: Mapping[str, Any], workdir: Path) -> list[str]:
    """The speciesgan source files whose digest is among the rule's params (see
    :mod:`speciesgan.workflow.code_version`): a code edit stales the stage in both.
    None when the package is installed outside ``workdir`` (DVC tracks files in it)."""
    command = shell_command(job.shell)
    if command is None or not config.get("rerun_on_code_change", True):
        return []
    return stage_files(command, workdir)


def _is_run_job(job: Job, results_dir: str) -> bool:
    prefix = results_dir.rstrip("/") + "/"
    return any(out.startswith(prefix) for out in job.outputs)


def build_stages(
    jobs: Sequence[Job],
    config: Mapping[str, Any],
    params_file: str,
    code_deps: Mapping[str, list[str]],
    present: Callable[[str], bool] = lambda path: False,
) -> tuple[dict[str, Any], dict[str, Job]]:
    """(stage name -> dvc.yaml stage, stage name -> job) for one config's jobs.

    ``present``: whether an output exists now (metric and plot files are declared
    as such only then, see ``METRIC_RULES``)."""
    results_dir = str(config["results_dir"]).rstrip("/")
    run = run_name(results_dir)
    stages: dict[str, Any] = {}
    by_name: dict[str, Job] = {}
    for job in jobs:
        if not job.outputs:  # `all`: nothing to version, and DVC needs outs or cmd
            continue
        name = stage_name(job, run if _is_run_job(job, results_dir) else None)
        if name in by_name:
            raise SpeciesganError(
                f"two Snakemake jobs map to the DVC stage name {name!r}; "
                "make the rule's wildcard values differ in letters or digits"
            )
        by_name[name] = job
        stages[name] = _stage(job, config, params_file, code_deps[job.rule], results_dir, present)
    return stages, by_name


def _stage(
    job: Job,
    config: Mapping[str, Any],
    params_file: str,
    code_deps: list[str],
    results_dir: str,
    present: Callable[[str], bool],
) -> dict[str, Any]:
    wildcards = ", ".join(f"{k}={v}" for k, v in job.wildcards.items())
    stage: dict[str, Any] = {
        "desc": f"Snakemake rule {job.rule}" + (f" ({wildcards})" if wildcards else ""),
        "cmd": stage_cmd(job, params_file),
        "deps": list(dict.fromkeys([*job.inputs, *code_deps])),
    }
    keys = stage_params(job.rule, job.wildcards, config)
    if keys:
        stage["params"] = [{params_file: keys}]
    headlines = {
        out
        for out in job.outputs
        if job.rule in METRIC_RULES and PurePosixPath(out).name == HEADLINE_NAME
    }
    metrics = [{out: {"cache": False}} for out in sorted(headlines) if present(out)]
    outs: list[Any] = [
        {o: {"cache": False}} if o in headlines else o
        for o in [*job.outputs, *job.logs, *job.benchmarks]
        if not (o in headlines and present(o))
    ]
    if job.rule in PERSISTENT_OUTS:
        folder = PERSISTENT_OUTS[job.rule].format(results_dir=results_dir, **job.wildcards)
        outs.append({folder: {"persist": True}})
    stage["outs"] = outs
    if metrics:
        stage["metrics"] = metrics
    stage["meta"] = {"generated_by": "speciesgan dvc-export", "params_file": params_file}
    return stage


def build_plots(
    run: str, jobs: Mapping[str, Job], present: Callable[[str], bool] = lambda path: True
) -> list[dict[str, Any]]:
    """Top-level plot definitions for one run, ids prefixed with the run's name; only for
    files that are ``present`` (DVC warns about a plot whose file it cannot find)."""
    by_rule: dict[str, list[Job]] = {}
    for job in jobs.values():
        by_rule.setdefault(job.rule, []).append(job)

    def outputs(rule: str, suffix: str) -> list[str]:
        return [
            o
            for job in by_rule.get(rule, [])
            for o in job.outputs
            if o.endswith(suffix) and present(o)
        ]

    plots: list[dict[str, Any]] = []
    for path in outputs("train_gan", "training_log.csv"):
        plots.append(
            _plot(
                f"{run}-gan_losses", "GAN losses", "step", {path: ["loss_d", "loss_g", "loss_cls"]}
            )
        )
    for path in outputs("evaluate", "metrics.json"):
        plots.append(_plot(f"{run}-fid_by_step", "FID by training step", "step", {path: "fid"}))
    classifier = outputs("train_classifier", "metrics.json")
    if classifier:
        plots.append(
            _plot(
                f"{run}-classifier_accuracy",
                "Classifier test top-1 by epoch",
                "epoch",
                {path: "test_top1" for path in classifier},
            )
        )
    return plots


def _plot(plot_id: str, title: str, x: str, y: dict[str, Any]) -> dict[str, Any]:
    return {plot_id: {"title": f"{title} ({plot_id.split('-')[0]})", "x": x, "y": y}}


def _owned(stage: Mapping[str, Any], params_file: str) -> bool:
    """A stage belongs to the run whose params file it was generated from."""
    meta = stage.get("meta") or {}
    if meta.get("params_file") == params_file:
        return True
    return any(
        isinstance(entry, dict) and LEGACY_PARAMS_FILE in entry for entry in stage.get("params", [])
    )


def _group(stage: Mapping[str, Any]) -> str:
    return str((stage.get("meta") or {}).get("params_file", ""))


def merge_dvc_yaml(
    existing: Mapping[str, Any],
    stages: dict[str, Any],
    plots: list[dict[str, Any]],
    run: str,
    params_file: str,
) -> dict[str, Any]:
    """``existing`` with this run's stages and plots replaced by ``stages`` and ``plots``.

    Other runs' stages are kept as they are (in their order), and so are shared
    stages this run does not produce.  Stages are grouped by params file, groups
    in name order, so the result does not depend on which run was exported last.
    """
    kept = {
        name: stage
        for name, stage in (existing.get("stages") or {}).items()
        if name not in stages and not _owned(stage, params_file)
    }
    merged = {**kept, **stages}
    groups = sorted({_group(stage) for stage in merged.values()})
    ordered = {
        name: stage for group in groups for name, stage in merged.items() if _group(stage) == group
    }
    other_plots = [
        entry
        for entry in existing.get("plots") or []
        if not (isinstance(entry, dict) and all(str(k).startswith(f"{run}-") for k in entry))
    ]
    all_plots = sorted([*other_plots, *plots], key=lambda entry: str(next(iter(entry), "")))
    result: dict[str, Any] = {"stages": ordered}
    if all_plots:
        result["plots"] = all_plots
    return result


HEADER = (
    "# DVC stages mirroring the Snakemake job graph; generated, do not edit by hand.\n"
    "# One block per config, stage names prefixed with its results_dir name; each block\n"
    "# reads params/<name>.yaml, whose header says how to regenerate it.\n"
    "# (`speciesgan publish` and `speciesgan restore` regenerate their block themselves.)\n"
)


def _params_header(results_dir: str, configfiles: Sequence[str]) -> str:
    regenerate = shlex.join(["speciesgan", "dvc-export", *_config_args(configfiles)])
    layered = " + ".join([BASE_CONFIG, *configfiles])
    return (
        f"# The merged, validated config of {results_dir} ({layered}), generated; the\n"
        f"# DVC params of its stages and the --configfile of their commands.\n"
        f"# Regenerate with:  {regenerate}\n"
        "# Change settings in the config files, not here; `dvc exp run -S FILE:KEY=VALUE`\n"
        "# edits this file for one experiment.\n"
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


def _check_paths(config: Mapping[str, Any]) -> None:
    """Refuse paths Snakemake's dry-run summaries would split in two (see snakemake_dag)."""
    paths = {"results_dir": config["results_dir"], "downloads_dir": config["downloads_dir"]}
    for name, spec in config["datasets"].items():
        if "path" in spec:
            paths[f"datasets.{name}.path"] = spec["path"]
    for key, value in paths.items():
        if LIST_SEPARATOR in str(value):
            raise SpeciesganError(
                f"config key {key}: {value!r} contains {LIST_SEPARATOR!r}, which the DVC "
                "export cannot read back from Snakemake's job summaries; rename the folder"
            )


def _check_same_run(params_path: Path, results_dir: str) -> None:
    """Two results_dirs with the same last folder name would share one params file."""
    if not params_path.exists():
        return
    try:
        previous = yaml.safe_load(params_path.read_text()) or {}
    except yaml.YAMLError:
        return  # generated file damaged by hand: it is rewritten below
    other = previous.get("results_dir") if isinstance(previous, dict) else None
    if other and str(other).rstrip("/") != results_dir:
        raise SpeciesganError(
            f"{params_path.name} already holds the run of results_dir {other}, and config "
            f"key results_dir {results_dir} maps to the same name; choose a results_dir "
            "whose last folder differs"
        )


def _read_dvc_yaml(workdir: Path) -> dict[str, Any] | None:
    path = workdir / DVC_YAML
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _declared_metrics_and_plots(existing: Mapping[str, Any] | None) -> set[str]:
    """Files that ``existing`` already shows as metrics or plots (kept when re-exported)."""
    declared: set[str] = set()
    for stage in ((existing or {}).get("stages") or {}).values():
        for entry in stage.get("metrics") or []:
            declared.update(entry if isinstance(entry, dict) else [entry])
    for plot in (existing or {}).get("plots") or []:
        for definition in plot.values() if isinstance(plot, dict) else []:
            y = definition.get("y") if isinstance(definition, dict) else None
            declared.update(y or {})
    return declared


def load_run_config(workdir: Path, configfiles: Sequence[str]) -> dict[str, Any]:
    """The config Snakemake runs with: ``config.yaml`` here, ``configfiles`` layered over it."""
    return load_config([workdir / c for c in configfiles], base=workdir / BASE_CONFIG)


def export_dvc(
    workdir: str | os.PathLike[str],
    configfiles: Sequence[str],
    jobs: Sequence[Job] | None = None,
) -> Export:
    """Write this config's params file and its block of ``dvc.yaml`` in ``workdir``.

    ``jobs`` may be passed when the caller already read the graph of ``all``.
    """
    workdir = Path(workdir).resolve()
    configfiles = [Path(c).as_posix() for c in configfiles]
    config = load_run_config(workdir, configfiles)
    _check_paths(config)
    results_dir = str(config["results_dir"]).rstrip("/")
    run = run_name(results_dir)
    params_file = params_file_for(run)
    _check_same_run(workdir / params_file, results_dir)
    if jobs is None:
        jobs = read_jobs(workdir, configfiles)
    source = read_workflow_source(workdir)
    code_deps = {
        job.rule: [*source.code_deps(job.rule), *package_deps(job, config, workdir)]
        for job in jobs
        if job.outputs
    }

    existing = _read_dvc_yaml(workdir)
    declared = _declared_metrics_and_plots(existing)

    def present(path: str) -> bool:
        # published before (restore exports before it pulls) or made by a run here
        return path in declared or (workdir / path).exists()

    stages, by_name = build_stages(jobs, config, params_file, code_deps, present)
    dvc_path = workdir / DVC_YAML
    plots = build_plots(run, by_name, present)
    merged = merge_dvc_yaml(existing or {}, stages, plots, run, params_file)
    write_text(workdir / params_file, _params_header(results_dir, configfiles) + _dump(config))
    write_text(dvc_path, HEADER + _dump(merged))
    return Export(dvc_path, workdir / params_file, run, by_name)
