"""Does the advisor find the right auxiliary weight? The cases with a known answer, measured.

Reproduce (the table in docs/advisor.md; it reads the oracle written by oracle.py)::

    python benchmarks/oracle.py --json benchmarks/results/oracle.json
    python benchmarks/advisor.py --json benchmarks/results/advisor.json
    python benchmarks/advisor.py --quick --json /tmp/advisor.json      # ~2 minutes

Per case of ``auxlab.cases`` (its epoch budget, one torch thread):

* ``oracle``: its best weight and the paired gain on test against weight 0, with the 95 %
  interval (from ``--oracle``: weights 0 ... 10 over seeds 0..9).
* ``grid``: the grid advisor, :class:`auxlab.study.Study` at weights 0, 0.03, 0.3, 3 (a
  decade log grid, inside the oracle's) over seeds 100..104, disjoint from the oracle's so
  the check is not circular; it chooses on validation (``Study.recommend``: paired by seed,
  Holm). Its pick is judged by the oracle's 10-seed paired gain at the weight it picked:
  within the oracle best's interval (goal) and not below weight 0 beyond noise. Its own
  test gain on its seeds is printed too.
* each method of ``auxlab.tune`` (``auxlab.tune.METHODS``): seeds 100..104, one call
  each; the learned weight, the paired test gain against the weight-0 run of the same call,
  and the cost, the call's learning run as a multiple of its weight-0 run's wall time.

Records (``--json``, a list, one per measurement): ``case``, ``method``, ``seed``,
``weight``, ``test_metric``, ``diff_vs_zero`` (test metric minus weight 0's, same seed),
``diff_vs_oracle`` (``diff_vs_zero`` minus the oracle best's mean gain), ``seconds``,
``runs`` (fixed-weight runs' worth of wall time: 1 for a grid run, the cost for a tune
call); ``record = "summary"`` rows hold the per-case verdicts printed.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import auxlab
from auxlab._tune import METHODS
from auxlab.cases import CASES, Case
from oracle import QUICK_ARGS, WEIGHTS, finite, grid_runs, interval, oracle_case, paired_vs

#: The grid advisor's weights: a decade log grid (``log_grid(0.03, 3, 3)``), 4 x 5 seeds.
GRID = (0.0, 0.03, 0.3, 3.0)
SEEDS = (100, 101, 102, 103, 104)
ORACLE = Path(__file__).resolve().parent / "results" / "oracle.json"


def oracle_summary(records: Sequence[Mapping[str, Any]], name: str) -> dict[float, dict[str, Any]]:
    """``{weight: summary record}`` of one case's oracle."""
    rows = {r["weight"]: dict(r) for r in records if r["record"] == "summary" and r["case"] == name}
    if not rows:
        raise SystemExit(f"the oracle has no case {name!r}: run benchmarks/oracle.py first")
    return rows


