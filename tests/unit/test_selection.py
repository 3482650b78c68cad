"""Snapshot selection: held-out validation crops, the score, and the generator exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speciesgan.gan import selection
from speciesgan.gan.networks import load_generator, load_snapshots
from speciesgan.gan.training_loop import DeviceCrops, train_gan
from speciesgan.metrics.feature_spaces import lite0_space
from speciesgan.metrics.selection import SnapshotJudge
from tests.unit.test_gan import TINY, write_manifest


def test_validation_rows_are_per_species_capped_at_a_quarter_and_seeded() -> None:
    labels = np.array([0] * 40 + [1] * 8 + [2] * 3)
    rows = selection.validation_rows(labels, per_species=16, seed=5)
    counts = np.bincount(labels[rows], minlength=3)
    assert counts.tolist() == [10, 2, 0]  # a quarter of 40 and of 8; none of 3
    assert np.array_equal(rows, selection.validation_rows(labels, 16, seed=5))
    assert not np.array_equal(rows, selection.validation_rows(labels, 16, seed=6))
    assert np.all(np.diff(rows) > 0)


def test_selection_steps_cover_the_window_and_the_last_step() -> None:
    assert selection.selection_steps(1000, 200, 0.5) == [600, 800, 1000]
    assert selection.selection_steps(1000, 300, 0.5) == [600, 900, 1000]
    assert selection.selection_steps(1000, 0, 0.5) == []


def test_choose_takes_the_lowest_distance_and_the_later_step_on_a_tie() -> None:
    assert selection.choose({10: {"score": 0.7}, 20: {"score": 0.2}, 30: {"score": 0.5}}) == 20
    assert selection.choose({10: {"score": 0.7}, 20: {"score": 0.7}}) == 20
    assert selection.choose({10: {"score": None}}) is None


def test_held_out_crops_never_reach_training(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, per_species=9)
    held = np.array([0, 5, 9])
    crops = DeviceCrops.from_manifest(manifest, torch.device("cpu"), held)
    full = DeviceCrops.from_manifest(manifest, torch.device("cpu"))
    assert len(crops) == len(full) - 3
    kept = crops.crops(torch.arange(len(crops)))
    for row in held:
        assert not any(torch.equal(full.crops(torch.tensor([row]))[0], image) for image in kept)


class ScriptedScorer:
    """Scores snapshots from a fixed list (the score of a real judge is tested below)."""

    def __init__(self, values: list[float]) -> None:
        self.values = list(values)
        self.prepared: tuple[int, list[str]] | None = None
        self.scored: list[torch.Tensor] = []

    def prepare(self, crops: torch.Tensor, labels: np.ndarray, species: list[str]) -> None:
        self.prepared = (len(crops), list(species))

    def score(self, generator: nn.Module) -> dict[str, Any]:
        self.scored.append(next(iter(generator.state_dict().values())).clone())
        return {"score": self.values.pop(0)}


def test_the_best_scored_snapshot_is_exported_and_recorded(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, per_species=9)
    scorer = ScriptedScorer([0.9, 0.1, 0.3])
    settings = {**TINY, "steps": 6, "select_every": 2, "select_from": 0.0,
                "validation_per_species": 2}  # fmt: skip
    out = tmp_path / "run"
    train_gan(
        manifest, None, out / "generator.pt", out / "log.csv", out / "checkpoints",
        settings=settings, seed=3, threads=1, out_snapshots=out / "snapshots.pt",
        scorer=scorer, out_selection=out / "selection.json",
    )  # fmt: skip
    assert scorer.prepared == (6, ["cat", "dog", "owl"])  # 2 of each species' 8 train crops
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen_step"] == 4
    assert sorted(record["scores"]) == ["2", "4", "6"]
    assert "validation crops" in record["rule"]
    exported, _ = load_generator(out / "generator.pt")
    snapshots = dict(load_snapshots(out / "snapshots.pt")[0])
    assert sorted(snapshots) == [2, 4, 6]
    for name, tensor in exported.state_dict().items():
        assert torch.equal(tensor, snapshots[4].state_dict()[name]), name


def test_without_selection_the_final_step_is_exported(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    out = tmp_path / "run"
    train_gan(
        manifest, None, out / "generator.pt", out / "log.csv", out / "checkpoints",
        settings={**TINY, "steps": 2}, seed=3, threads=1, out_selection=out / "selection.json",
    )  # fmt: skip
    record = json.loads((out / "selection.json").read_text())
    assert record["chosen_step"] == 2 and record["scores"] == {}


class Replay(nn.Module):
    """A stand-in generator: species k draws crops from ``pool[k]`` (cycled by the latent)."""

    def __init__(self, pool: list[torch.Tensor]) -> None:
        super().__init__()
        self.pool = pool
        self.z_dim = 4
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        picks = (z[:, 0].abs() * 1000).long()
        images = [
            self.pool[int(k)][int(p) % len(self.pool[int(k)])]
            for k, p in zip(species, picks, strict=True)
        ]
        return torch.stack(images).float().div(127.5).sub(1.0)


def test_judge_prefers_a_varied_generator_to_a_collapsed_one(tmp_path: Path) -> None:
    """Replaying real crops is closer to the validation crops than one crop per species, which
    is closer than drawing another species' crops."""
    manifest = write_manifest(tmp_path, per_species=16, seed=1)
    crops = DeviceCrops.from_manifest(manifest, torch.device("cpu"))
    everything = crops.crops(torch.arange(len(crops)))
    labels = crops.labels.numpy()
    judge = SnapshotJudge(lite0_space("cpu"), images_per_species=8, seed=0)
    validation = np.flatnonzero(np.arange(len(labels)) % 3 == 0)
    judge.prepare(everything[validation], labels[validation], crops.species)
    train = np.setdiff1d(np.arange(len(labels)), validation)
    pools = [everything[train[labels[train] == k]] for k in range(3)]
    varied = judge.score(Replay(pools))["score"]
    collapsed = judge.score(Replay([pool[:1] for pool in pools]))["score"]
    wrong = judge.score(Replay([pools[1], pools[2], pools[0]]))["score"]
    assert varied < collapsed < wrong, (varied, collapsed, wrong)


