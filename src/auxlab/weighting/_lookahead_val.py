"""Auxiliary weights learned by a one-step look-ahead on the main task's validation loss."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._main_first_common import _check_max_weight, _check_weights_arg, _resolve
from auxlab.weighting._registry import register
from auxlab.weighting._validation_common import (
    DISTRIBUTED_REFUSAL,
    AdamMoments,
    adam_step,
    check_positive,
    zero_moments,
)

__all__ = ["LookaheadVal", "LookaheadValState"]


class LookaheadValState(NamedTuple):
    """State of :class:`LookaheadVal`.

    Attributes:
        weights: The weights in force, ``{task: weight}`` (the main task's is 1.0).
        moments: Adam's moments of each auxiliary weight's hypergradient, in task order.
        alignment: The last ``g_val·gₖ`` per auxiliary task (what moved the weights).
        updates: Updates seen so far (calls of ``update``).
    """

    weights: dict[str, float]
    moments: AdamMoments
    alignment: dict[str, float]
    updates: int


@register("lookahead-val")
class LookaheadVal(Strategy):
    """Auxiliary weights learned by a one-step look-ahead on the main task's validation loss.

    Rule: one virtual SGD step ``θ' = θ − α·Σₖ wₖ·gₖ`` (``gₖ`` the training gradient of task
    ``k`` on the shared parameters, ``α`` the model's learning rate) changes the main task's
    validation loss by ``∂L_val(θ')/∂wₖ ≈ −α·g_val·gₖ`` to first order, with ``g_val`` the
    main task's gradient on a validation batch at ``θ``. Each step the auxiliary weights take
    one Adam step down that hypergradient,
    ``wₖ ← clip(wₖ + lr·m̂ₖ/√v̂ₖ, 0, max_weight)`` with ``m̂, v̂`` Adam's moments of
    ``g_val·gₖ`` (``α`` cancels in the normalisation), and the new weights apply at once.
    The main weight stays 1. An auxiliary task whose gradient keeps helping the validation
    loss gains up to ``lr`` per step; one that opposes it loses as much and stops at 0.

    Choices: the weights themselves, not their logarithms, are learned, so that a harmful
    task reaches exactly 0 in finite time (a log-weight only decays, ever more slowly, and
    cannot return from near 0) and a weight that reached 0 comes back if its task starts
    to help. Adam's normalisation makes ``lr`` a step in weight units whatever the scale of
    the gradients (``g_val·gₖ`` spans orders of magnitude between models). The products are
    taken on the shared parameters (``Balancer(shared=...)``): an auxiliary head does not
    reach the main validation loss and the main head does not reach an auxiliary loss, so
    on all parameters the product is the same when ``shared`` is the whole common trunk.

    Cost: per refresh step, one backward through the shared block per task (``Need.GRADS``)
    and one forward and backward of the main loss on a validation batch (``Need.VAL_GRAD``);
    ``Balancer(every=k)`` pays both every ``k``-th step. State O(T) floats.

    Loss scaling (``scale_reaction = "none"``): multiplying an auxiliary loss by ``c``
    multiplies its hypergradient by ``c``, which Adam's normalisation cancels: its weight
    moves as before (so the task's contribution is ``c`` times larger).

    Args:
        lr: Step of each auxiliary weight per update, in weight units (``> 0``).
        weights: Initial auxiliary weights: ``{task: weight}`` (tasks left out start at
            1.0), one number for every auxiliary task, or ``None`` (all 1.0).
        max_weight: Upper bound on every auxiliary weight (``None``: none).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> G = torch.tensor([[1.0, 0.0], [0.5, 0.5], [-1.0, 0.2]])
        >>> sig = Signals(0, ("main", "good", "bad"), "main", {}, grads=G,
        ...               val_grad=torch.tensor([1.0, 0.0]))
        >>> s = LookaheadVal(lr=0.1)
        >>> w, state = s.update(sig, s.init(sig.tasks, "main"))
        >>> {t: round(v, 3) for t, v in w.items()}
        {'main': 1.0, 'good': 1.1, 'bad': 0.9}

    Reference:
        Liu, Davison, Johns, "Auto-Lambda: Disentangling Dynamic Task Relationships", TMLR
        2022. Auto-λ evaluates ``g_val`` at the look-ahead point ``θ'`` and approximates the
        mixed second derivative by finite differences; this takes ``g_val`` at ``θ`` (exact
        to first order in ``α``, no virtual step to make and undo) and the products from the
        per-task gradients.
    """

    family = "validation"
    paper = "Liu et al., TMLR 2022"
    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRADS, Need.VAL_GRAD})
    scale_reaction = "none"
    distributed_refusal = DISTRIBUTED_REFUSAL

    def __init__(
        self,
        lr: float = 0.01,
        weights: Mapping[str, float] | float | None = None,
        max_weight: float | None = 10.0,
    ) -> None:
        self.lr = check_positive("lr", lr)
        self.weights = _check_weights_arg(weights, "initial weight")
        self.max_weight = _check_max_weight(max_weight)

    def init(self, tasks: Sequence[str], main: str) -> LookaheadValState:
        weights = _resolve(self.weights, tasks, main, "initial weights")
        weights[main] = 1.0
        aux = [t for t in tasks if t != main]
        return LookaheadValState(weights, zero_moments(len(aux)), dict.fromkeys(aux, 0.0), 0)

    def update(
        self, signals: Signals, state: LookaheadValState
    ) -> tuple[Weights, LookaheadValState]:
        aux = signals.aux
        if signals.grads is None:
            raise ValueError(
                "LookaheadVal reads the per-task gradients: declare Need.GRADS in needs"
            )
        g_val = signals.main_val_grad().to(signals.grads.dtype)
        rows = signals.grads[[signals.tasks.index(t) for t in aux]] if aux else None
        dots = (rows @ g_val).to(torch.float64).tolist() if rows is not None else []
        dots = [d if math.isfinite(d) else 0.0 for d in dots]
        # ∂L_val/∂wₖ ≈ −α·g_val·gₖ: descend it (α cancels in Adam's normalisation).
        values, moments = adam_step(
            [state.weights[t] for t in aux],
            [-d for d in dots],
            state.moments,
            self.lr,
            [0.0] * len(aux),
            [self.max_weight] * len(aux),
        )
        weights = dict(state.weights)
        weights.update(zip(aux, values, strict=True))
        alignment = dict(zip(aux, dots, strict=True))
        return dict(weights), LookaheadValState(weights, moments, alignment, state.updates + 1)
