"""Ramp a strategy's auxiliary weights up linearly over the first steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from auxlab.weighting._base import Decision, Signals, Strategy, check_weight
from auxlab.weighting._combinator_common import (
    _check_strategy,
    _decision,
    _no_shared_grad,
    _restrict,
)
from auxlab.weighting._registry import register

__all__ = ["Warmup", "WarmupState", "warmup"]


class WarmupState(NamedTuple):
    """State of :class:`Warmup`.

    Attributes:
        inner: The inner strategy's state.
    """

    inner: Any


class Warmup(Strategy):
    """Ramp a strategy's auxiliary weights up linearly over the first steps.

    Rule: ``wₖ(t) ← wₖ(t)·f(t)`` for every auxiliary task, with
    ``f(t) = start + (1 − start)·min(t, steps)/steps`` (``t`` the Balancer step): from
    ``start·w`` at step 0 to ``w`` from step ``steps`` on. The main weight is untouched.
    ``weights`` and ``shared_weights`` are both scaled. With ``Balancer(every=k)`` the strategy
    is called every ``k`` steps, so the ramp advances in stairs of ``k`` steps.

    Cost: that of the inner strategy.

    Loss scaling: the factor depends on the step only, so the inner strategy's reaction is
    kept (``"invariant"`` for a Gramian aggregator becomes ``"none"``: scaling some
    coefficients turns the combination).

    Args:
        strategy: The strategy whose auxiliary weights are warmed up. A ``shared_grad`` is
            accepted only once the ramp is over (``ValueError`` before).
        steps: Length of the ramp in Balancer steps (``>= 1``).
        start: Fraction of the weight at step 0 (``>= 0``; above 1 it ramps down).
    """

    family = "schedule"

    def __init__(self, strategy: Strategy, steps: int, start: float = 0.0) -> None:
        self.strategy = _check_strategy(strategy, "warmup")
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.steps = int(steps)
        self.start = check_weight("the auxiliary tasks", start, "warm-up start fraction")
        self.needs = strategy.needs  # type: ignore[misc]
        self.randomized = strategy.randomized  # type: ignore[misc]
        inner = getattr(strategy, "scale_reaction", "none")
        keep = inner in ("independent", "inverse", "adaptive")
        self.scale_reaction = inner if keep else "none"  # type: ignore[misc]

    def factor(self, step: int) -> float:
        """The factor applied to the auxiliary weights at ``step``."""
        t = min(max(step, 0), self.steps) / self.steps
        return self.start + (1.0 - self.start) * t

    def init(self, tasks: Sequence[str], main: str) -> WarmupState:
        return WarmupState(self.strategy.init(tasks, main))

    def update(self, signals: Signals, state: WarmupState) -> tuple[Decision, WarmupState]:
        out, inner = self.strategy.update(_restrict(signals, self.strategy.needs), state.inner)
        d = _decision(out, signals, self.strategy)
        f = self.factor(signals.step)
        if f != 1.0 and signals.aux:
            _no_shared_grad(
                d, self.strategy, f"its weights cannot be warmed up (step {signals.step})"
            )
        main = signals.main
        weights = {t: w if t == main else w * f for t, w in d.weights.items()}
        shared = None
        if d.shared_weights is not None:
            shared = {
                t: float(c) if t == main else float(c) * f for t, c in d.shared_weights.items()
            }
        return Decision(weights, d.shared_grad, d.extra_loss, shared), WarmupState(inner)

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.strategy.parameters()


@register("warmup")
def warmup(strategy: Strategy, steps: int, start: float = 0.0) -> Warmup:
    """Ramp the auxiliary weights of ``strategy`` from ``start·w`` to ``w`` over ``steps``.

    See :class:`Warmup`. (:func:`auxlab.schedules.warmup` is the schedule function of the same
    idea, for :func:`~auxlab.weighting.scheduled`; this one wraps any strategy.)

    Example:
        >>> from auxlab.weighting import FixedWeights
        >>> s = warmup(FixedWeights({"aux": 0.2}), steps=10)
        >>> state = s.init(["main", "aux"], "main")
        >>> s.update(Signals(5, ("main", "aux"), "main", {}), state)[0].weights
        {'main': 1.0, 'aux': 0.1}
    """
    return Warmup(strategy, steps, start)
