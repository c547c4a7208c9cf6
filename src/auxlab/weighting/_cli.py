"""``auxlab strategies``: the catalogue of weighting strategies, or one strategy's entry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``strategies`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "strategies",
        help="the weighting strategies: family, cost, paper; or one strategy's parameters",
        description=(
            "Without NAME: a table of the registered weighting strategies (name, family, cost "
            "per step, paper, what it does). With NAME: that strategy's parameters and "
            "defaults, its cost and its reference. In Python: auxlab.weighting.describe(NAME) "
            "and auxlab.weighting.list_strategies(details=True)."
        ),
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="a strategy, e.g. upgrad")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``auxlab strategies`` with parsed arguments; returns the exit code."""
    from auxlab.weighting._catalogue import format_details, format_table
    from auxlab.weighting._registry import list_strategies

    if args.name is None:
        print(format_table(list_strategies(details=True)))
        return 0
    from auxlab.weighting._catalogue import describe

    try:
        info = describe(args.name)
    except ValueError as exc:
        print(f"auxlab strategies: {exc} List them with `auxlab strategies`.", file=sys.stderr)
        return 2
    print(format_details(info))
    return 0
