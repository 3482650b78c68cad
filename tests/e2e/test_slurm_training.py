"""Multi-rank GAN training on SLURM with the shipped sbatch template, srun alone.

Users rely on: ``slurm/train-multinode.sbatch`` (N nodes x M GPUs, one process per
GPU started by ``srun``, no torchrun) training with N x M ranks that find each other
without MASTER_ADDR/MASTER_PORT, each with its share of the node's CPUs, reaching
what one process reaches.  Tested with 2 tasks on the test cluster's one node (gloo
on CPUs).  Segments cut by time limits, preemption and scancel are tested through
``snakemake --profile slurm`` in tests/e2e/test_slurm_faults.py.

Needs the local cluster (tests/slurm/cluster.sh; SPECIESGAN_SLURM=1 to start it).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from speciesgan.gan.training_loop import train_gan
from tests.e2e.test_slurm import _clean_env, slurm_cluster  # noqa: F401 - the fixture
from tests.unit.test_gan import TINY, write_manifest

JOB_TIMEOUT_SECONDS = 120
TEMPLATE = Path(__file__).resolve().parents[2] / "slurm" / "train-multinode.sbatch"
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY"}


def _sbatch_template(log: Path, variables: dict[str, str], *options: str) -> str:
    """Submit slurm/train-multinode.sbatch as a user would, with ``options`` overriding
    its #SBATCH lines; returns the job id."""
    env = {**_clean_env(), "SPECIESGAN_DEVICE": "cpu", **variables}
    submitted = subprocess.run(
        # 10 min: the template's --signal=USR1@300 is then due 5 min in, after the test
        ["sbatch", "--parsable", "-t", "10", "-o", str(log), *options, str(TEMPLATE)],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return submitted.stdout.strip().split(";")[0]


def _job_state(job: str) -> tuple[str, int | None]:
    """SLURM's state of ``job`` and, once it ended, its exit status (no accounting needed)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    state = re.search(r"JobState=(\S+)", shown).group(1)
    code = re.search(r"ExitCode=(\d+):", shown)
    return state, int(code.group(1)) if state in ENDED and code else None


def _wait_for_end(job: str, log: Path) -> tuple[str, int | None]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state, code = _job_state(job)
        if state in ENDED:
            return state, code
        time.sleep(0.2)
    subprocess.run(["scancel", job], timeout=30, check=False)
    pytest.fail(f"job {job} did not end in {JOB_TIMEOUT_SECONDS}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no job output)"


@pytest.mark.slow
def test_srun_two_tasks_on_one_node_train_like_one_process(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """As tests/unit/test_gan.py's two-process test, with the ranks started by srun."""
    manifest = write_manifest(tmp_path / "data")
    settings = {**TINY, "model": "dcgan", "steps": 3}
    single = tmp_path / "single"
    train_gan(
        manifest, None, single / "generator.pt", single / "log.csv", single / "checkpoints",
        settings=settings, seed=3, threads=1,
    )  # fmt: skip
    out, log = tmp_path / "srun", tmp_path / "srun.log"
    # the template's 2 nodes x 4 GPUs, scaled to the test cluster: 2 tasks, 1 CPU each
    # (two tasks on a 2-CPU allocation get one thread each), no GPU
    variables = {
        "MANIFEST": str(manifest),
        "OUT": str(out),
        "SETTINGS": json.dumps(settings),
        "SEED": "3",
    }
    job = _sbatch_template(
        log, variables, "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
        "--gpus-per-node=0", "--partition=cpu",
    )  # fmt: skip
    state, code = _wait_for_end(job, log)
    output = _tail(log)
    assert code == 0, f"job {job} ended {state} with {code}:\n{output}"
    assert re.search(r"2 ranks \(srun, gloo\) meet at \S+:\d+", output), output
    for rank in (0, 1):
        assert re.search(
            rf"rank {rank} of 2 \(srun, local {rank} of 2 on this node\): 1 torch", output
        )
    one = pd.read_csv(single / "log.csv")
    two = pd.read_csv(out / "training_log.csv")
    assert two["step"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(two.to_numpy(), one.to_numpy(), rtol=1e-3, atol=1e-4)
    timing = json.loads((out / "training_time.json").read_text())
    assert timing["segments"] == 1 and timing["cpu_seconds"] > 0
