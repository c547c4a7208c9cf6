"""Which method should ``auxlab tune`` use by default? Its methods on cases with a known answer.

Reproduce (the tables in ``docs/tune.md``, which gives the commands of each part)::

    python benchmarks/tune_methods.py --seeds 5 --first-seed 105 --methods halving \
        lookahead-val --options '{"halving": {"weights": [0, 3]}}' --json part1.json
    python benchmarks/tune_methods.py --table part1.json part2.json ...   # one table
    python benchmarks/tune_methods.py --quick --json /tmp/tune_methods.json   # ~2 minutes

Per case of ``auxlab.cases`` (its epoch budget, one torch thread) and seed: one
``auxlab.tune`` call with the first method (its learning run and its weight-0 run, same
seed), then the learning run of every other method (``learn_weights``), each compared with
that weight-0 run on the test split. A seed fixes the initialisation and the data order, so
the differences are paired by seed. The cost is a learning run's wall time as a multiple of
the weight-0 run's (same process, in turn; the machine may be shared: a ratio, not seconds).

Records (``--json``, one per learning run): ``case``, ``verdict`` (the case's oracle
verdict), ``method``, ``seed``, ``weight`` (the learned auxiliary weight, as a fixed
weight), ``test_metric``, ``test_metric_zero``, ``diff_vs_zero``, ``val_diff_vs_zero``,
``seconds``, ``seconds_zero``, ``runs`` (the cost, in fixed-weight runs), and for
``halving`` its ``rounds`` (each arm's best validation metric at each milestone, the kept
weights). ``fashion_reconstruct`` is built from its builder and arguments while
``auxlab.cases`` does not list it yet.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import auxlab
from auxlab._tune import METHODS, learn_weights
from auxlab.cases import CASES, Case

DEFAULT_CASES = (
    "digits_semi",
    "digits_reconstruct",
    "fashion_reconstruct",
    "digits_distractor",
    "digits_random",
)

#: The oracle's best mean paired test gain over weight 0 where the auxiliary loss helps
#: (docs/advisor.md, benchmarks/results/oracle.json: weights 0 ... 10, 10 seeds for the
#: digits cases, 5 for fashion_reconstruct); the table gives each method's share of it.
ORACLE_GAIN = {
    "digits_semi": (3.0, 0.0205),
    "digits_reconstruct": (10.0, 0.0185),
    "fashion_reconstruct": (1.0, 0.0388),
}


def get(name: str) -> Case:
    return CASES[name]


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval (``nan`` ends with fewer than 2 values)."""
    from auxlab._tune import paired_comparison

    _, mean, low, high = paired_comparison([0.0] * len(values), list(values))
    return mean, low, high


def run_case(
    name: str,
    methods: Sequence[str],
    seeds: Sequence[int],
    div: int,
    start: float | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    case = get(name)
    target: Any = case.ref if name in CASES else case.builder
    args = dict(case.args)
    epochs = max(case.epochs // div, 5)
    monitor = f"val_main_{case.metric}"
    start_opts = {} if start is None else {"weights": start}  # the strategies' initial weight
    opts = {m: {**start_opts, **(options or {}).get(m, {})} for m in methods}
    labels = {}
    for m in methods:
        parts = [] if start is None else [f"from {start:g}"]
        own = (options or {}).get(m, {})
        parts += [f"{k}={json.dumps(v).replace(' ', '')}" for k, v in own.items()]
        labels[m] = f"{m} ({', '.join(parts)})" if parts else m
    out: list[dict[str, Any]] = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = auxlab.tune(
                target,
                builder_args=args,
                seed=seed,
                epochs=epochs,
                method=methods[0],
                monitor=monitor,
                threads=1,
                options=opts[methods[0]],
            )
            runs = [(methods[0], r.aux_weights, r.test_metric, r.val_metric, r.seconds, r.details)]
            for m in methods[1:]:
                got = learn_weights(
                    target,
                    builder_args=args,
                    seed=seed,
                    epochs=epochs,
                    method=m,
                    monitor=monitor,
                    options=opts[m],
                )
                aux = {t: w for t, w in got["weights"].items() if t != "main"}
                runs.append(
                    (m, aux, got["test_metric"], got["val_metric"], got["seconds"], got["details"])
                )
        assert r.test_metric_zero is not None
        for m, aux, test, val, seconds, details in runs:
            assert test is not None
            extra = {"rounds": details["rounds"]} if "rounds" in details else {}
            out.append(
                {
                    "case": name,
                    "verdict": case.expected,
                    "epochs": epochs,
                    "method": labels[m],
                    "seed": seed,
                    "weight": float(next(iter(aux.values()))),
                    "test_metric": test,
                    "test_metric_zero": r.test_metric_zero,
                    "diff_vs_zero": test - r.test_metric_zero,
                    "val_diff_vs_zero": val - r.val_metric_zero,
                    "seconds": seconds,
                    "seconds_zero": r.seconds_zero,
                    "runs": seconds / r.seconds_zero,
                    **extra,
                }
            )
        print(f"[tune_methods] {name} seed {seed} done", file=sys.stderr, flush=True)
    return out


def table(records: Sequence[dict[str, Any]]) -> str:
    """A markdown table: per case and method, weight, paired test gain, cost."""
    lines = [
        "| case (oracle) | method | learned weight per seed | test gain vs weight 0, 95 % t "
        "| % of oracle gain | cost |",
        "|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["case"], r["method"]) for r in records)
    for case, method in keys:
        rows = [r for r in records if r["case"] == case and r["method"] == method]
        mean, low, high = interval([r["diff_vs_zero"] for r in rows])
        ci = f"[{low:+.4f}, {high:+.4f}]" if not math.isnan(low) else ""
        cost = sum(r["runs"] for r in rows) / len(rows)
        weights = ", ".join(f"{r['weight']:.2f}" for r in rows)
        share = f"{100 * mean / ORACLE_GAIN[case][1]:.0f} %" if case in ORACLE_GAIN else "-"
        lines.append(
            f"| {case} ({rows[0]['verdict']}) | {method} | {weights} | {mean:+.4f} {ci} | "
            f"{share} | {cost:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--quick", action="store_true", help="one case, 2 seeds, 1/5 epochs")
    parser.add_argument("--cases", nargs="*", default=None, help=f"default: {DEFAULT_CASES}")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="tune's methods")
    parser.add_argument("--seeds", type=int, default=3, help="seeds FIRST..FIRST+N-1")
    parser.add_argument("--first-seed", type=int, default=100, help="the first seed")
    parser.add_argument(
        "--start",
        type=float,
        help="the learned weight's start (default: tune's, 0); strategy methods only",
    )
    parser.add_argument(
        "--options",
        type=json.loads,
        help='options per method, JSON: \'{"halving": {"weights": [0, 3]}}\'',
    )
    parser.add_argument(
        "--table", type=Path, nargs="+", help="only print the table of these records (files)"
    )
    a = parser.parse_args(argv)
    if a.table:
        print(table([r for f in a.table for r in json.loads(f.read_text())]))
        return 0
    torch.set_num_threads(1)
    names = a.cases or (["digits_semi"] if a.quick else list(DEFAULT_CASES))
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; the cases are {list(CASES)}")
    seeds = list(range(a.first_seed, a.first_seed + (2 if a.quick else a.seeds)))
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in names:
        records += run_case(name, a.methods, seeds, 5 if a.quick else 1, a.start, a.options)
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(records, indent=1) + "\n")
    print(table(records))
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
