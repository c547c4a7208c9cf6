"""Data-parallel equivalence: 2 gloo processes on CPU take the step of one process.

One spawn of two processes loops over every registered strategy at T=2 and T=4. Each
process wraps the same initial model in DistributedDataParallel, takes half of each global
batch and trains 3 steps with ``Balancer(..., distributed=ddp)`` (so step 1 runs: DDP's
"Expected to have finished reduction in the prior iteration" would appear there). Rank 0
then trains the same initial model on the whole batches in one process, and the parameters,
weights and loss values are compared.
"""

from __future__ import annotations

import json
import os
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from torch import distributed as dist
from torch import multiprocessing as mp
from torch import nn

from auxlab import Balancer, Objective, fit
from auxlab.distributed import resolve
from auxlab.schedules import linear
from auxlab.weighting import (
    FixedWeights,
    GradientCosine,
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

STEPS = 3
BATCH = 8  # global; each of the 2 processes takes 4 rows
WORLD = 2
# Float tolerance of the comparison (float32 throughout; the processes' halves are summed
# in a different order than the whole batch).
TOL = 1e-5


def build(name: str, aux: list[str]) -> Strategy:
    """Every registered strategy: defaults, or a sensible configuration where it needs one."""
    fixed = dict.fromkeys(aux, 0.2)
    examples = {
        "relative": lambda: RelativeWeights(0.2),
        "normalized": lambda: normalized(FixedWeights(fixed)),
        "gated": lambda: gated(FixedWeights(fixed)),
        "warmup": lambda: warmup(FixedWeights(fixed), steps=2),
        "chain": lambda: chain(FixedWeights(fixed), GradientCosine()),
        "fixed": lambda: FixedWeights(fixed),
        "scheduled": lambda: scheduled({t: linear(0.0, 1.0, 3) for t in aux}),
    }
    factory = examples.get(name)
    return factory() if factory is not None else create(name)


class Net(nn.Module):
    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in tasks})

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        z = self.trunk(x)
        return {t: h(z).squeeze(-1) for t, h in self.heads.items()}, z


def _data(tasks: list[str]) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        x = torch.randn(BATCH, 5, generator=g)
        y = {t: torch.randn(BATCH, generator=g) * (i + 1) for i, t in enumerate(tasks)}
        out.append((x, y))
    return out


def _train(
    name: str, tasks: list[str], rows: slice, distributed: object, every: int = 1
) -> dict[str, object]:
    torch.manual_seed(0)
    model: nn.Module = Net(tasks)
    plain = model
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    strategy = build(name, tasks[1:])
    balancer = Balancer(
        strategy,
        shared=plain.trunk,
        main="main",
        tasks=tasks,
        distributed=model if distributed else False,
        every=every,
    )
    opt = torch.optim.SGD(list(plain.parameters()) + balancer.parameters(), lr=0.1)
    weights, losses = [], []
    for x, y in _data(tasks):
        opt.zero_grad(set_to_none=True)
        out, z = model(x[rows])
        step_losses = {t: nn.functional.mse_loss(out[t], y[t][rows]) for t in tasks}
        record = balancer.backward(step_losses, representation=z)
        opt.step()
        weights.append([record.weights[t] for t in tasks])
        losses.append([record.losses[t] for t in tasks])
    params = torch.cat([p.detach().reshape(-1) for p in plain.parameters()])
    extra = [p.detach().reshape(-1) for p in balancer.parameters()]
    if extra:
        params = torch.cat([params, *extra])
    return {"params": params, "weights": torch.tensor(weights), "losses": torch.tensor(losses)}


