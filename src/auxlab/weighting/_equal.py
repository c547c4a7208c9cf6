"""Every task weighs 1: the plain sum of the losses."""

from __future__ import annotations

from collections.abc import Sequence

from auxlab.weighting._base import NoState, Signals, Strategy, Weights
from auxlab.weighting._registry import register

__all__ = ["EqualWeighting"]


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

    family = "fixed"

    scale_reaction = "independent"

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        return dict.fromkeys(signals.tasks, 1.0), state
