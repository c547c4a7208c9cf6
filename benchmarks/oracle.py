"""The oracle of every case in ``auxlab.cases``: what each auxiliary weight does, on test.

Reproduce (the table in docs/advisor.md)::

    python benchmarks/oracle.py --json benchmarks/results/oracle.json          # 10 seeds
    python benchmarks/oracle.py --quick --json /tmp/oracle.json                # ~1 minute

Each case is run by the library's own :class:`auxlab.study.Study` (fixed weights 0, 0.03,
0.1, 0.3, 1, 3, 10; seeds 0..9; the case's epoch budget; one torch thread), so what is
measured is what a user's study runs: the model of the best validation epoch, scored once
on the test part. The split is the same for every seed (``auxlab.cases.SPLIT_SEED``); a seed
fixes the initialisation and the batch order. For each weight the paired difference against
weight 0 on test, seed by seed, gets a 95 % t-interval (``scipy.stats.t``).

Verdict: ``helps`` when some weight beats weight 0 with a Holm-adjusted p-value (paired
t-test, over the 6 weights compared with 0) below 0.05; otherwise ``hurts`` when some weight
up to 1 is worse so; otherwise ``neutral`` (large weights may still hurt: the table shows
them).

Records (``--json``, a list): ``record = "run"`` (``case``, ``method = "oracle"``, ``seed``,
``weight``, ``val_metric``, ``test_metric``, ``diff_vs_zero``, ``seconds``, ``runs``) and
``record = "summary"`` (per case and weight: ``mean_diff``, ``ci_low``, ``ci_high``,
``n_seeds``; per case: ``best_weight``, ``verdict``, ``command``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from auxlab.cases import CASES, Case
from auxlab.study import Study
from auxlab.study._stats import mean_interval

WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SEEDS = tuple(range(10))
#: Smaller problems for ``--quick`` (builder arguments per case; the epochs are cut too).
QUICK_ARGS: dict[str, dict[str, Any]] = {
    "digits_semi": {"n_unlabelled": 300},
    "fashion_reconstruct": {"n_test": 500},
    "fashion_rotation": {"n_unlabelled": 500, "n_test": 1000},
}


def finite(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with NaN written as ``None`` (``null``: strict JSON)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return [{k: clean(v) for k, v in r.items()} for r in records]


def interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the t-interval of the mean of paired differences."""
    return mean_interval(diffs, level)


def grid_runs(
    case: Case,
    weights: Sequence[float],
    seeds: Sequence[int],
    epochs: int,
    args: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], Study]:
    """Run ``case`` at fixed ``weights`` x ``seeds`` with a :class:`Study`; its run rows.

    Returns rows ``{seed, weight, val_metric, test_metric, seconds}`` and the study.
    """
    study = Study(
        case.ref,
        [{"kind": "fixed", "weights": list(weights)}],
        seeds=list(seeds),
        epochs=epochs,
        metric=case.metric,
        builder_args=dict(args or {}),
        threads=1,
        name=f"{case.name}-{int(time.time() * 1e6)}",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.run()
    rows = []
    for r in study.results():
        if r["state"] != "COMPLETE":
            raise RuntimeError(f"{case.name}: a run did not complete: {r.get('error')}")
        rows.append(
            {
                "seed": int(r["seed"]),
                "weight": float(r["weight"]),
                "val_metric": float(r["value"]),
                "test_metric": float(r["test"]),
                "seconds": float(r["seconds"]),
            }
        )
    return rows, study


def paired_vs(
    rows: Sequence[Mapping[str, Any]], base_weight: float = 0.0
) -> dict[tuple[int, float], float]:
    """``{(seed, weight): test_metric - test_metric at base_weight, same seed}``."""
    base = {r["seed"]: r["test_metric"] for r in rows if r["weight"] == base_weight}
    return {
        (r["seed"], r["weight"]): r["test_metric"] - base[r["seed"]]
        for r in rows
        if r["seed"] in base
    }


def holm_p(diffs: Mapping[float, Sequence[float]]) -> dict[float, float]:
    """Holm-adjusted two-sided p-values of paired t-tests (``{weight: differences}``)."""
    raw = {w: float(stats.ttest_1samp(d, 0.0).pvalue) for w, d in diffs.items()}
    order = sorted(raw, key=lambda w: raw[w])
    out, running = {}, 0.0
    for i, w in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * raw[w]))
        out[w] = running
    return out


def verdict(diffs: Mapping[float, Sequence[float]], alpha: float = 0.05) -> str:
    """``helps`` / ``hurts`` / ``neutral``: ``{weight: paired differences vs weight 0}``.

    ``helps``: some weight is better than weight 0 with a Holm-adjusted p-value (over the
    weights compared) below ``alpha``; else ``hurts``: some weight up to 1 is worse so;
    else ``neutral``.
    """
    p = holm_p({w: d for w, d in diffs.items() if w != 0})
    mean = {w: float(np.mean(d)) for w, d in diffs.items()}
    if any(mean[w] > 0 and p[w] < alpha for w in p):
        return "helps"
    if any(mean[w] < 0 and p[w] < alpha and w <= 1 for w in p):
        return "hurts"
    return "neutral"


