"""Raise the cosine between task gradients to an EMA target (Gradient Vaccine)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gradient_common import (
    _check_seed,
    _check_tasks,
    _gramian,
    _rng_state,
    _shared,
    _visit_orders,
)
from auxlab.weighting._registry import register

__all__ = ["GradVac", "GradVacState"]


class GradVacState(NamedTuple):
    """State of :class:`GradVac`.

    Attributes:
        targets: ``(T, T)`` float64 EMA targets ``φ̂ᵢⱼ`` of the cosine between task ``i``'s
            (corrected) gradient and task ``j``'s, in task order; zeros at first.
        rng: The state of the CPU generator that draws the visiting orders.
    """

    targets: torch.Tensor
    rng: torch.Tensor


@register("gradvac")
class GradVac(Strategy):
    """Raise the cosine between task gradients to an EMA target (Gradient Vaccine).

    Rule (Wang et al., 2021, Algorithm 1, whole-model granularity): for each task ``i``,
    start from ``gᵢ'= gᵢ`` and, for the other tasks ``j`` in a random order, compute
    ``φᵢⱼ = cos(gᵢ', gⱼ)``. If ``φᵢⱼ < φ̂ᵢⱼ``, add ``w·gⱼ`` with
    ``w = ||gᵢ'||(φ̂ᵢⱼ√(1-φᵢⱼ²) - φᵢⱼ√(1-φ̂ᵢⱼ²)) / (||gⱼ||√(1-φ̂ᵢⱼ²))`` so that the cosine
    becomes ``φ̂ᵢⱼ``; then ``φ̂ᵢⱼ ← (1-β) φ̂ᵢⱼ + β φᵢⱼ``. The shared parameters get
    ``Σᵢ gᵢ'``, returned as ``shared_weights`` (computed on the Gramian, as TorchJD does);
    heads their own gradients. Orders are drawn as in :class:`PCGrad`.

    Where a cosine is undefined (a zero gradient) nothing is added and the target is left
    as it was (the peers add ``1e-8`` to the denominators instead and pull the target to 0).
    ``√(1-φ̂²)`` is floored at ``1e-8``, since a target of exactly 1 asks for an infinite
    correction.

    Args:
        beta: EMA rate ``β`` in ``[0, 1]`` (0.5 as LibMTL and TorchJD).
        seed: Seed of the visiting orders.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory and state,
    ``O(T³)`` arithmetic. Per-layer granularity is not provided (whole model only).

    Reaction to scaling one loss by ``k``: ``"none"`` (cosines are scale free, so task
    ``k``'s corrected gradient scales by ``k`` and nothing compensates).

    Reference: Z. Wang, Y. Tsvetkov, O. Firat, Y. Cao, "Gradient Vaccine: Investigating and
    Improving Multi-task Optimization in Massively Multilingual Models", ICLR 2021. Compared
    with LibMTL's ``GradVac`` and TorchJD's ``GradVacWeighting``.

    Example:
        >>> s = GradVac(beta=0.5)
        >>> s.init(["main", "aux"], "main").targets
        tensor([[0., 0.],
                [0., 0.]], dtype=torch.float64)
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant"}
    )
    paper = "Wang et al., ICLR 2021"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, beta: float = 0.5, seed: int = 0) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        _check_seed(seed)
        self.beta = float(beta)
        self.seed = seed

    def init(self, tasks: Sequence[str], main: str) -> GradVacState:
        _check_tasks(tasks, main)
        t = len(tasks)
        return GradVacState(torch.zeros((t, t), dtype=torch.float64), _rng_state(self.seed))

    def update(self, signals: Signals, state: GradVacState) -> tuple[Decision, GradVacState]:
        gram, _ = _gramian(signals, "GradVac")
        orders, rng = _visit_orders(signals.tasks, state.rng)
        targets = state.targets.numpy().copy()
        t = gram.shape[0]
        coef = np.eye(t)
        for i in range(t):
            for j in orders[i]:
                dots = coef[i] @ gram
                norm_i = math.sqrt(max(float(dots @ coef[i]), 0.0))
                norm_j = math.sqrt(max(float(gram[j, j]), 0.0))
                if norm_i == 0.0 or norm_j == 0.0:
                    continue
                phi = min(max(float(dots[j]) / (norm_i * norm_j), -1.0), 1.0)
                target = float(targets[i, j])
                if phi < target:
                    sin_target = max(math.sqrt(max(1.0 - target * target, 0.0)), 1e-8)
                    sin_phi = math.sqrt(max(1.0 - phi * phi, 0.0))
                    coef[i, j] += (
                        norm_i * (target * sin_phi - phi * sin_target) / (norm_j * sin_target)
                    )
                targets[i, j] = (1.0 - self.beta) * target + self.beta * phi
        new_state = GradVacState(torch.from_numpy(targets), rng)
        return _shared(signals.tasks, coef.sum(axis=0)), new_state
