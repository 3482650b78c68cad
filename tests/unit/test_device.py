"""GPU or nothing: a stage asked for a GPU gets one that works or stops at once, saying why.

What users rely on: on a node where the torch build does not match the driver
(or the GPU), training that SLURM gave a GPU, or that was started with
``--device cuda``, fails within seconds with a message naming the torch build's
CUDA version, the NVIDIA driver and the fix, instead of training on the CPU for
days; without a GPU request it runs on the CPU and says so in its log;
``speciesgan doctor`` shows the whole picture.

These tests run on a machine without a usable GPU (they are skipped where CUDA
works, since there the refusals they check cannot happen).  The SLURM test at the
end submits real GPU jobs to the local test cluster, whose one GPU is fake.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speciesgan import subcommand
from speciesgan.cli import main
from speciesgan.runtime import cuda_env
from speciesgan.runtime.device import (
    DEVICE_CHOICES,
    DEVICE_ENV,
    SLURM_GPU_VARIABLES,
    choose_device,
    slurm_gpu_request,
)
from speciesgan.util.errors import SpeciesganError
from tests.unit.test_gan import run_cli, write_manifest

CUDA_WORKS = cuda_env.cuda_problem(0) is None
needs_no_usable_gpu = pytest.mark.skipif(
    CUDA_WORKS, reason="a usable CUDA GPU is present: the refusals cannot happen here"
)
BUILD = re.escape(f"CUDA build {torch.version.cuda}" if torch.version.cuda else "CPU-only build")
STAGE_FAILS_WITHIN_SECONDS = 60


@pytest.fixture(autouse=True)
def no_gpu_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test outside any SLURM GPU job and without SPECIESGAN_DEVICE."""
    for name in (*SLURM_GPU_VARIABLES, DEVICE_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_manifest(tmp_path_factory.mktemp("data"))


def assert_names_build_driver_and_fix(message: str) -> None:
    assert re.search(BUILD, message), message
    assert f"NVIDIA driver: {cuda_env.driver_version()}" in message, message
    assert "torch build that matches the driver" in message, message
    assert "GPU builds and drivers" in message, message


# ---------------------------------------------------------------- the stages


@needs_no_usable_gpu
def test_slurm_gpu_allocation_stops_training_at_once_naming_build_and_driver(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    started = time.monotonic()
    status = run_cli(manifest, tmp_path)
    elapsed = time.monotonic() - started
    message = capsys.readouterr().err
    assert status == 69  # EX_UNAVAILABLE: no retry can fix it
    assert elapsed < STAGE_FAILS_WITHIN_SECONDS
    assert (
        "no usable CUDA device for train-gan, although a GPU was requested (SLURM_GPUS_ON_NODE=1)"
        in message
    )
    assert_names_build_driver_and_fix(message)
    # it did not start training: the checkpoint folder holds only the note that tells
    # the workflow not to retry (speciesgan.runtime.fatal)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["fatal.json"]
    assert not (tmp_path / "log.csv").exists()


def test_no_gpu_request_trains_on_the_cpu_and_logs_why(
    manifest: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="speciesgan"):
        assert run_cli(manifest, tmp_path, steps=2) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "speciesgan.runtime.device"]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("train-gan: device ")
    assert f"torch {torch.__version__}" in line
    assert re.search(BUILD, line), line
    assert f"NVIDIA driver {cuda_env.driver_version()}" in line
    if not CUDA_WORKS:
        assert "device cpu (no GPU requested, none found:" in line
    assert (tmp_path / "generator.pt").is_file()


@needs_no_usable_gpu
@pytest.mark.parametrize(
    "command",
    [
        "train-classifier --manifest m.parquet --out-model c.pt --out-metrics c.json",
        "sample --generator g.pt --out-dir samples",
        "generate Owl --generator g.pt --out pictures",
        "evaluate --generator g.pt --manifest m.parquet --classifier c.pt --out m.json",
        "doctor --steps 0",
    ],
    ids=lambda command: command.split()[0],
)
def test_device_cuda_is_refused_by_every_stage_before_it_reads_anything(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # the named inputs do not exist: the device check comes first
    argv = command.split()
    assert main([*argv, "--device", "cuda"]) == 69  # EX_UNAVAILABLE: a retry cannot help
    message = capsys.readouterr().err
    assert f"for {argv[0]}, although a GPU was requested (--device cuda)" in message
    assert_names_build_driver_and_fix(message)


@needs_no_usable_gpu
def test_train_gan_device_cuda_is_refused(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run_cli(manifest, tmp_path, "--device", "cuda") == 69
    assert "for train-gan, although a GPU was requested (--device cuda)" in capsys.readouterr().err
    # nothing trained or saved: only the note that tells the workflow not to retry
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["fatal.json"]


def test_device_cpu_trains_on_the_cpu_inside_a_gpu_job(
    manifest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SLURM_JOB_GPUS", "0")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    with caplog.at_level(logging.INFO, logger="speciesgan"):
        assert run_cli(manifest, tmp_path, steps=1) == 0
    assert (
        "device cpu (requested with SPECIESGAN_DEVICE=cpu; SLURM_JOB_GPUS=0 ignored)" in caplog.text
    )


# ---------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, None),
        ({"SLURM_GPUS_ON_NODE": "0"}, None),
        ({"SLURM_GPUS_PER_NODE": "gpu:0"}, None),
        ({"SLURM_GPUS_ON_NODE": ""}, None),
        ({"SLURM_GPUS_ON_NODE": "1", "SLURM_JOB_GPUS": "0"}, "SLURM_GPUS_ON_NODE=1"),
        ({"SLURM_JOB_GPUS": "0"}, "SLURM_JOB_GPUS=0"),  # GPU number 0, not "no GPU"
        ({"SLURM_STEP_GPUS": "2,3"}, "SLURM_STEP_GPUS=2,3"),
        ({"SLURM_GPUS": "a100:2"}, "SLURM_GPUS=a100:2"),
        ({"SLURM_GPUS_PER_NODE": "a100:0,v100:1"}, "SLURM_GPUS_PER_NODE=a100:0,v100:1"),
    ],
)
def test_slurm_gpu_variables_that_mean_a_gpu_was_allocated(
    variables: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert slurm_gpu_request(os.environ) == expected


@needs_no_usable_gpu
def test_gpu_request_without_usable_gpu_is_an_error_and_none_means_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert choose_device(None, stage="x").device == torch.device("cpu")
    assert choose_device("auto", stage="x").device == torch.device("cpu")
    with pytest.raises(
        SpeciesganError, match=r"for x, although a GPU was requested \(--device cuda\)"
    ):
        choose_device("cuda", stage="x")
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    with pytest.raises(SpeciesganError, match=r"\(SPECIESGAN_DEVICE=cuda\)"):
        choose_device(None, stage="x")
    assert choose_device("cpu", stage="x").device == torch.device("cpu")  # option wins
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(SpeciesganError, match="SPECIESGAN_DEVICE=gpu: .* auto, cuda, cpu"):
        choose_device(None, stage="x")


def test_cli_offers_the_device_choices_the_decision_knows() -> None:
    assert subcommand.DEVICE_CHOICES == DEVICE_CHOICES


@pytest.mark.parametrize(
    ("capability", "archs", "supported"),
    [
        ((7, 0), ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], False),  # V100, cu13
        ((6, 0), ["sm_75", "sm_80"], False),  # P100
        ((7, 0), ["sm_50", "sm_60", "sm_70", "sm_75"], True),  # V100, cu126
        ((8, 6), ["sm_80"], True),  # same major, newer minor
        ((8, 0), ["sm_86"], False),  # newer minor code does not run on older
        ((9, 0), ["sm_80", "compute_80"], True),  # PTX is compiled by the driver
        ((7, 5), ["compute_80"], False),
        ((8, 0), [], True),  # torch could not say
    ],
)
def test_compute_capability_coverage(
    capability: tuple[int, int], archs: list[str], supported: bool
) -> None:
    assert cuda_env.capability_supported(capability, archs) is supported


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC"
            " 2023\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n",
            "535.104.05",
        ),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build"
            "  (dvs-builder@U16-I3-B03-4-3)  Thu Feb 22 01:25:25 UTC 2024\n",
            "550.54.14",
        ),
        ("GCC version: gcc 12.2.0\n", None),
    ],
)
def test_driver_version_from_proc(text: str, version: str | None) -> None:
    assert cuda_env.parse_proc_driver_version(text) == version


