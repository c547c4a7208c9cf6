"""Rescale another strategy's weights to a fixed total, or so that the main task weighs 1."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch

from auxlab.weighting._base import Decision, Signals, Strategy
from auxlab.weighting._combinator_common import (
    WeightValue,
    _check_strategy,
    _decision,
    _no_shared_grad,
    _restrict,
    _value,
)
from auxlab.weighting._registry import register

__all__ = ["Normalized", "NormalizedState", "normalized"]


class NormalizedState(NamedTuple):
    """State of :class:`Normalized`.

    Attributes:
        inner: The inner strategy's state.
    """

    inner: Any


class Normalized(Strategy):
    """Rescale another strategy's weights to a fixed total, or so that the main task weighs 1.

    Rule: ``mode="sum"``: ``wᵢ ← wᵢ · total / Σⱼ wⱼ`` (``total`` defaults to the number of
    tasks, so equal weights stay 1); ``mode="main"``: ``wᵢ ← wᵢ / w_main``. ``weights`` and
    ``shared_weights`` are each rescaled by their own factor, so a Gramian aggregator's
    coefficients also sum to ``total`` (or give the main gradient coefficient 1). The factor is
    a number computed from detached values: learnable weights keep their gradient direction.
    Weights that sum to 0 (or a main weight of 0 in ``mode="main"``) are returned unchanged:
    there is nothing to rescale.

    Cost: that of the inner strategy.

    Loss scaling: ``"independent"``, ``"invariant"`` and ``"adaptive"`` are kept (a common
    factor changes neither equal weights nor the direction of a combination); ``"inverse"`` is
    kept with ``mode="main"`` (the ratio to the main weight is what is inverse) and becomes
    ``"none"`` with ``mode="sum"``.

    Args:
        strategy: The strategy whose weights are rescaled. It must not return a
            ``shared_grad`` (``ValueError`` at the first update).
        total: The sum of the weights with ``mode="sum"`` (``> 0``); default: the number of
            tasks.
        mode: ``"sum"`` or ``"main"``.
    """

    family = "combinator"

    def __init__(
        self, strategy: Strategy, total: float | None = None, mode: Literal["sum", "main"] = "sum"
    ) -> None:
        self.strategy = _check_strategy(strategy, "normalized")
        if mode not in ("sum", "main"):
            raise ValueError(f"mode must be 'sum' or 'main', got {mode!r}")
        if total is not None:
            if mode == "main":
                raise ValueError("total applies to mode='sum'; mode='main' makes the main weight 1")
            total = float(total)
            if not (math.isfinite(total) and total > 0):
                raise ValueError(f"total must be a finite number > 0, got {total!r}")
        self.total = total
        self.mode = mode
        self.needs = strategy.needs  # type: ignore[misc]
        self.randomized = strategy.randomized  # type: ignore[misc]
        inner = getattr(strategy, "scale_reaction", "none")
        if inner in ("independent", "invariant", "adaptive"):
            reaction = inner
        elif inner == "inverse" and mode == "main":
            reaction = "inverse"
        else:
            reaction = "none"
        self.scale_reaction = reaction  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> NormalizedState:
        return NormalizedState(self.strategy.init(tasks, main))

    def _rescale(self, weights: Mapping[str, Any], main: str, n: int) -> dict[str, WeightValue]:
        if self.mode == "main":
            ref = _value(weights[main])
            factor = 1.0 / ref if ref > 0 else 1.0
        else:
            s = sum(_value(w) for w in weights.values())
            target = self.total if self.total is not None else float(n)
            factor = target / s if s > 0 and math.isfinite(target / s) else 1.0
        return {t: w * factor for t, w in weights.items()}

    def update(self, signals: Signals, state: NormalizedState) -> tuple[Decision, NormalizedState]:
        out, inner = self.strategy.update(_restrict(signals, self.strategy.needs), state.inner)
        d = _decision(out, signals, self.strategy)
        _no_shared_grad(d, self.strategy, "its weights cannot be normalized")
        n = len(signals.tasks)
        weights = self._rescale(d.weights, signals.main, n)
        shared = None
        if d.shared_weights is not None:
            shared = {
                t: float(v) for t, v in self._rescale(d.shared_weights, signals.main, n).items()
            }
        return (
            Decision(weights, extra_loss=d.extra_loss, shared_weights=shared),
            NormalizedState(inner),
        )

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.strategy.parameters()


@register("normalized")
def normalized(
    strategy: Strategy, total: float | None = None, mode: Literal["sum", "main"] = "sum"
) -> Normalized:
    """Rescale a strategy's weights to sum to ``total`` (default: the number of tasks).

    With ``mode="main"`` they are divided by the main weight instead. See :class:`Normalized`.

    Example:
        >>> from auxlab.weighting import FixedWeights
        >>> s = normalized(FixedWeights({"main": 2.0, "aux": 0.5}), mode="main")
        >>> state = s.init(["main", "aux"], "main")
        >>> s.update(Signals(0, ("main", "aux"), "main", {}), state)[0].weights
        {'main': 1.0, 'aux': 0.25}
    """
    return Normalized(strategy, total, mode)
