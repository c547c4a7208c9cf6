"""``auxlab study``: run a study from a TOML file, or join one as a worker.

::

    auxlab study CONFIG.toml [--storage FILE_OR_URL] [--workers N] [--out DIR]
    auxlab study worker --storage URL [--name NAME]

Both print torch's thread count first (``--threads N``, else the config's ``threads``, else
``OMP_NUM_THREADS``, else 1); worker processes started by ``--workers`` use the same count.
The first form creates (or resumes) the study, runs it, and writes ``results.csv``,
``report.html`` and the recommendation into ``--out``. The second joins a study that exists
in the storage, with the configuration stored there: start it on as many machines as you
like against one PostgreSQL URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from auxlab._argtypes import positive_int

__all__ = ["add_parser", "run", "run_worker", "write_outputs"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``study`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "study",
        help="sweep auxiliary weights and strategies over seeds; report and recommend",
        description=(
            "Run a study from CONFIG.toml (or join one: `auxlab study worker --storage URL`). "
            "Writes results.csv, report.html and recommendation.txt into --out. Needs the "
            "'study' extra: pip install 'auxlab[study]'."
        ),
    )
    p.add_argument("config", metavar="CONFIG", help="a study TOML file, or 'worker'")
    p.add_argument(
        "--storage",
        help="where trials live: a file (.db/.sqlite: SQLite; else an Optuna journal), or a URL "
        "(sqlite:///..., postgresql://...). Default: the config's, else memory",
    )
    p.add_argument("--workers", type=positive_int, help="worker processes (file or URL storage)")
    p.add_argument("--name", help="the study's name (default: the config's)")
    p.add_argument("--out", help="output folder (default: study-<name>)")
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch's intra-op threads, in this process and each worker (default: the config's "
        "threads, else OMP_NUM_THREADS, else 1)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--quiet", action="store_true", help="no line per finished run")
    return p


def _quiet_optuna() -> None:
    from auxlab._optional import require

    optuna = require("optuna", extra="study", feature="auxlab studies")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def write_outputs(study: Any, out: Path, report: bool = True) -> tuple[str, dict[str, Path]]:
    """Write ``results.csv``, ``recommendation.txt`` and (``report``) ``report.html`` into ``out``.

    Returns:
        The recommendation's text (or why there is none) and ``{"results": path,
        "recommendation": path, "report": path}`` (``report`` only if written).
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": study.to_csv(out / "results.csv")}
    try:
        text = str(study.recommend())
    except ValueError as exc:  # no run completed: the table and the report show the errors
        text = f"No recommendation: {exc}"
    paths["recommendation"] = out / "recommendation.txt"
    paths["recommendation"].write_text(text + "\n", encoding="utf-8")
    if report:
        paths["report"] = study.report(out)
    return text, paths


def run_worker(
    storage: str,
    name: str | None,
    threads: int | None = None,
    progress: bool = True,
    announce: bool = True,
) -> int:
    """Join the study in ``storage`` and run runs until none is left; the exit code.

    Args:
        storage: The study's storage.
        name: The study's name (needed when the storage holds several).
        threads: torch's intra-op threads (default: the stored config's, else
            ``OMP_NUM_THREADS``, else 1).
        progress: Print one line per finished run to stderr.
        announce: Print the thread count as the first line of output.
    """
    from auxlab._optional import MissingDependencyError
    from auxlab._threads import configure_threads
    from auxlab.study._config import ConfigError
    from auxlab.study._errors import StudyError
    from auxlab.study._storage import StorageError
    from auxlab.study._study import Study

    try:
        _quiet_optuna()
        study = Study.load(storage, name, progress=progress)
        choice = configure_threads(threads if threads is not None else study.config.threads)
        if announce:
            print(choice.line, flush=True)
        study.work()
    except (ConfigError, StorageError, StudyError, MissingDependencyError) as exc:
        print(f"auxlab study worker: {exc}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``auxlab study`` with parsed arguments; returns the exit code."""
    from auxlab._optional import MissingDependencyError
    from auxlab._threads import resolve_threads
    from auxlab.study._config import ConfigError, load_config
    from auxlab.study._errors import StudyError
    from auxlab.study._storage import StorageError
    from auxlab.study._study import Study

    if args.config == "worker":
        if not args.storage:
            print("auxlab study worker: give --storage FILE_OR_URL", file=sys.stderr)
            return 2
        return run_worker(args.storage, args.name, args.threads, progress=not args.quiet)
    try:
        _quiet_optuna()
        config = load_config(args.config)
        if args.name:
            config.name = args.name
        if args.threads:
            config.threads = args.threads
        choice = resolve_threads(config.threads)
        print(choice.line, flush=True)
        study = Study(config=config, storage=args.storage, progress=not args.quiet)
        study.run(workers=args.workers, threads=choice.threads)
        out = Path(args.out or f"study-{config.name}")
        text, paths = write_outputs(study, out, report=not args.no_report)
        print(text)
        print(f"results: {paths['results']}")
        if "report" in paths:
            print(f"report: {paths['report']}")
    except (ConfigError, StorageError, StudyError, MissingDependencyError) as exc:
        print(f"auxlab study: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m auxlab.study._cli``), until ``cli.py`` wires it."""
    parser = argparse.ArgumentParser(prog="auxlab")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    if args.command != "study":
        parser.print_help()
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