# ---------------------------------------------------------------- speciesgan doctor


def _doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (*SLURM_GPU_VARIABLES, DEVICE_ENV)}
    return subprocess.run(
        [sys.executable, "-m", "speciesgan", "doctor", *args],
        env={**environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_doctor_prints_the_matrix_and_times_a_bf16_step() -> None:
    done = _doctor("--steps", "2", "--warmup", "1")
    assert done.returncode == 0, done.stderr
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "") != ""
    out = done.stdout
    for row, value in [
        ("torch", re.escape(torch.__version__)),
        ("torchvision", r"\d+\.\d+"),
        ("CUDA build", re.escape(cuda_env.cuda_build())),
        ("cuDNN", r"\S+"),
        ("NVIDIA driver", re.escape(cuda_env.driver_version())),
        ("bf16", r"\S+"),
        ("GPU variables", "CUDA_VISIBLE_DEVICES=" if visible else "none set"),
    ]:
        assert re.search(rf"^{row} +{value}", out, re.MULTILINE), (row, out)
    assert re.search(r"^(GPUs|GPU 0) ", out, re.MULTILINE), out
    assert re.search(r"^chosen +device (cpu|cuda:0) ", out, re.MULTILINE), out
    step = re.search(r"^bf16 train step .* on (\S+): (\d+\.\d+) s/step", out, re.MULTILINE)
    assert step, out
    assert float(step.group(2)) > 0


@needs_no_usable_gpu
def test_doctor_exits_nonzero_when_slurm_gave_a_gpu_it_cannot_use() -> None:
    done = _doctor("--steps", "1", SLURM_GPUS_ON_NODE="1", SLURM_JOB_GPUS="0")
    assert done.returncode == 69  # EX_UNAVAILABLE
    assert "SLURM_GPUS_ON_NODE=1, SLURM_JOB_GPUS=0" in done.stdout  # the matrix still came
    assert "bf16 train step" not in done.stdout
    assert "for doctor, although a GPU was requested (SLURM_GPUS_ON_NODE=1)" in done.stderr
    assert_names_build_driver_and_fix(done.stderr)


# ---------------------------------------------------------------- on the SLURM test cluster