class WeightScorer:
    """Scores a snapshot by its weights alone, so a resumed run must give the same scores."""

    def prepare(self, crops: torch.Tensor, labels: np.ndarray, species: list[str]) -> None:
        pass

    def score(self, generator: nn.Module) -> dict[str, Any]:
        first = next(iter(generator.state_dict().values()))
        return {"score": float(first.float().abs().sum())}


def test_a_resumed_run_selects_and_exports_what_a_straight_run_does(tmp_path: Path) -> None:
    """Snapshots survive in the checkpoint; those a resumed run never scored are scored at the end."""
    manifest = write_manifest(tmp_path, per_species=9)
    settings = {**TINY, "select_every": 2, "select_from": 0.0, "validation_per_species": 2,
                "checkpoint_every": 1}  # fmt: skip

    def train(out: Path, steps: int) -> None:
        train_gan(
            manifest, None, out / "generator.pt", out / "log.csv", out / "checkpoints",
            settings={**settings, "steps": steps}, seed=3, threads=1,
            out_snapshots=out / "snapshots.pt", scorer=WeightScorer(),
            out_selection=out / "selection.json",
        )  # fmt: skip

    train(tmp_path / "straight", 6)
    train(tmp_path / "resumed", 3)  # a shorter first segment ...
    train(tmp_path / "resumed", 6)  # ... continued from its step-3 checkpoint
    for name in ("selection.json", "generator.pt", "snapshots.pt"):
        assert (tmp_path / "straight" / name).read_bytes() == (
            tmp_path / "resumed" / name
        ).read_bytes(), name
