"""Shut an auxiliary task out of the shared block while its gradient opposes the main one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._combinator_common import (
    _check_strategy,
    _decision,
    _no_shared_grad,
    _restrict,
    _value,
)
from auxlab.weighting._main_first_common import _cosines, _gram
from auxlab.weighting._registry import register

__all__ = ["Gated", "GatedState", "gated"]


class GatedState(NamedTuple):
    """State of :class:`Gated`.

    Attributes:
        inner: The inner strategy's state.
    """

    inner: Any


class Gated(Strategy):
    """Shut an auxiliary task out of the shared block while its gradient opposes the main one.

    Rule: with ``cₖ = cos(g_main, gₖ)`` on the shared parameters, the shared coefficient of
    auxiliary task ``k`` (its ``shared_weights`` entry, or its weight) becomes 0 while
    ``cₖ < threshold``; heads keep the inner strategy's weights, as in gradient-cosine gating
    (Du et al., 2018), where an auxiliary head always learns its own task. A zero gradient has
    cosine 0, so with ``threshold=0`` it is kept (its contribution is nil anyway), whereas
    :class:`~auxlab.weighting.GradientCosine` admits only ``cos > 0``. The main
    task is never gated.

    Cost: that of the inner strategy, plus per-task gradients on the shared block if it did
    not need them already (``Need.GRAMIAN`` is added).

    Loss scaling: cosines do not depend on the scale of a gradient, so ``"independent"``,
    ``"inverse"`` and ``"adaptive"`` are kept; ``"invariant"`` and ``"none"`` give ``"none"``.

    Args:
        strategy: The strategy whose auxiliary tasks are gated. It must not return a
            ``shared_grad``.
        threshold: The cosine (in [-1, 1]) below which an auxiliary task is shut out.
    """

    family = "combinator"
    #: What Gated reads itself; an instance needs this and its inner strategy's needs.
    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRAMIAN})
    paper = "Du et al., arXiv 2018"

    def __init__(self, strategy: Strategy, threshold: float = 0.0) -> None:
        self.strategy = _check_strategy(strategy, "gated")
        threshold = float(threshold)
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine, in [-1, 1]; got {threshold!r}")
        self.threshold = threshold
        self.needs = strategy.needs | {Need.GRAMIAN}  # type: ignore[misc]
        self.randomized = strategy.randomized  # type: ignore[misc]
        inner = getattr(strategy, "scale_reaction", "none")
        keep = inner in ("independent", "inverse", "adaptive")
        self.scale_reaction = inner if keep else "none"  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> GatedState:
        return GatedState(self.strategy.init(tasks, main))

    def update(self, signals: Signals, state: GatedState) -> tuple[Decision, GatedState]:
        out, inner = self.strategy.update(_restrict(signals, self.strategy.needs), state.inner)
        d = _decision(out, signals, self.strategy)
        _no_shared_grad(d, self.strategy, "it cannot be gated")
        cos = _cosines(_gram(signals, self), signals.tasks.index(signals.main), self)
        base = d.shared_weights if d.shared_weights is not None else d.weights
        shared = {}
        for t, c in zip(signals.tasks, cos, strict=True):
            v = _value(base[t])
            shared[t] = v if t == signals.main or c >= self.threshold else 0.0
        return Decision(d.weights, extra_loss=d.extra_loss, shared_weights=shared), GatedState(
            inner
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.strategy.parameters()


@register("gated")
def gated(strategy: Strategy, threshold: float = 0.0) -> Gated:
    """Gate a strategy's auxiliary tasks on the shared block by ``cos(g_main, gₖ) >= threshold``.

    See :class:`Gated`.

    Example:
        >>> import torch
        >>> from auxlab.weighting import FixedWeights
        >>> G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # cos(g_main, g_aux) < 0
        >>> sig = Signals(0, ("main", "aux"), "main", {}, gramian=G @ G.T)
        >>> s = gated(FixedWeights({"aux": 0.2}))
        >>> s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        {'main': 1.0, 'aux': 0.0}
    """
    return Gated(strategy, threshold)