class DictNet(Net):
    """The same network, returning its outputs only (for ``fit``)."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return super().forward(x)[0]


def _fit(strategy: str, rows: slice, ddp: bool) -> torch.Tensor:
    """``fit`` on a DDP model (detected), or in one process (``distributed=False``: the
    process group is initialised, which would otherwise switch it on)."""
    tasks = ["main", "aux1"]
    torch.manual_seed(0)
    plain = DictNet(tasks)
    model: nn.Module = nn.parallel.DistributedDataParallel(plain) if ddp else plain
    batches = [(x[rows], {t: v[rows] for t, v in y.items()}) for x, y in _data(tasks)]
    fit(model, batches, Objective("mse", main="main"), strategy, epochs=2, optimizer="sgd",
        lr=0.1, shared=plain.trunk, progress=False, distributed=None if ddp else False)  # fmt: skip
    return torch.cat([p.detach().reshape(-1) for p in plain.parameters()])


class Refuses(FixedWeights):
    """A strategy that declares it cannot be averaged across processes."""

    distributed_refusal = "its decision depends on each process's own batch"


def _refusals(tasks: list[str]) -> dict[str, str]:
    out = {}
    for key, make in {
        "layerwise": lambda: Balancer(
            "pcgrad", shared=Net(tasks).trunk, grad_mode="layerwise", distributed=True
        ),
        "strategy": lambda: Balancer(Refuses({"aux1": 0.2}), distributed=True),
    }.items():
        try:
            make()
            out[key] = "accepted"
        except ValueError as err:
            out[key] = str(err)
    return out


def _worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    # A failure in one process makes the other's next collective time out, not hang.
    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder}/store",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    results: dict[str, object] = {}
    try:
        half = BATCH // WORLD
        for num_tasks in (2, 4):
            tasks = ["main"] + [f"aux{i}" for i in range(1, num_tasks)]
            for name in list_strategies():
                key = f"{name}/{num_tasks}"
                try:
                    got = _train(name, tasks, slice(rank * half, (rank + 1) * half), True)
                except ValueError as err:
                    results[key] = {"refused": str(err)}
                    continue
                # The same .grad on every process: the parameters after 3 steps agree.
                both = [torch.zeros_like(got["params"]) for _ in range(WORLD)]
                dist.all_gather(both, got["params"])
                if rank != 0:
                    continue
                ref = _train(name, tasks, slice(None), False)
                results[key] = {
                    name_: float((got[name_] - ref[name_]).abs().max())
                    for name_ in ("params", "weights", "losses")
                } | {"ranks": float((both[0] - both[1]).abs().max())}
        half_rows = slice(rank * half, (rank + 1) * half)
        # Steps between refreshes reuse the weights: the shared block's gradient then comes
        # from the local backward and is averaged after it.
        tasks = ["main", "aux1", "aux2", "aux3"]
        for name in ("pcgrad", "uncertainty"):
            got = _train(name, tasks, half_rows, True, every=2)
            if rank == 0:
                ref = _train(name, tasks, slice(None), False, every=2)
                diff = float((got["params"] - ref["params"]).abs().max())  # type: ignore[operator]
                results[f"every/{name}"] = {"params": diff}
        for strategy in ("pcgrad", "uncertainty"):
            got = _fit(strategy, half_rows, True)
            if rank == 0:
                diff = float((got - _fit(strategy, slice(None), False)).abs().max())
                results[f"fit/{strategy}"] = {"params": diff}
        results["refusals"] = _refusals(["main", "aux1"])  # type: ignore[assignment]
    except Exception:  # reported to the test, which fails with it
        results["error"] = traceback.format_exc()
    finally:
        dist.destroy_process_group()
    if rank == 0:
        Path(folder, "results.json").write_text(json.dumps(results, indent=1))


def run_equivalence(folder: str) -> dict[str, dict[str, float]]:
    """Spawn the two processes once; return ``{"<name>/<T>": {...}}`` from rank 0."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(folder,), nprocs=WORLD, join=True)
    return json.loads(Path(folder, "results.json").read_text())


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    return run_equivalence(str(tmp_path_factory.mktemp("ddp")))


#: Registered strategies that refuse data-parallel training, and what their error must say.
#: The others take the global batch's step from averaged signals; the validation-driven
#: ones read a validation gradient that is not averaged across processes.
_VALIDATION = "validation gradient is computed on each process's own batch"
REFUSED: dict[str, str] = dict.fromkeys(("auxilearn", "auxinash", "lookahead-val"), _VALIDATION)


@pytest.mark.parametrize("num_tasks", [2, 4])
@pytest.mark.parametrize("name", list_strategies())
def test_two_processes_take_the_step_of_one(equivalence, name, num_tasks):
    assert "error" not in equivalence, equivalence.get("error")
    got = equivalence[f"{name}/{num_tasks}"]
    if name in REFUSED:
        assert REFUSED[name] in got["refused"]
        return
    assert "refused" not in got, got
    assert got["ranks"] == 0.0  # every process wrote the same .grad, so holds the same model
    assert got["params"] < TOL, got
    assert got["weights"] < TOL, got
    assert got["losses"] < TOL, got


@pytest.mark.parametrize("strategy", ["pcgrad", "uncertainty"])
def test_fit_detects_the_ddp_model(equivalence, strategy):
    assert equivalence[f"fit/{strategy}"]["params"] < TOL


def test_what_cannot_be_averaged_is_refused_with_the_reason(equivalence):
    refusals = equivalence["refusals"]
    assert "mean of the processes' Gramians is not the Gramian" in refusals["layerwise"]
    assert "grad_mode='auto'" in refusals["layerwise"]
    assert "Refuses cannot be used in data-parallel training: its decision" in refusals["strategy"]


def test_off_without_a_process_group():
    assert resolve(None) is None
    assert resolve(False) is None
    balancer = Balancer("pcgrad", shared=Net(["main", "aux1"]).trunk)
    assert type(balancer._source).__name__ == "SignalSource"


def test_bad_distributed_values_are_named():
    with pytest.raises(TypeError, match="DistributedDataParallel model, a process group"):
        Balancer("equal", distributed="gloo")
    with pytest.raises(ValueError, match="init_process_group"):
        Balancer("equal", distributed=True)


@pytest.mark.parametrize("strategy", ["pcgrad", "uncertainty"])
def test_steps_between_refreshes_are_averaged_too(equivalence, strategy):
    assert equivalence[f"every/{strategy}"]["params"] < TOL
