"""Fixed and scheduled weights: Keras ``loss_weights``, equal weights, and schedules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from auxlab.objective import check_same_tasks, match_to_tasks
from auxlab.weighting._base import (
    Decision,
    NoState,
    Signals,
    Strategy,
    Weights,
    as_decision,
    check_weight,
)
from auxlab.weighting._registry import register

__all__ = [
    "EqualWeighting",
    "FixedWeights",
    "FixedWeightsState",
    "Scheduled",
    "ScheduledState",
    "scheduled",
]


@register("equal")
class EqualWeighting(Strategy):
    """Every task weighs 1: the plain sum of the losses.

    Rule: ``L = Σᵢ Lᵢ``. Cost: one backward, no memory.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> s = EqualWeighting()
        >>> state = s.init(["main", "aux"], "main")
        >>> losses = {"main": torch.tensor(2.0), "aux": torch.tensor(1.0)}
        >>> sig = Signals(0, ("main", "aux"), "main", losses)
        >>> s.update(sig, state)[0]
        {'main': 1.0, 'aux': 1.0}
    """

    scale_reaction = "independent"

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        return dict.fromkeys(signals.tasks, 1.0), state


@register("fixed")
class FixedWeights(Strategy):
    """Constant weights, as Keras' ``loss_weights``.

    Rule: ``L = Σᵢ wᵢ·Lᵢ`` with constant ``wᵢ >= 0``. Cost: one backward, no memory.

    Args:
        weights: ``{task: weight}``, or a list matched to the model's outputs in their declared
            order (Keras' ``loss_weights=[1.0, 0.2]``). In a dict the main task may be left out;
            it then weighs 1.0. Every auxiliary task must be given.

    Example:
        >>> s = FixedWeights([1.0, 0.2])
        >>> s.init(["main", "aux"], "main")
        FixedWeightsState(weights={'main': 1.0, 'aux': 0.2})
    """

    def __init__(self, weights: Mapping[str, float] | Sequence[float]) -> None:
        if isinstance(weights, Mapping):
            for task, w in weights.items():
                check_weight(task, w)
        elif isinstance(weights, Sequence) and not isinstance(weights, str):
            for i, w in enumerate(weights):
                check_weight(f"#{i}", w)
        else:
            raise TypeError(f"weights must be a dict or a list, got {type(weights).__name__}")
        self.weights = dict(weights) if isinstance(weights, Mapping) else list(weights)

    scale_reaction = "independent"

    def init(self, tasks: Sequence[str], main: str) -> FixedWeightsState:
        given: Mapping[str, float] | Sequence[float] = self.weights
        if isinstance(given, Mapping) and main not in given:
            given = {main: 1.0, **given}
        resolved = match_to_tasks(given, list(tasks), "loss weights")
        return FixedWeightsState({t: float(resolved[t]) for t in tasks})

    def update(
        self, signals: Signals, state: FixedWeightsState
    ) -> tuple[Weights, FixedWeightsState]:
        return dict(state.weights), state


class FixedWeightsState(NamedTuple):
    """The resolved ``{task: weight}`` of :class:`FixedWeights`."""

    weights: dict[str, float]


ScheduleLike = Callable[[int], float] | float


class ScheduledState(NamedTuple):
    """State of :class:`Scheduled`: the base strategy's state."""

    base: Any


class Scheduled(Strategy):
    """Multiply a base strategy's weights by per-task schedules of the step.

    Rule: ``wᵢ(t) = baseᵢ(t) · sᵢ(t)``; tasks without a schedule keep the base weight.
    Cost: that of the base strategy.

    Args:
        schedules: ``{task: schedule}``; a schedule is a ``step -> float`` function or a
            number. Steps are Balancer steps from 0.
        base: The strategy whose weights are scheduled; default ``EqualWeighting()``, so the
            schedules are the weights.
    """

    def __init__(self, schedules: Mapping[str, ScheduleLike], base: Strategy | None = None) -> None:
        if not isinstance(schedules, Mapping) or not schedules:
            raise TypeError("schedules must be a non-empty dict {task: schedule}")
        for task, s in schedules.items():
            if not callable(s):
                check_weight(task, s, "scheduled weight")
        self.schedules = dict(schedules)
        self.base = base if base is not None else EqualWeighting()
        self.needs = self.base.needs  # type: ignore[misc]
        self.scale_reaction = getattr(self.base, "scale_reaction", "none")  # type: ignore[misc]
        self.randomized = self.base.randomized  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> ScheduledState:
        unknown = [t for t in self.schedules if t not in tasks]
        if unknown:
            check_same_tasks(list(tasks), list(self.schedules), "the tasks", "the schedules")
        return ScheduledState(self.base.init(tasks, main))

    def value(self, task: str, step: int) -> float:
        """The schedule's factor for ``task`` at ``step`` (1.0 without a schedule)."""
        s = self.schedules.get(task, 1.0)
        return check_weight(task, s(step) if callable(s) else s, f"scheduled weight at step {step}")

    def update(self, signals: Signals, state: ScheduledState) -> tuple[Decision, ScheduledState]:
        out, base_state = self.base.update(signals, state.base)
        decision = as_decision(out)
        if decision.shared_grad is not None and any(
            self.value(t, signals.step) != 1.0 for t in signals.tasks
        ):
            raise ValueError(
                f"{type(self.base).__name__} aggregates gradients itself (it returns a "
                "shared gradient), so its per-task weights cannot be scheduled."
            )
        factor = {t: self.value(t, signals.step) for t in signals.tasks}
        weights = {t: w * factor[t] for t, w in decision.weights.items()}
        shared = (
            {t: c * factor[t] for t, c in decision.shared_weights.items()}
            if decision.shared_weights is not None
            else None
        )
        return (
            Decision(weights, decision.shared_grad, decision.extra_loss, shared),
            ScheduledState(base_state),
        )

    def parameters(self) -> list[Any]:
        return self.base.parameters()


@register("scheduled")
def scheduled(schedules: Mapping[str, ScheduleLike], base: Strategy | None = None) -> Scheduled:
    """Schedule weights: ``scheduled({"aux": anneal_to_zero(0.3, 2000)})``.

    See :class:`Scheduled`.

    Example:
        >>> from auxlab.schedules import linear
        >>> s = scheduled({"aux": linear(0.0, 1.0, 10)})
        >>> s.value("aux", 5), s.value("main", 5)
        (0.5, 1.0)
    """
    return Scheduled(schedules, base)
