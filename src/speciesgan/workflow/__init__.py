"""The pipeline as a whole: Snakemake's DAG, the rules' sources, and DVC export, params, remote and sync."""
