"""The data stages' subcommands: demo archives, download, extract, index, crops, manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from speciesgan.subcommand import Subcommand, add_stage_arguments
from speciesgan.util.errors import SpeciesganError


def _demo_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=["stanford_dogs", "cub", "iwildcam"], required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    add_stage_arguments(p, threads=False)


def _demo_data(args: argparse.Namespace) -> None:
    if args.layout == "iwildcam":
        from speciesgan.data.demo_camera_traps import write_camera_trap_demo

        write_camera_trap_demo(args.out_dir, seed=args.seed, **args.settings)
    else:
        from speciesgan.data.demo import write_demo_archives

        write_demo_archives(args.out_dir, layout=args.layout, seed=args.seed, **args.settings)


DEMO_DATA = Subcommand(
    "demo-data",
    _demo_data_arguments,
    _demo_data,
    help="write synthetic archives in a real dataset's layout",
)


def _download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sha256", default=None)
    p.add_argument("--retries", type=int, default=5)


def _download(args: argparse.Namespace) -> None:
    from speciesgan.data.download import download

    download(args.url, args.out, sha256=args.sha256, retries=args.retries)


DOWNLOAD = Subcommand(
    "download",
    _download_arguments,
    _download,
    help="fetch one archive (resumable, checksummed, atomic)",
)


def _extract_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("archives", type=Path, nargs="+")
    p.add_argument("--out-dir", type=Path, required=True)


def _extract(args: argparse.Namespace) -> None:
    from speciesgan.data.extract import extract_archives

    extract_archives(args.archives, args.out_dir)


EXTRACT = Subcommand(
    "extract", _extract_arguments, _extract, help="safely extract archives into a folder"
)


def _index_arguments(p: argparse.ArgumentParser) -> None:
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
    add_stage_arguments(p, threads=False)


def _index(args: argparse.Namespace) -> None:
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


INDEX = Subcommand(
    "index",
    _index_arguments,
    _index,
    help="parse sources into the records table (species ids, splits, shards)",
)


def _crop_shard_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--out-images", type=Path, required=True, help="shard-NNN.npy")
    p.add_argument("--out-rows", type=Path, required=True, help="shard-NNN.parquet")
    add_stage_arguments(p, seed=False)


def _crop_shard(args: argparse.Namespace) -> None:
    from speciesgan.data.preprocess import process_shard

    process_shard(
        args.records,
        args.shard,
        args.out_images,
        args.out_rows,
        settings=args.settings,
        threads=args.threads,
    )


CROP_SHARD = Subcommand(
    "crop-shard",
    _crop_shard_arguments,
    _crop_shard,
    help="crop and resize one shard into a packed uint8 array",
)


def _manifest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=Path, nargs="+", required=True)
    p.add_argument("--index-rejects", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--out-rejects", type=Path, required=True)
    add_stage_arguments(p, seed=False, threads=False)


def _manifest(args: argparse.Namespace) -> None:
    from speciesgan.data.manifest import merge_shards

    merge_shards(args.rows, args.index_rejects, args.out, args.out_rejects, settings=args.settings)


MANIFEST = Subcommand(
    "manifest",
    _manifest_arguments,
    _manifest,
    help="merge shard rows into the manifest and rejects table",
)
