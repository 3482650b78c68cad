"""Shared fixtures.

``torch_home``: a TORCH_HOME whose hub cache holds randomly initialised weights of
the exact architectures (pytorch-fid Inception, EfficientNet-B0) under the real
file names, so the real loading code runs with no network.  It is created once per
test session and exported, so subprocesses (the CLI, Snakemake) see it too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = Path(
        os.environ.get("SPECIESGAN_TEST_TORCH_HOME") or tmp_path_factory.mktemp("torch_home")
    )
    previous = os.environ.get("TORCH_HOME")
    # the variable alone (no torch.hub.set_dir, which would override it for the
    # session): tests can then point TORCH_HOME elsewhere with monkeypatch.setenv
    os.environ["TORCH_HOME"] = str(home)
    from speciesgan.weights import write_placeholder_weights

    write_placeholder_weights(seed=0)
    yield home
    if previous is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = previous


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECIESGAN_PROGRESS", "0")
