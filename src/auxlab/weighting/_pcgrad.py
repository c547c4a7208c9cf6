"""Project each task gradient off the gradients it conflicts with (PCGrad)."""

from __future__ import annotations

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

__all__ = ["PCGrad", "PCGradState"]


class PCGradState(NamedTuple):
    """State of :class:`PCGrad`.

    Attributes:
        rng: The state of the CPU generator that draws the projection orders.
    """

    rng: torch.Tensor


@register("pcgrad")
class PCGrad(Strategy):
    """Project each task gradient off the gradients it conflicts with (PCGrad).

    Rule (Yu et al., 2020, Algorithm 1): for each task ``i``, start from ``gᵢᴾᶜ = gᵢ`` and,
    for the other tasks ``j`` in a random order, if ``gᵢᴾᶜ·gⱼ < 0`` set
    ``gᵢᴾᶜ ← gᵢᴾᶜ - (gᵢᴾᶜ·gⱼ / ||gⱼ||²) gⱼ``, always projecting on the *original* ``gⱼ``. The
    shared parameters get ``Σᵢ gᵢᴾᶜ``; heads their own gradients. Every ``gᵢᴾᶜ`` is a
    combination of the original gradients whose coefficients depend only on inner products,
    so the loop runs on the Gramian (``T x T``) and the result is returned as
    ``shared_weights``; with float64 inputs it matches the loop on vectors to rounding.

    Randomness: at each update one ``T x T`` matrix of uniforms is drawn, indexed by the task
    names in sorted order, and task ``i`` visits the others in increasing order of its row.
    The same seed gives the same orders, and permuting the tasks permutes the result.

    Args:
        seed: Seed of the projection orders.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory,
    ``O(T³)`` arithmetic.

    Reaction to scaling one loss by ``k``: ``"none"``. (Exactly: conflicts are tested by
    signs and projections are off directions, so task ``k``'s projected gradient is scaled by
    ``k`` and the others are unchanged; nothing compensates the scale.)

    Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient Surgery
    for Multi-Task Learning", NeurIPS 2020. Compared with LibMTL's ``PCGrad`` (whose inner
    loop also visits ``j = i``).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # conflicting
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = PCGrad(seed=0)
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in d.shared_weights.items()}
        {'main': 2.0, 'aux': 1.5}
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "linear_under_scaling", "permutation_invariant"}
    )
    paper = "Yu et al., NeurIPS 2020"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, seed: int = 0) -> None:
        _check_seed(seed)
        self.seed = seed

    def init(self, tasks: Sequence[str], main: str) -> PCGradState:
        _check_tasks(tasks, main)
        return PCGradState(_rng_state(self.seed))

    def update(self, signals: Signals, state: PCGradState) -> tuple[Decision, PCGradState]:
        gram, _ = _gramian(signals, "PCGrad")
        orders, rng = _visit_orders(signals.tasks, state.rng)
        t = gram.shape[0]
        coef = np.eye(t)
        for i in range(t):
            for j in orders[i]:
                dot = float(coef[i] @ gram[:, j])
                if dot < 0 and gram[j, j] > 0:
                    coef[i, j] -= dot / gram[j, j]
        return _shared(signals.tasks, coef.sum(axis=0)), PCGradState(rng)
