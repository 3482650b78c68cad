"""An iWildCam-layout dataset through the workflow's data stages (Snakemake).

The reader itself is tested in tests/unit/test_iwildcam.py.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from speciesgan.data.manifest import read_manifest
from tests.helpers.http_server import ServerState, serve
from tests.helpers.workflow import copy_workflow, snakemake
from tests.unit.test_iwildcam import PHOTOS, write_detections, write_wilds


@pytest.mark.slow
def test_workflow_downloads_archive_and_detections_and_builds_the_manifest(
    tmp_path: Path,
) -> None:
    """download (archive and detections, over HTTP, the detections cut once and resumed)
    -> extract -> index -> crop_shard -> manifest, with the camera_trap settings."""
    layout = tmp_path / "layout"
    write_wilds(layout, PHOTOS)
    archive = tmp_path / "iwildcam_v2.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    detections = write_detections(tmp_path / "md.json", PHOTOS).read_bytes()
    workflow = copy_workflow(tmp_path / "workflow")
    state = ServerState(files={"/md.json": detections}, cut_first=1)
    with serve(state) as base:
        overlay = {
            "results_dir": "results/cam",
            "use_datasets": ["cams"],
            "datasets": {
                "cams": {
                    "format": "iwildcam",
                    "category": "mammal",
                    "detections": f"{base}/md.json",
                    "files": {archive.name: {"url": f"file://{archive}"}},
                    "camera_trap": {"frames": "interval", "frame_interval_seconds": 60},
                }
            },
            "preprocess": {
                "image_size": 16,
                "shards": 2,
                "min_images_per_species": 1,
                "min_box_size": 8,
                "greyscale": "drop",
            },
        }
        (workflow / "cam.yaml").write_text(json.dumps(overlay))
        run = snakemake(
            workflow,
            "--cores",
            "2",
            "results/cam/data/manifest.parquet",
            "--configfile",
            "cam.yaml",
        )
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(state.range_headers) == 2 and state.range_headers[1] is not None  # resumed
    assert (workflow / "data/downloads/cams/detections.json").read_bytes() == detections
    manifest = read_manifest(workflow / "results/cam/data/manifest.parquet")
    names = {Path(f).stem for f in manifest["file"]}
    # interval: deer_b (2 s after deer_a) and straddle_2/3 thinned; night dropped as greyscale
    assert names == {"deer_a", "deer_c", "several", "straddle_1", "edge", "ood_a", "ood_b"}
    assert sorted(set(manifest["split"])) == ["ood", "test", "train"]
    rejects = pd.read_parquet(workflow / "results/cam/data/rejects.parquet")
    assert {"source", "index", "crop"} <= set(rejects["stage"])
