"""Left-out scores of the default online learner over the pool of binary streams.

    python benchmarks/online_generalisation.py --json PATH [--quick] [--data DIR]
        [--defaults benchmarks/results/online_defaults.json] [--seeds 5] [--p 0.5]

For every data set of the pool, the deep learner runs with the defaults chosen by
leave-one-data-set-out on the *other* sets (``benchmarks/online_defaults.py``; the record's
``defaults_from`` names them), beside its hedge with the online logistic model
(``HedgeEnsemble``, the default learner), the ensemble's logistic member (class-balanced)
and the reference ``OnlineLogistic``. Two protocols:

* ``seeded``: seed ``s`` (0 .. seeds-1) draws the stream's order and its availability mask
  (variable p; ``auxlab.datasets.load_binary_stream(protocol="seeded")``) and initialises
  the learners;
* ``published``: the review's fixed protocol, one order (shuffle seed 2023) and one mask
  (seed 2023), learners seeded ``0 .. seeds-1``.

The pool is ``auxlab.datasets.binary_pool()`` (the sets that load on this machine); the
best published number of a set comes with its pool entry.

The ensemble's run is computed from its members' runs by ``hedge_mixture``: the same numbers
as ``HedgeEnsemble.learn_predict_stream`` (tested), without running the members twice; its
``seconds`` are the members' plus the mixing. Paired differences against ``OnlineLogistic``
(same seed: same order and mask) get a 95 % t-interval. ``--quick`` caps every stream at 1500
rows and runs 2 seeds.

The data folder: --data, else $AUXLAB_HAPHAZARD_DATA, else ../shared/data/haphazard beside
the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxlab.online import (
    HedgeBackprop,
    OnlineLogistic,
    classification_metrics,
    hedge_mixture,
    summarise,
)

REFERENCE = "OnlineLogistic"
MEMBER_LOGISTIC = "OnlineLogistic(balanced)"
DEEP = "HedgeBackprop"
DEFAULT = "HedgeEnsemble"


@dataclass
class Stream:
    """One data set of the pool, and the best published number at the run's p, if any."""

    name: str
    published: tuple[float, str] | None = None
    root: Path | None = None


