"""Online learning of auxiliary weights by a first-order look-ahead on the main loss."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

from auxlab.weighting._base import Signals, Strategy, Weights, check_weight
from auxlab.weighting._main_first_common import (
    _GRAMIAN_ONLY,
    _check_max_weight,
    _check_positive_int,
    _check_weights_arg,
    _gram,
    _resolve,
    _warn,
)
from auxlab.weighting._registry import register

__all__ = ["OLAux", "OLAuxState"]


class OLAuxState(NamedTuple):
    """State of :class:`OLAux`.

    Attributes:
        weights: The weights in force, ``{task: weight}`` (the main task's is 1.0).
        accumulator: ``Σ g_main·gₖ`` over the current horizon, per auxiliary task.
        updates: Updates seen so far (calls of ``update``).
    """

    weights: dict[str, float]
    accumulator: dict[str, float]
    updates: int


@register("ol-aux")
class OLAux(Strategy):
    """Online learning of auxiliary weights by a first-order look-ahead on the main loss.

    Rule: the weights ``w`` stay fixed over a horizon of ``N`` updates while
    ``Sₖ = Σⱼ g_main(θⱼ)·gₖ(θⱼ)`` accumulates. Since
    ``∂L_main(θ_{t+N})/∂wₖ ≈ −α·Sₖ`` (one-step approximation, ``α`` the model's learning rate),
    a gradient step on the weights at the end of the horizon is
    ``wₖ ← max(0, wₖ + lr·Sₖ)`` with ``lr`` = the paper's ``β·α``; then ``S`` is reset.
    The main weight stays 1. The new weights apply from the next update on. The weighted loss
    ``L_main + Σₖ wₖ·Lₖ`` is applied to every parameter, heads included, as in the paper.

    Cost: one backward through the shared block per task (``Need.GRAMIAN`` only: the dot
    products are its main column); state O(T) floats.

    Loss scaling (``scale_reaction = "none"``): the dot products, and so the weight steps,
    scale with the losses: multiplying an auxiliary loss by ``c`` multiplies its weight's step
    by ``c``. ``lr`` must be chosen for the gradients' scale (a step of ``lr·N·‖g_main‖·‖gₖ‖``
    at most per horizon).

    Args:
        lr: Step size of the weight update (``>= 0``), in weight per unit of ``g_main·gₖ``.
        horizon: Updates between weight steps (``N``, ``>= 1``). Counted in calls of
            ``update``: with ``Balancer(every=k)`` that is every ``k``-th training step.
        weights: Initial auxiliary weights: ``{task: weight}`` (tasks left out start at 1.0),
            a number for every auxiliary task, or ``None`` (all 1.0).
        max_weight: Optional upper bound on every auxiliary weight (``None``: none).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = OLAux(lr=0.1, horizon=1)
        >>> w, state = s.update(sig, s.init(sig.tasks, "main"))
        >>> w, state.weights
        ({'main': 1.0, 'aux': 1.0}, {'main': 1.0, 'aux': 1.05})

    Reference:
        Lin, Baweja, Kantor, Held, "Adaptive Auxiliary Task Weighting for Reinforcement
        Learning", NeurIPS 2019. ForkMerge's ``OLAUX.py`` accumulates cosines instead of dot
        products; this follows the paper's gradient.
    """

    family = "main-first"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant"}
    )
    paper = "Lin et al., NeurIPS 2019"

    needs = _GRAMIAN_ONLY
    scale_reaction = "none"

    def __init__(
        self,
        lr: float = 0.01,
        horizon: int = 10,
        weights: Mapping[str, float] | float | None = None,
        max_weight: float | None = None,
    ) -> None:
        self.lr = check_weight("lr", lr, "learning rate")
        self.horizon = _check_positive_int("horizon", horizon)
        self.weights = _check_weights_arg(weights, "initial weight")
        self.max_weight = _check_max_weight(max_weight)

    def init(self, tasks: Sequence[str], main: str) -> OLAuxState:
        weights = _resolve(self.weights, tasks, main, "initial weights")
        weights[main] = 1.0
        return OLAuxState(weights, {t: 0.0 for t in tasks if t != main}, 0)

    def update(self, signals: Signals, state: OLAuxState) -> tuple[Weights, OLAuxState]:
        gram = _gram(signals, self)
        i_main = signals.tasks.index(signals.main)
        acc = dict(state.accumulator)
        for i, t in enumerate(signals.tasks):
            if t != signals.main:
                dot = gram[i][i_main]
                if not math.isfinite(dot):
                    _warn(self, f"g_main·g_{t} is {dot}; it is left out of the accumulator")
                    dot = 0.0
                acc[t] = acc[t] + dot
        updates = state.updates + 1
        new_weights = state.weights
        if updates % self.horizon == 0:
            new_weights = dict(state.weights)
            for t, s in acc.items():
                w = max(0.0, state.weights[t] + self.lr * s)
                if self.max_weight is not None:
                    w = min(w, self.max_weight)
                if not math.isfinite(w):
                    _warn(self, f"the weight step of '{t}' overflowed; the weight is kept")
                    w = state.weights[t]
                new_weights[t] = w
            acc = dict.fromkeys(acc, 0.0)
        return dict(state.weights), OLAuxState(new_weights, acc, updates)
