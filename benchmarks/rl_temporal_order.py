"""Does the temporal-order auxiliary task help a recurrent PPO agent on memory tasks?

For each environment, the agent (:func:`auxlab.rl.train`, GRU memory) is trained with no
auxiliary loss, with the temporal-order loss (:class:`auxlab.rl.TemporalOrder`) at fixed
weights, and with the loss under gradient-cosine gating (Du et al. 2018; ``gated``), each
over the same seeds. Per run: the final return and success (episodes ending in the last 10 %
of steps) and the normalised area under the learning curve (AUC: the mean over rollouts of
the mean episode return). Per setting: the mean with a 95 % Student-t interval over seeds;
against "none": the difference of means with Welch's 95 % interval and two p-values
(Welch's t-test, and the exact permutation test of the difference in means over all
relabellings of the seeds, 252 for 5 vs 5). A setting "helps significantly" when the
permutation p-value of its AUC or final return is below 0.05 with a positive difference.

Default grid (chosen to fit about 30 minutes on a 2-core machine with ``--jobs 2``; see
docs/rl.md for the choice): ``ENVS`` below, settings none / temporal-order 0.1 / 1 /
gated 1, seeds 0-4.

Output: ``--json`` gets a flat record per run (``record="run"``) and per comparison
(``record="comparison"``, one per environment, setting and metric); ``--plot`` the mean
learning curves with their 95 % bands. ``--quick`` runs a minute-or-two version (tiny step
budgets, 2 seeds) that checks the pipeline, not the science.

Reproduce::

    python benchmarks/rl_temporal_order.py --json rl.json --plot rl.png          # ~30 min
    python benchmarks/rl_temporal_order.py --quick --json /tmp/rl_quick.json     # ~1-2 min
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import auxlab
from auxlab.rl import PPOConfig, RLRun, train
from auxlab.rl._compare import compare, mean_ci, plot_curves

#: Environment -> (environment steps per run, PPOConfig overrides). The default run uses
#: DEFAULT_ENVS; MiniGrid-MemoryS7 is a longer run of its own (``--envs``, docs/rl.md).
ENVS: dict[str, tuple[int, dict[str, Any]]] = {
    "popgym-RepeatFirstEasy-v0": (150_000, {}),
    "popgym-RepeatPreviousEasy-v0": (150_000, {}),
    "MiniGrid-MemoryS7-v0": (300_000, {}),
}
DEFAULT_ENVS = ("popgym-RepeatFirstEasy-v0", "popgym-RepeatPreviousEasy-v0")
#: Label -> (aux, strategy, weight).
SETTINGS: dict[str, tuple[str | None, str, float]] = {
    "none": (None, "fixed", 0.0),
    "temporal-order 0.1": ("temporal-order", "fixed", 0.1),
    "temporal-order 1": ("temporal-order", "fixed", 1.0),
    "temporal-order gated 1": ("temporal-order", "gated", 1.0),
    # Not in the default run: the related task of Aytar et al. (2018), for comparison.
    "temporal-distance 1": ("temporal-distance", "fixed", 1.0),
    "temporal-distance 0.1": ("temporal-distance", "fixed", 0.1),
    # The auxiliary gradient scaled to half the PPO gradient's norm on the shared block.
    "temporal-order relative 0.5": ("temporal-order", "relative", 0.5),
}
DEFAULT_SETTINGS = ("none", "temporal-order 0.1", "temporal-order 1", "temporal-order gated 1")
METRICS = ("auc_return", "final_return", "auc_success", "final_success")


def _one(job: tuple[str, int, dict[str, Any], str, int]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    env_id, steps, overrides, label, seed = job
    aux, strategy, weight = SETTINGS[label]
    config = PPOConfig(total_steps=steps, aux=aux, strategy=strategy, weight=weight, **overrides)
    run = train(env_id, config, seed=seed)
    return {"label": label, "run": run.to_dict()}


def _as_run(d: dict[str, Any]) -> RLRun:
    return RLRun(
        d["env_id"],
        d["seed"],
        PPOConfig(**d["config"]),
        d["curve"],
        [tuple(e) for e in d["episodes"]],  # type: ignore[misc]
        d["seconds"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="write the flat records here")
    p.add_argument("--plot", type=Path, help="save the learning curves here (PNG)")
    p.add_argument("--runs", type=Path, help="save every run's full record (curves) here")
    p.add_argument("--quick", action="store_true", help="tiny budgets, 2 seeds (~1-2 min)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument(
        "--seed-offset", type=int, default=0, help="first seed (fresh seeds for a confirmation)"
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--envs", nargs="+", choices=sorted(ENVS), help="a subset of environments")
    p.add_argument("--steps", type=int, help="environment steps per run (all environments)")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), help="a subset of settings")
    args = p.parse_args(argv)

    envs = args.envs or list(DEFAULT_ENVS)
    settings = args.settings or list(DEFAULT_SETTINGS)
    if "none" not in settings:
        settings = ["none", *settings]
    seeds = 2 if args.quick else args.seeds
    jobs = []
    for env_id in envs:
        steps, overrides = ENVS[env_id]
        if args.quick:
            steps = 4_096
        if args.steps:
            steps = args.steps
        for label in settings:
            for seed in range(args.seed_offset, args.seed_offset + seeds):
                jobs.append((env_id, steps, overrides, label, seed))
    print(f"{len(jobs)} runs on {args.jobs} process(es): {envs} x {settings} x {seeds} seeds")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for k, res in enumerate(pool.map(_one, jobs), 1):
            run = _as_run(res["run"])
            s = run.summary()
            print(
                f"[{k}/{len(jobs)}] {run.env_id} {res['label']} seed {run.seed}: final return "
                f"{s['final_return']:.3f} success {s['final_success']:.2f} AUC "
                f"{s['auc_return']:.3f} ({s['seconds']:.0f} s)",
                flush=True,
            )
            results.append({"label": res["label"], "run": run})
    wall = time.perf_counter() - started

    records: list[dict[str, Any]] = []
    meta = {
        "implementation": "auxlab",
        "auxlab": auxlab.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
    }
    for r in results:
        run = r["run"]
        records.append({"record": "run", **meta, **run.summary(), "setting": r["label"]})
    for env_id in envs:
        print(f"\n{env_id} ({records[0]['total_steps'] if records else 0} steps per run)")
        header = f"{'setting':28s}" + "".join(f"{m:>26s}" for m in METRICS)
        print(header)
        by: dict[str, list[dict[str, Any]]] = {}
        for rec in records:
            if rec["record"] == "run" and rec["env"] == env_id:
                by.setdefault(rec["setting"], []).append(rec)
        for label in settings:
            row = f"{label:28s}"
            for m in METRICS:
                mean, lo, hi = mean_ci([x[m] for x in by[label]])
                row += f"{mean:>10.3f} [{lo:6.3f},{hi:6.3f}]"
            print(row)
        base = by["none"]
        for label in settings:
            if label == "none":
                continue
            for m in METRICS:
                a = [x[m] for x in by[label]]
                b = [x[m] for x in base]
                if any(math.isnan(v) for v in a + b):
                    continue
                c = compare(a, b)
                mean, lo, hi = mean_ci(a)
                records.append(
                    {
                        "record": "comparison",
                        **meta,
                        "env": env_id,
                        "setting": label,
                        "baseline": "none",
                        "metric": m,
                        "mean": mean,
                        "ci_low": lo,
                        "ci_high": hi,
                        "baseline_mean": sum(b) / len(b),
                        "diff": c["diff"],
                        "diff_low": c["low"],
                        "diff_high": c["high"],
                        "p_welch": c["p_welch"],
                        "p_permutation": c["p_permutation"],
                        "significant": bool(c["p_permutation"] < 0.05),
                        "helps": bool(c["p_permutation"] < 0.05 and c["diff"] > 0),
                        "seeds": len(a),
                    }
                )
                print(
                    f"  {label} vs none, {m}: diff {c['diff']:+.3f} [{c['low']:+.3f}, "
                    f"{c['high']:+.3f}]  p(Welch) {c['p_welch']:.3f}  p(permutation) "
                    f"{c['p_permutation']:.3f}"
                )
    print(f"\nwall time {wall:.0f} s for {len(jobs)} runs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1))
    if args.runs:
        args.runs.parent.mkdir(parents=True, exist_ok=True)
        full = [{"setting": r["label"], **r["run"].to_dict()} for r in results]
        args.runs.write_text(json.dumps(full))
    if args.plot:
        plot_curves([r["run"] for r in results], args.plot)
        plot_curves([r["run"] for r in results], args.plot.with_suffix(".success.png"), "success")
    return 0


if __name__ == "__main__":
    sys.exit(main())
