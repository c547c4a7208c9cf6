"""Choose the deep online learners' defaults by leave-one-data-set-out over the pool.

    python benchmarks/online_defaults.py --json PATH [--quick] [--data DIR]
        [--learners HedgeBackprop AuxDrop AuxNet] [--rows 3000] [--seeds 2]

For each learner, a small grid of candidate settings (the old default and one-factor
changes of it: learning rate, hedge discount β, depth, width, dropout) runs on every set of
the pool (``auxlab.datasets.binary_pool()``, the sets that load here) under the seeded
protocol at p = .5 (``load_binary_stream(protocol="seeded")``): seed ``s`` draws the
stream's order and availability mask and initialises the learner; the
streams are capped at their first ``--rows`` rows (3000) after the shuffle, to keep the
selection within the 2-core budget. A candidate's score on a set is its balanced accuracy
averaged over the seeds; its rank on a set is 1 for the best (ties share the mean rank).

* Fold ``k`` (left-out set ``k``): the candidate with the best mean rank over the *other*
  sets (ties: the higher mean balanced accuracy there); its left-out score is reported.
* The library's default: the candidate with the best mean rank over the whole pool.

Records (``--json``): ``kind = "run"`` (one per learner, candidate, set and seed),
``"fold"`` (one per learner and left-out set) and ``"whole_pool"`` (one per learner).
``--quick``: 600 rows, 1 seed, three candidates of HedgeBackprop only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxlab.online import AuxDrop, AuxNet, HedgeBackprop
from online_generalisation import default_data, load_pool, protocol_arrays, run_stream, scores

# The old defaults (before this selection): HedgeBackprop 6 x 50, AuxNet 5 + 5 x 50, AuxDrop
# 6 x 50 with dropout 0.3; every one AdaGrad at lr 0.05 and hedge discount beta 0.9.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "HedgeBackprop": [
        {"n_layers": 6, "n_units": 50, "lr": 0.05, "beta": 0.9},  # old default
        {"n_layers": 6, "n_units": 50, "lr": 0.02, "beta": 0.9},
        {"n_layers": 6, "n_units": 50, "lr": 0.1, "beta": 0.9},
        {"n_layers": 6, "n_units": 50, "lr": 0.05, "beta": 0.99},
        {"n_layers": 6, "n_units": 50, "lr": 0.05, "beta": 0.7},
        {"n_layers": 3, "n_units": 50, "lr": 0.05, "beta": 0.9},
        {"n_layers": 6, "n_units": 100, "lr": 0.05, "beta": 0.9},
        {"n_layers": 3, "n_units": 100, "lr": 0.1, "beta": 0.9},
    ],
    "AuxDrop": [
        {"n_layers": 6, "n_units": 50, "dropout": 0.3, "lr": 0.05, "beta": 0.9},  # old
        {"n_layers": 6, "n_units": 50, "dropout": 0.3, "lr": 0.02, "beta": 0.9},
        {"n_layers": 6, "n_units": 50, "dropout": 0.3, "lr": 0.1, "beta": 0.9},
        {"n_layers": 6, "n_units": 50, "dropout": 0.3, "lr": 0.05, "beta": 0.99},
        {"n_layers": 6, "n_units": 50, "dropout": 0.1, "lr": 0.05, "beta": 0.9},
        {"n_layers": 6, "n_units": 50, "dropout": 0.5, "lr": 0.05, "beta": 0.9},
    ],
    "AuxNet": [
        {"n_base_layers": 5, "n_end_layers": 5, "n_units": 50, "lr": 0.05, "beta": 0.9},  # old
        {"n_base_layers": 5, "n_end_layers": 5, "n_units": 50, "lr": 0.02, "beta": 0.9},
        {"n_base_layers": 5, "n_end_layers": 5, "n_units": 50, "lr": 0.1, "beta": 0.9},
        {"n_base_layers": 5, "n_end_layers": 5, "n_units": 50, "lr": 0.05, "beta": 0.99},
        {"n_base_layers": 3, "n_end_layers": 3, "n_units": 50, "lr": 0.05, "beta": 0.9},
        {"n_base_layers": 5, "n_end_layers": 5, "n_units": 32, "lr": 0.05, "beta": 0.9},
    ],
}


def make(learner: str, config: dict[str, Any], seed: int, d: int) -> Any:
    if learner == "HedgeBackprop":
        return HedgeBackprop(seed=seed, **config)
    if learner == "AuxDrop":  # the AuxLayer sized as the review's config: about 5 x features
        return AuxDrop(aux_units=max(100, 5 * d), seed=seed, **config)
    return AuxNet(base_features=2, seed=seed, **config)


def usable(s: Any, p: float) -> bool:
    """Whether the learners take the set (text features need the online one-hot)."""
    X, y, mask = protocol_arrays(s, "seeded", 0, p, 50)
    try:
        HedgeBackprop(n_layers=1, n_units=2).learn_predict_stream(X, y, mask)
    except (TypeError, ValueError) as exc:
        print(f"{s.name}: left out of the selection ({str(exc).splitlines()[0]})", flush=True)
        return False
    return True


def ranks(scores_by_set: np.ndarray) -> np.ndarray:
    """(sets, candidates) scores -> ranks per set, 1 = best, ties share the mean rank."""
    from scipy.stats import rankdata

    return np.stack([rankdata(-row) for row in scores_by_set])


def choose(score: np.ndarray, keep: np.ndarray) -> int:
    """The candidate with the best mean rank over the sets in ``keep`` (ties: mean score)."""
    r = ranks(score[keep]).mean(0)
    best = np.flatnonzero(r == r.min())
    return int(best[np.argmax(score[keep][:, best].mean(0))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--learners", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--datasets", nargs="*", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows, n_seeds, learners = args.rows, args.seeds, args.learners
    grids = dict(GRIDS)
    if args.quick:
        rows, n_seeds, learners = 600, 1, ["HedgeBackprop"]
        grids = {"HedgeBackprop": GRIDS["HedgeBackprop"][:3]}
    pool = load_pool(args.data or default_data(), args.datasets, args.p)
    pool = [s for s in pool if usable(s, args.p)]
    names = [s.name for s in pool]
    records: list[dict[str, Any]] = []
    for learner in learners:
        grid = grids[learner]
        score = np.zeros((len(pool), len(grid)))
        t0 = time.perf_counter()
        for i, s in enumerate(pool):
            for seed in range(n_seeds):
                X, y, mask = protocol_arrays(s, "seeded", seed, args.p, rows)
                for c, config in enumerate(grid):
                    proba, secs = run_stream(make(learner, config, seed, X.shape[1]), X, y, mask)
                    sc = scores(y, proba)
                    score[i, c] += sc["balanced_accuracy"] / n_seeds
                    records.append(
                        {
                            "kind": "run",
                            "learner": learner,
                            "candidate": c,
                            "config": config,
                            "dataset": s.name,
                            "p": args.p,
                            "seed": seed,
                            "protocol": "seeded",
                            "rows": len(y),
                            **sc,
                            "seconds": secs,
                        }
                    )
            print(f"{learner} {s.name}: " + " ".join(f"{v:.2f}" for v in score[i]), flush=True)
        all_sets = np.ones(len(pool), dtype=bool)
        whole = choose(score, all_sets)
        for i, name in enumerate(names):
            keep = all_sets.copy()
            keep[i] = False
            c = choose(score, keep)
            records.append(
                {
                    "kind": "fold",
                    "learner": learner,
                    "left_out": name,
                    "chosen_on": [n for n in names if n != name],
                    "candidate": c,
                    "config": grid[c],
                    "left_out_score": float(score[i, c]),
                    "left_out_rank": float(ranks(score[i : i + 1])[0, c]),
                    "same_as_whole_pool": c == whole,
                }
            )
        records.append(
            {
                "kind": "whole_pool",
                "learner": learner,
                "chosen_on": names,
                "candidate": whole,
                "config": grid[whole],
                "mean_rank": float(ranks(score).mean(0)[whole]),
                "mean_rank_by_candidate": ranks(score).mean(0).tolist(),
                "mean_score_by_candidate": score.mean(0).tolist(),
                "rows": rows,
                "seeds": n_seeds,
            }
        )
        folds = [r for r in records if r["kind"] == "fold" and r["learner"] == learner]
        differ = sum(not r["same_as_whole_pool"] for r in folds)
        print(
            f"{learner}: whole pool chooses {grid[whole]} (mean rank "
            f"{ranks(score).mean(0)[whole]:.2f}); {differ} of {len(folds)} folds differ "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        args.json.write_text(json.dumps(records, indent=1))
    args.json.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
