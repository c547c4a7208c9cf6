"""Minimise the geometric mean of the losses (GLS, Chennupati et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from auxlab.weighting._base import Need, NoState, Signals, Strategy, Weights
from auxlab.weighting._loss_common import _as_weights, _check_at_least, _loss_vector, _positive
from auxlab.weighting._registry import register

__all__ = ["GeometricLossStrategy"]


@register("gls")
class GeometricLossStrategy(Strategy):
    """Minimise the geometric mean of the losses (GLS, Chennupati et al.).

    Objective: ``(Πⱼ Lⱼ)^(1/T)``. Its gradient is ``Σᵢ wᵢ ∇Lᵢ`` with

    ``wᵢ = (Πⱼ Dⱼ)^(1/T) / (T · Dᵢ)``,  ``Dᵢ = Lᵢ + eps``,

    computed in log space (``exp(mean(log D) − log Dᵢ) / T``) so that it stays finite for
    losses from 1e-10 to 1e15. Every task contributes the same ``wᵢ·Lᵢ`` (the geometric mean
    over ``T``), so a task's weight is inversely proportional to its loss.

    Cost: one backward; no memory.

    Scale reaction (``"none"``): multiplying task ``k``'s loss by ``c`` divides its weight
    *relative to the others* by ``c`` (``wᵢ·Lᵢ`` stays equal across tasks), but the geometric
    mean itself grows by ``c^(1/T)``, so every weight is also multiplied by ``c^(1/T)``:
    ``wₖ → c^(1/T − 1)·wₖ`` and ``wⱼ → c^(1/T)·wⱼ``. That is "inverse up to a common factor",
    not the exact ``"inverse"`` contract.

    Args:
        eps: Added to every loss, ``> 0``, so that a zero loss gives a finite weight.

    Raises:
        ValueError: From ``update``, if a loss is negative (the geometric mean is undefined).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> gls = GeometricLossStrategy()
        >>> losses = {"main": torch.tensor(4.0), "aux": torch.tensor(1.0)}
        >>> state = gls.init(["main", "aux"], "main")
        >>> w, _ = gls.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 6) for t, v in w.items()}
        {'main': 0.25, 'aux': 1.0}

    Reference: Chennupati, Sistu, Yogamani, Rawashdeh, "MultiNet++: Multi-Stream Feature
    Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019.
    Compared against LibMTL ``GLS.py``.
    """

    family = "loss-based"
    paper = "Chennupati et al., CVPRW 2019"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        """No state."""
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        """The gradient weights of the geometric mean at these losses."""
        tasks = signals.tasks
        losses = _loss_vector(signals, tasks)
        _check_at_least(losses, 0.0, tasks, signals.step, "GeometricLossStrategy")
        log_d = torch.log(losses + self.eps)
        w = torch.exp(log_d.mean() - log_d) / len(tasks)
        return _as_weights(tasks, tasks, w), state
