"""The Nash bargaining solution between the tasks (Nash-MTL)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gradient_common import _check_tasks, _gramian, _shared
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import Array, SolverWarning, nash_weights

__all__ = ["NashMTL", "NashMTLState"]


class NashMTLState(NamedTuple):
    """State of :class:`NashMTL`.

    Attributes:
        alpha: ``(T,)`` float64 last bargaining solution (before clipping), in task order;
            ones before the first solve.
        updates: Updates so far.
    """

    alpha: torch.Tensor
    updates: int


@register("nash-mtl")
class NashMTL(Strategy):
    """The Nash bargaining solution between the tasks (Nash-MTL).

    Rule (Navon et al., 2022, eq. 2 and Algorithm 1): find ``α > 0`` with
    ``(G̃ α)ᵢ = 1/αᵢ`` for every task, where ``G̃ = G / ||G||_F`` as in the authors' code
    (the normalisation makes the update proportional to the gradients' size); the shared
    parameters get ``Σ αᵢ gᵢ``, heads their own gradients. Solved exactly by damped Newton
    on the convex potential ``½αᵀG̃α - Σ log αᵢ`` (the authors use a sequence of convex
    approximations with cvxpy/ECOS, at most 20). With ``update_every = k`` the solution is
    recomputed every ``k``-th update and reused in between. ``max_norm`` scales the shared
    update down to that norm when it is longer (the authors clip the shared gradient at 1.0).

    Fallbacks: a task with a zero gradient gets ``α = 0`` (the bargaining problem has no
    solution with it; its gradient contributes nothing anyway) and the rest bargain; all
    gradients zero gives ``α = 1``. When no solution exists (a convex combination of the
    gradients is zero: the point is Pareto-stationary) or Newton does not converge, a
    :class:`SolverWarning` is issued and the previous ``α`` is reused (initially all ones),
    as the authors' code does when its solver fails.

    Heads: the authors' code and LibMTL weight the whole loss ``Σ αᵢ Lᵢ``, heads included;
    we follow the paper's update of the shared parameters and leave each head its own
    gradient.

    Args:
        update_every: Recompute ``α`` every this many updates (>= 1; the paper's speed-up
            option). ``Balancer(every=k)`` saves the gradient computations too.
        max_norm: If set (> 0), the largest norm of the shared update.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, about ten
    Newton steps on ``T x T`` systems.

    Reaction to scaling one loss by ``k``: ``"invariant"``: ``α`` of that task scales by
    ``1/k`` relative to the others, so the direction of the shared update is unchanged (its
    length changes with ``||G||_F``). Without the ``||G||_F`` normalisation the update
    itself would be unchanged.

    Reference: A. Navon, A. Shamsian, I. Achituve, H. Maron, K. Kawaguchi, G. Chechik,
    E. Fetaya, "Multi-Task Learning as a Bargaining Game", ICML 2022. Compared with the
    authors' ``AvivNavon/nash-mtl`` code and LibMTL's ``Nash_MTL``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # orthogonal: αᵢ·||gᵢ|| all equal
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = NashMTL()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> a = d.shared_weights
        >>> round(a["main"] * 3.0, 4), round(a["aux"] * 4.0, 4)
        (4.2846, 4.2846)
    """

    family = "gradient"
    paper = "Navon et al., ICML 2022"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "invariant"

    def __init__(self, update_every: int = 1, max_norm: float | None = None) -> None:
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}")
        if max_norm is not None and not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be None or a positive number, got {max_norm!r}")
        self.update_every = update_every
        self.max_norm = None if max_norm is None else float(max_norm)

    def init(self, tasks: Sequence[str], main: str) -> NashMTLState:
        _check_tasks(tasks, main)
        return NashMTLState(torch.ones(len(tasks), dtype=torch.float64), 0)

    def _solve(self, gram: Array, eps: float, previous: Array) -> Array:
        t = gram.shape[0]
        frob = float(np.linalg.norm(gram))
        if not (frob > 0 and math.isfinite(frob)):
            return np.ones(t)
        g = gram / frob
        diag = np.diag(g)
        live = diag > eps * eps * float(diag.max())
        alpha = np.zeros(t)
        sub, ok = nash_weights(g[np.ix_(live, live)])
        if ok:
            alpha[live] = sub
            return alpha
        warnings.warn(
            "Nash-MTL found no bargaining solution (a convex combination of the task "
            "gradients is zero, or Newton did not converge); reusing the previous weights.",
            SolverWarning,
            stacklevel=3,
        )
        return previous.copy()

    def update(self, signals: Signals, state: NashMTLState) -> tuple[Decision, NashMTLState]:
        gram, eps = _gramian(signals, "NashMTL")
        if state.updates % self.update_every == 0:
            alpha = self._solve(gram, eps, state.alpha.numpy())
        else:
            alpha = state.alpha.numpy().copy()
        coef = alpha
        if self.max_norm is not None:
            norm = math.sqrt(max(float(alpha @ gram @ alpha), 0.0))
            if norm > self.max_norm:
                coef = alpha * (self.max_norm / norm)
        new_state = NashMTLState(torch.from_numpy(alpha), state.updates + 1)
        return _shared(signals.tasks, coef), new_state
