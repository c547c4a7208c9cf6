"""The ``auxlab`` command: one entry point with subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from auxlab import __version__
from auxlab._argtypes import positive_int
from auxlab._threads import announce_threads

__all__ = ["add_threads_argument", "announce_threads", "main"]

#: Commands whose thread choice is known from their command line alone; ``main`` sets and
#: prints it (:func:`auxlab._threads.announce_threads`) before running them. ``auxlab
#: online`` and ``auxlab study`` (whose TOML may set ``threads``) do it in their own ``run``.
_THREADS_FROM_ARGS = ("demo", "rl")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (torch's intra-op threads) to a training command's parser."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch's intra-op threads (default: OMP_NUM_THREADS if set, else 1)",
    )


def _weights(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"weights must be comma-separated numbers, e.g. 0,0.2,1 (got {text!r})"
        ) from None
    if not values or any(v < 0 or v != v or v == float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"weights must be finite numbers >= 0 (got {text!r})")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"weights must be distinct, e.g. 0,0.2,1 (got {text!r})")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``auxlab`` command."""
    parser = argparse.ArgumentParser(
        prog="auxlab",
        description="Train networks with auxiliary losses and choose their weights.",
    )
    parser.add_argument("--version", action="version", version=f"auxlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the auxiliary weight in the Keras headline model, on real tweets",
        description=(
            "A study of the Keras functional-API headline model on Trump tweets: the "
            "auxiliary weight at 0, 0.2 and 1.0 over two seeds, with diagnostics. Writes the "
            "study's report.html, results.csv and recommendation.txt, as `auxlab study` does. "
            "Needs the 'data' and 'study' extras: pip install 'auxlab[all]'."
        ),
    )
    demo.add_argument("--out", default="auxlab-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a subset run of a few seconds")
    demo.add_argument("--weights", type=_weights, help="auxiliary weights, e.g. 0,0.2,1")
    demo.add_argument("--seeds", type=positive_int, help="number of seeds per weight (default 2)")
    demo.add_argument("--epochs", type=positive_int, help="epochs per run")
    demo.add_argument("--no-progress", action="store_true", help="no line per finished run")
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out that holds results (default: refuse; a folder with only "
        "the runs of an interrupted demo is resumed)",
    )
    add_threads_argument(demo)

    from auxlab.online._cli import add_parser as add_online_parser
    from auxlab.rl._cli import add_parser as add_rl_parser
    from auxlab.study._cli import add_parser as add_study_parser
    from auxlab.weighting._cli import add_parser as add_strategies_parser

    add_strategies_parser(sub)
    add_study_parser(sub)
    add_online_parser(sub)
    add_rl_parser(sub)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from auxlab._optional import MissingDependencyError
    from auxlab._outdir import OutputError
    from auxlab.demo import RUNS_FILE, DemoConfig, run_demo
    from auxlab.study import ConfigError
    from auxlab.study._cli import _quiet_optuna, interrupted
    from auxlab.study._errors import StudyError
    from auxlab.study._storage import StorageError

    cfg = DemoConfig.quick() if args.quick else DemoConfig()
    cfg.threads = args.threads
    if args.weights is not None:
        cfg.weights = args.weights
    if args.seeds is not None:
        cfg.seeds = tuple(range(args.seeds))
    if args.epochs is not None:
        cfg.epochs = args.epochs
    runs = str(Path(args.out) / RUNS_FILE)
    try:
        _quiet_optuna()
        result = run_demo(args.out, cfg, progress=not args.no_progress, overwrite=args.overwrite)
    except MissingDependencyError as exc:
        print(f"auxlab demo: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, OutputError, StorageError) as exc:
        print(f"auxlab demo: {exc}", file=sys.stderr)
        return 2
    except StudyError as exc:
        print(
            f"auxlab demo: {exc} (the runs in {runs} are of a demo with other settings: pass "
            "--overwrite to start over, or choose another --out)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return interrupted("auxlab demo", runs if Path(runs).exists() else None)
    print(result["recommendation"])
    print(f"\nReport: {result['report']} ({result['seconds']:.0f} s)")
    from auxlab.study._cli import outcome

    return outcome(result["study"], "auxlab demo")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``auxlab`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in _THREADS_FROM_ARGS:
        announce_threads(args.threads)
    from auxlab._optional import MissingDependencyError

    try:
        return _dispatch(parser, args)
    except MissingDependencyError as exc:  # the hint, without a traceback around it
        print(f"auxlab {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # demo and study say what they kept; the others end here
        print(f"auxlab {args.command}: interrupted", file=sys.stderr)
        return 130


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "strategies":
        from auxlab.weighting._cli import run as run_strategies

        return run_strategies(args)
    if args.command == "online":
        from auxlab.online._cli import run as run_online

        return run_online(args)
    if args.command == "rl":
        from auxlab.rl._cli import run as run_rl

        return run_rl(args)
    if args.command == "study":
        from auxlab.study._cli import run as run_study

        return run_study(args)
    if args.command == "demo":
        return _run_demo(args)
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
