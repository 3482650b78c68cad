"""Shared fixtures.

``torch_home``: a TORCH_HOME whose hub cache holds randomly initialised weights of
the exact architectures (pytorch-fid Inception, EfficientNet-B0) under the real
file names, so the real loading code runs with no network.  It is created once per
test session and exported, so subprocesses (the CLI, Snakemake) see it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import speciesgan  # noqa: F401  first: its short OpenMP spin must precede torch's threads

if TYPE_CHECKING:
    from tests.helpers.background_demo import DemoRun

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
    from speciesgan.util.weights import write_placeholder_weights

    write_placeholder_weights(seed=0)
    yield home
    if previous is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = previous


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The demo test last: it awaits the demo run started with the session (background_demo)."""
    from tests.helpers.background_demo import DEMO_TEST

    demo = [item for item in items if item.nodeid.endswith(DEMO_TEST)]
    if demo:
        items[:] = [item for item in items if item not in demo] + demo


@pytest.fixture(scope="session", autouse=True)
def background_demo(
    request: pytest.FixtureRequest, torch_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoRun | None]:
    """The demo pipeline, started now when its test is selected (tests/helpers/background_demo.py)."""
    from tests.helpers.background_demo import DEMO_TEST, DemoRun, in_background, yield_to_the_demo

    selected = any(item.nodeid.endswith(DEMO_TEST) for item in request.session.items)
    if not (selected and in_background()):
        yield None
        return
    run = DemoRun.start(tmp_path_factory.mktemp("background_demo") / "demo")
    yield_to_the_demo()
    yield run
    run.stop()


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECIESGAN_PROGRESS", "0")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB file system (tmpfs): writes past it fail with ENOSPC, as on a full disk.

    Mounting needs root (as in CI); elsewhere the test is skipped, saying so.
    """
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's results folder for the studio tests: a small generator and its metrics.json."""
    from tests.helpers.studio_fixtures import make_run

    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def studio(run_dir: Path) -> Iterator[object]:
    """The studio's service over ``run_dir``, loaded once per test module."""
    from speciesgan.studio.service import Studio, resolve_source

    service = Studio(resolve_source(run_dir))
    yield service
    service.close()
