"""docs/extending.md's worked examples work, and each is one new file plus one line.

Each example section shows a new module (a Python block under its path) and a
one-line change elsewhere (a diff block under its path).  The tests write both
into a copy of the package and run it in a subprocess, as the workflow would:
the index step must read the new source, the evaluation and the report must
carry the new metric.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "extending.md"
BLOCK = re.compile(
    r"^`(?P<path>src/speciesgan/[\w/]+\.py)`[^\n]*:\n\n```(?P<kind>python|diff)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)


def section(title: str) -> str:
    """The text of the ``## title`` section."""
    return DOC.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def apply_example(title: str, root: Path) -> tuple[Path, list[str]]:
    """Copy the package under ``root/src``, write the section's new module and apply its
    diff; returns the new module and the lines the diff adds."""
    src = root / "src"
    shutil.copytree(REPO / "src" / "speciesgan", src / "speciesgan")
    blocks = list(BLOCK.finditer(section(title)))
    new = [b for b in blocks if b["kind"] == "python"]
    diffs = [b for b in blocks if b["kind"] == "diff"]
    assert len(new) == 1 and len(diffs) == 1, f"{title}: one new module and one diff"
    module = root / new[0]["path"]
    assert not module.exists(), f"{new[0]['path']} exists already"
    module.write_text(new[0]["code"])
    lines = diffs[0]["code"].splitlines()
    assert not [line for line in lines if line.startswith("-")], "the diff removes nothing"
    before = "\n".join(line[1:] for line in lines if not line.startswith("+"))
    after = "\n".join(line[1:] for line in lines)
    target = root / diffs[0]["path"]
    text = target.read_text()
    assert text.count(before) == 1, f"{diffs[0]['path']} no longer reads as the diff shows"
    target.write_text(text.replace(before, after))
    return module, [line[1:] for line in lines if line.startswith("+")]


def run_python(root: Path, code: str, *extra_path: Path) -> str:
    """``code`` in a fresh interpreter that imports the copied package."""
    paths = [str(root / "src"), *map(str, extra_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_the_source_example_is_read_by_the_index_step(tmp_path: Path) -> None:
    module, added = apply_example("A source", tmp_path)
    assert added == ["        named_photos,"]  # the one line: its name among the modules
    photos = tmp_path / "data" / "my_foxes"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for species in ("Red_fox", "Arctic_fox"):
        for i in range(6):
            pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(photos / f"{species}_{i:03d}.jpg")
    Image.fromarray(pixels).save(photos / "fox.jpg")  # no number: a reject
    (example,) = re.findall(r"```yaml\n(.*?)```", section("A source"), re.DOTALL)
    (tmp_path / "mine.yaml").write_text(example)
    sources = [
        {"name": "my_foxes", "format": "named_photos", "category": "fox", "root": "data/my_foxes"}
    ]
    out = run_python(
        tmp_path,
        f"""
        from speciesgan.cli import main
        from speciesgan.data.sources import formats
        print(formats())
        assert main(["check-config", "--base", {str(REPO / "config.yaml")!r}, "mine.yaml"]) == 0
        assert main(["index", "--sources", {json.dumps(sources)!r},
                     "--out", "records.parquet", "--out-rejects", "rejects.parquet"]) == 0
        """,
    )
    assert "'named_photos'" in out
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert sorted(set(records["species"])) == ["Arctic fox", "Red fox"]
    assert len(records) == 12 and set(records["dataset"]) == {"my_foxes"}
    rejects = pd.read_parquet(tmp_path / "rejects.parquet")
    assert list(rejects["reason"]) == ["no _<number> in the name"]
    assert module.name == "named_photos.py"


@pytest.mark.slow
def test_the_metric_example_is_in_the_evaluation_and_the_report(tmp_path: Path) -> None:
    _, added = apply_example("A metric", tmp_path)
    assert added == ["        spread,"]
    results = tmp_path / "results"
    run_python(
        tmp_path,
        f"""
        import os
        from pathlib import Path
        os.environ["TORCH_HOME"] = {str(tmp_path / "torch_home")!r}
        import speciesgan
        from speciesgan.cli import main
        from speciesgan.metrics.evaluate import evaluate
        from speciesgan.util.weights import write_placeholder_weights
        from tests.unit.test_metrics import _blobs, _trained_files, _write_manifest

        write_placeholder_weights(seed=0)
        data = Path("data")
        manifest = _write_manifest(data, _blobs(5, 6, 16, smooth=True), [0, 0, 0, 1, 1, 1])
        generator, classifier = _trained_files(data, ["Alpha Dog", "Beta Bird"], 16)
        settings = {{"images_per_species": 3, "is_splits": 2, "batch_size": 6, "dinov2": None}}
        out = Path("results/eval/metrics.json")
        evaluate(generator, manifest, classifier, out, settings, seed=1, threads=1)
        assert main(["report", "--results-dir", "results", "--out-html", "report.html",
                     "--out-json", "report.json"]) == 0
        """,
        REPO,
    )
    figures = json.loads((results / "eval" / "metrics.json").read_text())
    assert 0 < figures["spread_lite0"] < 10
    assert (
        json.loads((tmp_path / "report.json").read_text())["generation"]["spread_lite0"]
        == (figures["spread_lite0"])
    )
    page = (tmp_path / "report.html").read_text()
    assert "<h3>Other metrics</h3>" in page and "spread_lite0" in page
