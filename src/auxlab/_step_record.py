"""StepRecord: what happened at one Balancer step, as probes and the History read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepRecord"]


@dataclass
class StepRecord:
    """What happened at one Balancer step; probes and the History read it.

    Attributes:
        step: The step counter, from 0.
        losses: Unweighted loss per task.
        weights: Weight per task used at this step.
        total: The weighted total ``Σ wᵢ·Lᵢ`` (plus a strategy's extra term, if any).
        skipped: True if the step was skipped because a loss was not finite.
        grad_norms: Per-task gradient norm on the shared parameters, when computed.
        cosines: Cosine between the main task's gradient and each task's, when computed.
        shared_weights: The coefficients applied to the per-task gradients on the shared
            block, when the strategy set them apart from the head weights (gates,
            projections, min-norm combinations).
    """

    step: int
    losses: dict[str, float]
    weights: dict[str, float]
    total: float
    skipped: bool = False
    grad_norms: dict[str, float] | None = None
    cosines: dict[str, float] | None = None
    shared_weights: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A flat ``{name: value}`` dict: ``loss_<task>``, ``weight_<task>``, ``total``, ..."""
        out: dict[str, Any] = {"step": self.step, "total": self.total, "skipped": self.skipped}
        for t, v in self.losses.items():
            out[f"loss_{t}"] = v
        for t, v in self.weights.items():
            out[f"weight_{t}"] = v
        for name, d in (
            ("grad_norm", self.grad_norms),
            ("cosine", self.cosines),
            ("shared_weight", self.shared_weights),
        ):
            for t, v in (d or {}).items():
                out[f"{name}_{t}"] = v
        out.update(self.extra)
        return out
