"""The hedge over outputs of Online Deep Learning (hedge backpropagation) and Aux-Net.

A pure functional core, :func:`hedge_update`, does one multiplicative-weights step on a vector
of expert weights; it takes an availability mask so that the online learners (Aux-Net, whose
auxiliary experts come and go with their features) use the same code as the
:class:`Hedge` strategy, where every expert is present at every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch

from auxlab._tasks import check_same_tasks
from auxlab.weighting._base import Need, Signals, Strategy, Weights
from auxlab.weighting._registry import register

__all__ = ["Hedge", "HedgeState", "hedge_update"]


def _check_hyper(beta: float, s: float) -> None:
    if not (isinstance(beta, (int, float)) and 0.0 < float(beta) < 1.0):
        raise ValueError(f"beta must be in (0, 1), got {beta!r}")
    if not (isinstance(s, (int, float)) and 0.0 < float(s) < 1.0):
        raise ValueError(f"s must be in (0, 1), got {s!r}")


def hedge_update(
    alpha: torch.Tensor,
    losses: torch.Tensor,
    beta: float = 0.99,
    s: float = 0.2,
    present: torch.Tensor | None = None,
    sleeping: bool = False,
) -> torch.Tensor:
    """One hedge step on the expert weights ``alpha``; returns the new weights.

    For every *present* expert ``l`` (all of them when ``present`` is ``None``)::

        αₗ ← max(αₗ · β^ℓₗ, s / N)

    then ``α ← α / Σ α`` over *all* ``N`` experts. Absent experts are neither discounted
    nor floored; they only take part in the normalisation. With every expert present this
    is ODL's rule (Sahoo et al., IJCAI 2018, Algorithm 1): ``α ← α·β^ℓ``, ``α ← max(α, s/N)``,
    normalise. With a mask it is Aux-Net's ``update_layer_weights`` (Agarwal et al., ICONIP
    2022), whose floor also uses ``N`` counting the absent experts.

    Where the sources differ (we follow the papers, as the Aux-Drop PyTorch port of ODL does):

    * ODL's paper writes the floor as ``s/L`` with ``L`` hidden layers while it places
      ``L+1`` classifiers (one on the input); the ports (Aux-Drop, Aux-Net) have one
      classifier per hidden layer and floor at ``s / (number of classifiers)``. Here the
      floor is ``s / N`` with ``N = alpha.numel()``.
    * ODL's official Keras code first normalises the step's losses (divides by their sum,
      then min-max scales them to [0, 1]) and floors at a constant 0.01; not done here.
    * Aux-Net's code, when predicting, renormalises the present experts' weights to sum to 1
      and writes them back into ``α`` before this update. That belongs to the learner's
      prediction, not to this function; call it there if you want to reproduce that code.
    * ODL asks for losses in (0, 1); larger losses (e.g. a cross-entropy above 1) only
      discount the expert more.

    With ``sleeping=True`` the present experts trade weight only among themselves: after
    the discount and the floor, their weights are rescaled to the total they had before the
    step, and the absent experts keep theirs exactly. This is the specialist ("sleeping
    experts") hedge of Freund, Schapire, Singer and Warmuth (STOC 1997). With the masked
    rule above an expert that is often absent is discounted less often, so it gains weight
    over the always-present ones however well they predict; Aux-Net's default in our mode.

    Args:
        alpha: ``(N,)`` current weights of the ``N`` experts, ``>= 0`` (normally summing to 1).
        losses: ``(N,)`` this step's loss of each expert, ``>= 0`` where present; entries of
            absent experts are ignored (they may be NaN).
        beta: Discount ``β`` in (0, 1); the papers use 0.99.
        s: Smoothing ``s`` in (0, 1): no weight falls below ``s/N`` before normalisation.
        present: Optional ``(N,)`` boolean mask of the experts present at this step.
        sleeping: Renormalise among the present experts only (see above).

    Returns:
        The new weights, a new tensor of ``alpha``'s dtype and device, summing to 1. If no
        expert is present, a copy of ``alpha``.

    Raises:
        ValueError: If the shapes differ, a hyperparameter is out of range, or a present
            expert's loss is negative or not finite.

    Example:
        >>> import torch
        >>> alpha = torch.full((3,), 1 / 3, dtype=torch.float64)
        >>> hedge_update(alpha, torch.tensor([0.0, 1.0, 2.0]), beta=0.5).tolist()
        [0.5714285714285714, 0.2857142857142857, 0.14285714285714285]

    Cost: ``O(N)``.
    """
    _check_hyper(beta, s)
    if alpha.ndim != 1 or losses.shape != alpha.shape:
        raise ValueError(
            f"alpha and losses must be vectors of the same length, got {tuple(alpha.shape)} "
            f"and {tuple(losses.shape)}"
        )
    losses = losses.detach().to(device=alpha.device, dtype=alpha.dtype)
    n = alpha.numel()
    # Few operations: the online learners call this once per instance.
    if present is None:
        used = losses
    else:
        if present.shape != alpha.shape:
            raise ValueError(
                f"present must have the shape of alpha {tuple(alpha.shape)}, got "
                f"{tuple(present.shape)}"
            )
        mask = present.to(device=alpha.device, dtype=torch.bool)
        if not bool(mask.any()):
            return alpha.clone()
        used = torch.where(mask, losses, 0.0)
    lo, hi = (float(v) for v in torch.aminmax(used))
    if not (lo >= 0.0 and math.isfinite(hi)):  # NaN fails both comparisons
        bad = ~(torch.isfinite(used) & (used >= 0))
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"the hedge needs finite losses >= 0; expert {i} has loss {float(losses[i])}"
        )
    # β^ℓ as exp(ℓ·log β): a huge loss gives exactly 0 (then the floor), never NaN.
    new = torch.clamp(alpha * torch.exp(used * math.log(beta)), min=float(s) / n)
    if present is None:
        return new / new.sum()
    if sleeping:
        kept = torch.where(mask, alpha, 0.0).sum() / torch.where(mask, new, 0.0).sum()
        return torch.where(mask, new * kept, alpha)
    new = torch.where(mask, new, alpha)
    return new / new.sum()


class HedgeState(NamedTuple):
    """State of :class:`Hedge`.

    Attributes:
        experts: The hedged tasks, in the order of ``alpha``.
        alpha: ``(N,)`` the experts' weights (float64), summing to 1.
    """

    experts: tuple[str, ...]
    alpha: torch.Tensor


@register("hedge")
class Hedge(Strategy):
    """Weigh the outputs by a multiplicative hedge on their losses (ODL's hedge backprop).

    Every hedged task is an "expert" (an exit, or one classifier per layer, as in Online Deep
    Learning and Aux-Net) with a weight ``αᵢ``, uniform at the start. At each update the
    backward uses the current ``αᵢ`` as the weights (ODL's ``Σ α⁽ˡ⁾ L(f⁽ˡ⁾)``), then
    :func:`hedge_update` discounts each expert by ``β^Lᵢ``, floors at ``s/N`` and
    renormalises, for the next step. There is no main-task priority: ``main`` is an expert
    like the others. Tasks outside ``tasks`` (when given) keep weight 1.

    ``Lᵢ`` is the loss the Balancer gives (a batch mean; per instance with batch size 1, as
    in the papers). Losses must be ``>= 0``.

    Cost: one backward; ``O(N)`` memory.

    Scale reaction (``"none"``): the loss is an exponent (``β^Lᵢ``), so multiplying it by
    ``c`` raises that expert's discount to the power ``c``; the weights are neither invariant
    nor inversely proportional.

    Args:
        beta: Discount ``β`` in (0, 1), default 0.99 (ODL, Aux-Net).
        s: Smoothing floor ``s`` in (0, 1), default 0.2 (ODL, Aux-Net).
        tasks: Optional subset of the tasks to hedge over; default all tasks.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> hedge = Hedge(beta=0.5)
        >>> state = hedge.init(["main", "exit1"], "main")
        >>> losses = {"main": torch.tensor(0.0), "exit1": torch.tensor(1.0)}
        >>> w, state = hedge.update(Signals(0, ("main", "exit1"), "main", losses), state)
        >>> w, [round(a, 4) for a in state.alpha.tolist()]
        ({'main': 0.5, 'exit1': 0.5}, [0.6667, 0.3333])

    Reference: Sahoo, Pham, Lu, Hoi, "Online Deep Learning: Learning Deep Neural Networks on
    the Fly", IJCAI 2018 (hedge backpropagation); Agarwal et al., "Auxiliary Network:
    Scalable and Agile Online Learning for Dynamic System with Inconsistently Available
    Inputs", ICONIP 2022, arXiv 2008.11828 (the same hedge over the present experts). No
    peer library implements it; compared against the equations of the Aux-Drop authors'
    PyTorch port of ODL and of the Aux-Net code, as summarised in the project's notes.
    """

    family = "hedge"
    paper = "Sahoo et al., IJCAI 2018"

    needs = frozenset({Need.LOSSES})
    scale_reaction: ClassVar[str] = "none"

    def __init__(
        self, beta: float = 0.99, s: float = 0.2, tasks: Sequence[str] | None = None
    ) -> None:
        _check_hyper(beta, s)
        if tasks is not None and (
            isinstance(tasks, str) or not tasks or len(set(tasks)) != len(tasks)
        ):
            raise ValueError(f"tasks must be a non-empty list of distinct names, got {tasks!r}")
        self.beta = float(beta)
        self.s = float(s)
        self.tasks = None if tasks is None else list(tasks)

    def init(self, tasks: Sequence[str], main: str) -> HedgeState:
        """Uniform weights over the experts."""
        if self.tasks is None:
            experts = tuple(tasks)
        else:
            unknown = [t for t in self.tasks if t not in tasks]
            if unknown:
                check_same_tasks(list(tasks), self.tasks, "the tasks", "the hedged tasks")
            # Keep the order the tasks are listed in, so a permutation permutes alpha.
            experts = tuple(t for t in tasks if t in self.tasks)
        n = len(experts)
        return HedgeState(experts, torch.full((n,), 1.0 / n, dtype=torch.float64))

    def update(self, signals: Signals, state: HedgeState) -> tuple[Weights, HedgeState]:
        """Return the current ``α`` as weights and the hedged ``α`` for the next step."""
        missing = [t for t in state.experts if t not in signals.losses]
        if missing:
            raise ValueError(f"no loss for the hedged tasks {missing} at step {signals.step}")
        losses = torch.tensor(
            [float(signals.losses[t]) for t in state.experts], dtype=state.alpha.dtype
        )
        current = dict(zip(state.experts, state.alpha.tolist(), strict=True))
        weights = {t: float(current.get(t, 1.0)) for t in signals.tasks}
        try:
            alpha = hedge_update(state.alpha, losses, self.beta, self.s)
        except ValueError as exc:
            raise ValueError(
                f"Hedge at step {signals.step}: {exc} (tasks {state.experts})"
            ) from exc
        return weights, HedgeState(state.experts, alpha)
