"""Worker processes on a study: started, waited for, and stopped cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

__all__ = ["spawn_workers"]


def spawn_workers(storage: str, name: str, n: int, threads: int, progress: bool) -> list[int]:
    """Start ``n`` ``auxlab.study._worker`` processes on a stored study; their exit codes.

    Each runs with ``threads`` torch threads and prints no thread line of its own (the command
    that started them did); ``progress=False`` makes them quiet.
    """
    cmd = [
        sys.executable,
        "-m",
        "auxlab.study._worker",
        "--storage",
        storage,
        "--name",
        name,
        "--threads",
        str(threads),
        "--no-thread-line",
    ]
    if not progress:
        cmd.append("--quiet")
    procs = [subprocess.Popen(cmd) for _ in range(n)]
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches the workers too; each puts its run back in the
        # queue and ends. Those it did not reach (a signal sent to this process only) get
        # it from here; any still running after 30 s (or a second Ctrl-C) are killed.
        deadline = time.monotonic() + 30
        try:
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2)
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            for p in procs:
                if p.poll() is None:
                    p.kill()
        raise
