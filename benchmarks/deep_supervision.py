"""Deep supervision on Fashion-MNIST: do GoogLeNet-style auxiliary classifiers help?

The classic answer (Szegedy et al., CVPR 2015, §5; Lee et al., AISTATS 2015) credits
auxiliary classifiers with three effects. This benchmark measures each one:

1. **Stronger gradient at lower layers.** Every ``--grad-every`` (20) steps, the gradient of each
   task's loss on the parameters of the first convolution block (``stem``) and of the last
   Inception module (``inc5b``) is computed with ``torch.autograd.grad`` on the training
   batch. ``grad_norm_first_block`` is the norm of the gradient that the step applies there
   (``Σ w_t ∇L_t``), ``grad_norm_first_block_main`` that of the main loss alone, and
   ``grad_ratio_first_last`` the first block's over the last block's, all averaged over the
   measured steps (``..._early`` over the first 10 % of steps only).
2. **Earlier useful low-level features.** At 10 % and 25 % of the steps, and at the end, a
   ridge linear probe (closed form, fixed λ) is fitted on the features of ``inc3b`` (below
   both heads) and ``inc4a`` (the first head's tap), 2x2-average-pooled, from 1,000 training
   images and scored on 1,000 test images; the main classifier's accuracy on the same 1,000
   test images is recorded too (``*_at_init`` before training, as a reference: random
   convolutional features are already a decent probe input).
3. **Regularisation on small data.** ``train_test_gap`` is the main classifier's accuracy
   on its training set (at most 2,000 of its images) minus its accuracy on the 10,000 test
   images, at the end.

Grid (default): training-set size 1,000 / 5,000 / 60,000 (class-stratified subsets, drawn
with the run's seed) x auxiliary weight 0, 0.1, 0.3, 1 (both heads, ``FixedWeights``) and
0.3 annealed linearly to zero at 75 % of the steps (``scheduled`` + ``anneal_to_zero``) x
seeds 0, 1, 2. Model: :func:`auxlab.models.small_googlenet` (nine Inception modules, heads
on ``inc4a`` and ``inc4d``, no batch normalisation as in GoogLeNet) at ``--width 1/16`` with
``--stem-stride 2`` so that the whole grid fits the CPU budget; Adam, learning rate 3e-3,
batch 128, a fixed number of steps per size (``--steps``: 120 / 160 / 200, i.e. about 15,
4 and 0.4 epochs: on 60,000 images each image is seen at most once, so that size measures
the large-data regime at equal compute, not a converged network). Weight 0 is the plain
network: the heads are attached but get no gradient, so every run costs the same.

Each finished run is appended to ``--json`` at once (a list of flat records), so an
interrupted run keeps what it has. ``--jobs N`` runs N processes of one thread each.

Reproduce::

    python benchmarks/deep_supervision.py --json deep_supervision.json          # full grid
    python benchmarks/deep_supervision.py --quick --json /tmp/ds_quick.json     # 4 runs, ~2 min

Needs the Debian package ``dataset-fashion-mnist`` (see ``auxlab.datasets``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import auxlab
from auxlab import ArrayLoader, Balancer, FixedWeights, Objective, scheduled
from auxlab.datasets._fashion_mnist import FashionMNIST, fashion_mnist, stratified_subset
from auxlab.models._googlenet import small_googlenet
from auxlab.models._heads import AuxHeads
from auxlab.schedules import anneal_to_zero

SIZES = (1_000, 5_000, 60_000)
WEIGHTS = (0.0, 0.1, 0.3, 1.0)
SEEDS = (0, 1, 2)
STEPS = {1_000: 120, 5_000: 160, 60_000: 200}
PROBE_LAYERS = ("inc3b", "inc4a")
PROBE_N = 1_000
TRAIN_EVAL_MAX = 2_000
AUX = ("aux1", "aux2")


@dataclass(frozen=True)
class Config:
    train_size: int
    strategy: str  # "fixed" or "anneal_to_zero"
    weight: float
    seed: int
    steps: int
    width: float
    stem_stride: int
    batch_norm: bool
    init: str
    batch_size: int
    lr: float
    grad_every: int


# ---------------------------------------------------------------------------------------------
# Data shared by the worker processes (loaded once, before forking).

_DATA: FashionMNIST | None = None


def _data() -> FashionMNIST:
    global _DATA
    if _DATA is None:
        _DATA = fashion_mnist()
    return _DATA


def _standardize(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    return (t - FashionMNIST.MEAN) / FashionMNIST.STD


# ---------------------------------------------------------------------------------------------
# Measurements.


@torch.no_grad()
def _features(model: AuxHeads, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Pooled features of some layers, captured with temporary forward hooks."""
    modules = dict(model.backbone.named_modules())
    store: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _a, out, name=name: store[name].append(
                F.adaptive_avg_pool2d(out, 2).flatten(1)
            )
        )
        for name in layers
    ]
    try:
        for i in range(0, len(x), 500):
            model.backbone(x[i : i + 500])
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(v) for name, v in store.items()}


