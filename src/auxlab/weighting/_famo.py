"""Fast adaptive multitask optimisation: balance the rates at which the log-losses fall."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._loss_common import (
    _as_weights,
    _check_at_least,
    _loss_vector,
    _per_task,
    _positive,
)
from auxlab.weighting._registry import register

__all__ = ["FAMO", "FAMOState"]


class FAMOState(NamedTuple):
    """State of :class:`FAMO`.

    Attributes:
        tasks: The tasks, in the order of the vectors below.
        min_loss: ``(T,)`` the lower bounds ``bᵢ``.
        logits: ``(T,)`` the task logits ``ξ``; the weights' simplex part is ``softmax(ξ)``.
        exp_avg: ``(T,)`` Adam's first moment of the logits' gradient.
        exp_avg_sq: ``(T,)`` Adam's second moment.
        adam_step: Number of Adam steps taken on the logits.
        prev_log_loss: ``(T,)`` ``log(Lᵢ − bᵢ + eps)`` at the previous update.
        num_updates: Number of updates so far (the first has no previous loss).
    """

    tasks: tuple[str, ...]
    min_loss: torch.Tensor
    logits: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    adam_step: int
    prev_log_loss: torch.Tensor
    num_updates: int


@register("famo")
class FAMO(Strategy):
    """Fast adaptive multitask optimisation: balance the rates at which the log-losses fall.

    With ``z = softmax(ξ)`` and ``Dᵢ = Lᵢ − bᵢ + eps``, the update direction is that of
    ``Σᵢ zᵢ log Dᵢ`` scaled by ``c = (Σⱼ zⱼ/Dⱼ)⁻¹``, i.e. the weights on the raw losses are

    ``wᵢ = c · zᵢ / Dᵢ``  (they sum to 1).

    The logits learn from how much each log-loss fell: with
    ``δᵢ = log Dᵢ(t−1) − log Dᵢ(t)``, ``ξ`` takes one Adam step on the gradient
    ``J_softmax(ξ)ᵀ δ + γ ξ`` (Adam with coupled weight decay ``γ``, learning rate ``lr``),
    which lowers the weight of the tasks that improved most. ``update`` does this step
    first, then returns the weights for this step.

    Deviation from the paper and its code: they measure ``δ`` on the *same batch* before and
    after the model step, which costs a second forward pass after ``optimizer.step()``; a
    strategy only sees the losses the Balancer gives it, so here ``δ`` is the change between
    consecutive updates (different batches). It is noisier, but costs nothing extra. The
    official code also clips the model's gradient norm (``max_norm=1``); do that in your loop
    if you want it.

    Cost: one backward (no extra forward); ``O(T)`` memory.

    Scale reaction (``"none"``): ``δ``, hence ``z``, is unchanged when a loss is multiplied by
    ``c`` (with ``min_loss`` scaled alike), so the direction ``Σ zᵢ ∇log Lᵢ`` is scale
    invariant; on the raw losses this means task ``k``'s weight falls by ``c`` *relative to
    the others*, and the normalisation ``c`` (weights summing to 1) then changes every weight.
    That is "inverse up to a common factor", not the exact ``"inverse"`` contract.

    Args:
        lr: Adam learning rate of the logits, ``> 0`` (the official code's ``w_lr``).
        gamma: Weight decay (regularisation) of the logits, ``>= 0`` (the paper's ``γ``).
        min_loss: Lower bound ``bᵢ`` of each loss: a number for all tasks or ``{task: b}``
            (missing tasks 0). A loss below its bound raises an error.
        eps: Added to ``Lᵢ − bᵢ`` before the log, ``> 0``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> famo = FAMO()
        >>> state = famo.init(["main", "aux"], "main")
        >>> losses = {"main": torch.tensor(3.0), "aux": torch.tensor(1.0)}
        >>> w, state = famo.update(Signals(0, ("main", "aux"), "main", losses), state)
        >>> {t: round(v, 4) for t, v in w.items()}
        {'main': 0.25, 'aux': 0.75}

    Reference: Liu, Feng, Stone, Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS
    2023. Compared against ``Cranial-XIX/FAMO`` ``famo.py`` and TorchJD
    ``scalarization/_famo.py``.
    """

    family = "loss-based"
    paper = "Liu et al., NeurIPS 2023"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "none"

    _BETAS = (0.9, 0.999)
    _ADAM_EPS = 1e-8

    def __init__(
        self,
        lr: float = 0.025,
        gamma: float = 0.01,
        min_loss: float | Mapping[str, float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.lr = _positive("lr", lr)
        if not math.isfinite(float(gamma)) or gamma < 0:
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        values = min_loss.values() if isinstance(min_loss, Mapping) else [min_loss]
        for v in values:
            if not math.isfinite(float(v)):
                raise ValueError(f"min_loss must be finite, got {min_loss!r}")
        self.min_loss = dict(min_loss) if isinstance(min_loss, Mapping) else float(min_loss)
        self.eps = _positive("eps", eps)

    def init(self, tasks: Sequence[str], main: str) -> FAMOState:
        """Equal logits, zero Adam moments, no previous loss."""
        t = len(tasks)
        zeros = torch.zeros(t, dtype=torch.float64)
        return FAMOState(
            tuple(tasks),
            _per_task(self.min_loss, tasks, 0.0, "the tasks of min_loss"),
            zeros,
            zeros,
            zeros,
            0,
            zeros,
            0,
        )

    def update(self, signals: Signals, state: FAMOState) -> tuple[Weights, FAMOState]:
        """Step the logits on the last change of the log-losses; return this step's weights."""
        losses = _loss_vector(signals, state.tasks)
        bound = state.min_loss.to(losses)
        _check_at_least(losses, bound, state.tasks, signals.step, "FAMO")
        log_d = torch.log(losses - bound + self.eps)
        logits = state.logits.to(losses)
        m, v, k = state.exp_avg.to(losses), state.exp_avg_sq.to(losses), state.adam_step
        if state.num_updates > 0:
            delta = state.prev_log_loss.to(losses) - log_d
            z = torch.softmax(logits, dim=0)
            # Vector-Jacobian product of the softmax: Jᵀδ = z ⊙ (δ − zᵀδ).
            grad = z * (delta - (z * delta).sum()) + self.gamma * logits
            b1, b2 = self._BETAS
            k += 1
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            m_hat = m / (1 - b1**k)
            v_hat = v / (1 - b2**k)
            logits = logits - self.lr * m_hat / (v_hat.sqrt() + self._ADAM_EPS)
        z = torch.softmax(logits, dim=0)
        # Divide by the largest z/D before normalising so that 1/D cannot overflow.
        ratio = torch.exp(torch.log(z) - log_d - (torch.log(z) - log_d).max())
        w = ratio / ratio.sum()
        new_state = FAMOState(
            state.tasks, state.min_loss, logits, m, v, k, log_d, state.num_updates + 1
        )
        return _as_weights(signals.tasks, state.tasks, w), new_state
