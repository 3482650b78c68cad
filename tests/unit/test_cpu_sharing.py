"""The package's short OpenMP spin: set before torch starts, never over the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from speciesgan.runtime.cpu_sharing import SPIN_COUNT, share_cpus


def test_short_spin_is_set_when_the_user_set_none() -> None:
    environ: dict[str, str] = {}
    share_cpus(environ)
    assert environ == {"GOMP_SPINCOUNT": SPIN_COUNT}


@pytest.mark.parametrize("user", [{"GOMP_SPINCOUNT": "300000"}, {"OMP_WAIT_POLICY": "ACTIVE"}])
def test_the_users_openmp_setting_is_kept(user: dict[str, str]) -> None:
    environ = dict(user)
    share_cpus(environ)
    assert environ == user


def test_importing_the_package_sets_it_for_torch_and_child_processes() -> None:
    """Every stage imports speciesgan before torch (the CLI is speciesgan.cli)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = (
        "import speciesgan, subprocess, sys; "
        "print(subprocess.run([sys.executable, '-c', "
        "'import os; print(os.environ.get(\"GOMP_SPINCOUNT\"))'], "
        "capture_output=True, text=True).stdout.strip())"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == SPIN_COUNT
