"""Constant weights, as Keras' ``loss_weights``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from auxlab._tasks import match_to_tasks
from auxlab.weighting._base import Signals, Strategy, Weights, check_weight
from auxlab.weighting._registry import register

__all__ = ["FixedWeights", "FixedWeightsState"]


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

    family = "fixed"

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
