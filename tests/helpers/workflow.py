"""Run the real Snakemake workflow in a scratch copy of the repository.

Tests never write into the checkout: the workflow files are copied into a
temporary folder, which becomes Snakemake's working directory, so each run
starts with no `.snakemake/` metadata, no `data/` and no `results/`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ("Snakefile", "rules", "config.yaml", "configs", "report", "slurm", "profiles")


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def env() -> dict[str, str]:
    """The test's environment with this interpreter's bin/ first (`speciesgan` on PATH)."""
    result = dict(os.environ)
    result["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{result.get('PATH', '')}"
    # These runs are local.  On a machine with the SLURM client installed but no
    # controller up (CI between SLURM tests), the SLURM executor plugin's
    # import-time sacct/squeue probes wait ~9 s per Snakemake start; with no
    # config to read they fail at once.  The SLURM tests use their own environment.
    result["SLURM_CONF"] = "/dev/null"
    return result


def snakemake(workdir: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's "Job stats" table ({} when nothing to do)."""
    jobs: dict[str, int] = {}
    in_table = False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if line.strip().startswith("total") or not line.strip():
                break
            if match:
                jobs[match.group(1)] = int(match.group(2))
    return jobs


def downloads_folder(name: str, *configfiles: str, workdir: Path = REPO) -> str:
    """``data/downloads/<folder>`` of dataset ``name`` under these configs (demo data keyed
    by its settings), computed by the package as the workflow computes it."""
    from speciesgan.config import demo_key, load_config
    from speciesgan.data.sources import stored_name

    config = load_config([workdir / c for c in configfiles], base=workdir / "config.yaml")
    return f"data/downloads/{stored_name(name, demo_key(config, name))}"


def demo_folder_of(name: str, *configfiles: str, workdir: Path = REPO) -> str:
    """The folder the demo rule writes dataset ``name``'s archives to under these configs."""
    from speciesgan.config import demo_key, load_config
    from speciesgan.data.sources import demo_folder

    config = load_config([workdir / c for c in configfiles], base=workdir / "config.yaml")
    key = demo_key(config, name)
    assert key is not None, f"{name} is not a demo dataset"
    return demo_folder(name, key)
