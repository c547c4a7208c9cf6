"""The cost of the Balancer's own communication under DistributedDataParallel.

Two gloo processes on the CPU (``torch.multiprocessing``), each with half of a global batch
of 64, train an MLP trunk (32 -> 256 -> 256, tanh; 74,240 shared parameters) with one
linear head per task (MSE), SGD(lr=0.01). Per strategy and task count, in the same run:

* ``plain-ddp``: the baseline, plain DDP with fixed weights: ``Σ wᵢ·Lᵢ`` and one
  ``backward()``, DDP averaging the gradients as usual;
* ``fixed-local``: ``Balancer(FixedWeights(...), distributed=False)`` on the same DDP
  model (DDP averages the one backward; fixed weights need nothing else): the Balancer's
  own bookkeeping without any reduction of its own;
* each strategy: ``Balancer(strategy, shared=trunk, distributed=ddp)``.

``bytes_per_step`` is the payload all-reduced (or gathered) per step and process: DDP's
gradient averaging (every parameter, when it is kept on) plus the Balancer's own reductions
(``DistributedSource.bytes_reduced``): ``T`` loss values, and for strategies that read
per-task gradients the ``T×d`` gradients plus the heads' gradients. ``seconds`` is the
median seconds per step of rank 0 (after warm-up), and ``ratio`` is that over the
``plain-ddp`` median at the same task count. ``comm_seconds`` is the mean time per step
spent in the Balancer's own collectives (``DistributedSource.seconds_reducing``), which
separates the cost of communication from that of the strategy's extra backward passes.
Timings on a shared machine are noisy; rows are interleaved (every round runs every
configuration once) so that load affects them alike.

Reproduce::

    python benchmarks/distributed_overhead.py --json distributed_overhead.json
    python benchmarks/distributed_overhead.py --quick --json /tmp/do.json

Records are flat: ``strategy``, ``tasks``, ``world_size``, ``bytes_per_step``, ``seconds``,
``ratio`` (and ``comm_seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist
from torch import multiprocessing as mp
from torch import nn

WORLD = 2
BATCH = 64
STRATEGIES = [
    "fixed-local",
    "fixed",
    "equal",
    "uncertainty",
    "dwa",
    "mgda-ub",
    "pcgrad",
    "mgda",
    "upgrad",
]
QUICK_STRATEGIES = ["fixed-local", "fixed", "uncertainty", "pcgrad", "upgrad"]


class Net(nn.Module):
    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(32, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(256, 1) for t in tasks})

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        z = self.trunk(x)
        return {t: h(z).squeeze(-1) for t, h in self.heads.items()}, z


class Run:
    """One configuration: a DDP model, its optimizer and its step."""

    def __init__(self, strategy: str, tasks: list[str]) -> None:
        from auxlab import Balancer, FixedWeights
        from auxlab.weighting import create

        torch.manual_seed(0)
        self.tasks = tasks
        self.plain = Net(tasks)
        self.model = nn.parallel.DistributedDataParallel(self.plain)
        self.weights = {t: (1.0 if t == "main" else 0.2) for t in tasks}
        self.balancer = None
        if strategy != "plain-ddp":
            fixed = strategy in ("fixed", "fixed-local")
            made = FixedWeights(self.weights) if fixed else create(strategy)
            self.balancer = Balancer(
                made,
                shared=self.plain.trunk,
                main="main",
                tasks=tasks,
                distributed=False if strategy == "fixed-local" else self.model,
            )
        extra = self.balancer.parameters() if self.balancer is not None else []
        self.opt = torch.optim.SGD(list(self.plain.parameters()) + extra, lr=0.01)
        sync = self.balancer is None or self.model.require_backward_grad_sync
        self.ddp_bytes = sum(p.numel() * p.element_size() for p in self.plain.parameters())
        self.ddp_bytes *= int(sync)

    def step(self, x: torch.Tensor, y: dict[str, torch.Tensor]) -> None:
        self.opt.zero_grad(set_to_none=True)
        out, z = self.model(x)
        losses = {t: nn.functional.mse_loss(out[t], y[t]) for t in self.tasks}
        if self.balancer is None:
            sum(self.weights[t] * losses[t] for t in self.tasks).backward()  # type: ignore[union-attr]
        else:
            self.balancer.backward(losses, representation=z)
        self.opt.step()

    @property
    def own_bytes(self) -> int:
        source = self.balancer._source if self.balancer is not None else None
        return int(getattr(source, "bytes_reduced", 0))

    @property
    def own_seconds(self) -> float:
        source = self.balancer._source if self.balancer is not None else None
        return float(getattr(source, "seconds_reducing", 0.0))


def _worker(rank: int, folder: str, quick: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    task_counts = [2, 4] if quick else [2, 10]
    names = ["plain-ddp"] + (QUICK_STRATEGIES if quick else STRATEGIES)
    warmup, rounds = (3, 10) if quick else (5, 40)
    records: list[dict[str, Any]] = []
    g = torch.Generator().manual_seed(rank)
    for t_count in task_counts:
        tasks = ["main"] + [f"aux{i}" for i in range(1, t_count)]
        runs = {name: Run(name, tasks) for name in names}
        x = torch.randn(BATCH // WORLD, 32, generator=g)
        y = {t: torch.randn(BATCH // WORLD, generator=g) for t in tasks}
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(warmup):
            for run in runs.values():
                run.step(x, y)
        before = {name: run.own_bytes for name, run in runs.items()}
        before_s = {name: run.own_seconds for name, run in runs.items()}
        for _ in range(rounds):
            for name, run in runs.items():
                dist.barrier()
                start = time.perf_counter()
                run.step(x, y)
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["plain-ddp"])
        for name, run in runs.items():
            own = (run.own_bytes - before[name]) / rounds
            seconds = statistics.median(times[name])
            records.append(
                {
                    "strategy": name,
                    "tasks": t_count,
                    "world_size": WORLD,
                    "bytes_per_step": int(run.ddp_bytes + own),
                    "seconds": seconds,
                    "ratio": seconds / base,
                    "comm_seconds": (run.own_seconds - before_s[name]) / rounds,
                }
            )
    dist.destroy_process_group()
    if rank == 0:
        Path(folder, "records.json").write_text(json.dumps(records))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and strategies")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(folder, args.quick), nprocs=WORLD, join=True)
        records = json.loads(Path(folder, "records.json").read_text())
    print(f"{'strategy':<12} {'T':>3} {'bytes/step':>11} {'ms/step':>8} {'ratio':>6} comm ms")
    for r in records:
        print(
            f"{r['strategy']:<12} {r['tasks']:>3} {r['bytes_per_step']:>11} "
            f"{1000 * r['seconds']:>8.2f} {r['ratio']:>6.2f} {1000 * r['comm_seconds']:>7.2f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    return records


if __name__ == "__main__":
    main()
