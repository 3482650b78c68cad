"""The workflow refuses a bad config when it starts (a Snakemake dry run).

The checks themselves are tested in tests/unit/test_config_numbers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.workflow import copy_workflow, snakemake
from tests.unit.test_config_numbers import ALIAS_BOMB


@pytest.mark.slow
def test_workflow_start_refuses_nan_and_the_alias_bomb_naming_the_key(tmp_path: Path) -> None:
    work = copy_workflow(tmp_path / "wf")
    (work / "nan.yaml").write_text("gan:\n  ema_decay: .nan\n")
    (work / "bomb.yaml").write_text(ALIAS_BOMB)
    nan = snakemake(work, "-n", "--configfile", "configs/smoke.yaml", "nan.yaml")
    assert nan.returncode != 0
    assert "config key gan.ema_decay: nan is not a finite number" in nan.stdout + nan.stderr
    bomb = snakemake(work, "-n", "--configfile", "configs/smoke.yaml", "bomb.yaml", timeout=120)
    assert bomb.returncode != 0
    assert "expands to more than" in bomb.stdout + bomb.stderr
