"""Weigh each task by how slowly its loss has been falling (DWA, Liu et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._loss_common import (
    _MAX_RATIO,
    _as_weights,
    _check_at_least,
    _loss_vector,
    _positive,
    _positive_int,
)
from auxlab.weighting._registry import register

__all__ = ["DynamicWeightAverage", "DynamicWeightAverageState"]


class DynamicWeightAverageState(NamedTuple):
    """State of :class:`DynamicWeightAverage`.

    Attributes:
        tasks: The tasks, in the order of the vectors below.
        window_sum: ``(T,)`` sum of the losses seen in the current (incomplete) window.
        window_count: Number of updates in the current window, ``0 .. period-1``.
        means: ``(2, T)`` mean losses of the last two complete windows, older first.
        num_windows: Number of complete windows so far.
    """

    tasks: tuple[str, ...]
    window_sum: torch.Tensor
    window_count: int
    means: torch.Tensor
    num_windows: int


@register("dwa")
class DynamicWeightAverage(Strategy):
    """Weigh each task by how slowly its loss has been falling (DWA, Liu et al.).

    Rule: ``wᵢ = T · softmax(rᵢ / temperature)``, ``rᵢ = L̄ᵢ(k−1) / L̄ᵢ(k−2)``, where
    ``L̄ᵢ(k)`` is task ``i``'s mean loss over window ``k`` of ``period`` updates. A task whose
    loss fell less than the others' gets more weight; the weights sum to ``T``. Until two
    windows are complete every weight is 1. The weights change when a window completes
    (the update that completes it already uses it) and are constant within a window.

    The paper averages over epochs; a strategy sees steps, not epochs, so the window is
    ``period`` updates (calls to ``update``; with ``Balancer(every=k)`` that is ``k·period``
    steps). Set ``period`` to the number of batches per epoch to follow the paper.

    Cost: one backward; ``O(T)`` memory.

    Scale reaction (``"invariant"``): multiplying a loss by ``c`` leaves every ratio, hence
    every weight, unchanged.

    Args:
        temperature: Softmax temperature ``> 0``; the paper uses 2. Larger is closer to equal
            weights.
        period: Window length in updates, ``>= 1``.

    Raises:
        ValueError: From ``update``, if a loss is negative (the ratio is then meaningless).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> dwa = DynamicWeightAverage(period=1)
        >>> state = dwa.init(["main", "aux"], "main")
        >>> for step, (m, a) in enumerate([(1.0, 1.0), (0.5, 1.0)]):
        ...     losses = {"main": torch.tensor(m), "aux": torch.tensor(a)}
        ...     w, state = dwa.update(Signals(step, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 4) for t, v in w.items()}
        {'main': 0.8756, 'aux': 1.1244}

    Reference: Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR
    2019. Compared against LibMTL ``DWA.py`` (epoch windows, temperature 2).
    """

    family = "loss-based"
    paper = "Liu et al., CVPR 2019"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "invariant"

    def __init__(self, temperature: float = 2.0, period: int = 100) -> None:
        self.temperature = _positive("temperature", temperature)
        self.period = _positive_int("period", period)

    def init(self, tasks: Sequence[str], main: str) -> DynamicWeightAverageState:
        """Empty windows; equal weights until two windows are complete."""
        t = len(tasks)
        return DynamicWeightAverageState(
            tuple(tasks),
            torch.zeros(t, dtype=torch.float64),
            0,
            torch.ones(2, t, dtype=torch.float64),
            0,
        )

    def update(
        self, signals: Signals, state: DynamicWeightAverageState
    ) -> tuple[Weights, DynamicWeightAverageState]:
        """Add this step's losses to the window; return the weights."""
        losses = _loss_vector(signals, state.tasks)
        _check_at_least(losses, 0.0, state.tasks, signals.step, "DynamicWeightAverage")
        window_sum = state.window_sum.to(losses) + losses
        count = state.window_count + 1
        means = state.means.to(losses)
        num = state.num_windows
        if count == self.period:
            means = torch.stack([means[1], window_sum / self.period])
            window_sum = torch.zeros_like(window_sum)
            count = 0
            num += 1
        new_state = DynamicWeightAverageState(state.tasks, window_sum, count, means, num)
        if num < 2:
            return dict.fromkeys(signals.tasks, 1.0), new_state
        older, newer = means[0], means[1]
        # 0/0 (a loss that stayed exactly 0) counts as "no change"; x/0 as a large ratio.
        ratio = torch.where(
            older > 0,
            newer / older.clamp_min(torch.finfo(older.dtype).tiny),
            torch.where(newer > 0, _MAX_RATIO, 1.0),
        ).clamp(max=_MAX_RATIO)
        w = len(state.tasks) * torch.softmax(ratio / self.temperature, dim=0)
        return _as_weights(signals.tasks, state.tasks, w), new_state
