"""The code digest among each rule's params (speciesgan.workflow.code_version)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from speciesgan.workflow.code_version import CODE_FREE, shell_command, stage_files

ROOT = Path(__file__).resolve().parents[2]


def test_a_stage_depends_on_the_modules_it_imports_and_no_others() -> None:
    train_gan = stage_files("train-gan")
    assert "src/speciesgan/gan/loss.py" in train_gan
    assert "src/speciesgan/config/config.schema.yaml" in train_gan  # the defaults
    assert not [f for f in train_gan if f.startswith("src/speciesgan/report/")]
    assert "src/speciesgan/report/page.py" in stage_files("report")
    assert "src/speciesgan/cli.py" not in stage_files("report")
    assert stage_files("download") == [] and "download" in CODE_FREE


def test_the_data_stages_depend_on_the_schema_whose_defaults_they_read() -> None:
    """The data layer reads its defaults through ``speciesgan.util.schema_defaults``
    (below config): editing a default there reruns the stages that apply it."""
    for command in ("index", "crop-shard", "manifest"):
        files = stage_files(command)
        assert "src/speciesgan/util/schema_defaults.py" in files, command
        assert "src/speciesgan/config/config.schema.yaml" in files, command
        assert "src/speciesgan/config/loading.py" not in files, command


def test_every_rule_that_runs_speciesgan_has_the_digest_among_its_params() -> None:
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |checkpoint )", path.read_text())[1:]:
            shell = re.search(r'shell:\s*\n\s*"speciesgan ([a-z-]+)', block)
            if shell:
                name = block.split(":")[0]
                assert f'**code("{shell.group(1)}")' in block, f"{path.name}: {name}"
    assert shell_command("speciesgan report --x y") == "report"
    assert shell_command("mkdir -p x") is None


def _digests(src: Path) -> dict[str, str]:
    code = (
        "from speciesgan.workflow.code_version import stage_digest as d;"
        "print(d('train-gan'), d('report'), d('crop-shard'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return dict(zip(("train-gan", "report", "crop-shard"), out, strict=True))


def test_editing_a_module_changes_the_digest_of_the_stages_that_import_it(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "speciesgan", src / "speciesgan")
    before = _digests(src)
    with (src / "speciesgan" / "gan" / "loss.py").open("a") as f:
        f.write("\n# an edit\n")
    after_loss = _digests(src)
    assert after_loss["train-gan"] != before["train-gan"]
    assert after_loss["report"] == before["report"]
    assert after_loss["crop-shard"] == before["crop-shard"]
    with (src / "speciesgan" / "report" / "page.py").open("a") as f:
        f.write("\n# an edit\n")
    after_report = _digests(src)
    assert after_report["report"] != after_loss["report"]
    assert after_report["train-gan"] == after_loss["train-gan"]


def test_dvc_stages_list_the_code_files_as_deps(tmp_path: Path) -> None:
    from speciesgan.workflow.dvc_export import package_deps
    from speciesgan.workflow.snakemake_dag import Job

    job = Job(rule="train_gan", shell="speciesgan train-gan --manifest m > log 2>&1")
    assert "src/speciesgan/gan/loss.py" in package_deps(job, {"rerun_on_code_change": True}, ROOT)
    assert package_deps(job, {"rerun_on_code_change": False}, ROOT) == []
    # a workflow folder without the package (installed elsewhere): DVC tracks no code
    assert package_deps(job, {"rerun_on_code_change": True}, tmp_path) == []
