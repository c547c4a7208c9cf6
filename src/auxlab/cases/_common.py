"""What every case shares: the split protocol, a seeded two-head model, the Problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from auxlab._checks import check_int
from auxlab.objective import Objective
from auxlab.study._problem import Problem
from auxlab.train import ArrayLoader

__all__ = ["SPLIT_SEED", "Split", "TwoHead", "make_problem", "split_rows"]

#: The split of every case is drawn once, with this seed, and is the same for every run seed:
#: a run's seed fixes the model's initialisation and the order of the training batches only,
#: so runs of different seeds differ by those alone, and a paired comparison removes them.
SPLIT_SEED = 20_141


class Split:
    """Row indices of the three parts: ``train`` (fit), ``val`` (choose), ``test`` (score once)."""

    def __init__(self, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> None:
        parts = {"train": train, "val": val, "test": test}
        for name, rows in parts.items():
            if len(rows) == 0:
                raise ValueError(f"the {name} part of the split is empty; ask for more rows")
        self.train, self.val, self.test = train, val, test

    def sizes(self) -> dict[str, int]:
        """Rows in each part."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_rows(n: int, sizes: Sequence[int], seed: int = SPLIT_SEED) -> list[np.ndarray]:
    """Disjoint random row sets of the given sizes out of ``range(n)`` (sorted each).

    Raises:
        ValueError: If the sizes add up to more than ``n``.
    """
    if sum(sizes) > n:
        raise ValueError(f"the parts ask for {sum(sizes)} rows, the data have {n}")
    order = np.random.default_rng(seed).permutation(n)
    out, at = [], 0
    for k in sizes:
        out.append(np.sort(order[at : at + k]))
        at += k
    return out


class TwoHead(nn.Module):
    """A shared MLP trunk with a ``main`` head and an ``aux`` head (``aux_dim`` 0: no aux).

    Args:
        in_dim: Input features.
        hidden: Widths of the trunk's layers (ReLU after each).
        main_dim: Outputs of the main head (1 for a binary logit, squeezed).
        aux_dim: Outputs of the auxiliary head (1: squeezed).
        seed: Seeds the initialisation (the caller's random state is left alone).
    """

    output_names = ("main", "aux")

    def __init__(
        self, in_dim: int, hidden: Sequence[int], main_dim: int, aux_dim: int, seed: int
    ) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            width = in_dim
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            self.trunk = nn.Sequential(*layers)
            self.head_main = nn.Linear(width, main_dim)
            self.head_aux = nn.Linear(width, aux_dim)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        main, aux = self.head_main(h), self.head_aux(h)
        if main.shape[-1] == 1:
            main = main.squeeze(-1)
        if aux.shape[-1] == 1:
            aux = aux.squeeze(-1)
        return {"main": main, "aux": aux}


def make_problem(
    *,
    seed: int,
    x: torch.Tensor,
    targets: Mapping[str, torch.Tensor],
    split: Split,
    model: nn.Module,
    losses: Mapping[str, Any],
    metric: str,
    batch_size: int,
    lr: float,
    shared: nn.Module,
) -> Problem:
    """The :class:`Problem` of a case: loaders over the fixed split, the run seed's order.

    The validation and test loaders are one batch each (the parts are small); the training
    loader is shuffled with the run's seed.
    """
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size)

    def part(rows: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        idx = torch.as_tensor(rows, dtype=torch.long)
        return x[idx], {k: v[idx] for k, v in targets.items()}

    xt, yt = part(split.train)
    xv, yv = part(split.val)
    xs, ys = part(split.test)
    metrics: dict[str, list[Any]] = {"main": [metric]}
    return Problem(
        model=model,
        objective=Objective(dict(losses), main="main", metrics=metrics),
        train=ArrayLoader(xt, yt, batch_size=batch_size, shuffle=True, seed=seed),
        val=ArrayLoader(xv, yv, batch_size=max(len(split.val), 1)),
        test=ArrayLoader(xs, ys, batch_size=max(len(split.test), 1)),
        shared=shared,
        optimizer="adam",
        lr=lr,
    )
