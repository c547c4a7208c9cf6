"""Main-task test accuracy of every weighting strategy on main + auxiliary "Multi-Digits" problems.

Reproduce (the table in docs/weighting_quality.md)::

    python benchmarks/weighting_quality.py --json weighting_quality.json
    python benchmarks/weighting_quality.py --quick --json /tmp/wq.json   # 1-2 minutes

Data (offline): ``sklearn.datasets.load_digits`` (1797 8x8 images). Each seed splits the
digits into a training pool and a test pool (half each), then builds 12x12 images of two
overlapping digits: the LEFT digit at the top-left corner, the RIGHT digit shifted by (4, 4),
merged with ``max`` (MultiMNIST style). The main task is the left digit's class, learned from
only ``--n-train`` (default 300) labelled images; test accuracy is measured on one image per
test-pool digit (about 900). Four problems differ only in the auxiliary task:

* ``helpful``: reconstruct the left digit (64 pixels in [0, 1], sigmoid head, ``mse``);
* ``harmful``: random labels (a random class in 0..9 per training image, ``ce``);
* ``distracting``: the right digit's class (``ce``);
* ``scaled``: the helpful reconstruction loss multiplied by 1000.

Model: a shared MLP trunk 144 -> 128 -> 64 (ReLU), a linear main head and an auxiliary head,
Adam (lr 1e-3, together with any learnable strategy parameters), batch 64, 50 epochs
(``--batch-size``, ``--epochs``), no early stopping; the test accuracy is the one after the
last epoch. The trunk is ``Balancer(shared=...)``, so gradient-based strategies see per-task
gradients on it (computed with ``grad_mode="loop"``, so reruns are bit-identical);
``mgda-ub`` gets the trunk's output as ``representation=``. For one seed every strategy gets
the same split, the same initial weights and the same batch order.

Baselines: ``none`` is ``FixedWeights({"aux": 0.0})`` (the auxiliary head exists but no
auxiliary gradient reaches the trunk) and ``fixed`` is ``FixedWeights({"aux": 0.2})``
(Keras' customary 0.2). Registered strategies that need arguments are configured as in
``CONFIGS`` below; every other one runs with its defaults. A strategy that fails is recorded
with its ``error`` and the run goes on.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import auxlab
from auxlab import Balancer, Objective
from auxlab.schedules import anneal_to_zero
from auxlab.weighting import (
    DynamicWeightAverage,
    FixedWeights,
    GradientCosine,
    Need,
    RelativeWeights,
    Strategy,
    chain,
    create,
    gated,
    list_strategies,
    normalized,
    scheduled,
    warmup,
)
from auxlab.weighting import describe as describe_strategy

BENCHMARK = "weighting_quality"
PROBLEMS = ("helpful", "harmful", "distracting", "scaled")
BASELINES = ("none", "fixed")
QUICK_STRATEGIES = (
    "none",
    "fixed",
    "relative",
    "gradient-cosine",
    "uncertainty",
    "pcgrad",
    "mgda-ub",
)
SCALE = 1000.0  # the "scaled" problem's factor on the reconstruction loss


# ---------------------------------------------------------------------------------- data


@dataclass
class Data:
    x_train: torch.Tensor  # (n, 144)
    x_test: torch.Tensor
    y_test: torch.Tensor  # left digit's class
    targets: dict[str, dict[str, torch.Tensor]]  # problem -> {"main": ..., "aux": ...}


def _compose(images: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    canvas = np.zeros((len(left), 12, 12), dtype=np.float32)
    canvas[:, :8, :8] = images[left]
    canvas[:, 4:, 4:] = np.maximum(canvas[:, 4:, 4:], images[right])
    return canvas.reshape(len(left), -1)


def make_data(seed: int, n_train: int) -> Data:
    """The split and the targets of one seed (identical for every strategy)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    half = len(labels) // 2
    pool_train, pool_test = order[:half], order[half:]
    if n_train > len(pool_train):
        raise ValueError(f"--n-train must be <= {len(pool_train)}, got {n_train}")
    left = rng.choice(pool_train, size=n_train, replace=False)
    right = rng.choice(pool_train, size=n_train, replace=True)
    test_left = pool_test
    test_right = rng.choice(pool_test, size=len(pool_test), replace=True)
    x_train = torch.from_numpy(_compose(images, left, right))
    x_test = torch.from_numpy(_compose(images, test_left, test_right))
    y_main = torch.from_numpy(labels[left])
    recon = torch.from_numpy(images[left].reshape(n_train, 64))
    random_labels = torch.from_numpy(rng.integers(0, 10, size=n_train).astype(np.int64))
    y_right = torch.from_numpy(labels[right])
    targets = {
        "helpful": {"main": y_main, "aux": recon},
        "harmful": {"main": y_main, "aux": random_labels},
        "distracting": {"main": y_main, "aux": y_right},
        "scaled": {"main": y_main, "aux": recon},
    }
    return Data(x_train, x_test, torch.from_numpy(labels[test_left]), targets)


