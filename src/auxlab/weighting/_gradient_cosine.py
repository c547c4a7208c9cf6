"""Admit an auxiliary gradient on the shared block only while it agrees with the main one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, NamedTuple

from auxlab.weighting._base import Decision, Signals, Strategy
from auxlab.weighting._main_first_common import (
    _GRAMIAN_ONLY,
    _check_weights_arg,
    _cosines,
    _gram,
    _resolve,
)
from auxlab.weighting._registry import register

__all__ = ["GradientCosine", "GradientCosineState"]


class GradientCosineState(NamedTuple):
    """State of :class:`GradientCosine`.

    Attributes:
        weights: The resolved base weight of every task.
    """

    weights: dict[str, float]


@register("gradient-cosine")
class GradientCosine(Strategy):
    """Admit an auxiliary gradient on the shared block only while it agrees with the main one.

    Rule: with ``cₖ = cos(g_main, gₖ)`` on the shared parameters and base weights ``bᵢ``,
    the shared parameters receive ``b_main·g_main + Σₖ λₖ·bₖ·gₖ`` where
    ``λₖ = 1[cₖ > 0]`` (``mode="gate"``, the paper's unweighted version) or
    ``λₖ = max(0, cₖ)`` (``mode="weighted"``). Task-specific parameters (heads) get their own
    task's gradient times its base weight, ungated, as in the paper's algorithm, where the
    auxiliary head is always trained on its own loss. A zero gradient has cosine 0, so the
    gate closes.

    The decision is ``Decision(weights=b, shared_weights=b·λ)``: the Balancer's
    ``StepRecord.weights`` shows the base weights; the gate is in the shared weights.

    Cost: one backward through the shared block per task (``Need.GRAMIAN`` only: the cosines
    come from the Gramian); no state beyond the base weights.

    Loss scaling (``scale_reaction = "independent"``): cosines do not depend on the scale of a
    gradient, so multiplying any one loss by ``c > 0`` changes no weight and no gate; that
    task's contribution to the update is multiplied by ``c``.

    Args:
        mode: ``"gate"`` (``λ ∈ {0, 1}``) or ``"weighted"`` (``λ = max(0, cos)``).
        weights: Base weights: ``{task: weight >= 0}`` (tasks left out weigh 1.0), a number for
            every auxiliary task, or ``None`` (all 1.0, as in the paper).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
        >>> sig = Signals(0, ("main", "a", "b"), "main", {}, gramian=G @ G.T)
        >>> s = GradientCosine(weights={"a": 0.5, "b": 0.5})
        >>> s.update(sig, s.init(sig.tasks, "main"))[0].shared_weights
        {'main': 1.0, 'a': 0.5, 'b': 0.0}

    Reference:
        Du, Czarnecki, Jayakumar, Farajtabar, Pascanu, Lakshminarayanan, "Adapting Auxiliary
        Losses Using Gradient Similarity", arXiv:1812.02224, 2018. Compared with ForkMerge's
        ``GCS.py`` (Jiang et al., NeurIPS 2023), which also leaves the heads ungated.
    """

    family = "main-first"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant"}
    )
    paper = "Du et al., arXiv 2018"

    needs = _GRAMIAN_ONLY
    scale_reaction = "independent"

    def __init__(
        self,
        mode: Literal["gate", "weighted"] = "gate",
        weights: Mapping[str, float] | float | None = None,
    ) -> None:
        if mode not in ("gate", "weighted"):
            raise ValueError(f"mode must be 'gate' or 'weighted', got {mode!r}")
        self.mode = mode
        self.weights = _check_weights_arg(weights, "base weight")

    def init(self, tasks: Sequence[str], main: str) -> GradientCosineState:
        return GradientCosineState(_resolve(self.weights, tasks, main, "base weights"))

    def update(
        self, signals: Signals, state: GradientCosineState
    ) -> tuple[Decision, GradientCosineState]:
        gram = _gram(signals, self)
        cos = _cosines(gram, signals.tasks.index(signals.main), self)
        base = state.weights
        shared = {}
        for t, c in zip(signals.tasks, cos, strict=True):
            if t == signals.main:
                shared[t] = base[t]
            elif self.mode == "gate":
                shared[t] = base[t] if c > 0.0 else 0.0
            else:
                shared[t] = base[t] * max(0.0, c)
        weights = {t: base[t] for t in signals.tasks}
        return Decision(weights, shared_weights=shared), state
