"""Minimise the sum of the log-losses: every loss counts relative to its own size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from auxlab.weighting._base import Need, NoState, Signals, Strategy, Weights
from auxlab.weighting._loss_common import _as_weights, _check_at_least, _loss_vector, _positive
from auxlab.weighting._registry import register

__all__ = ["ScaleInvariantWeighting"]


@register("scale-invariant")
class ScaleInvariantWeighting(Strategy):
    """Minimise the sum of the log-losses: every loss counts relative to its own size.

    Objective: ``Σᵢ log(Lᵢ + eps)``; its gradient is ``Σᵢ wᵢ ∇Lᵢ`` with
    ``wᵢ = 1 / (Lᵢ + eps)``. Each task's update is its *relative* loss decrease, whatever its
    units, so a loss 1000 times larger does not dominate.

    Cost: one backward; no memory.

    Scale reaction (``"inverse"``): multiplying task ``k``'s loss by ``c`` divides its weight
    by ``c`` (for losses well above ``eps``) and leaves the others unchanged; ``wₖ·Lₖ`` is
    invariant.

    Args:
        eps: Added to every loss, ``> 0``; losses much smaller than ``eps`` get weight about
            ``1/eps`` instead of ``1/L``.

    Raises:
        ValueError: From ``update``, if a loss is negative (its log is undefined).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> si = ScaleInvariantWeighting()
        >>> losses = {"main": torch.tensor(4.0), "aux": torch.tensor(0.5)}
        >>> state = si.init(["main", "aux"], "main")
        >>> w, _ = si.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 6) for t, v in w.items()}
        {'main': 0.25, 'aux': 2.0}

    Reference: the log-scalarisation baseline ("scale-invariant linear scalarization") of
    Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022 (its code,
    ``AvivNavon/nash-mtl``, ``ScaleInvariantLinearScalarization``); also the warm-up rule of
    STCH's code and the log-losses of DB-MTL (Lin et al., arXiv 2308.12029).
    """

    family = "loss-based"
    paper = "Navon et al., ICML 2022"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "inverse"

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        """No state."""
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        """Weights ``1 / (Lᵢ + eps)``."""
        tasks = signals.tasks
        losses = _loss_vector(signals, tasks)
        _check_at_least(losses, 0.0, tasks, signals.step, "ScaleInvariantWeighting")
        return _as_weights(tasks, tasks, 1.0 / (losses + self.eps)), state
