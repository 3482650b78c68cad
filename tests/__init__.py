"""speciesgan tests (a regular package, so that no installed top-level ``tests`` package, such as torch-fidelity 0.4.0 ships, shadows it)."""
