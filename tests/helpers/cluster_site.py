"""The site template filled in for the test cluster, and the test cluster's profile.

Tests run the shipped profile (slurm/config.yaml) as a user would after copying
slurm/site.yaml.example to slurm/site.yaml and editing it: here the test cluster's
partitions (tests/slurm/cluster.sh: `cpu`, and `gpu` with one fake GPU).  Only what
a real cluster must not copy -- polling with squeue, the short first status wait --
comes from the test-only profile tests/slurm/profile, given as a second --profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SITE_TEMPLATE = REPO / "slurm" / "site.yaml.example"
TEST_PROFILE = REPO / "tests" / "slurm" / "profile"
PROFILE_ARGS = ("--profile", "slurm", "--profile", str(TEST_PROFILE))


def write_test_site(profile_dir: Path, **changes: Any) -> dict[str, Any]:
    """``profile_dir``/site.yaml from the template with the test cluster's partitions.

    ``changes`` replace top-level keys (``rules={...}``, ``account=...``); returns the
    settings written.
    """
    site = yaml.safe_load(SITE_TEMPLATE.read_text())
    site["cpu"]["partition"] = "cpu"
    site["gpu"]["partition"] = "gpu"
    site.update(changes)
    (profile_dir / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    return site
