"""The headline figures DVC shows: numbers only, short names, written for older runs too."""

from __future__ import annotations

import json
from pathlib import Path


def test_headline_files_for_runs_made_before_them(tmp_path: Path) -> None:
    """`speciesgan headline` writes the new output from an existing metrics.json, so a run
    made before it need not be retrained to get one (docs/dvc.md)."""
    from speciesgan.cli import main

    evaluation = tmp_path / "eval" / "metrics.json"
    classifier = tmp_path / "classifier" / "guide" / "metrics.json"
    for path, data in (
        (evaluation, {"fid": 41.234567, "kid": {"mean": 0.0123456, "std": 0.001}, "note": "x"}),
        (classifier, {"top1": 0.8123456, "top5": 0.97, "history": [{"epoch": 1}]}),
    ):
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data))
    assert main(["headline", str(evaluation), str(classifier)]) == 0
    assert json.loads((evaluation.parent / "headline.json").read_text()) == {
        "fid": 41.235,
        "kid": 0.012346,
    }
    assert json.loads((classifier.parent / "headline.json").read_text()) == {
        "top1": 0.81235,
        "top5": 0.97,
    }
    (tmp_path / "other.json").write_text("{}")
    assert main(["headline", str(tmp_path / "other.json")]) == 65