def _ridge_probe(
    f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor
) -> float:
    """Accuracy of a ridge regression on one-hot labels (standardised features, λ = 1)."""
    mu, sd = f_train.mean(0), f_train.std(0).clamp_min(1e-6)
    a = torch.cat([(f_train - mu) / sd, torch.ones(len(f_train), 1)], 1).double()
    b = torch.cat([(f_test - mu) / sd, torch.ones(len(f_test), 1)], 1).double()
    targets = F.one_hot(y_train, 10).double()
    gram = a.T @ a + torch.eye(a.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram, a.T @ targets)
    return float(((b @ w).argmax(1) == y_test).double().mean())


@torch.no_grad()
def _evaluate(model: AuxHeads, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy of every output and the main output's mean cross-entropy, in one pass."""
    sums: dict[str, float] = {"loss": 0.0}
    for i in range(0, len(x), 500):
        out = model(x[i : i + 500])
        yy = y[i : i + 500]
        sums["loss"] += float(F.cross_entropy(out["main"], yy, reduction="sum"))
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float((v.argmax(1) == yy).sum())
    return {k: v / len(x) for k, v in sums.items()}


def _strategy(cfg: Config) -> Any:
    if cfg.strategy == "fixed":
        return FixedWeights({"main": 1.0, **dict.fromkeys(AUX, cfg.weight)})
    if cfg.strategy == "anneal_to_zero":
        end = max(1, int(0.75 * cfg.steps))
        return scheduled(dict.fromkeys(AUX, anneal_to_zero(cfg.weight, end)))
    raise ValueError(cfg.strategy)


def run(cfg: Config) -> dict[str, Any]:
    """Train one configuration; return its flat record."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = _data()
    idx = (
        np.arange(len(data.y_train))
        if cfg.train_size >= len(data.y_train)
        else stratified_subset(data.y_train, cfg.train_size, seed=cfg.seed)
    )
    x_train = _standardize(data.x_train[idx])
    y_train = torch.from_numpy(data.y_train[idx])
    x_test = _standardize(data.x_test)
    y_test = torch.from_numpy(data.y_test)
    # Fixed probe and early-accuracy sets (the same for every run).
    probe_rng = np.random.default_rng(12345)
    probe_train = probe_rng.choice(len(data.y_train), PROBE_N, replace=False)
    probe_test = probe_rng.choice(len(data.y_test), PROBE_N, replace=False)
    xp_train = _standardize(data.x_train[probe_train])
    yp_train = torch.from_numpy(data.y_train[probe_train])
    xp_test, yp_test = x_test[probe_test], y_test[probe_test]
    train_eval = torch.from_numpy(
        np.random.default_rng(cfg.seed).permutation(len(y_train))[:TRAIN_EVAL_MAX]
    )

    model = small_googlenet(
        width=cfg.width,
        stem_stride=cfg.stem_stride,
        batch_norm=cfg.batch_norm,
        init=cfg.init,  # type: ignore[arg-type]
        seed=cfg.seed,
    )
    assert isinstance(model, AuxHeads)
    objective = Objective("ce", outputs=model.output_names)
    balancer = Balancer(_strategy(cfg))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    targets = {t: y_train for t in model.output_names}
    loader = ArrayLoader(x_train, targets, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed)
    first = [p for p in model.backbone.stem.parameters()]
    last = [p for p in model.backbone.inc5b.parameters()]
    tasks = model.output_names

    checkpoints = {
        max(1, round(0.10 * cfg.steps)): "10pct",
        max(2, round(0.25 * cfg.steps)): "25pct",
    }
    rec: dict[str, Any] = {}

    def probe(tag: str) -> None:
        model.eval()
        rec[f"test_accuracy_at_{tag}"] = _evaluate(model, xp_test, yp_test)["main"]
        ftr = _features(model, xp_train, PROBE_LAYERS)
        fte = _features(model, xp_test, PROBE_LAYERS)
        for layer in PROBE_LAYERS:
            rec[f"probe_{layer}_at_{tag}"] = _ridge_probe(ftr[layer], yp_train, fte[layer], yp_test)
        model.train()

    probe("init")
    train_seconds = 0.0
    grad_rows: list[dict[str, float]] = []
    step = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # dropout
        model.train()
        while step < cfg.steps:
            for x, y in loader:
                if step >= cfg.steps:
                    break
                tick = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                losses = objective(model(x), y)
                measure = step % cfg.grad_every == 0
                if measure:
                    per_task = {}
                    for t in tasks:
                        g = torch.autograd.grad(
                            losses[t], first + last, retain_graph=True, allow_unused=True
                        )
                        g = [
                            torch.zeros_like(p) if gi is None else gi
                            for gi, p in zip(g, first + last, strict=True)
                        ]
                        per_task[t] = (
                            torch.cat([gi.flatten() for gi in g[: len(first)]]),
                            torch.cat([gi.flatten() for gi in g[len(first) :]]),
                        )
                record = balancer.backward(losses)
                optimizer.step()
                if measure:
                    w = record.weights
                    g_first = sum(w[t] * per_task[t][0] for t in tasks)
                    g_last = sum(w[t] * per_task[t][1] for t in tasks)
                    row = {
                        "step": step,
                        "first": float(g_first.norm()),
                        "last": float(g_last.norm()),
                        **{f"first_{t}": float(per_task[t][0].norm()) for t in tasks},
                    }
                    grad_rows.append(row)
                train_seconds += time.perf_counter() - tick
                step += 1
                if step in checkpoints:
                    probe(checkpoints[step])
    probe("end")
    model.eval()
    test = _evaluate(model, x_test, y_test)
    train = _evaluate(model, x_train[train_eval], y_train[train_eval])

    early = [r for r in grad_rows if r["step"] < max(1, round(0.10 * cfg.steps))] or grad_rows[:1]

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    return {
        "benchmark": "deep_supervision",
        "model": f"small_googlenet(width={cfg.width:g}, stem_stride={cfg.stem_stride}, "
        f"batch_norm={cfg.batch_norm}, init={cfg.init!r})",
        "train_size": cfg.train_size,
        "strategy": cfg.strategy,
        "weight": cfg.weight,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "epochs": cfg.steps * cfg.batch_size / cfg.train_size,
        "test_accuracy": test["main"],
        "test_accuracy_aux1": test["aux1"],
        "test_accuracy_aux2": test["aux2"],
        "train_accuracy": train["main"],
        "train_test_gap": train["main"] - test["main"],
        "test_loss": test["loss"],
        "train_loss": train["loss"],
        "grad_norm_first_block": mean(grad_rows, "first"),
        "grad_norm_first_block_main": mean(grad_rows, "first_main"),
        "grad_norm_first_block_aux1": mean(grad_rows, "first_aux1"),
        "grad_norm_first_block_aux2": mean(grad_rows, "first_aux2"),
        "grad_norm_first_block_early": mean(early, "first"),
        "grad_norm_first_block_main_early": mean(early, "first_main"),
        "grad_norm_last_block": mean(grad_rows, "last"),
        "grad_ratio_first_last": statistics.fmean(
            r["first"] / max(r["last"], 1e-30) for r in grad_rows
        ),
        **rec,
        "train_seconds_per_step": train_seconds / cfg.steps,
        "seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------------------


def _configs(args: argparse.Namespace) -> list[Config]:
    steps = dict(STEPS)
    if args.steps:
        steps = dict(zip(args.sizes, args.steps, strict=True))
    grid: list[tuple[str, float]] = [("fixed", w) for w in args.weights]
    if args.anneal is not None:
        grid.append(("anneal_to_zero", args.anneal))
    out = []
    for seed in args.seeds:
        for size in args.sizes:
            for strategy, weight in grid:
                out.append(
                    Config(
                        train_size=size,
                        strategy=strategy,
                        weight=weight,
                        seed=seed,
                        steps=steps[size] if size in steps else steps[max(steps)],
                        width=args.width,
                        stem_stride=args.stem_stride,
                        batch_norm=args.batch_norm,
                        init=args.init,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        grad_every=args.grad_every,
                    )
                )
    return out


def summarize(records: list[dict[str, Any]]) -> str:
    """A markdown table: mean ± std over seeds for each size, strategy and weight."""
    keys = [
        ("test_accuracy", "test acc", 100, 1),
        ("train_test_gap", "train-test gap", 100, 1),
        ("grad_norm_first_block_early", "‖g‖ stem, early", 1, 3),
        ("grad_norm_first_block", "‖g‖ stem", 1, 3),
        ("grad_norm_first_block_main", "‖g_main‖ stem", 1, 3),
        ("grad_ratio_first_last", "stem/inc5b", 1, 2),
        ("test_accuracy_at_10pct", "acc @10%", 100, 1),
        ("probe_inc3b_at_init", "probe 3b init", 100, 1),
        ("probe_inc3b_at_10pct", "probe 3b @10%", 100, 1),
        ("probe_inc4a_at_10pct", "probe 4a @10%", 100, 1),
        ("probe_inc4a_at_end", "probe 4a end", 100, 1),
    ]
    groups: dict[tuple[int, str, float], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["train_size"], r["strategy"], r["weight"]), []).append(r)
    head = "| n | aux weight | seeds | " + " | ".join(k[1] for k in keys) + " |"
    lines = [head, "|" + "---|" * (3 + len(keys))]
    for (size, strategy, weight), rows in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "fixed", kv[0][2])
    ):
        label = f"{weight:g}" if strategy == "fixed" else f"{weight:g} → 0"
        cells = []
        for key, _, scale, digits in keys:
            vals = [r[key] * scale for r in rows if key in r and r[key] is not None]
            if not vals:
                cells.append("–")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:.{digits}f}")
            else:
                cells.append(
                    f"{statistics.fmean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"
                )
        lines.append(f"| {size:,} | {label} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the records")
    parser.add_argument("--quick", action="store_true", help="a short run (about 2 minutes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--anneal", type=float, default=0.3, help="annealed weight; <0: none")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--steps", type=int, nargs="+", help="steps per size, in --sizes order")
    parser.add_argument("--width", type=float, default=1 / 16)
    parser.add_argument("--stem-stride", type=int, default=2)
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--init", choices=["he", "xavier_caffe", "torch"], default="he")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--grad-every", type=int, default=20)
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes, 1 thread each (default: 2, or 1 on a 1-core machine)",
    )
    args = parser.parse_args(argv)
    if args.anneal is not None and args.anneal < 0:
        args.anneal = None
    if args.quick:
        args.sizes, args.seeds, args.weights = [1_000, 5_000], [0], [0.0, 0.3]
        args.steps, args.anneal = [60, 60], None
    configs = _configs(args)
    _data()  # load once in the parent; forked workers share it
    print(
        f"{len(configs)} runs; torch {torch.__version__}, auxlab {auxlab.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jobs {args.jobs}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    records: list[dict[str, Any]] = []
    args.json.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def done(rec: dict[str, Any]) -> None:
        rec["load_average"] = os.getloadavg()[0]
        records.append(rec)
        args.json.write_text(json.dumps(records, indent=1))
        elapsed = time.perf_counter() - start
        print(
            f"[{len(records)}/{len(configs)} {elapsed:6.0f}s] n={rec['train_size']:>6} "
            f"{rec['strategy']:>14} w={rec['weight']:<4g} seed={rec['seed']}  test acc "
            f"{rec['test_accuracy']:.4f}  gap {rec['train_test_gap']:+.4f}  |g| stem "
            f"{rec['grad_norm_first_block']:.4f} (main {rec['grad_norm_first_block_main']:.4f})  "
            f"{rec['seconds']:.0f}s ({1000 * rec['train_seconds_per_step']:.0f} ms/step)",
            flush=True,
        )

    if args.jobs <= 1:
        for cfg in configs:
            done(run(cfg))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
            for rec in pool.map(run, configs):
                done(rec)
    total = time.perf_counter() - start
    print(f"\n{len(records)} runs in {total:.0f} s ({total / 60:.1f} min)\n")
    print(summarize(records))
    varying = ("train_size", "strategy", "weight", "seed", "steps")
    fixed = {k: v for k, v in asdict(configs[0]).items() if k not in varying}
    print(f"\nconfig: {json.dumps(fixed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