def grid_advisor(
    case: Case,
    oracle: Mapping[float, Mapping[str, Any]],
    seeds: Sequence[int],
    grid: Sequence[float],
    epochs: int,
    args: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The grid advisor's run records and its summary on one case."""
    best = next(iter(oracle.values()))["best_weight"]
    gain = oracle[best]["mean_diff"]
    rows, study = grid_runs(case, grid, seeds, epochs, args)
    rec = study.recommend()
    diffs = paired_vs(rows)
    out: list[dict[str, Any]] = []
    for r in rows:
        d = diffs[(r["seed"], r["weight"])]
        out.append(
            {
                "record": "run",
                "case": case.name,
                "method": "grid",
                "seed": r["seed"],
                "weight": r["weight"],
                "val_metric": r["val_metric"],
                "test_metric": r["test_metric"],
                "diff_vs_zero": d,
                "diff_vs_oracle": d - gain,
                "seconds": r["seconds"],
                "runs": 1,
            }
        )
    pick = float(rec.weight if rec.weight is not None else 0.0)
    own = interval([v for (s, w), v in diffs.items() if w == pick])
    at = oracle[pick]
    fixed = float(np.mean([r["seconds"] for r in rows]))
    out.append(
        {
            "record": "summary",
            "case": case.name,
            "method": "grid",
            "weight": pick,
            "plateau": list(rec.plateau),
            "beats_baseline": bool(rec.beats_baseline),
            "best_on_validation": rec.best_label,
            "p_holm_validation": rec.p_adjusted,
            "diff_vs_zero": own[0],
            "ci_low": own[1],
            "ci_high": own[2],
            "oracle_gain_at_pick": at["mean_diff"],
            "oracle_ci_at_pick": [at["ci_low"], at["ci_high"]],
            "oracle_best": best,
            "oracle_best_gain": gain,
            "oracle_best_ci": [oracle[best]["ci_low"], oracle[best]["ci_high"]],
            "diff_vs_oracle": at["mean_diff"] - gain,
            "within_oracle_interval": bool(
                oracle[best]["ci_low"] <= at["mean_diff"] <= oracle[best]["ci_high"]
            ),
            "below_zero_beyond_noise": bool(at["ci_high"] < 0),
            "seconds": float(sum(r["seconds"] for r in rows)),
            "runs": len(rows),
            "seconds_per_fixed_run": fixed,
            "n_seeds": len(seeds),
        }
    )
    return out


def tune_method(
    case: Case,
    method: str,
    oracle: Mapping[float, Mapping[str, Any]],
    seeds: Sequence[int],
    epochs: int,
    args: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One single-run method's records (one ``auxlab.tune`` call per seed) and summary."""
    best = next(iter(oracle.values()))["best_weight"]
    gain = oracle[best]["mean_diff"]
    out: list[dict[str, Any]] = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = auxlab.tune(
                case.ref,
                seed=seed,
                builder_args=dict(args),
                epochs=epochs,
                method=method,
                threads=1,
                monitor=f"val_main_{case.metric}",
            )
        if r.test_metric is None or r.test_metric_zero is None:
            raise RuntimeError(f"{case.name}: tune returned no test metric")
        d = r.test_metric - r.test_metric_zero
        out.append(
            {
                "record": "run",
                "case": case.name,
                "method": method,
                "seed": seed,
                "weight": float(r.aux_weights.get("aux", math.nan)),
                "val_metric": r.val_metric,
                "test_metric": r.test_metric,
                "test_metric_zero": r.test_metric_zero,
                "diff_vs_zero": d,
                "diff_vs_oracle": d - gain,
                "seconds": r.seconds,
                "seconds_zero": r.seconds_zero,
                "runs": r.cost,
            }
        )
    runs = [o for o in out if o["record"] == "run"]
    mean, lo, hi = interval([o["diff_vs_zero"] for o in runs])
    out.append(
        {
            "record": "summary",
            "case": case.name,
            "method": method,
            "weight": float(np.mean([o["weight"] for o in runs])),
            "weights": [o["weight"] for o in runs],
            "diff_vs_zero": mean,
            "ci_low": lo,
            "ci_high": hi,
            "oracle_best": best,
            "oracle_best_gain": gain,
            "diff_vs_oracle": mean - gain,
            # Only where the auxiliary loss helps (the oracle's verdict, Holm-adjusted).
            "share_of_oracle_gain": mean / gain if oracle[best]["verdict"] == "helps" else math.nan,
            "below_zero_beyond_noise": bool(hi < 0),
            "seconds": float(sum(o["seconds"] for o in runs)),
            "runs": float(np.mean([o["runs"] for o in runs])),
            "n_seeds": len(runs),
        }
    )
    return out


def print_case(name: str, verdict: str, records: Sequence[Mapping[str, Any]]) -> None:
    """The per-case lines: oracle, grid advisor, single-run methods."""
    summ = [r for r in records if r["record"] == "summary" and r["case"] == name]
    orc = next(r for r in summ if r["method"] == "oracle")
    print(
        f"{name} ({verdict}): oracle best w={orc['weight']:g}, gain "
        f"{orc['diff_vs_zero']:+.4f} [{orc['ci_low']:+.4f}, {orc['ci_high']:+.4f}]"
    )
    for grid in (r for r in summ if r["method"] == "grid"):
        glo, ghi = grid["oracle_ci_at_pick"]
        goal = "within" if grid["within_oracle_interval"] else "NOT within"
        print(
            f"  grid advisor: w={grid['weight']:g} (plateau {grid['plateau']}); oracle gain "
            f"there {grid['oracle_gain_at_pick']:+.4f} [{glo:+.4f}, {ghi:+.4f}], {goal} the "
            f"best's interval; its own seeds {grid['diff_vs_zero']:+.4f} "
            f"[{grid['ci_low']:+.4f}, {grid['ci_high']:+.4f}]; {grid['runs']} runs"
        )
    for r in summ:
        if r["method"] in ("grid", "oracle"):
            continue
        share = r["share_of_oracle_gain"]
        finite_share = share is not None and math.isfinite(share)
        said = f", {share:.0%} of the oracle's gain" if finite_share else ""
        print(
            f"  {r['method']}: learned w={r['weight']:.3g} (seeds: "
            + ", ".join(f"{w:.3g}" for w in r["weights"])
            + f"), gain {r['diff_vs_zero']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
            f"{said}; cost {r['runs']:.2f}x a fixed run"
        )


def _ci(r: Mapping[str, Any]) -> str:
    return f"{r['diff_vs_zero']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"


def markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The advisor tables of docs/advisor.md, from stored records."""
    summ = [r for r in records if r["record"] == "summary"]
    cases = dict.fromkeys(r["case"] for r in summ)
    methods = list(
        dict.fromkeys(r["method"] for r in summ if r["method"] not in ("oracle", "grid"))
    )
    lines = [
        "| case | verdict | oracle best w, gain [95 % CI] | grid pick (plateau) | oracle gain "
        "at the pick | within? | grid's seeds: gain at the pick |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in cases:
        orc = next(r for r in summ if r["case"] == name and r["method"] == "oracle")
        grid = next((r for r in summ if r["case"] == name and r["method"] == "grid"), None)
        if grid is None:
            continue
        lo, hi = grid["oracle_ci_at_pick"]
        ok = "yes" if grid["within_oracle_interval"] else "**no**"
        plateau = ", ".join(f"{w:g}" for w in grid["plateau"])
        lines.append(
            f"| {name} | {orc['verdict']} | {orc['weight']:g}: {_ci(orc)} | {grid['weight']:g} "
            f"({plateau}) | {grid['oracle_gain_at_pick']:+.4f} [{lo:+.4f}, {hi:+.4f}] | {ok} | "
            f"{_ci(grid)} |"
        )
    if methods:
        lines += [
            "",
            "| case | verdict | oracle gain | "
            + " | ".join(f"{m}: learned w, gain [95 % CI], share of oracle, cost" for m in methods)
            + " |",
            "|---|---|---|" + "---|" * len(methods),
        ]
        for name in cases:
            orc = next(r for r in summ if r["case"] == name and r["method"] == "oracle")
            cells = []
            for m in methods:
                r = next((r for r in summ if r["case"] == name and r["method"] == m), None)
                if r is None:
                    cells.append("not run")
                    continue
                share = r["share_of_oracle_gain"]
                said = f"{share:.0%}" if share is not None and math.isfinite(share) else "-"
                bad = " **below 0**" if r["below_zero_beyond_noise"] else ""
                cells.append(f"{r['weight']:.3g}, {_ci(r)}{bad}, {said}, {r['runs']:.2f}x")
            lines.append(
                f"| {name} | {orc['verdict']} | {orc['diff_vs_zero']:+.4f} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--quick", action="store_true", help="two small cases, 2 seeds")
    parser.add_argument("--oracle", type=Path, default=ORACLE, help="oracle.py's records")
    parser.add_argument("--cases", nargs="*", default=None, help="some cases only")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=list(METHODS),
        help=f"methods of auxlab.tune (default: all, {list(METHODS)})",
    )
    parser.add_argument(
        "--grid",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the grid advisor (--no-grid: the single-run methods only)",
    )
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 100..100+N-1")
    parser.add_argument(
        "--summarise",
        nargs="+",
        type=Path,
        help="print the markdown tables of stored records (several files: joined); run nothing",
    )
    a = parser.parse_args(argv)
    if a.summarise:
        print(markdown([r for p in a.summarise for r in json.loads(p.read_text())]))
        return 0
    torch.set_num_threads(1)
    names = a.cases or (["digits_reconstruct", "yeast"] if a.quick else list(CASES))
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; the cases are {list(CASES)}")
    seeds = list(range(SEEDS[0], SEEDS[0] + (2 if a.quick else a.seeds)))
    command = "python benchmarks/advisor.py " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    stored = [] if a.quick else json.loads(a.oracle.read_text())
    records: list[dict[str, Any]] = []
    for name in names:
        case = CASES[name]
        epochs = max(case.epochs // 5, 5) if a.quick else case.epochs
        args = QUICK_ARGS.get(name, {}) if a.quick else {}
        started = time.perf_counter()
        if a.quick:  # a small oracle on the spot, at the same small sizes
            stored = oracle_case(case, [0, 1], epochs, args, command)
        oracle = oracle_summary(stored, name)
        best = next(iter(oracle.values()))["best_weight"]
        records.append(
            {
                "record": "summary",
                "case": name,
                "method": "oracle",
                "weight": best,
                "diff_vs_zero": oracle[best]["mean_diff"],
                "ci_low": oracle[best]["ci_low"],
                "ci_high": oracle[best]["ci_high"],
                "verdict": oracle[best]["verdict"],
                "runs": len(WEIGHTS) * oracle[best]["n_seeds"],
                "command": command,
            }
        )
        if a.grid:
            records += grid_advisor(case, oracle, seeds, GRID, epochs, args)
        for method in a.methods:
            records += tune_method(case, method, oracle, seeds, epochs, args)
        print(f"[advisor] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print_case(name, oracle[best]["verdict"], records)
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(finite(records), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