def default_data() -> Path:
    env = os.environ.get("AUXLAB_HAPHAZARD_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "haphazard"


def load_pool(root: Path, only: list[str] | None = None, p: float = 0.5) -> list[Stream]:
    """The pool's data sets that load here (``auxlab.datasets.binary_pool``), by name."""
    from auxlab.datasets._pool import binary_pool

    out = []
    for entry in binary_pool(only, data_dir=root):
        if not entry.available:
            print(f"{entry.name}: not available here, skipped", file=sys.stderr)
            continue
        out.append(Stream(entry.name, entry.best_published_at(p), root))
    return out


def protocol_arrays(
    s: Stream, protocol: str, seed: int, p: float, rows: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order and mask of one run (``load_binary_stream``): seeded by ``seed``, or the
    published fixed ones; the first ``rows`` rows."""
    from auxlab.datasets._pool import load_binary_stream

    st = load_binary_stream(s.name, p=p, seed=seed, protocol=protocol, data_dir=s.root)
    return st.X[:rows], st.y[:rows], st.mask[:rows]


def run_stream(model: Any, X: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[Any, float]:
    start = time.perf_counter()
    proba = model.clone().learn_predict_stream(X, y, mask)
    return proba, time.perf_counter() - start


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    m = classification_metrics(y, proba)
    return {"balanced_accuracy": m["balanced_accuracy"], "auroc": m["auroc"]}


def deep_learner(config: dict[str, Any], seed: int) -> HedgeBackprop:
    return HedgeBackprop(seed=seed, **config)


def run_set(
    s: Stream,
    config: dict[str, Any],
    defaults_from: str,
    seeds: list[int],
    p: float,
    rows: int | None,
    protocols: list[str],
) -> list[dict[str, Any]]:
    """Every learner on one set, every protocol and seed: flat records."""
    records = []
    for protocol in protocols:
        for seed in seeds:
            X, y, mask = protocol_arrays(s, protocol, seed, p, rows)
            deep, t_deep = run_stream(deep_learner(config, seed), X, y, mask)
            logit_b, t_lb = run_stream(OnlineLogistic(class_weight="balanced"), X, y, mask)
            ref, t_ref = run_stream(OnlineLogistic(), X, y, mask)
            start = time.perf_counter()
            mix, _ = hedge_mixture(np.stack([deep, logit_b]), y)
            t_mix = t_deep + t_lb + time.perf_counter() - start
            key = {"dataset": s.name, "p": p, "seed": seed, "protocol": protocol}
            for learner, proba, secs, src in (
                (DEFAULT, mix, t_mix, defaults_from),
                (DEEP, deep, t_deep, defaults_from),
                (MEMBER_LOGISTIC, logit_b, t_lb, "constructor defaults (not tuned)"),
                (REFERENCE, ref, t_ref, "constructor defaults (not tuned)"),
            ):
                rec = {**key, "learner": learner, **scores(y, proba), "seconds": secs}
                rec.update(defaults_from=src, n=len(y))
                records.append(rec)
    return records


def paired(diffs: list[float]) -> tuple[float, float, float]:
    """Mean of paired differences and its 95 % t-interval (nan half-width for one pair)."""
    from auxlab.study._stats import mean_interval

    return mean_interval(diffs)


def fold_defaults(path: Path | None, names: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
    """Each set's deep-learner configuration, chosen on the other sets, and where from."""
    if path is None or not path.exists():
        src = "library defaults"
        return {n: ({}, src) for n in names}
    folds = {r["left_out"]: r for r in json.loads(path.read_text()) if r.get("kind") == "fold"}
    learner_folds = {k: v for k, v in folds.items() if v.get("learner", DEEP) == DEEP}
    out = {}
    for n in names:
        rec = learner_folds.get(n)
        if rec is None:  # a set the selection did not see: every set it saw chose for it
            whole = [
                r
                for r in json.loads(path.read_text())
                if r.get("kind") == "whole_pool" and r.get("learner") == DEEP
            ]
            if not whole:
                raise SystemExit(f"{path}: no whole-pool choice for {DEEP}")
            out[n] = (whole[0]["config"], "+".join(whole[0]["chosen_on"]))
        else:
            out[n] = (rec["config"], "+".join(rec["chosen_on"]))
    return out


def table(records: list[dict[str, Any]], protocol: str) -> list[str]:
    rows = [r for r in records if r["protocol"] == protocol]
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    learners = [DEFAULT, DEEP, MEMBER_LOGISTIC, REFERENCE]
    head = (
        f"| data set | n | {' | '.join(learners)} | best published | max(published, OL) "
        f"| {DEFAULT} − OL [95 % CI] | {DEFAULT} − max | {DEFAULT} − {DEEP} [95 % CI] |"
    )
    lines = [head, "|" + "---|" * (len(learners) + 7)]
    for name in names:
        cells = []
        by = {}
        for learner in learners:
            rs = sorted(
                (r for r in rows if r["dataset"] == name and r["learner"] == learner),
                key=lambda r: r["seed"],
            )
            by[learner] = rs
            mean, sd = summarise([r["balanced_accuracy"] for r in rs])
            cells.append(f"{mean:.2f} ± {sd:.2f}")
        pub = by[DEFAULT][0].get("published")
        ol = summarise([r["balanced_accuracy"] for r in by[REFERENCE]])[0]
        top = max(ol, pub[0]) if pub else ol
        diffs = [
            a["balanced_accuracy"] - b["balanced_accuracy"]
            for a, b in zip(by[DEFAULT], by[REFERENCE], strict=True)
        ]
        mean, lo, hi = paired(diffs)
        dm, dlo, dhi = paired(
            [
                a["balanced_accuracy"] - b["balanced_accuracy"]
                for a, b in zip(by[DEFAULT], by[DEEP], strict=True)
            ]
        )
        ens = summarise([r["balanced_accuracy"] for r in by[DEFAULT]])[0]
        pub_cell = f"{pub[0]:.2f} ({pub[1]})" if pub else "none"
        lines.append(
            f"| {name} | {by[DEFAULT][0]['n']} | {' | '.join(cells)} | {pub_cell} | {top:.2f} "
            f"| {mean:+.2f} [{lo:+.2f}, {hi:+.2f}] | {ens - top:+.2f} "
            f"| {dm:+.2f} [{dlo:+.2f}, {dhi:+.2f}] |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the flat records here")
    ap.add_argument(
        "--summarise", type=Path, help="print the tables of a saved --json file, run nothing"
    )
    ap.add_argument("--quick", action="store_true", help="1500 rows per stream, 2 seeds")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument(
        "--defaults",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "online_defaults.json",
        help="the leave-one-out selection (benchmarks/online_defaults.py --json)",
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--rows", type=int, default=None, help="cap every stream (default: none)")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument(
        "--protocols", nargs="+", default=["seeded", "published"], choices=["seeded", "published"]
    )
    args = ap.parse_args(argv)
    if args.summarise:
        saved = json.loads(args.summarise.read_text())
        for protocol in dict.fromkeys(r["protocol"] for r in saved):
            seeds_run = sorted({r["seed"] for r in saved if r["protocol"] == protocol})
            print(
                f"\nprotocol {protocol}: balanced accuracy % at p = {saved[0]['p']}, "
                f"mean ± sd over seeds {seeds_run[0]}-{seeds_run[-1]}"
            )
            print("\n".join(table(saved, protocol)))
        return 0
    if args.json is None:
        ap.error("--json PATH is required (or --summarise PATH)")
    torch.set_num_threads(1)
    rows = 1500 if args.quick and args.rows is None else args.rows
    seeds = list(range(2 if args.quick else args.seeds))
    pool = load_pool(args.data or default_data(), args.datasets, args.p)
    folds = fold_defaults(args.defaults, [s.name for s in pool])
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for s in pool:
        config, src = folds[s.name]
        t0 = time.perf_counter()
        try:
            recs = run_set(s, config, src, seeds, args.p, rows, args.protocols)
        except (TypeError, ValueError) as exc:  # e.g. text features the learners refuse
            print(f"{s.name}: skipped ({str(exc).splitlines()[0]})", flush=True)
            continue
        for r in recs:
            r["published"] = list(s.published) if s.published else None
        records.extend(recs)
        print(f"{s.name}: {time.perf_counter() - t0:.1f} s ({config or 'defaults'})", flush=True)
    wall = time.perf_counter() - start
    args.json.write_text(json.dumps(records, indent=1))
    for protocol in args.protocols:
        print(
            f"\nprotocol {protocol}: balanced accuracy % at p = {args.p}, mean ± sd over "
            f"seeds {seeds[0]}-{seeds[-1]}"
        )
        print("\n".join(table(records, protocol)))
    print(f"\nwhole pool: {wall:.0f} s wall ({len(pool)} sets, rows cap {rows})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
