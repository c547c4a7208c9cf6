"""Wall time of ``auxlab demo`` with auxlab's default threads and with torch's (one per core).

Each run is a fresh ``auxlab demo`` subprocess (``python -m auxlab.cli demo --no-progress``,
its outputs in a temporary folder), timed from start to exit, so the time includes
importing torch and loading the tweets, as a user's run does. Two settings:

* ``auxlab``: no ``--threads`` and no ``OMP_NUM_THREADS``, so auxlab's default applies
  (:mod:`auxlab._threads`);
* ``per-core``: ``--threads N`` with N the number of cores this process may use, which is
  torch's own default.

The settings alternate (the one that goes first switches every repeat), so a change of load
on a shared machine hits both. Each record holds the 1-minute load average read just before
its run. The summary gives the minimum and the median seconds per setting and their ratios
(per-core / auxlab); the minimum is the least disturbed by other jobs.

Reproduce::

    python benchmarks/demo_time.py --json demo_time.json                  # ~20 min on 2 cores
    python benchmarks/demo_time.py --quick --json /tmp/demo_time.json     # demo --quick, ~2 min
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cores() -> int:
    """The cores this process may run on (what torch's default thread count follows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_demo(threads: int | None, quick: bool) -> dict[str, Any]:
    """Run ``auxlab demo`` once in a subprocess; return its seconds and its thread line."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    with tempfile.TemporaryDirectory(prefix="auxlab-demo-time-") as out:
        cmd = [sys.executable, "-m", "auxlab.cli", "demo", "--no-progress", "--out", out]
        if quick:
            cmd.append("--quick")
        if threads is not None:
            cmd += ["--threads", str(threads)]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"`{' '.join(cmd)}` failed with exit code {done.returncode}:\n{done.stderr[-2000:]}"
        )
    first = done.stdout.splitlines()[0] if done.stdout else ""
    if not first.startswith("torch threads: "):
        raise SystemExit(f"expected the thread line first, got {first!r}")
    shown = ["auxlab", "demo"] + (["--quick"] if quick else [])
    shown += ["--threads", str(threads)] if threads is not None else []
    return {
        "command": " ".join(shown),
        "threads": int(first.split()[2]),
        "threads_source": "argument" if threads is not None else "default",
        "threads_line": first,
        "seconds": seconds,
        "load_average": load,
    }


def summarize(records: list[dict[str, Any]]) -> list[str]:
    """Lines with the min and median seconds per setting and the per-core / auxlab ratios."""
    lines = []
    stats: dict[str, tuple[float, float]] = {}
    for setting in ("auxlab", "per-core"):
        secs = [r["seconds"] for r in records if r["setting"] == setting]
        if not secs:
            continue
        threads = next(r["threads"] for r in records if r["setting"] == setting)
        stats[setting] = (min(secs), statistics.median(secs))
        loads = [r["load_average"] for r in records if r["setting"] == setting]
        lines.append(
            f"{setting:>8} ({threads} thread(s)): min {min(secs):7.1f} s  median "
            f"{statistics.median(secs):7.1f} s  over {len(secs)} runs  (load {min(loads):.1f}"
            f"-{max(loads):.1f})"
        )
    if len(stats) == 2:
        (a_min, a_med), (c_min, c_med) = stats["auxlab"], stats["per-core"]
        lines.append(
            f"per-core / auxlab: min {c_min / a_min:.2f}x  median {c_med / a_med:.2f}x "
            "(above 1: auxlab's default is faster)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the records here")
    parser.add_argument("--quick", action="store_true", help="time `auxlab demo --quick`")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (>= 3)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error(f"--repeats must be >= 3 (min and median need a few runs), got {args.repeats}")
    n = cores()
    settings = [("auxlab", None), ("per-core", n)]
    common = {
        "benchmark": "demo_time",
        "quick": args.quick,
        "cores": n,
        "python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "machine": platform.machine(),
    }
    records: list[dict[str, Any]] = []
    print(f"auxlab demo{' --quick' if args.quick else ''}: {args.repeats} repeats x 2 settings, "
          f"{n} core(s)", flush=True)  # fmt: skip
    for repeat in range(args.repeats):
        order = settings if repeat % 2 == 0 else settings[::-1]
        for setting, threads in order:
            rec = {**common, "setting": setting, "repeat": repeat, **run_demo(threads, args.quick)}
            records.append(rec)
            print(
                f"repeat {repeat} {setting:>8}: {rec['seconds']:7.1f} s  "
                f"({rec['threads']} thread(s), load {rec['load_average']:.1f})",
                flush=True,
            )
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(records, indent=1))  # partial results survive
    print("\n".join(summarize(records)))


if __name__ == "__main__":
    main()
