"""Pictures from a trained generator: sample grids (``speciesgan sample``) and ``speciesgan generate``."""
