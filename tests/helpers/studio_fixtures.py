"""A small real generator and a run's metrics.json, shared by the studio and record tests.

The generator is written by the GAN stage's own ``save_generator`` (random weights),
inside a results-folder layout (``<run>/gan/generator.pt`` beside ``<run>/metrics.json``)
so that folder resolution is exercised too.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIES = [
    "Border collie",
    "Border terrier",
    "Painted Bunting",
    "Ringed Plover",
    "Red fox",
    "Snow leopard",
]
CATEGORIES = ["dog", "dog", "bird", "bird", "mammal", "mammal"]
SIZE = 32
SETTINGS = {"model": "resnet", "z_dim": 16, "embed_dim": 8, "g_channels": 8, "d_channels": 4}


def make_run(folder: Path, species: list[str] = SPECIES, seed: int = 0) -> Path:
    """``folder/gan/generator.pt`` and ``folder/metrics.json``; returns ``folder``."""
    from speciesgan.gan.networks import build_networks, save_generator

    generator, _ = build_networks(SETTINGS, len(species), SIZE, seed=seed)
    save_generator(folder / "gan" / "generator.pt", generator, SETTINGS, species, SIZE)
    accuracy = {name: round(0.9 - 0.1 * i, 2) for i, name in enumerate(species)}
    metrics = {
        "dataset": {
            "species": {
                name: {"species_id": i, "category": CATEGORIES[i % len(CATEGORIES)]}
                for i, name in enumerate(species)
            }
        },
        "generation": {
            "accuracy_mean": sum(accuracy.values()) / len(accuracy),
            "accuracy_per_species": accuracy,
            "chance": 1 / len(species),
            "fd_lite0": 12.5,
            "fidelity_diversity": {"space": "lite0", "precision": 0.6, "recall": 0.4,
                                   "density": 0.9, "coverage": 0.5, "k": 5},
        },
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder
