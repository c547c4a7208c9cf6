"""Step cost of the validation-driven strategies, as a ratio to equal weighting's step.

Every strategy trains its own copy of the same small model (an MLP trunk shared by a main
head and T-1 auxiliary heads) on the same batches, with the same validation batches; the
steps are interleaved in rounds (equal weighting first, then each strategy once). A step
is ``zero_grad``, forward, the objective, ``Balancer.backward`` and ``optimizer.step``; for
the validation-driven strategies it includes their validation forward and backward. Steps
are summed in blocks of 10 consecutive rounds (so a strategy that does extra work every
10th step is charged its average), and the median block of each strategy is divided by
equal weighting's median block from the same rounds. The ratio is taken on the process's
CPU time (one torch thread), which other processes on a shared machine do not inflate;
the wall-clock ratio is recorded beside it.

``lookahead-val`` is also measured with ``Balancer(every=5)`` (its signals and its weight
step every 5th step, the weights reused in between). AuxiLearn is measured with
``every=1`` (the cost of one hypergradient step, every step) and with its default
``every=10`` (the cost averaged over its period). ``ol-aux`` (the look-ahead on the
*training* main loss) is the reference for the per-task gradients.

Reproduce::

    python benchmarks/validation_weighting.py --json validation_weighting.json   # ~2 min
    python benchmarks/validation_weighting.py --quick --json /tmp/vw.json        # ~15 s

Records: one per (strategy, tasks) with ``benchmark``, ``strategy``, ``config``, ``model``,
``tasks``, ``batch_size``, ``seconds`` (median seconds per step), ``ratio`` (to equal
weighting's, per step, from CPU time), ``wall_seconds`` and ``wall_ratio`` (the same from
wall-clock time), ``steps``, ``threads``, ``torch``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auxlab import Balancer, Objective
from auxlab.weighting import AuxiLearn, AuxiNash, LookaheadVal, OLAux, Strategy, create

# (name in the records, config, factory, the Balancer's every)
STRATEGIES: list[tuple[str, str, Callable[[], Strategy], int]] = [
    ("equal", "", lambda: create("equal"), 1),
    ("ol-aux", "horizon=10", lambda: OLAux(), 1),
    ("lookahead-val", "", lambda: LookaheadVal(), 1),
    ("lookahead-val", "Balancer(every=5)", lambda: LookaheadVal(), 5),
    ("auxilearn", "linear, every=1, terms=3", lambda: AuxiLearn(every=1), 1),
    ("auxilearn", "linear, every=10, terms=3", lambda: AuxiLearn(), 1),
    ("auxilearn", "monotone, every=1, terms=3", lambda: AuxiLearn("monotone", every=1), 1),
    ("auxilearn", "monotone, every=10, terms=3", lambda: AuxiLearn("monotone"), 1),
    ("auxinash", "", lambda: AuxiNash(), 1),
]


class Model(nn.Module):
    """An MLP trunk (``width`` units, two hidden layers) shared by one linear head per task."""

    def __init__(self, tasks: int, inputs: int = 64, width: int = 256) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.heads = nn.ModuleDict(
            {("main" if i == 0 else f"aux{i}"): nn.Linear(width, 1) for i in range(tasks)}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {t: head(h).squeeze(-1) for t, head in self.heads.items()}


def batches(n: int, tasks: int, batch_size: int, seed: int) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(batch_size, 64, generator=g)
        y = {
            ("main" if i == 0 else f"aux{i}"): torch.randn(batch_size, generator=g)
            for i in range(tasks)
        }
        out.append((x, y))
    return out


def measure(
    tasks: int, rounds: int, warmup: int, batch_size: int, seed: int
) -> list[dict[str, Any]]:
    torch.manual_seed(seed)
    base = Model(tasks)
    names = ["main"] + [f"aux{i}" for i in range(1, tasks)]
    objective = Objective(dict.fromkeys(names, "mse"), main="main")
    train = batches(8, tasks, batch_size, seed)
    val = batches(4, tasks, batch_size, seed + 1)
    runs = []
    for name, config, factory, every in STRATEGIES:
        model = copy.deepcopy(base)

        def val_loss(batch: Any, model: nn.Module = model) -> torch.Tensor:
            x, y = batch
            return objective(model(x), y)["main"]

        balancer = Balancer(
            factory(), shared=model.trunk, main="main", every=every, val=val, val_loss=val_loss
        )
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        runs.append((name, config, model, balancer, opt, {"cpu": [], "wall": []}))
    for r in range(warmup + rounds):
        x, y = train[r % len(train)]
        for _, _, model, balancer, opt, times in runs:
            cpu, wall = time.process_time(), time.perf_counter()
            opt.zero_grad(set_to_none=True)
            balancer.backward(objective(model(x), y))
            opt.step()
            if r >= warmup:
                times["cpu"].append(time.process_time() - cpu)
                times["wall"].append(time.perf_counter() - wall)
    base = {k: _block_median(v) for k, v in runs[0][5].items()}
    out = []
    for name, config, _, _, _, times in runs:
        cpu, wall = _block_median(times["cpu"]), _block_median(times["wall"])
        out.append(
            {
                "benchmark": "validation_weighting",
                "strategy": name,
                "config": config,
                "model": "mlp 64-256-256, linear heads",
                "tasks": tasks,
                "batch_size": batch_size,
                "seconds": cpu,
                "ratio": cpu / base["cpu"],
                "wall_seconds": wall,
                "wall_ratio": wall / base["wall"],
                "steps": len(times["cpu"]),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    return out


def _block_median(times: list[float], block: int = 10) -> float:
    """The median over blocks of ``block`` consecutive steps of their mean step time."""
    sums = [sum(times[i : i + block]) / block for i in range(0, len(times) - block + 1, block)]
    return statistics.median(sums)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="write the records to this file")
    p.add_argument("--quick", action="store_true", help="fewer rounds, T = 3 only")
    p.add_argument("--rounds", type=int, help="timed rounds (default 300, 60 with --quick)")
    p.add_argument("--warmup", type=int, default=10, help="untimed rounds first")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (60 if args.quick else 300)
    records = []
    for tasks in (3,) if args.quick else (2, 3, 5):
        recs = measure(tasks, rounds, args.warmup, args.batch_size, args.seed)
        records += recs
        for r in recs:
            print(
                f"T={tasks} {r['strategy']:>14} {r['config']:<28} "
                f"{r['seconds'] * 1e3:7.2f} ms/step (CPU)  x{r['ratio']:.2f}  "
                f"(wall x{r['wall_ratio']:.2f})"
            )
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
