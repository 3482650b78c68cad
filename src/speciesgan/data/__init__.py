"""Data side of the pipeline: demo archives, download, extraction, sources, crops, manifest."""
