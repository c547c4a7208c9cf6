"""ForkMerge: branches trained with different auxiliary weights, merged on validation.

A trainer mode rather than a strategy: a :class:`~auxlab.weighting.Strategy` decides the
weights of one model's losses, while ForkMerge keeps ``K`` copies of the model. Every
``merge_every`` steps the branches, forked from the same parameters and trained on the same
batches with different auxiliary weights, are merged into the convex combination of their
parameters that does best on the validation main loss (or metric); every branch restarts
from the merge (each keeps its own optimizer state).

Cost: ``K`` times one fixed-weight run (each batch is trained once per branch), plus
``K + (K - 1)·(len(grid) - 2)`` validation evaluations per merge (2 + 4 = 6 with the defaults).
Memory: ``K`` models and optimizers, and one more model for the evaluations.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from auxlab.balancer import Balancer
from auxlab.objective import Objective
from auxlab.train._checkpoint import default_monitor, higher_is_better
from auxlab.train._evaluate import _collect, evaluate
from auxlab.train._history import History
from auxlab.train._loader import Batch, call_model, device_of, to_device
from auxlab.train._optimizers import make_optimizer
from auxlab.weighting import FixedWeights

__all__ = ["ForkMergeResult", "MergeRecord", "forkmerge", "merge_states"]

State = dict[str, torch.Tensor]

#: The default mixing grid: λ in steps of 0.2 (the paper searches a grid of λ too).
DEFAULT_GRID = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class MergeRecord:
    """One merge.

    Attributes:
        step: Training steps (per branch) done when the merge happened.
        epoch: The epoch it happened in (from 1).
        lambdas: The convex coefficient of each branch (they sum to 1).
        weights: The effective weight per auxiliary task: ``Σₖ λₖ·wₖ``.
        score: The merged model's validation score (``merge_on``).
        branch_scores: Each branch's validation score before merging.
    """

    step: int
    epoch: int
    lambdas: list[float]
    weights: dict[str, float]
    score: float
    branch_scores: list[float]


@dataclass
class ForkMergeResult:
    """What :func:`forkmerge` returns.

    Attributes:
        history: Per-epoch records (``val_*`` of the merged model, ``weight_<aux>``: the
            epoch's mean effective weight, ``seconds``), as :func:`~auxlab.fit`'s.
        merges: Every merge, in order.
        branch_weights: The weights of each branch, ``[{task: weight}]``.
        best_epoch: The epoch whose merged model is kept (by ``monitor``), from 1.
        monitor: The epoch key the best epoch is chosen by.
        evaluations: Validation evaluations spent on merging.
    """

    history: History
    merges: list[MergeRecord]
    branch_weights: list[dict[str, float]]
    best_epoch: int
    monitor: str
    evaluations: int = 0
    trajectory: list[dict[str, float]] = field(default_factory=list)

    @property
    def effective_weight(self) -> dict[str, float]:
        """The mean effective weight of the best epoch's merges (the kept model's epoch)."""
        kept = [m for m in self.merges if m.epoch == self.best_epoch] or self.merges
        auxes = list(self.branch_weights[0]) if self.branch_weights else []
        return {
            t: sum(m.weights[t] for m in kept) / len(kept) if kept else 0.0
            for t in auxes
            if kept and t in kept[0].weights
        }


def merge_states(states: Sequence[State], lambdas: Sequence[float]) -> State:
    """The convex combination ``Σₖ λₖ·θₖ`` of parameter states (floating tensors only).

    Integer buffers (BatchNorm's ``num_batches_tracked``) are taken from the first state.

    Raises:
        ValueError: For coefficients that are negative or do not sum to 1.
    """
    if len(states) != len(lambdas) or not states:
        raise ValueError(f"need one coefficient per state: {len(states)} states, {lambdas}")
    if any(lam < 0 for lam in lambdas) or abs(sum(lambdas) - 1.0) > 1e-6:
        raise ValueError(f"the coefficients must be >= 0 and sum to 1, got {list(lambdas)}")
    out: State = {}
    for key, first in states[0].items():
        if not torch.is_floating_point(first):
            out[key] = first.clone()
            continue
        acc = torch.zeros_like(first)
        for s, lam in zip(states, lambdas, strict=True):
            if lam:
                acc.add_(s[key], alpha=float(lam))
        out[key] = acc
    return out


def search_merge(
    states: Sequence[State],
    score: Callable[[State], float],
    grid: Sequence[float],
    higher: bool,
) -> tuple[list[float], State, float, list[float], int]:
    """The convex combination of ``states`` that scores best, searched greedily on ``grid``.

    The branches are ranked by their own score; starting from the best, each next branch
    ``k`` is mixed in as ``(1 − λ)·θ + λ·θₖ`` for every ``λ`` of the grid, keeping the best
    (``λ = 0`` keeps the current mix). With two branches this is the plain grid search.

    Returns:
        ``(lambdas, merged state, its score, each branch's score, evaluations)``.
    """
    sign = 1.0 if higher else -1.0
    own = [score(s) for s in states]
    evals = len(states)
    order = sorted(range(len(states)), key=lambda k: -sign * _key(own[k], higher))
    lam = [0.0] * len(states)
    lam[order[0]] = 1.0
    cur, cur_score = states[order[0]], own[order[0]]
    inner = [g for g in grid if 0.0 < g < 1.0]
    for k in order[1:]:
        best_l, best_s, best_state = 0.0, cur_score, cur
        cands = [(g, None) for g in inner] + [(1.0, own[k])]
        for g, known in cands:
            mixed = merge_states([cur, states[k]], [1.0 - g, g])
            if known is None:
                s = score(mixed)
                evals += 1
            else:
                s = known
            if _key(s, higher) * sign > _key(best_s, higher) * sign:
                best_l, best_s, best_state = g, s, mixed
        if best_l > 0:
            lam = [(1.0 - best_l) * v for v in lam]
            lam[k] += best_l
            cur, cur_score = best_state, best_s
    return lam, cur, cur_score, own, evals


def _main_loss(model: nn.Module, val: Iterable[Batch], objective: Objective, device: Any) -> float:
    """The main task's validation loss (no metrics: a merge is scored many times)."""
    outputs, targets, _ = _collect(model, val, device, True, objective.tasks or None)
    with torch.no_grad():
        return float(objective(outputs, targets)[objective.main])


def _key(value: float, higher: bool) -> float:
    """A score to compare, with NaN worst."""
    if math.isnan(value):
        return -math.inf if higher else math.inf
    return value


def _branch_weights(
    weights: Sequence[float | Mapping[str, float]], tasks: Sequence[str], main: str
) -> list[dict[str, float]]:
    auxes = [t for t in tasks if t != main]
    if len(weights) < 2:
        raise ValueError(
            f"ForkMerge needs at least 2 branches (weights), got {list(weights)}; e.g. "
            "weights=[0.0, 1.0]"
        )
    out = []
    for i, w in enumerate(weights):
        if isinstance(w, Mapping):
            unknown = [t for t in w if t not in auxes]
            if unknown:
                raise ValueError(
                    f"weights[{i}] names {unknown}, which are not auxiliary tasks of "
                    f"{list(tasks)} (main '{main}')"
                )
            d = {t: float(w.get(t, 0.0)) for t in auxes}
        else:
            d = dict.fromkeys(auxes, float(w))
        for t, v in d.items():
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"weights[{i}]['{t}'] must be a finite number >= 0, got {v!r}")
        out.append(d)
    return out


def _check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    g = tuple(float(v) for v in grid)
    if not g or any(not (0.0 <= v <= 1.0) for v in g):
        raise ValueError(f"grid must be numbers in [0, 1], e.g. (0, 0.2, ..., 1); got {grid!r}")
    return tuple(sorted(set(g)))


def forkmerge(
    model: nn.Module | Any,
    train: Iterable[Batch] | None = None,
    objective: Objective | None = None,
    *,
    val: Iterable[Batch] | None = None,
    weights: Sequence[float | Mapping[str, float]] = (0.0, 1.0),
    merge_every: int | None = None,
    grid: Sequence[float] = DEFAULT_GRID,
    merge_on: str = "loss",
    epochs: int = 5,
    optimizer: str | None = None,
    lr: float | None = None,
    monitor: str | None = None,
    seed: int | None = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
) -> ForkMergeResult:
    """Train with ForkMerge; the model ends with the best epoch's merged parameters.

    ``K = len(weights)`` branches start from the same parameters and train on the same
    batches, branch ``k`` with the fixed weights ``{main: 1, aux: weights[k]}``. Every
    ``merge_every`` steps (and at the end of each epoch) they are merged into
    ``θ = Σₖ λₖ·θₖ``, with ``λ`` on the simplex chosen greedily on ``grid`` to do best on
    the validation main loss (``merge_on="loss"``) or the main task's first metric
    (``"metric"``); every branch restarts from ``θ``. The *effective weight* of a merge is
    ``Σₖ λₖ·wₖ``: the fixed weight the merged model stands for, to first order.

    Cost: ``K`` fixed-weight runs plus ``K + (K−1)·(len(grid)−2)`` validation evaluations
    per merge.

    Args:
        model: The model, or an :class:`auxlab.study.Problem` (then ``train``,
            ``objective``, ``val``, ``optimizer`` and ``lr`` default to its own).
        train: Training batches.
        objective: The losses (and metrics).
        val: Validation batches (required): they choose the merges and the best epoch.
        weights: Each branch's auxiliary weight: a number (every auxiliary task) or
            ``{aux: weight}``. The default ``(0.0, 1.0)`` is the paper's: the main task alone
            and the main task with its auxiliary tasks.
        merge_every: Steps between merges (``None``: twice per epoch).
        grid: The values of ``λ`` searched when a branch is mixed in, in [0, 1].
        merge_on: ``"loss"`` (the main task's validation loss) or ``"metric"`` (``monitor``).
        epochs: Passes over ``train``.
        optimizer: An optimizer name (default: the problem's, else ``"adam"``); one per
            branch.
        lr: Its learning rate.
        monitor: The epoch key the best epoch is chosen by (default: the main task's first
            validation metric, else its validation loss).
        seed: Seeds torch's global generator inside the call (dropout).
        callbacks: Called with each epoch's record.

    Raises:
        ValueError: For fewer than 2 branches, negative weights, a grid outside [0, 1],
            no validation data, or bad ``merge_every``, ``epochs`` or ``merge_on``.

    Example:
        >>> import torch
        >>> from auxlab import ArrayLoader, Objective
        >>> from auxlab.train import forkmerge
        >>> class Net(torch.nn.Module):
        ...     output_names = ("main", "aux")
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.trunk, self.a, self.b = (torch.nn.Linear(4, 8), torch.nn.Linear(8, 1),
        ...                                       torch.nn.Linear(8, 1))
        ...     def forward(self, x):
        ...         h = self.trunk(x).tanh()
        ...         return {"main": self.a(h).squeeze(-1), "aux": self.b(h).squeeze(-1)}
        >>> x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
        >>> data = ArrayLoader(x, {"main": x[:, 0], "aux": x[:, 1]}, batch_size=16)
        >>> out = forkmerge(Net(), data, Objective({"main": "mse", "aux": "mse"}), val=data,
        ...                 epochs=2, seed=0)
        >>> len(out.merges), 0.0 <= out.effective_weight["aux"] <= 1.0
        (4, True)

    Reference:
        Jiang, Chen, Fu, Long, Wang, "ForkMerge: Mitigating Negative Transfer in
        Auxiliary-Task Learning", NeurIPS 2023.
    """
    if hasattr(model, "model") and hasattr(model, "objective") and hasattr(model, "train"):
        problem: Any = model
        model = problem.model
        train = problem.train if train is None else train
        objective = problem.objective if objective is None else objective
        val = problem.val if val is None else val
        optimizer = optimizer or problem.optimizer
        lr = problem.lr if lr is None else lr
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or a Problem, got {type(model).__name__}")
    if train is None or objective is None:
        raise TypeError("forkmerge needs train and objective (or a Problem)")
    if val is None:
        raise ValueError("forkmerge needs validation data (val=...): it chooses every merge")
    if merge_on not in ("loss", "metric"):
        raise ValueError(f"merge_on must be 'loss' or 'metric', got {merge_on!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if merge_every is not None and (
        isinstance(merge_every, bool) or not isinstance(merge_every, int) or merge_every < 1
    ):
        raise ValueError(f"merge_every must be an integer >= 1 (or None), got {merge_every!r}")
    grid_t = _check_grid(grid)
    # A seed draws the branches' randomness without touching the caller's generator.
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng:
        if seed is not None:
            torch.manual_seed(seed)
        return _forkmerge(
            model,
            train,
            objective,
            val,
            weights,
            merge_every,
            grid_t,
            merge_on,
            epochs,
            optimizer or "adam",
            lr,
            monitor,
            callbacks,
        )


def _forkmerge(
    model: nn.Module,
    train: Iterable[Batch],
    objective: Objective,
    val: Iterable[Batch],
    weights: Sequence[float | Mapping[str, float]],
    merge_every: int | None,
    grid: tuple[float, ...],
    merge_on: str,
    epochs: int,
    optimizer: str,
    lr: float | None,
    monitor: str | None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]],
) -> ForkMergeResult:
    objective.bind(model)
    tasks, main = objective.tasks, objective.main
    if not tasks:
        raise ValueError("the objective knows no tasks: give the model output_names")
    branch_w = _branch_weights(weights, tasks, main)
    auxes = [t for t in tasks if t != main]
    monitor = monitor or default_monitor(objective)
    higher = higher_is_better(monitor)
    merge_key = f"loss_{main}" if merge_on == "loss" else monitor[len("val_") :]
    merge_higher = higher_is_better(merge_key)
    if merge_every is None:
        per_epoch = len(train) if isinstance(train, Sized) else 0
        merge_every = max(1, per_epoch // 2) if per_epoch else 50
    device = device_of(model)
    branches = [model] + [copy.deepcopy(model) for _ in branch_w[1:]]
    scratch = copy.deepcopy(model)
    balancers = [Balancer(FixedWeights({main: 1.0, **w}), main=main, tasks=tasks) for w in branch_w]
    opts = [make_optimizer(optimizer, list(m.parameters()), lr) for m in branches]

    def score(state: State) -> float:
        scratch.load_state_dict(state)
        if merge_on == "metric":
            return float(evaluate(scratch, val, objective, "")[merge_key])
        return _main_loss(scratch, val, objective, device)

    history = History()
    merges: list[MergeRecord] = []
    evaluations = 0
    step = 0
    best_value = -math.inf if higher else math.inf
    best_epoch, best_state = 0, None

    def merge(epoch: int) -> None:
        nonlocal evaluations
        states = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in branches]
        lam, merged, s, own, n = search_merge(states, score, grid, merge_higher)
        evaluations += n
        for m in branches:
            m.load_state_dict(merged)
        eff = {t: sum(lk * bw[t] for lk, bw in zip(lam, branch_w, strict=True)) for t in auxes}
        merges.append(MergeRecord(step, epoch, lam, eff, s, own))

    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        since = 0
        first_merge = len(merges)
        sums: dict[str, float] = {}
        count = 0
        for m in branches:
            m.train()
        for batch in train:
            batch = to_device(batch, device)
            for k, (m, bal, opt) in enumerate(zip(branches, balancers, opts, strict=True)):
                inputs, targets = batch
                opt.zero_grad(set_to_none=True)
                losses = objective(call_model(m, inputs), targets)
                record = bal.backward(losses)
                if not record.skipped:
                    opt.step()
                if k == 0:
                    count += 1
                    for t, v in record.losses.items():
                        sums[f"train_loss_{t}"] = sums.get(f"train_loss_{t}", 0.0) + v
            step += 1
            since += 1
            if since == merge_every:
                merge(epoch)
                since = 0
        if since:
            merge(epoch)
        ep: dict[str, Any] = {"epoch": epoch}
        ep.update({k: v / max(count, 1) for k, v in sums.items()})
        new = merges[first_merge:]
        for t in auxes:
            ep[f"weight_{t}"] = sum(m.weights[t] for m in new) / len(new)
        ep.update(evaluate(model, val, objective, "val_"))
        ep["seconds"] = time.perf_counter() - start
        ep["merges"] = len(new)
        history.epochs.append(ep)
        for cb in callbacks:
            cb(ep)
        value = float(ep[monitor])
        better = value > best_value if higher else value < best_value
        if best_state is None or better:
            best_value, best_epoch = value, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    history.best_epoch = best_epoch
    history.monitor = monitor
    trajectory = [{t: ep[f"weight_{t}"] for t in auxes} for ep in history.epochs]
    return ForkMergeResult(history, merges, branch_w, best_epoch, monitor, evaluations, trajectory)
