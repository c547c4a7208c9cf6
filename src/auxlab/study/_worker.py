"""A study worker process: ``python -m auxlab.study._worker --storage URL [--name NAME]``.

Joins a study that exists in the storage, with the configuration stored there, and runs
runs from its queue until none is left. ``auxlab study worker`` and ``Study.run(workers=n)``
start it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from auxlab._argtypes import positive_int


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker; returns the exit code (0: done, 2: bad input)."""
    parser = argparse.ArgumentParser(prog="python -m auxlab.study._worker")
    parser.add_argument("--storage", required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--quiet", action="store_true", help="no line per finished run")
    parser.add_argument(
        "--no-thread-line",
        action="store_true",
        help="do not print the thread count (the study that starts workers prints it once)",
    )
    args = parser.parse_args(argv)
    from auxlab.study._cli import run_worker

    return run_worker(
        args.storage,
        args.name,
        args.threads,
        progress=not args.quiet,
        announce=not args.no_thread_line,
    )


if __name__ == "__main__":
    sys.exit(main())
