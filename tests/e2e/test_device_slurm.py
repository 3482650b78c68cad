"""Device choice inside real SLURM jobs on the test cluster (needs SPECIESGAN_SLURM=1).

The rest of the device tests are in tests/unit/test_device.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_slurm import _clean_env, slurm_cluster  # noqa: F401 - slurm_cluster is a fixture
from tests.unit.test_device import (
    STAGE_FAILS_WITHIN_SECONDS,
    assert_names_build_driver_and_fix,
    needs_no_usable_gpu,
)
from tests.unit.test_gan import TINY, write_manifest


def _sbatch_train_gan(
    tmp_path: Path, manifest: Path, name: str, **env: str
) -> tuple[str, Path, Path]:
    """Submit ``speciesgan train-gan`` with ``--gpus=1``; returns (job id, log, output dir)."""
    out = tmp_path / name
    settings = json.dumps({**TINY, "steps": 2})
    command = [
        sys.executable, "-m", "speciesgan", "train-gan", "--manifest", str(manifest),
        "--out-generator", str(out / "generator.pt"), "--out-log", str(out / "log.csv"),
        "--checkpoint-dir", str(out / "checkpoints"), "--threads", "1", "--settings", settings,
    ]  # fmt: skip
    job_log = tmp_path / f"{name}.log"
    submit = subprocess.run(
        ["sbatch", "--parsable", "--partition=gpu", "--gpus=1", "-t", "5", "-o", str(job_log),
         "--wrap", subprocess.list2cmdline(command)],
        env={**_clean_env(), "OMP_NUM_THREADS": "1", **env},
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return submit.stdout.strip().split(";")[0], job_log, out


def _wait_for_job(job_id: str, timeout: float) -> tuple[str, float]:
    """Poll until the job has ended; returns (``scontrol show job`` text, seconds waited)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        shown = subprocess.run(
            ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30
        ).stdout
        state = re.search(r"JobState=(\S+)", shown)
        if state and state.group(1) not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return shown, time.monotonic() - started
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], timeout=30, check=False)
    pytest.fail(f"job {job_id} still running after {timeout:.0f}s")


@pytest.mark.slow
@needs_no_usable_gpu
def test_slurm_gpu_job_fails_within_a_minute_instead_of_training_on_the_cpu(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path / "data")
    job_id, job_log, out = _sbatch_train_gan(tmp_path, manifest, "gpu")
    shown, waited = _wait_for_job(job_id, timeout=2 * STAGE_FAILS_WITHIN_SECONDS)
    log_text = job_log.read_text()
    assert re.search(r"gres[/:]gpu[:=]1\b", shown), shown  # the job was given the (fake) GPU
    # EX_UNAVAILABLE (69): a retry cannot fix it (speciesgan.runtime.fatal)
    assert "JobState=FAILED" in shown and "ExitCode=69:0" in shown, shown
    assert waited < STAGE_FAILS_WITHIN_SECONDS, f"took {waited:.0f}s:\n{log_text}"
    assert "for train-gan, although a GPU was requested (SLURM_GPUS_ON_NODE=1)" in log_text
    assert_names_build_driver_and_fix(log_text)
    # no checkpoint (which would mean it trained on the CPU): only the note that tells the
    # workflow not to retry
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["fatal.json"]
    assert not (out / "log.csv").exists() and not (out / "generator.pt").exists()


@pytest.mark.slow
@needs_no_usable_gpu
def test_slurm_gpu_job_with_speciesgan_device_cpu_trains_on_the_cpu(
    slurm_cluster: None,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """The escape hatch the SLURM pipeline test (fake GPU) uses: exported into the job."""
    manifest = write_manifest(tmp_path / "data")
    job_id, job_log, out = _sbatch_train_gan(tmp_path, manifest, "cpu", SPECIESGAN_DEVICE="cpu")
    shown, _ = _wait_for_job(job_id, timeout=300)
    log_text = job_log.read_text()
    assert "JobState=COMPLETED" in shown, log_text
    assert "device cpu (requested with SPECIESGAN_DEVICE=cpu; SLURM_GPUS_ON_NODE=1 ignored)" in (
        log_text
    )
    assert (out / "generator.pt").is_file()
