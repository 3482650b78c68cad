"""``speciesgan train-gan --gpus N``: one training process per GPU, started by the command.

The workflow passes the GPU count from the job's resources (changing it reruns
nothing), so the command itself must start torchrun.  What users rely on: with
``--gpus 2`` training runs as two data-parallel processes and ends with the same
outputs, numbers equal to one process's up to summation order; with one GPU it
trains in the process Snakemake started.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.workflow import env
from tests.unit.test_gan import TINY, write_manifest

DEVICE_LINE = "train-gan: device cpu"


def _train_gan(manifest: Path, out: Path, gpus: int) -> subprocess.CompletedProcess[str]:
    settings = {**TINY, "model": "dcgan", "steps": 3}
    command = [
        sys.executable, "-m", "speciesgan", "train-gan", "--gpus", str(gpus),
        "--manifest", str(manifest),
        "--out-generator", str(out / "generator.pt"), "--out-log", str(out / "log.csv"),
        "--checkpoint-dir", str(out / "checkpoints"),
        "--seed", "3", "--threads", "1", "--device", "cpu", "--settings", json.dumps(settings),
    ]  # fmt: skip
    return subprocess.run(
        command, env=env(), capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_two_gpus_train_as_two_processes_one_gpu_as_one(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "data")
    one = _train_gan(manifest, tmp_path / "one", gpus=1)
    two = _train_gan(manifest, tmp_path / "two", gpus=2)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]

    # each training process names its device once: one line, or one per rank
    assert one.stderr.count(DEVICE_LINE) == 1, one.stderr[-3000:]
    assert "torchrun" not in one.stderr
    assert two.stderr.count(DEVICE_LINE) == 2, two.stderr[-3000:]
    assert "2 GPUs: starting one training process per GPU with torchrun" in two.stderr

    single = pd.read_csv(tmp_path / "one" / "log.csv")
    ranks = pd.read_csv(tmp_path / "two" / "log.csv")
    assert ranks["step"].tolist() == single["step"].tolist() == [1, 2, 3]
    # the global batch is split over the ranks, gradients averaged: the same training,
    # in another summation order
    np.testing.assert_allclose(ranks.to_numpy(), single.to_numpy(), rtol=1e-3, atol=1e-4)
    assert (tmp_path / "two" / "generator.pt").is_file()
