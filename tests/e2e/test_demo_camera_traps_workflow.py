"""The camera-trap demo through the whole workflow (Snakemake).

Its collection is tested in tests/unit/test_demo_camera_traps.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speciesgan.data.demo_camera_traps import (
    ARCHIVE,
    DETECTIONS,
)
from tests.unit.test_demo_camera_traps import _reason_kinds

CHEAP = {  # over configs/demo_camera_traps.yaml: every stage runs, each on a token budget
    "results_dir": "results/cams",
    # 3 species: the third is dropped; each kept one costs two intra-FIDs (~3 s each)
    "demo": {"species_per_dataset": 3, "images_per_species": 16, "min_size": 128, "max_size": 160},
    "preprocess": {"min_images_per_species": 6},
    "classifier": {"epochs": 1, "batch_size": 16},
    "gan": {"steps": 4, "batch_size": 8, "z_dim": 8, "embed_dim": 8, "g_channels": 8,
            "d_channels": 8, "checkpoint_every": 2, "snapshot_every": 4, "log_every": 2},
    "sample": {"per_species": 2, "grid_columns": 2},
    "metrics": {"images_per_species": 2, "real_images_per_species": 2,
                "curve_images_per_species": 1, "is_splits": 1, "cas": False},
}  # fmt: skip


@pytest.mark.slow
def test_camera_trap_demo_runs_end_to_end(tmp_path: Path) -> None:
    """demo_iwildcam -> download (archive and detections) -> extract -> index -> crops ->
    manifest -> classifier -> GAN -> sample -> evaluate -> report, on the demo's config."""
    import pandas as pd

    from speciesgan.data.manifest import read_manifest
    from tests.helpers.workflow import copy_workflow, demo_folder_of, downloads_folder, snakemake

    work = copy_workflow(tmp_path / "workflow")
    (work / "cheap.yaml").write_text(json.dumps(CHEAP))
    run = snakemake(
        work, "all", "--cores", "2", "--configfile", "configs/demo_camera_traps.yaml", "cheap.yaml"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = work / "results/cams"
    assert (results / "report.html").is_file() and (results / "metrics.json").is_file()
    configs = ("configs/demo_camera_traps.yaml", "cheap.yaml")
    demo = work / demo_folder_of("demo_cams", *configs, workdir=work)
    downloads = work / downloads_folder("demo_cams", *configs, workdir=work)
    assert (downloads / "archives" / ARCHIVE).read_bytes() == (demo / ARCHIVE).read_bytes()
    assert (downloads / "detections.json").read_bytes() == (demo / DETECTIONS).read_bytes()

    manifest = read_manifest(results / "data/manifest.parquet")
    assert set(manifest["split"]) == {"train", "test", "ood"}
    assert manifest["greyscale"].any() and not manifest["greyscale"].all()
    rejects = pd.read_parquet(results / "data/rejects.parquet")
    source = dict(zip(rejects["file"], rejects["reason"], strict=True))
    assert set(_reason_kinds(source)) >= {
        "labelled empty", "only person", "only vehicle", "below confidence", "no animal detection",
    }  # fmt: skip
    dropped = set(rejects.loc[rejects["reason"].str.contains("small_species: drop"), "species"])
    assert dropped and not dropped & set(manifest["species"])
    assert len(set(manifest["species"])) >= 2
    assert "dropped" in (results / "logs/index.log").read_text()

    # the report's long-tail section: sorted counts chart, infrared share, ID beside OOD
    long_tail = json.loads((results / "metrics.json").read_text())["long_tail"]
    counts = [row["train"] for row in long_tail["train_per_species"]]
    assert counts == sorted(counts, reverse=True) and len(counts) == len(set(manifest["species"]))
    assert long_tail["greyscale"]["greyscale"] == int(manifest["greyscale"].sum())
    id_ood = long_tail["id_ood"]
    for figure in ("classifier_top1", "fd_lite0"):
        assert all(isinstance(id_ood[figure][side], float) for side in ("id", "ood")), id_ood
    html = (results / "report.html").read_text()
    for shown in ("<h2>Long tail", 'alt="train crops per species"', "are infrared", "In and out"):
        assert shown in html, shown
