"""The ``speciesgan`` command: one subcommand per pipeline stage.

Snakemake rules call these subcommands (rules stay thin); each can also be run
by hand, which is how a stage is debugged on a cluster login node.  Stage
settings arrive as one JSON object (``--settings``), the config section the rule
passes as a param, so Snakemake reruns a stage exactly when its section changes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from speciesgan.util.errors import SpeciesganError

log = logging.getLogger("speciesgan")


def _settings(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--settings is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--settings must be a JSON object")
    from speciesgan.config import number_problems

    problems = number_problems(value)
    if problems:  # JSON admits NaN and Infinity; a stage run by hand must not
        raise argparse.ArgumentTypeError(
            "--settings: " + "; ".join(m.removeprefix("config key ") for m in problems.values())
        )
    return value


def _seed(text: str) -> int:
    """A seed: a whole number from 0 to 2**63 - 1 (what every RNG here accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be a whole number, not {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"--seed must be from 0 to 2**63 - 1, not {value}")
    return value


def _add_common(
    p: argparse.ArgumentParser, *, seed: bool = True, threads: bool = True, settings: bool = True
) -> None:
    if settings:
        p.add_argument("--settings", type=_settings, default={}, help="stage settings as JSON")
    if seed:
        p.add_argument("--seed", type=_seed, default=0)
    if threads:
        p.add_argument(
            "--threads", type=int, default=1, help="torch/numpy threads (fixed for reproducibility)"
        )


DEVICE_CHOICES = ("auto", "cuda", "cpu")
"""``speciesgan.runtime.device.DEVICE_CHOICES``, repeated so that building the parser imports no torch."""


def _add_device(p: argparse.ArgumentParser) -> None:
    """``--device`` for every stage that may use CUDA (see ``speciesgan.runtime.device``)."""
    p.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default=None,
        help="cuda: a working GPU or stop with an error; cpu: the CPU even in a GPU job; "
        "auto: a GPU if SLURM allocated one (then it must work) or if one works, else the "
        "CPU (default: $SPECIESGAN_DEVICE, else auto)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speciesgan", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "check-config",
        help="validate config files, layered over config.yaml as the workflow layers them",
        description="Layer CONFIG files in order over the workflow's config.yaml (as "
        "`snakemake --configfile CONFIG...` does) and validate the result against the schema.",
    )
    p.add_argument("configs", type=Path, nargs="+", metavar="CONFIG")
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--base",
        type=Path,
        default=Path("config.yaml"),
        help="the config the files are layered over (default: config.yaml here)",
    )
    base.add_argument(
        "--alone", action="store_true", help="check the files by themselves, over no base"
    )

    p = sub.add_parser("demo-data", help="write synthetic archives in a real dataset's layout")
    p.add_argument("--layout", choices=["stanford_dogs", "cub", "iwildcam"], required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    _add_common(p, threads=False)

    p = sub.add_parser("download", help="fetch one archive (resumable, checksummed, atomic)")
    p.add_argument("--url", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sha256", default=None)
    p.add_argument("--retries", type=int, default=5)

    p = sub.add_parser("extract", help="safely extract archives into a folder")
    p.add_argument("archives", type=Path, nargs="+")
    p.add_argument("--out-dir", type=Path, required=True)

    p = sub.add_parser(
        "index", help="parse sources into the records table (species ids, splits, shards)"
    )
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME:FORMAT:CATEGORY:ROOT",
        help="one dataset; repeat for several",
    )
    p.add_argument(
        "--sources",
        default=None,
        metavar="JSON",
        help='datasets as [{"name", "format", "category", "root", "options"?}, ...] '
        "(the workflow's form; options: the reader's per-dataset settings)",
    )
    p.add_argument("--out", type=Path, required=True, help="records.parquet")
    p.add_argument("--out-rejects", type=Path, required=True)
    _add_common(p, threads=False)

    p = sub.add_parser("crop-shard", help="crop and resize one shard into a packed uint8 array")
    p.add_argument("--records", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--out-images", type=Path, required=True, help="shard-NNN.npy")
    p.add_argument("--out-rows", type=Path, required=True, help="shard-NNN.parquet")
    _add_common(p, seed=False)

    p = sub.add_parser("manifest", help="merge shard rows into the manifest and rejects table")
    p.add_argument("--rows", type=Path, nargs="+", required=True)
    p.add_argument("--index-rejects", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--out-rejects", type=Path, required=True)
    _add_common(p, seed=False, threads=False)

    p = sub.add_parser("train-classifier", help="fine-tune EfficientNet-B0 on the crops")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out-model", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)
    p.add_argument(
        "--restart",
        action="store_true",
        help="start at epoch 1 even if OUT_MODEL.resume.pt could be continued or is damaged "
        "(it is moved aside, not deleted)",
    )
    _add_common(p)
    _add_device(p)

    p = sub.add_parser("train-gan", help="train the conditional GAN (resumes automatically)")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--classifier", type=Path, default=None)
    p.add_argument("--out-generator", type=Path, required=True)
    p.add_argument("--out-log", type=Path, required=True)
    p.add_argument("--checkpoint-dir", type=Path, required=True)
    p.add_argument(
        "--out-snapshots", type=Path, default=None, help="G-EMA by step (gan.snapshot_every)"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="start at step 0 even if CHECKPOINT_DIR/last.pt could be continued or is damaged "
        "(it is moved aside, not deleted)",
    )
    p.add_argument(
        "--out-timing",
        type=Path,
        default=None,
        help="JSON with the wall and CPU seconds of the whole run, summed over its job segments",
    )
    p.add_argument(
        "--out-selection",
        type=Path,
        default=None,
        help="JSON with the snapshot selection rule, every snapshot's score and the step "
        "exported (gan.select_every)",
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="data-parallel processes, one per GPU: above 1 this command restarts itself under "
        "torchrun (same global batch; gloo on CPUs)",
    )
    _add_common(p)
    _add_device(p)

    p = sub.add_parser(
        "segments",
        help="list a GAN run's job segments (time, steps, how each ended); --retry after a stall",
        description="Training writes CHECKPOINT_DIR/segments.json; after two attempts in a row "
        "without progress it refuses to start.  --retry lets the next attempt train again.",
    )
    p.add_argument("checkpoint_dir", type=Path, metavar="CHECKPOINT_DIR")
    p.add_argument("--retry", action="store_true", help="let training start again after a stall")

    p = sub.add_parser("sample", help="sample images per species (grids), or mix two species")
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--mix", nargs=2, metavar="SPECIES", default=None)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=None, help="PNG for --mix")
    _add_common(p, threads=False)
    _add_device(p)

    p = sub.add_parser(
        "generate",
        help="pictures of one species by name (or of a mix of two)",
        description="Write -n pictures of species NAME (or of a blend of two species with "
        "--mix A B) from a trained generator: separate PNGs <slug>-000.png, ... in --out, "
        "or one grid with --grid. Names match ignoring case, punctuation and spaces.",
    )
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="species name")
    p.add_argument("--generator", type=Path, required=True, help="generator.pt")
    p.add_argument(
        "--from",
        dest="from_record",
        type=Path,
        default=None,
        metavar="PICTURE",
        help="draw again the picture of a studio record (its .json, or the .png itself), "
        "bit for bit on CPU; no NAME",
    )
    p.add_argument("-n", type=int, default=16, help="number of pictures (default 16)")
    p.add_argument(
        "--out", type=Path, required=True, help="folder (or FILE.png with --grid) to write to"
    )
    p.add_argument("--grid", action="store_true", help="one grid image instead of separate files")
    p.add_argument(
        "--mix", nargs=2, metavar="SPECIES", default=None, help="blend two species (no NAME)"
    )
    p.add_argument(
        "--alpha", type=float, default=0.5, help="--mix weight of the second species, 0..1"
    )
    p.add_argument(
        "--weights",
        choices=("ema", "raw"),
        default="ema",
        help="the EMA generator (default) or the generator as trained",
    )
    p.add_argument("--seed", type=_seed, default=0, help="same seed, same pictures (default 0)")
    p.add_argument(
        "--max-pictures",
        type=int,
        default=None,
        help="refuse -n above this many pictures (a guard against a typo of a few zeros; "
        "the error names the default limit)",
    )
    _add_device(p)

    p = sub.add_parser(
        "studio",
        help="a local web page to find, see, mix and keep a generator's pictures",
        description="Serve the studio page (docs/studio.md) for a generator: GENERATOR.pt, "
        "or a run's results folder (its gan/generator.pt and metrics.json).",
    )
    p.add_argument(
        "--generator", type=Path, required=True, help="generator.pt or a run's results folder"
    )
    p.add_argument(
        "--metrics", type=Path, default=None, help="the run's metrics.json (default: beside it)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    p.add_argument(
        "--workers", type=int, default=None, help="drawing threads (default: 2, or 1 on 1 core)"
    )

    p = sub.add_parser(
        "real-features",
        help="the real crops' features in every metric space, read by evaluate",
    )
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    _add_common(p, seed=False)
    _add_device(p)

    p = sub.add_parser("evaluate", help="FID, Inception Score and per-species accuracy")
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--weights",
        choices=("ema", "raw"),
        default="ema",
        help="score the EMA generator (default) or the generator as trained",
    )
    p.add_argument(
        "--snapshots", type=Path, default=None, help="also score these snapshots (FID/IS by step)"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="real-image feature cache (default: fid_cache beside --out)",
    )
    p.add_argument(
        "--real-features",
        type=Path,
        default=None,
        help="the folder `speciesgan real-features` wrote with the same --settings (read "
        "only; instead of --cache-dir)",
    )
    p.add_argument(
        "--out-pairs",
        type=Path,
        default=None,
        help="PNG of the memorisation check's closest (generated, training crop) pairs",
    )
    p.add_argument(
        "--judge",
        type=Path,
        default=None,
        help="the independent judge's model.pt (its metrics.json beside it): generated "
        "accuracy by a classifier that shares nothing with the discriminator",
    )
    p.add_argument(
        "--judge-min-accuracy",
        type=float,
        default=None,
        help="the judge's own real test top-1 below which its verdict does not count "
        "(default: the config schema's judge.min_accuracy)",
    )
    _add_common(p)
    _add_device(p)

    p = sub.add_parser(
        "cas", help="CAS: a classifier trained on generated images, tested on real test crops"
    )
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument(
        "--classifier",
        type=Path,
        required=True,
        help="the eval classifier: its top-1 on the same test crops is CAS's floor",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--classifier-settings",
        type=json.loads,
        required=True,
        help="the config's classifier section as JSON: the recipe CAS trains with",
    )
    _add_common(p, settings=False)
    _add_device(p)

    p = sub.add_parser("report", help="write report.html and metrics.json")
    p.add_argument("--results-dir", type=Path, required=True)
    p.add_argument("--out-html", type=Path, required=True)
    p.add_argument("--out-json", type=Path, required=True)
    p.add_argument(
        "--out-loss-curves",
        type=Path,
        default=None,
        help="also write the GAN loss plot (from RESULTS_DIR/gan/training_log.csv) as a PNG",
    )

    p = sub.add_parser(
        "doctor",
        help="report torch/CUDA/driver/GPUs and time a bf16 GAN step on the chosen device",
        description="Print torch, torchvision, the CUDA build, cuDNN, the NVIDIA driver, each "
        "visible GPU, bf16 support and the SLURM GPU variables; choose the device as the "
        "training stages do and time a few bf16 GAN training steps on it. Exits 1 when a GPU "
        "was requested (--device cuda or a SLURM GPU allocation) but cannot be used.",
    )
    _add_device(p)
    p.add_argument("--steps", type=int, default=3, help="timed steps (0: no timing)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")

    p = sub.add_parser("ablation-table", help="one row per GAN variant (rules/ablation.smk)")
    p.add_argument("--spec", type=json.loads, required=True, help="variants as JSON (the rule's)")
    p.add_argument("--out", type=Path, required=True)

    _add_dvc_commands(sub)
    p = sub.add_parser(
        "headline",
        help="write headline.json beside existing metrics.json files (runs made before it)",
    )
    p.add_argument("metrics", nargs="+", type=Path, metavar="METRICS_JSON")
    p = sub.add_parser(
        "dvc-stage",
        help="run one dvc.yaml stage through Snakemake (its cmd; --profile from "
        "$SPECIESGAN_PROFILE)",
    )
    p.add_argument("targets", nargs="+", metavar="OUTPUT")
    p.add_argument("--rule", required=True)
    p.add_argument("--configfile", required=True, metavar="FILE")
    return parser


def _add_dvc_commands(sub: argparse._SubParsersAction) -> None:
    """Versioning with DVC (see docs/dvc.md); all run in the repository root."""
    helps = {
        "dvc-export": "write this config's stages in dvc.yaml and params/<run>.yaml",
        "publish": "commit an up-to-date run's outputs to DVC and push them",
        "restore": "pull published outputs; rerun nothing that is current",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--configfile",
            action="append",
            default=[],
            metavar="FILE",
            help="as given to snakemake (repeat for several)",
        )
        p.add_argument("--workdir", type=Path, default=Path("."))
        if name != "dvc-export":
            p.add_argument(
                "--remote",
                default=None,
                metavar="NAME_OR_PATH",
                help="a DVC remote's name, or a folder/URL (default: $SPECIESGAN_DVC_REMOTE, "
                "else DVC's default remote)",
            )
        if name == "restore":
            p.add_argument(
                "--target",
                action="append",
                default=[],
                metavar="STAGE_OR_PATH",
                help="pull only what this needs: a stage (train_gan, smoke-train_gan), a rule, "
                "or an output path (repeat for several; default: the whole run)",
            )


def run(args: argparse.Namespace) -> None:  # noqa: C901 - a flat dispatch table reads best
    cmd = args.command
    if cmd == "check-config":
        from speciesgan.config import load_config

        base = None if args.alone else args.base
        load_config(args.configs, base=base)
        print(f"{' + '.join(map(str, ([base] if base else []) + args.configs))}: OK")
    elif cmd == "demo-data" and args.layout == "iwildcam":
        from speciesgan.data.demo_camera_traps import write_camera_trap_demo

        write_camera_trap_demo(args.out_dir, seed=args.seed, **args.settings)
    elif cmd == "demo-data":
        from speciesgan.data.demo import write_demo_archives

        write_demo_archives(args.out_dir, layout=args.layout, seed=args.seed, **args.settings)
    elif cmd == "download":
        from speciesgan.data.download import download

        download(args.url, args.out, sha256=args.sha256, retries=args.retries)
    elif cmd == "extract":
        from speciesgan.data.extract import extract_archives

        extract_archives(args.archives, args.out_dir)
    elif cmd == "index":
        from speciesgan.data.index import (
            build_index,
            parse_source_arg,
            parse_source_options,
            parse_sources_json,
        )

        sources = [parse_source_arg(s) for s in args.source]
        options = {}
        if args.sources is not None:
            sources += parse_sources_json(args.sources)
            options = parse_source_options(args.sources)
        if not sources:
            raise SpeciesganError("index needs --source NAME:FORMAT:CATEGORY:ROOT or --sources")
        build_index(
            sources,
            args.out,
            args.out_rejects,
            settings=args.settings,
            seed=args.seed,
            options=options,
        )
    elif cmd == "crop-shard":
        from speciesgan.data.preprocess import process_shard

        process_shard(
            args.records,
            args.shard,
            args.out_images,
            args.out_rows,
            settings=args.settings,
            threads=args.threads,
        )
    elif cmd == "manifest":
        from speciesgan.data.manifest import merge_shards

        merge_shards(
            args.rows, args.index_rejects, args.out, args.out_rejects, settings=args.settings
        )
    elif cmd == "train-classifier":
        from speciesgan.classifier.train import train_classifier

        train_classifier(
            args.manifest,
            args.out_model,
            args.out_metrics,
            settings=args.settings,
            seed=args.seed,
            threads=args.threads,
            restart=args.restart,
            device=args.device,
        )
    elif cmd == "train-gan":
        from speciesgan.gan.training_loop import train_gan
        from speciesgan.metrics.selection import snapshot_judge

        train_gan(
            args.manifest,
            args.classifier,
            args.out_generator,
            args.out_log,
            args.checkpoint_dir,
            settings=args.settings,
            seed=args.seed,
            threads=args.threads,
            out_snapshots=args.out_snapshots,
            restart=args.restart,
            device=args.device,
            out_timing=args.out_timing,
            scorer=snapshot_judge(args.settings, args.seed),
            out_selection=args.out_selection,
        )
    elif cmd == "segments":
        from speciesgan.gan import segments

        try:
            ledger = (
                segments.allow_retry(args.checkpoint_dir)
                if args.retry
                else segments.read_ledger(args.checkpoint_dir)
            )
        except ValueError as exc:  # a damaged ledger: say which file
            raise SpeciesganError(str(exc)) from exc
        if ledger is None:
            raise SpeciesganError(f"no {segments.LEDGER_NAME} in {args.checkpoint_dir}")
        print(segments.format_ledger(ledger))
        if args.retry:
            print("the next attempt will train again")
    elif cmd == "sample":
        from speciesgan.generate import sample

        if args.mix:
            if args.out is None:
                raise SpeciesganError("--mix needs --out FILE.png")
            # the sample section's grid settings do not apply to a mix; only its size does
            count = {"n": int(args.settings["n"])} if "n" in args.settings else {}
            sample.sample_mix(
                args.generator,
                args.mix[0],
                args.mix[1],
                args.alpha,
                args.out,
                seed=args.seed,
                device=args.device,
                **count,
            )
        else:
            if args.out_dir is None:
                raise SpeciesganError("sample needs --out-dir (or --mix A B --out FILE.png)")
            sample.sample_grids(
                args.generator, args.out_dir, seed=args.seed, device=args.device, **args.settings
            )
    elif cmd == "generate":
        _generate(args)
    elif cmd == "studio":
        from speciesgan.studio.server import serve

        serve(args.generator, args.metrics, args.host, args.port, args.workers)
    elif cmd == "real-features":
        from speciesgan.metrics.real_side import write_real_features

        write_real_features(args.manifest, args.out_dir, args.settings, args.threads, args.device)
    elif cmd == "evaluate":
        from speciesgan.metrics.evaluate import evaluate

        evaluate(
            args.generator,
            args.manifest,
            args.classifier,
            args.out,
            settings=args.settings,
            seed=args.seed,
            threads=args.threads,
            weights=args.weights,
            snapshots=args.snapshots,
            cache_dir=args.cache_dir,
            real_features_dir=args.real_features,
            out_pairs=args.out_pairs,
            device=args.device,
            judge=args.judge,
            judge_min_accuracy=args.judge_min_accuracy,
        )
    elif cmd == "cas":
        from speciesgan.metrics.cas import write_cas

        write_cas(
            args.generator,
            args.manifest,
            args.classifier,
            args.out,
            args.classifier_settings,
            seed=args.seed,
            threads=args.threads,
            device=args.device,
        )
    elif cmd == "doctor":
        from speciesgan.runtime.doctor import run_doctor

        run_doctor(args.device, steps=args.steps, warmup=args.warmup, threads=args.threads)
    elif cmd == "ablation-table":
        from speciesgan.report.ablation import write_ablation_table

        write_ablation_table(args.spec, args.out)
    elif cmd == "report":
        from speciesgan.report.page import build_report

        build_report(args.results_dir, args.out_html, args.out_json)
        if args.out_loss_curves is not None:
            from speciesgan.report.loss_curves import write_loss_curves

            write_loss_curves(args.results_dir / "gan" / "training_log.csv", args.out_loss_curves)
    elif cmd == "headline":
        from speciesgan.metrics.headline import headline_from_metrics_file

        for path in args.metrics:
            print(f"wrote {headline_from_metrics_file(path)}")
    elif cmd == "dvc-stage":
        from speciesgan.workflow.dvc_export import PROFILE_ENV, stage_snakemake_argv

        argv = stage_snakemake_argv(args.targets, args.rule, args.configfile)
        where = f" (${PROFILE_ENV})" if "--profile" in argv else f" (local; ${PROFILE_ENV} unset)"
        print(f"speciesgan dvc-stage: {shlex.join(argv)}{where}", file=sys.stderr, flush=True)
        # this environment's Snakemake, whatever PATH says; its exit status is the stage's
        os.execv(sys.executable, [sys.executable, "-m", *argv])
    elif cmd == "dvc-export":
        from speciesgan.workflow.dvc_export import export_dvc

        export = export_dvc(args.workdir, args.configfile)
        print(
            f"wrote {len(export.stages)} stages of run {export.run!r} in {export.dvc_yaml} "
            f"and {export.params_file}"
        )
    elif cmd == "publish":
        from speciesgan.workflow.dvc_sync import publish

        publish(args.workdir, args.configfile, remote=args.remote)
    elif cmd == "restore":
        from speciesgan.workflow.dvc_sync import restore

        restore(args.workdir, args.configfile, remote=args.remote, targets=args.target)
    else:  # pragma: no cover - argparse rejects unknown commands
        raise SpeciesganError(f"unknown command {cmd}")


def _generate(args: argparse.Namespace) -> None:
    if args.from_record is not None:
        _generate_from(args)
        return
    from speciesgan.generate.sample import generate_pictures

    paths = generate_pictures(
        args.generator,
        args.out,
        name=args.name,
        mix=args.mix,
        alpha=args.alpha,
        n=args.n,
        grid=args.grid,
        seed=args.seed,
        weights=args.weights,
        device=args.device,
        max_pictures=args.max_pictures,
    )
    if args.grid:
        print(f"wrote a grid of {args.n} picture(s) to {paths[0]}")
    else:
        print(f"wrote {args.n} picture(s) to {paths[0].parent}")


def _generate_from(args: argparse.Namespace) -> None:
    """``generate --from``: the record decides species, mix, seed and weights; no other flags."""
    from speciesgan.generate.pictures import generate_from_record

    if args.name is not None or args.mix is not None:
        raise SpeciesganError("--from takes no NAME or --mix: the record names the species")
    ignored = [
        flag
        for flag, given in (
            ("-n", args.n != 16),
            ("--seed", args.seed != 0),
            ("--alpha", args.alpha != 0.5),
            ("--weights", args.weights != "ema"),
            ("--grid", args.grid),
            ("--device", args.device not in (None, "cpu")),
        )
        if given
    ]
    if ignored:
        raise SpeciesganError(
            f"--from draws one picture on the CPU exactly as its record says; drop {', '.join(ignored)}"
        )
    png, sidecar = generate_from_record(args.generator, args.from_record, args.out)
    print(f"wrote {png} and {sidecar.name}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train-gan"]:
        from speciesgan.runtime.preemption import remember_time_limit_signal

        remember_time_limit_signal()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "train-gan":
        from speciesgan.runtime.launch import relaunch_under_torchrun

        relaunch_under_torchrun(args.gpus, argv)  # returns when this process is to train
    from speciesgan.runtime import fatal
    from speciesgan.runtime.preemption import (
        EXIT_PREEMPTED,
        StageTerminated,
        TrainingInterrupted,
        requeue_own_job,
        restore_sigterm,
        stop_stage_on_sigterm,
    )

    training = args.command == "train-gan"
    previous = stop_stage_on_sigterm()
    try:
        if training:
            fatal.clear(args.checkpoint_dir)
        run(args)
    except SpeciesganError as exc:
        print(f"speciesgan {args.command}: error: {exc}", file=sys.stderr)
        if training:  # the workflow's next attempt reads it and does not start
            fatal.record(args.checkpoint_dir, args.command, exc)
        return exc.exit_code
    except StageTerminated as exc:
        print(
            f"speciesgan {args.command}: stopped by {exc}; the outputs it was writing were "
            "removed, so nothing partial is left (rerun the stage to make them)",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except TrainingInterrupted as exc:
        print(
            f"speciesgan {args.command}: stopped early, checkpoint saved ({exc}); rerun to resume",
            file=sys.stderr,
        )
        print(f"speciesgan {args.command}: {requeue_own_job(exc)}", file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    finally:
        restore_sigterm(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
