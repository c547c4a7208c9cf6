"""The ``auxlab`` command: one entry point with subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from auxlab import __version__
from auxlab._argtypes import positive_int
from auxlab._threads import announce_threads

__all__ = ["add_threads_argument", "announce_threads", "main"]

#: Commands whose thread choice is known from their command line alone; ``main`` sets and
#: prints it (:func:`auxlab._threads.announce_threads`) before running them. ``auxlab
#: online``, ``auxlab study`` and ``auxlab tune`` (whose TOML may set ``threads``) do it in
#: their own ``run``.
_THREADS_FROM_ARGS = ("demo", "rl")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (torch's intra-op threads) to a training command's parser."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch's intra-op threads (default: OMP_NUM_THREADS if set, else 1)",
    )


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


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
        "--no-tune",
        action="store_true",
        help="skip the one-run `auxlab tune` shown beside the grid",
    )
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
    _add_tune_parser(sub)
    add_online_parser(sub)
    add_rl_parser(sub)
    return parser


def _add_tune_parser(sub: Any) -> None:
    from auxlab._tune import DEFAULT_METHOD, METHODS

    tune = sub.add_parser(
        "tune",
        help="learn the auxiliary weight in about two runs' time, beside weight 0",
        description=(
            "Learn the auxiliary weights of a builder's problem (module:function) or a study "
            "TOML within about two runs' time (the default races weight 0 against weight 3; "
            "--method lookahead-val learns it in one run), train weight 0 with the same seed "
            "beside it, and print the "
            "learned weight as a fixed weight and as a RelativeWeights share, its trajectory "
            "and the validation metric of both runs. --verify N trains N fresh seeds at "
            "weight 0 and at the learned weight held fixed and compares them seed by seed. "
            "See docs/tune.md."
        ),
    )
    tune.add_argument("target", metavar="BUILDER_OR_TOML", help="module:function, or a TOML")
    tune.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        help=f"how the weights are learned: {', '.join(METHODS)} (default: %(default)s)",
    )
    tune.add_argument("--seed", type=_nonneg_int, default=0, help="seed (default: %(default)s)")
    tune.add_argument(
        "--epochs",
        type=positive_int,
        help="epochs (default: the TOML's; a case of auxlab.cases: its budget; else 5)",
    )
    tune.add_argument(
        "--verify",
        type=_nonneg_int,
        default=0,
        metavar="N",
        help="train N fresh seeds at weight 0 and at the learned weight, fixed; compare them",
    )
    tune.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a builder argument, e.g. --set n=512 (repeatable; values read as TOML, else text)",
    )
    tune.add_argument("--json", type=Path, help="write one flat record per run here")
    tune.add_argument("--out", type=Path, help="also write summary.txt and tune.json here")
    tune.add_argument("--quiet", action="store_true", help="no line per run on stderr")
    add_threads_argument(tune)


def _builder_args(items: Sequence[str]) -> dict[str, Any]:
    """``["n=512", "name=x"]`` -> ``{"n": 512, "name": "x"}``; values are read as TOML."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--set expects KEY=VALUE with KEY a Python name, got {item!r}")
        text = text.strip()
        if text.lower() == "none":
            out[key] = None
            continue
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def _run_tune(args: argparse.Namespace) -> int:
    import json

    from auxlab._outdir import OutputError, check_out_file
    from auxlab._tune import TuneError, _check_method, tune
    from auxlab.study import ConfigError

    try:
        _check_method(args.method)  # before the first line: a typo is found at once
        builder_args = _builder_args(args.set)
        threads = args.threads
        is_toml = args.target.endswith(".toml") or Path(args.target).is_file()
        if is_toml and not Path(args.target).is_file():
            raise TuneError(f"the study TOML {args.target} does not exist (or is not a file)")
        if threads is None and is_toml:
            from auxlab.study import load_config

            threads = load_config(args.target).threads
        if args.json:
            check_out_file(args.json, "--json")
        if args.out:
            check_out_file(args.out / "tune.json", "--out")
    except (TuneError, ConfigError, OutputError, ValueError) as exc:
        print(f"auxlab tune: {exc}", file=sys.stderr)
        return 2
    announce_threads(threads)
    try:
        result = tune(
            args.target,
            seed=args.seed,
            builder_args=builder_args,
            epochs=args.epochs,
            method=args.method,
            verify=args.verify,
            threads=threads,
            progress=not args.quiet,
        )
    except (TuneError, ConfigError) as exc:
        print(f"auxlab tune: {exc}", file=sys.stderr)
        return 2
    text = result.summary()
    print(text)
    records = json.dumps(result.records(), indent=1)
    if args.json:
        args.json.write_text(records)
    if args.out:
        (args.out / "summary.txt").write_text(text + "\n")
        (args.out / "tune.json").write_text(records)
    return 0


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
    if args.no_tune:
        cfg.tune = None
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
    if result.get("tune"):
        print("\n" + result["tune"])
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
    if args.command == "tune":
        return _run_tune(args)
    parser.error(f"unknown command {args.command!r}")
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
