"""Rules declare what their jobs read, and a code edit reruns the stages that run it.

One smoke run in a scratch copy of the workflow (with its own copy of ``src/``, so
the code can be edited) under an audit hook that logs every file each process
opens (``tests/helpers/open_audit.py``).  Each ``speciesgan`` process is matched
to its job by its command line; every file it reads under the workflow folder
must be an input of the job's rule (or below an input folder), unless the job
wrote it itself (its outputs, checkpoints and caches).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from speciesgan.workflow.snakemake_dag import Job, parse_jobs
from tests.helpers import open_audit
from tests.helpers.workflow import REPO, copy_workflow, planned_jobs, snakemake

SMOKE = ("--configfile", "configs/smoke.yaml")
STOP_WORDS = {">", ">>", "2>&1", "&&", "|", ";"}


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``values`` in os.environ (which the workflow helpers copy) for the block."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Job]]:
    root = tmp_path_factory.mktemp("rule_inputs")
    work = copy_workflow(root / "work")
    shutil.copytree(REPO / "src" / "speciesgan", work / "src" / "speciesgan")
    hook = open_audit.install(root / "hook")
    log = root / "opens.jsonl"
    with _environment(PYTHONPATH=str(work / "src")):
        plan = snakemake(work, "all", "-n", "--forceall", "-p", *SMOKE)
    assert plan.returncode == 0, plan.stderr[-3000:]
    audit = {"PYTHONPATH": f"{hook}{os.pathsep}{work / 'src'}", open_audit.ENV: str(log)}
    with _environment(**audit):
        result = snakemake(work, "all", "--cores", "2", *SMOKE)
    assert result.returncode == 0, result.stderr[-6000:]
    return work, log, [job for job in parse_jobs(plan.stdout) if job.shell]


def _words(shell: str) -> tuple[str, ...]:
    words = shlex.split(shell)
    stop = next((i for i, w in enumerate(words) if w in STOP_WORDS), len(words))
    return tuple(words[:stop])


def _under(path: str, folders: set[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


@pytest.mark.slow
def test_every_file_a_stage_reads_is_an_input_of_its_rule(
    audited_run: tuple[Path, Path, list[Job]],
) -> None:
    work, log, jobs = audited_run
    by_argv = {_words(job.shell or "")[1:]: job for job in jobs}
    commands = {words[1] for words in by_argv if words} | {w[0] for w in by_argv if w}
    processes = open_audit.read_log(log)
    prefix = f"{work.resolve()}/"
    read: dict[int, set[str]] = {}
    written: dict[int, set[str]] = {}
    seen_rules = set()
    for pid, process in processes.items():
        top = open_audit.command_of(pid, processes, commands)
        if top is None:
            continue
        job = by_argv.get(tuple(processes[top].argv[1:]))
        assert job is not None, f"no job runs {processes[top].argv}"
        seen_rules.add(job.rule)
        local = {p[len(prefix) :] for p in process.read if p.startswith(prefix)}
        read.setdefault(id(job), set()).update(local)
        written.setdefault(id(job), set()).update(
            p[len(prefix) :] for p in process.written if p.startswith(prefix)
        )
    problems = []
    for job in jobs:
        own = {*job.outputs, *job.logs, *job.benchmarks}
        undeclared = sorted(
            path
            for path in read.get(id(job), set()) - written.get(id(job), set())
            if not path.startswith("src/")
            and not _under(path, set(job.inputs))
            and not _under(path, own)
        )
        if undeclared:
            problems.append(f"{job.rule} {job.wildcards}: reads {undeclared[:5]} undeclared")
    assert {
        "crop_shard",
        "manifest",
        "train_gan",
        "real_features",
        "evaluate",
        "cas",
        "report",
    } <= seen_rules
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_a_code_edit_reruns_the_stages_that_import_it(
    audited_run: tuple[Path, Path, list[Job]],
) -> None:
    work, _, _ = audited_run

    def planned() -> set[str]:
        with _environment(PYTHONPATH=str(work / "src")):
            result = snakemake(work, "all", "-n", *SMOKE)
        assert result.returncode == 0, result.stderr[-3000:]
        return set(planned_jobs(result.stdout))

    def planned_after_editing(module: str) -> set[str]:
        path = work / "src" / "speciesgan" / module
        text = path.read_text()
        path.write_text(text + "\n# an edit\n")
        try:
            return planned()
        finally:
            path.write_text(text)

    assert planned() == set()

    assert planned_after_editing("report/page.py") == {"report", "all"}
    gan = planned_after_editing("gan/loss.py")
    assert {"train_gan", "sample", "evaluate", "cas", "report"} <= gan
    assert not gan & {"crop_shard", "manifest", "train_classifier", "index"}
