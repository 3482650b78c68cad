"""The report's subcommands: report.html and metrics.json, and the ablation table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speciesgan.subcommand import Subcommand


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", type=Path, required=True)
    p.add_argument("--out-html", type=Path, required=True)
    p.add_argument("--out-json", type=Path, required=True)
    p.add_argument(
        "--out-loss-curves",
        type=Path,
        default=None,
        help="also write the GAN loss plot (from RESULTS_DIR/gan/training_log.csv) as a PNG",
    )


def _report(args: argparse.Namespace) -> None:
    from speciesgan.report.page import build_report

    build_report(args.results_dir, args.out_html, args.out_json)
    if args.out_loss_curves is not None:
        from speciesgan.report.loss_curves import write_loss_curves

        write_loss_curves(args.results_dir / "gan" / "training_log.csv", args.out_loss_curves)


REPORT = Subcommand("report", _report_arguments, _report, help="write report.html and metrics.json")


def _ablation_table_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=json.loads, required=True, help="variants as JSON (the rule's)")
    p.add_argument("--out", type=Path, required=True)


def _ablation_table(args: argparse.Namespace) -> None:
    from speciesgan.report.ablation import write_ablation_table

    write_ablation_table(args.spec, args.out)


ABLATION_TABLE = Subcommand(
    "ablation-table",
    _ablation_table_arguments,
    _ablation_table,
    help="one row per GAN variant (rules/ablation.smk)",
)
