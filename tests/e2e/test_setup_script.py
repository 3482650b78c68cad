"""scripts/setup.sh picks the torch build: PyPI's pins by default, TORCH_INDEX_URL's on request.

Users on clusters with an older NVIDIA driver (or P100/V100 GPUs) rely on
``TORCH_INDEX_URL`` reaching pip, and on a build already installed from another
index being replaced rather than kept (pip counts 2.14.1+cu130 as 2.14.1).
The script runs in SETUP_DRY_RUN mode against a stand-in .venv whose python
only answers the "which torch is installed" question, so nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CU126 = "https://download.pytorch.org/whl/cu126"
DEFAULT_PINS = "torch==2.14.1 torchvision==0.29.1"


def dry_run(tmp_path: Path, installed: str | None, **env: str) -> list[str]:
    """The commands setup.sh would run, with ``installed`` as the venv's torch/torchvision."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    answer = f'echo "{installed}"' if installed else "exit 1"
    (bin_dir / "python").write_text(f"#!/bin/sh\n{answer}\n")
    (bin_dir / "python").chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH", "SETUP_"))}
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "setup.sh")],
        env={**environ, "SETUP_DRY_RUN": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]


def torch_installs(commands: list[str]) -> list[str]:
    return [c for c in commands if "torch==" in c or "uninstall" in c]


def test_default_installs_the_pinned_torch_from_pypi_when_missing(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, installed=None)
    assert torch_installs(commands) == [f"python -m pip install --quiet {DEFAULT_PINS}"]
    assert commands[-1] == "python -m pip install --quiet -e .[workflow,dev,studio]"


def test_default_keeps_an_installed_torch(tmp_path: Path) -> None:
    assert torch_installs(dry_run(tmp_path, installed="2.14.1+cu130 0.29.1+cu130")) == []


def test_index_url_is_passed_to_pip_for_torch_and_torchvision(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, installed=None, TORCH_INDEX_URL=CU126)
    assert torch_installs(commands) == [
        f"python -m pip install --quiet --index-url {CU126} {DEFAULT_PINS}"
    ]


def test_index_url_replaces_a_build_from_another_index(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, installed="2.14.1+cu130 0.29.1+cu130", TORCH_INDEX_URL=CU126)
    assert torch_installs(commands) == [
        "python -m pip uninstall --quiet --yes torch torchvision",
        f"python -m pip install --quiet --index-url {CU126} {DEFAULT_PINS}",
    ]


@pytest.mark.parametrize("url", [CU126, CU126 + "/"])
def test_index_url_keeps_the_build_it_would_install(tmp_path: Path, url: str) -> None:
    commands = dry_run(tmp_path, installed="2.14.1+cu126 0.29.1+cu126", TORCH_INDEX_URL=url)
    assert torch_installs(commands) == []


def test_older_torch_for_cuda_11_drivers(tmp_path: Path) -> None:
    cu118 = "https://download.pytorch.org/whl/cu118"
    commands = dry_run(
        tmp_path,
        installed="2.14.1+cu130 0.29.1+cu130",
        TORCH_INDEX_URL=cu118,
        TORCH_VERSION="2.7.1",
        TORCHVISION_VERSION="0.22.1",
    )
    assert torch_installs(commands)[-1] == (
        f"python -m pip install --quiet --index-url {cu118} torch==2.7.1 torchvision==0.22.1"
    )
