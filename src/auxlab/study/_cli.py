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

``--out`` is checked before any run (a file, a path under a file, a folder that cannot be
written, or one that holds results without ``--overwrite``: exit code 2), and the outputs
replace it whole, in one rename. Exit codes: 0 every run finished; 1 some run failed (its
reason is printed; the same command runs it again) or is still running elsewhere after
``--wait`` seconds (the results are marked partial); 2 bad input; 130 Ctrl-C (one line: what
was kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from auxlab._argtypes import finite_nonneg, positive_int

__all__ = ["add_parser", "run", "run_worker", "write_outputs"]


def nonneg_seconds(text: str) -> float:
    """A duration in seconds: a finite number >= 0, or an ``argparse`` error naming it."""
    try:
        return finite_nonneg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None


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
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results already in --out (default: refuse to touch them)",
    )
    p.add_argument(
        "--wait",
        type=nonneg_seconds,
        default=600.0,
        help="seconds to wait for runs other processes are still running before writing the "
        "results (default %(default)g); what is unfinished then is marked partial",
    )
    p.add_argument("--quiet", action="store_true", help="no line per finished run")
    return p


def _quiet_optuna() -> None:
    from auxlab._optional import require

    optuna = require("optuna", extra="study", feature="auxlab studies")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def write_outputs(
    study: Any, out: Path, report: bool = True, keep: tuple[str, ...] = ()
) -> tuple[str, dict[str, Path]]:
    """Write ``results.csv``, ``recommendation.txt`` and (``report``) ``report.html`` into ``out``.

    They are written into a new folder beside ``out`` that then replaces it in one rename:
    an interrupt leaves the old outputs or the new ones, never a mix, and no file of an
    earlier run stays beside the new ones (except those named in ``keep``, such as a storage
    file inside ``out``). Runs still unfinished in other processes are marked: the text
    starts with ``PARTIAL`` and ``results.csv`` lists them with their state.

    Returns:
        The recommendation's text (or why there is none) and ``{"results": path,
        "recommendation": path, "report": path}`` (``report`` only if written).
    """
    from auxlab._outdir import replace_dir, temp_dir_beside

    out = Path(out)
    records = study.records()
    tmp = temp_dir_beside(out)
    try:
        records.to_csv(tmp / "results.csv")
        try:
            text = str(records.recommend())
        except ValueError as exc:  # no run completed: the table and the report show the errors
            text = f"No recommendation: {exc}"
        if records.unfinished:
            total = len(records.rows) + len(records.unfinished)
            text = (
                f"PARTIAL: {len(records.unfinished)} of {total} runs were not finished when "
                "these results were written (results.csv lists them); run the same command "
                "again once they are, to write the whole results.\n" + text
            )
        (tmp / "recommendation.txt").write_text(text + "\n", encoding="utf-8")
        if report:
            study.report(tmp)
        replace_dir(tmp, out, keep=keep)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    paths = {"results": out / "results.csv", "recommendation": out / "recommendation.txt"}
    if report:
        paths["report"] = out / "report.html"
    return text, paths


def outcome(study: Any, command: str) -> int:
    """Say on stderr which runs failed or are unfinished; the exit code (0 all done, else 1)."""
    failed = study.failed()
    unfinished = study.unfinished()
    code = 0
    if failed:
        first = failed[0]
        print(
            f"{command}: {len(failed)} run(s) failed (first: {first['label']}, seed "
            f"{first['seed']}: {first['error']}). Fix the cause and run the same command again: "
            "the failed runs run again, the finished ones are kept (with a file --storage).",
            file=sys.stderr,
        )
        code = 1
    if unfinished:
        running = sum(r["state"] == "RUNNING" for r in unfinished)
        why = (
            f"{running} still running in other processes, {len(unfinished) - running} waiting "
            "(the study's max_trials or timeout ended this process's share)"
        )
        print(
            f"{command}: {len(unfinished)} run(s) unfinished ({why}); the results are partial "
            "(marked so in recommendation.txt and results.csv)",
            file=sys.stderr,
        )
        code = 1
    return code


def interrupted(command: str, storage: str | None, finished: int | None = None) -> int:
    """Say in one line what a Ctrl-C kept; exit code 130."""
    from auxlab.study._storage import describe

    if storage in (None, ":memory:"):
        kept = "the finished runs were in memory and are lost (give --storage FILE to keep them)"
    else:
        n = "the" if finished is None else f"{finished}"
        kept = (
            f"{n} finished runs are kept in {describe(storage)}; run the same command again "
            "to resume"
        )
    print(f"{command}: interrupted; {kept}", file=sys.stderr)
    return 130


def _finished_runs(study: Any) -> int | None:
    try:
        return len([r for r in study.records().rows if r["state"] != "FAIL"])
    except Exception:  # the storage may be mid-write; the count is only for the message
        return None


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
    except KeyboardInterrupt:
        if announce:  # a worker started by `auxlab study` leaves the message to it
            return interrupted("auxlab study worker", storage)
        return 130
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
    from auxlab._outdir import OutputError, check_out_dir

    study = None
    storage: str | None = args.storage
    try:
        _quiet_optuna()
        config = load_config(args.config)
        if args.name is not None:
            config.name = args.name
        if args.threads:
            config.threads = args.threads
        config.check()
        if isinstance(config.builder, str):  # an unimportable builder fails every run: say so now
            from auxlab.study._problem import resolve_builder

            resolve_builder(config.builder, config.base_dir)
        storage = args.storage or config.storage
        out = Path(args.out or f"study-{config.name}")
        keep = _kept_in(out, storage)
        check_out_dir(out, overwrite=args.overwrite, keep=keep)  # before any run
        choice = resolve_threads(config.threads)
        print(choice.line, flush=True)
        study = Study(config=config, storage=args.storage, progress=not args.quiet)
        study.run(workers=args.workers, threads=choice.threads, wait=args.wait)
        text, paths = write_outputs(study, out, report=not args.no_report, keep=keep)
        print(text)
        print(f"results: {paths['results']}")
        if "report" in paths:
            print(f"report: {paths['report']}")
        return outcome(study, "auxlab study")
    except OutputError as exc:
        print(f"auxlab study: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, StorageError, StudyError, MissingDependencyError) as exc:
        print(f"auxlab study: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted(
            "auxlab study", storage, None if study is None else _finished_runs(study)
        )


def _kept_in(out: Path, storage: str | None) -> tuple[str, ...]:
    """The storage file's name when it lies inside ``out`` (it is kept, not replaced)."""
    from auxlab.study._storage import storage_url

    if storage is None or storage == ":memory:":
        return ()
    url = storage_url(storage)
    path = Path(url.split(":///", 1)[1]) if url and url.startswith("sqlite:///") else None
    if url is None:
        path = Path(storage)
    if path is None:
        return ()
    if path.resolve().parent == out.resolve():
        return (path.name, path.name + ".lock", path.name + "-journal")
    return ()


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
