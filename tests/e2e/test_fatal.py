"""An error that no retry can fix ends the workflow after one attempt.

What users rely on: ``train_gan`` keeps a budget of 29 retries for the segments of
a long run, yet a node without a usable GPU (or a bad setting, or a damaged
checkpoint) fails the run once, with training's own message and a distinct exit
status, instead of being resubmitted 29 times; and the next ``snakemake`` call,
after the cause is fixed, trains as if nothing had happened.  Real Snakemake and
the real training command; tests/e2e/test_slurm_faults.py shows the same through the
SLURM profile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.test_resume_workflow import GAN_ONLY, _gan_workdir
from tests.helpers.workflow import snakemake


@pytest.mark.skipif(os.environ.get("SPECIESGAN_DEVICE") == "cuda", reason="needs no forced GPU")
def test_no_usable_gpu_fails_once_with_its_message_then_a_fixed_run_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = _gan_workdir(tmp_path / "wf")
    monkeypatch.setenv("SPECIESGAN_DEVICE", "cuda")  # asked for a GPU this machine cannot give
    failed = snakemake(work, *GAN_ONLY, timeout=600)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    log = (work / "results/smoke/logs/train_gan.log").read_text()
    assert log.count("speciesgan train-gan: error: no usable CUDA device") == 1, log
    assert "exit status 69" in output
    assert "not retrying: attempt 1 stopped with exit status 69" in output, output[-3000:]
    assert "no usable CUDA device for train-gan" in output  # training's own words, in the run
    marker = json.loads((work / "results/smoke/gan/checkpoints/fatal.json").read_text())
    assert marker["kind"] == "UnavailableError" and marker["exit_code"] == 69

    monkeypatch.setenv("SPECIESGAN_DEVICE", "cpu")  # the cause fixed: no clean-up by hand
    fixed = snakemake(work, *GAN_ONLY, timeout=600)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert (work / "results/smoke/gan/generator.pt").is_file()
    assert not (work / "results/smoke/gan/checkpoints/fatal.json").exists()


def test_a_damaged_checkpoint_fails_once_with_exit_status_65(tmp_path: Path) -> None:
    work = _gan_workdir(tmp_path / "wf")
    checkpoints = work / "results/smoke/gan/checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.pt").write_bytes(b"not a checkpoint")
    failed = snakemake(work, *GAN_ONLY, timeout=600)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "not retrying: attempt 1 stopped with exit status 65" in output, output[-3000:]
    log = (work / "results/smoke/logs/train_gan.log").read_text()
    assert log.count("error:") == 1 and "last.pt" in log, log