def oracle_case(
    case: Case, seeds: Sequence[int], epochs: int, args: Mapping[str, Any], command: str
) -> list[dict[str, Any]]:
    """The run and summary records of one case."""
    rows, _ = grid_runs(case, WEIGHTS, seeds, epochs, args)
    diffs = paired_vs(rows)
    out: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: (r["weight"], r["seed"])):
        out.append(
            {
                "record": "run",
                "case": case.name,
                "method": "oracle",
                **r,
                "diff_vs_zero": diffs[(r["seed"], r["weight"])],
                "runs": 1,
                "epochs": epochs,
            }
        )
    return out + summaries(case, out, epochs, command)


def summaries(
    case: Case, runs: Sequence[Mapping[str, Any]], epochs: int, command: str
) -> list[dict[str, Any]]:
    """The summary records of one case from its run records."""
    rows = [r for r in runs if r["record"] == "run" and r["case"] == case.name]
    by_w = {w: [r["diff_vs_zero"] for r in rows if r["weight"] == w] for w in WEIGHTS}
    summary = {w: interval(d) for w, d in by_w.items()}
    p = holm_p({w: d for w, d in by_w.items() if w != 0})
    best = max(WEIGHTS, key=lambda w: (summary[w][0], -w))
    said = verdict(by_w)
    out: list[dict[str, Any]] = []
    for w in WEIGHTS:
        mean, lo, hi = summary[w]
        test = [r["test_metric"] for r in rows if r["weight"] == w]
        out.append(
            {
                "record": "summary",
                "case": case.name,
                "method": "oracle",
                "weight": w,
                "test_mean": float(np.mean(test)),
                "mean_diff": mean,
                "ci_low": lo,
                "ci_high": hi,
                "p_holm": p.get(w, math.nan),
                "n_seeds": len(test),
                "best_weight": best,
                "verdict": said,
                "expected": case.expected,
                "metric": case.metric,
                "epochs": epochs,
                "seconds_per_run": float(np.mean([r["seconds"] for r in rows if r["weight"] == w])),
                "command": command,
            }
        )
    return out


def print_table(records: Sequence[Mapping[str, Any]]) -> None:
    """One line per case: the paired gain of each weight against weight 0 on test."""
    cases = dict.fromkeys(r["case"] for r in records if r["record"] == "summary")
    for name in cases:
        rows = [r for r in records if r["record"] == "summary" and r["case"] == name]
        head = rows[0]
        print(
            f"{name} ({head['metric']}, {head['epochs']} epochs, {head['n_seeds']} seeds; "
            f"w=0 {rows[0]['test_mean']:.4f}): verdict {head['verdict']} "
            f"(registry: {head['expected']}), best w={head['best_weight']:g}"
        )
        for r in rows[1:]:
            print(
                f"    w={r['weight']:<5g} {r['mean_diff']:+.4f} "
                f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
            )


def markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The per-case oracle table of docs/advisor.md, from stored records."""
    head = "| case | metric, epochs, seeds | w=0 | " + " | ".join(f"w={w:g}" for w in WEIGHTS[1:])
    lines = [head + " | best | verdict |", "|" + "---|" * (len(WEIGHTS) + 4)]
    cases = dict.fromkeys(r["case"] for r in records if r["record"] == "summary")
    for name in cases:
        rows = {r["weight"]: r for r in records if r["record"] == "summary" and r["case"] == name}
        z = rows[0.0]
        cells = []
        for w in WEIGHTS[1:]:
            r = rows[w]
            mark = "**" if r["ci_low"] > 0 or r["ci_high"] < 0 else ""
            cells.append(
                f"{mark}{r['mean_diff']:+.4f}{mark} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
            )
        lines.append(
            f"| {name} | {z['metric']}, {z['epochs']}, {z['n_seeds']} | {z['test_mean']:.4f} | "
            + " | ".join(cells)
            + f" | {z['best_weight']:g} | {z['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--quick", action="store_true", help="small problems, 2 seeds")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0..N-1")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1 (to add seeds)"
    )
    parser.add_argument("--cases", nargs="*", default=None, help="some cases only")
    parser.add_argument(
        "--summarise", type=Path, help="print the markdown table of stored records; run nothing"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="join stored record files into --json, re-summarised; run nothing",
    )
    a = parser.parse_args(argv)
    if a.merge:
        runs = [r for f in a.merge for r in json.loads(f.read_text())]
        merged: list[dict[str, Any]] = []
        for name in dict.fromkeys(r["case"] for r in runs):
            said = next(r for r in runs if r["case"] == name and r["record"] == "summary")
            mine = [r for r in runs if r["case"] == name and r["record"] == "run"]
            merged += mine + summaries(CASES[name], mine, said["epochs"], said["command"])
        if a.json:
            a.json.write_text(json.dumps(finite(merged), indent=1) + "\n")
        print_table(merged)
        return 0
    if a.summarise:
        print(markdown(json.loads(a.summarise.read_text())))
        return 0
    torch.set_num_threads(1)
    names = a.cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; the cases are {list(CASES)}")
    seeds = list(range(a.first_seed, a.first_seed + (2 if a.quick else a.seeds)))
    command = "python benchmarks/oracle.py " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    records: list[dict[str, Any]] = []
    for name in names:
        case = CASES[name]
        epochs = max(case.epochs // 5, 5) if a.quick else case.epochs
        args = QUICK_ARGS.get(name, {}) if a.quick else {}
        started = time.perf_counter()
        records += oracle_case(case, seeds, epochs, args, command.strip())
        print(f"[oracle] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print_table([r for r in records if r["case"] == name])
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(finite(records), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
