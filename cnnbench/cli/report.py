"""``cnnbench report``: summarise a grid's results folder (REPORT.md, tables, figures).

Example:
    $ cnnbench report results/smoke --format pdf

    >>> build_parser().parse_args(["results/smoke"]).resolution
    0.5
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The ``cnnbench report`` argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(prog="cnnbench report", description="Summarise a grid's results folder.")
    parser.add_argument("out", help="the folder given to `cnnbench bench --out`")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--resolution",
        type=float,
        default=0.5,
        help="points within which an exploratory comparison reads 'within ±resolution' (questions set their own δ)",
    )
    parser.add_argument(
        "--questions",
        default=None,
        help="questions YAML (claims, contrasts, δ) to answer first in REPORT.md (default: OUT/questions.yaml if present)",
    )
    parser.add_argument(
        "--format",
        choices=("png", "pdf", "svg"),
        default="png",
        help="figure file format (the previous report's figures, any format, are replaced)",
    )
    parser.add_argument(
        "--chance-margin",
        type=float,
        default=10.0,
        help="accuracy points above chance within which a cell is flagged and left out of consistency comparisons",
    )
    return parser


def run(argv: list[str]) -> int:
    """``cnnbench report OUT [--no-plots] [--format F] ...``; 2 for a bad questions file or value."""
    args = build_parser().parse_args(argv)
    from cnnbench.bench.questions import QuestionError
    from cnnbench.bench.report import write_report

    try:
        paths = write_report(
            args.out,
            plots=not args.no_plots,
            resolution=args.resolution / 100,
            questions=args.questions,
            fmt=args.format,
            chance_margin=args.chance_margin / 100,
        )
    except (QuestionError, ValueError) as err:
        print(f"cnnbench report: {err}", file=sys.stderr)
        return 2
    for kind, path in paths.items():
        print(f"{kind:>10}: {path}")
    return 0
