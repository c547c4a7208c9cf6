"""Multiply a base strategy's weights by per-task schedules of the step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from auxlab._tasks import check_same_tasks
from auxlab.weighting._base import Decision, Signals, Strategy, as_decision, check_weight
from auxlab.weighting._equal import EqualWeighting
from auxlab.weighting._registry import register

__all__ = ["Scheduled", "ScheduledState", "scheduled"]


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

    family = "schedule"

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
