"""Pictures from a trained generator: ``speciesgan sample`` (the workflow's grids) and
``speciesgan generate`` (pictures of a species by name, by hand)."""

from __future__ import annotations

import argparse
from pathlib import Path

from speciesgan.subcommand import (
    Subcommand,
    add_device_argument,
    add_stage_arguments,
    seed_number,
)
from speciesgan.util.errors import SpeciesganError


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--mix", nargs=2, metavar="SPECIES", default=None)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=None, help="PNG for --mix")
    add_stage_arguments(p, threads=False)
    add_device_argument(p)


def _sample(args: argparse.Namespace) -> None:
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


SAMPLE = Subcommand(
    "sample",
    _sample_arguments,
    _sample,
    help="sample images per species (grids), or mix two species",
)


def _generate_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--seed", type=seed_number, default=0, help="same seed, same pictures (default 0)"
    )
    p.add_argument(
        "--max-pictures",
        type=int,
        default=None,
        help="refuse -n above this many pictures (a guard against a typo of a few zeros; "
        "the error names the default limit)",
    )
    add_device_argument(p)


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


GENERATE = Subcommand(
    "generate",
    _generate_arguments,
    _generate,
    help="pictures of one species by name (or of a mix of two)",
    description="Write -n pictures of species NAME (or of a blend of two species with "
    "--mix A B) from a trained generator: separate PNGs <slug>-000.png, ... in --out, "
    "or one grid with --grid. Names match ignoring case, punctuation and spaces.",
)