def _scaled_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return SCALE * F.mse_loss(pred, target.reshape(pred.shape))


def make_objective(problem: str) -> Objective:
    aux: Any = {"helpful": "mse", "harmful": "ce", "distracting": "ce", "scaled": _scaled_mse}
    return Objective({"main": "ce", "aux": aux[problem]}, main="main")


# ---------------------------------------------------------------------------------- model


class TwoHeads(nn.Module):
    """Shared MLP trunk, a main head and an auxiliary head; returns (outputs, representation)."""

    def __init__(self, aux_out: int, sigmoid_aux: bool) -> None:
        super().__init__()
        # Trunk and main head first: for a seed they get the same initial weights on every
        # problem, whatever the auxiliary head.
        self.trunk = nn.Sequential(nn.Linear(144, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.main = nn.Linear(64, 10)
        aux: list[nn.Module] = [nn.Linear(64, aux_out)]
        if sigmoid_aux:
            aux.append(nn.Sigmoid())
        self.aux = nn.Sequential(*aux)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        z = self.trunk(x)
        return {"main": self.main(z), "aux": self.aux(z)}, z


def make_model(problem: str, seed: int) -> TwoHeads:
    torch.manual_seed(seed)
    recon = problem in ("helpful", "scaled")
    return TwoHeads(64 if recon else 10, sigmoid_aux=recon)


# ----------------------------------------------------------------------------- strategies


def _fixed(w: float) -> FixedWeights:
    return FixedWeights({"aux": w})


# Registered strategies that need constructor arguments (or a sensible non-default for this
# loop), and the two baselines. Each factory takes (steps_per_epoch, total_steps).
CONFIGS: dict[str, tuple[str, Callable[[int, int], Strategy]]] = {
    "none": ("FixedWeights({'aux': 0.0})", lambda e, n: _fixed(0.0)),
    "fixed": ("FixedWeights({'aux': 0.2})", lambda e, n: _fixed(0.2)),
    "scheduled": (
        "scheduled({'aux': anneal_to_zero(0.2, total_steps)})",
        lambda e, n: scheduled({"aux": anneal_to_zero(0.2, n)}),
    ),
    "relative": ("RelativeWeights({'aux': 0.2})", lambda e, n: RelativeWeights({"aux": 0.2})),
    "normalized": (
        "normalized(FixedWeights({'aux': 0.2}))",
        lambda e, n: normalized(_fixed(0.2)),
    ),
    "gated": ("gated(FixedWeights({'aux': 0.2}))", lambda e, n: gated(_fixed(0.2))),
    "warmup": (
        "warmup(FixedWeights({'aux': 0.2}), steps=one epoch)",
        lambda e, n: warmup(_fixed(0.2), steps=e),
    ),
    "chain": (
        "chain(FixedWeights({'aux': 0.2}), GradientCosine())",
        lambda e, n: chain(_fixed(0.2), GradientCosine()),
    ),
    "dwa": (
        "DynamicWeightAverage(period=steps per epoch)",
        lambda e, n: DynamicWeightAverage(period=e),
    ),
}


def all_strategies() -> list[str]:
    # The validation-driven strategies need a validation split, which these runs do not
    # make (benchmarks/validation_weighting.py and the advisor's cases cover them).
    names = [
        n
        for n in list_strategies()
        if n not in BASELINES and "val_grad" not in describe_strategy(n).needs
    ]
    return [*BASELINES, *names]


def build_strategy(name: str, steps_per_epoch: int, total_steps: int) -> Strategy:
    if name in CONFIGS:
        return CONFIGS[name][1](steps_per_epoch, total_steps)
    return create(name)


def describe(name: str) -> str:
    return CONFIGS[name][0] if name in CONFIGS else f"create({name!r}) (defaults)"


# ---------------------------------------------------------------------------------- runs


def train_and_test(
    name: str, problem: str, seed: int, data: Data, init: TwoHeads, epochs: int, batch: int
) -> tuple[float, list[str]]:
    """Train one model with one strategy; return (main test accuracy, warning messages)."""
    model = copy.deepcopy(init)
    targets = data.targets[problem]
    loader = auxlab.ArrayLoader(data.x_train, targets, batch_size=batch, shuffle=True, seed=seed)
    steps_per_epoch = len(loader)
    strategy = build_strategy(name, steps_per_epoch, steps_per_epoch * epochs)
    objective = make_objective(problem)
    torch.manual_seed(seed)  # strategies or layers that draw from the global generator
    balancer = Balancer(
        strategy, shared=model.trunk, main="main", tasks=("main", "aux"), grad_mode="loop"
    )
    params = list(model.parameters()) + list(balancer.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    needs_rep = Need.REP_GRADS in strategy.needs
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        model.train()
        for _ in range(epochs):
            for x, y in loader:
                opt.zero_grad(set_to_none=True)
                outputs, rep = model(x)
                losses = objective(outputs, y)
                balancer.backward(losses, representation=rep if needs_rep else None)
                late = [p for p in balancer.parameters() if all(p is not q for q in params)]
                if late:  # learnable weights created at the first step
                    opt.add_param_group({"params": late})
                    params += late
                opt.step()
        for w in log:
            msg = f"{w.category.__name__}: {w.message}"
            if msg not in caught:
                caught.append(msg)
    model.eval()
    with torch.no_grad():
        outputs, _ = model(data.x_test)
        acc = (outputs["main"].argmax(-1) == data.y_test).double().mean().item()
    return acc, caught


def run_all(
    strategies: list[str],
    seeds: list[int],
    problems: list[str],
    epochs: int,
    n_train: int,
    batch: int = 64,
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    total = len(strategies) * len(seeds) * len(problems)
    done = 0
    # Warm-up (not recorded), so that the first timed run does not pay for lazy imports.
    warm = make_data(seeds[0], n_train)
    train_and_test("none", problems[0], seeds[0], warm, make_model(problems[0], 0), 1, batch)
    for seed in seeds:
        data = make_data(seed, n_train)
        for problem in problems:
            init = make_model(problem, seed)
            for name in strategies:
                start = time.perf_counter()
                error, notes, acc = "", [], math.nan
                try:
                    acc, notes = train_and_test(name, problem, seed, data, init, epochs, batch)
                except Exception as exc:  # record the failure and go on
                    error = f"{type(exc).__name__}: {exc}".strip()
                    tb = traceback.extract_tb(exc.__traceback__)[-1]
                    error += f" [at {Path(tb.filename).name}:{tb.lineno}]"
                seconds = time.perf_counter() - start
                done += 1
                records.append(
                    {
                        "benchmark": BENCHMARK,
                        "record": "run",
                        "strategy": name,
                        "config": describe(name),
                        "problem": problem,
                        "seed": seed,
                        "test_accuracy": acc,
                        "seconds": round(seconds, 3),
                        "error": error[:500],
                        "warnings": " | ".join(notes)[:500],
                        "epochs": epochs,
                        "n_train": n_train,
                    }
                )
                status = f"ERROR {error[:80]}" if error else f"acc {acc:.4f}"
                print(
                    f"[{done}/{total}] seed {seed} {problem:<11} {name:<16} {status} "
                    f"({seconds:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
    return records


# ------------------------------------------------------------------------------- summary


def _paired(runs: dict[int, float], base: dict[int, float]) -> tuple[float, float, int]:
    """Mean and standard error of the per-seed difference (same split and init per seed)."""
    diffs = [
        runs[s] - base[s]
        for s in runs
        if s in base and math.isfinite(runs[s]) and math.isfinite(base[s])
    ]
    if not diffs:
        return math.nan, math.nan, 0
    mean = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return mean, se, len(diffs)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    runs = [r for r in records if r["record"] == "run"]
    acc: dict[tuple[str, str], dict[int, float]] = {}
    secs: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], list[str]] = {}
    notes: dict[tuple[str, str], set[str]] = {}
    for r in runs:
        key = (r["strategy"], r["problem"])
        acc.setdefault(key, {})[r["seed"]] = r["test_accuracy"] if not r["error"] else math.nan
        secs.setdefault(key, []).append(r["seconds"])
        if r["error"]:
            errors.setdefault(key, []).append(r["error"])
        if r["warnings"]:
            notes.setdefault(key, set()).add(r["warnings"])
    out = []
    for (name, problem), by_seed in acc.items():
        values = [v for v in by_seed.values() if math.isfinite(v)]
        mean = statistics.fmean(values) if values else math.nan
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        d_none, se_none, n_pairs = _paired(by_seed, acc.get(("none", problem), {}))
        d_fixed, se_fixed, _ = _paired(by_seed, acc.get(("fixed", problem), {}))
        if name == "none" or not math.isfinite(se_none) or n_pairs < 2:
            verdict = "n/a"
        elif d_none > 2 * se_none:
            verdict = "better"
        elif d_none < -2 * se_none:
            verdict = "worse"
        else:
            verdict = "same"
        out.append(
            {
                "benchmark": BENCHMARK,
                "record": "summary",
                "strategy": name,
                "config": describe(name),
                "problem": problem,
                "seed": None,
                "n": len(values),
                "n_errors": len(errors.get((name, problem), [])),
                "mean": mean,
                "std": std,
                "delta_vs_none": d_none,
                "se_vs_none": se_none,
                "vs_none": verdict,
                "delta_vs_fixed_0.2": d_fixed,
                "se_vs_fixed_0.2": se_fixed,
                "seconds": statistics.fmean(secs[(name, problem)]),
                "error": "; ".join(sorted(set(errors.get((name, problem), []))))[:500],
                "warnings": " | ".join(sorted(notes.get((name, problem), set())))[:500],
            }
        )
    return out


def _jsonable(value: Any) -> Any:
    """NaN and infinities as null, so that the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "nan"


def table(summary: list[dict[str, Any]], strategies: list[str], problems: list[str]) -> str:
    """Strategies x problems: mean ± std, Δ vs none in points, and a mark beyond 2 SE."""
    cell = {(r["strategy"], r["problem"]): r for r in summary}
    mark = {"better": " +", "worse": " -", "same": "  ", "n/a": "  "}
    width = 25
    lines = [
        "main-task test accuracy, mean ± std over seeds; (Δ vs none, points); "
        "+/- : better/worse than none beyond 2 SE of the paired difference",
        f"{'strategy':<16}" + "".join(f"{p:>{width}}" for p in problems) + f"{'s/run':>8}",
    ]
    for name in strategies:
        row = f"{name:<16}"
        times = []
        for p in problems:
            r = cell.get((name, p))
            if r is None:
                text = "-"
            elif r["n"] == 0:
                text = "ERROR"
            else:
                text = f"{_fmt(r['mean'], '.3f')}±{_fmt(r['std'], '.3f')}"
                if name != "none":
                    text += f" ({_fmt(100 * r['delta_vs_none'], '+.1f')})"
                text += mark[r["vs_none"]]
                if r["n_errors"]:
                    text += f" E{r['n_errors']}"
                times.append(r["seconds"])
            row += f"{text:>{width}}"
        row += f"{_fmt(statistics.fmean(times), '.1f') if times else '-':>8}"
        lines.append(row)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the records (runs + summary) here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"seeds 0,1 and the strategies {','.join(QUICK_STRATEGIES)} (unless given)",
    )
    parser.add_argument("--seeds", default=None, help="comma list of seeds (default 0,1,2)")
    parser.add_argument(
        "--strategies",
        default=None,
        help="comma list of strategy names (default: all registered); the baselines none "
        "and fixed are always added",
    )
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma list of problems")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    parser.add_argument("--n-train", type=int, default=300, help="labelled training images")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    seeds_text = args.seeds or ("0,1" if args.quick else "0,1,2")
    seeds = [int(s) for s in seeds_text.split(",") if s.strip()]
    if args.strategies:
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    elif args.quick:
        strategies = list(QUICK_STRATEGIES)
    else:
        strategies = all_strategies()
    known = set(all_strategies())
    unknown = [s for s in strategies if s not in known]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(sorted(known))}")
    strategies = [b for b in BASELINES if b not in strategies] + strategies
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    bad = [p for p in problems if p not in PROBLEMS]
    if bad:
        parser.error(f"unknown problems {bad}; known: {', '.join(PROBLEMS)}")

    start = time.perf_counter()
    records = run_all(strategies, seeds, problems, args.epochs, args.n_train, args.batch_size)
    summary = summarize(records)
    elapsed = time.perf_counter() - start
    print(table(summary, strategies, problems))
    failed = sorted({r["strategy"] for r in records if r["error"]})
    if failed:
        print("\nfailures:")
        for r in summary:
            if r["error"]:
                print(f"  {r['strategy']} / {r['problem']}: {r['error']}")
    print(
        f"\n{len(records)} runs, seeds {seeds}, {args.epochs} epochs, n_train {args.n_train}, "
        f"{elapsed:.0f} s total (torch {torch.__version__}, {args.threads} thread(s))"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "benchmark": BENCHMARK,
            "record": "meta",
            "seeds": ",".join(map(str, seeds)),
            "epochs": args.epochs,
            "n_train": args.n_train,
            "seconds": round(elapsed, 1),
            "torch": torch.__version__,
            "threads": args.threads,
            "command": " ".join(sys.argv),
        }
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in [*records, *summary, meta]]
        args.json.write_text(json.dumps(rows, indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
