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
from auxlab.weighting._solvers import Array, SolverWarning, nash_weights, normalized_gramian

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
    ``αᵢ·(G α)ᵢ = 1`` for every task, on the raw Gramian ``G`` as the authors' code (its
    constraint ``αᵢ·||G||_F·(G/||G||_F · α)ᵢ >= 1``), LibMTL and TorchJD; the shared
    parameters get ``Σ αᵢ gᵢ``, heads their own gradients. Then
    ``||Σ αᵢ gᵢ||² = αᵀGα = T``: the shared update has norm ``√T`` whatever the gradients'
    size. Solved exactly by damped Newton on the convex potential ``½wᵀCw - Σ log wᵢ``, in
    unit-gradient coordinates ``w = Dα`` (``C`` the cosine matrix, ``D`` the norms), so
    gradients ``10⁸`` apart in size are solved as well as equal ones (the authors use a
    sequence of convex approximations with cvxpy/ECOS, at most 20). With
    ``update_every = k`` the solution is recomputed every ``k``-th update and reused in
    between. ``max_norm`` scales the shared update down to that norm when it is longer.

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
        max_norm: If set (> 0), the largest norm of the shared update. Default ``None``
            (no clipping), where the authors and TorchJD clip at 1.0: at the solution the
            update's norm is already ``√T`` whatever the gradients' size, so clipping at 1
            only divides every step by ``√T``, a constant the learning rate absorbs; it
            matters only for a reused ``α`` (``update_every > 1``, solver fallbacks) while
            the gradients grow. Pass ``max_norm=1.0`` for the authors' setting.
        normalize_gramian: ``False`` (default, the authors' rule). ``True`` solves on
            ``G/||G||_F`` instead (earlier auxlab releases): the coefficients are
            ``√||G||_F`` times the authors', so the step grows with the gradients' size.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, about ten
    Newton steps on ``T x T`` systems.

    Reaction to scaling one loss by ``k``: ``"invariant"``: ``α`` of that task scales by
    ``1/k`` and the others do not change, so the shared update itself is unchanged (with
    ``normalize_gramian=True`` its direction is unchanged and its length changes with
    ``||G||_F``).

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
        (1.0, 1.0)
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant", "strongly_stationary"}
    )
    paper = "Navon et al., ICML 2022"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "invariant"

    def __init__(
        self,
        update_every: int = 1,
        max_norm: float | None = None,
        normalize_gramian: bool = False,
    ) -> None:
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}")
        if max_norm is not None and not (math.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be None or a positive number, got {max_norm!r}")
        if not isinstance(normalize_gramian, bool):
            raise TypeError(f"normalize_gramian must be True or False, got {normalize_gramian!r}")
        self.update_every = update_every
        self.normalize_gramian = normalize_gramian
        self.max_norm = None if max_norm is None else float(max_norm)

    def init(self, tasks: Sequence[str], main: str) -> NashMTLState:
        _check_tasks(tasks, main)
        return NashMTLState(torch.ones(len(tasks), dtype=torch.float64), 0)

    def _solve(self, gram: Array, eps: float, previous: Array) -> Array:
        t = gram.shape[0]
        norms, live, cos = normalized_gramian(gram, eps)
        if not live.any():
            return np.ones(t)
        # αᵢ(Gα)ᵢ = wᵢ(Cw)ᵢ with w = Dα (D the gradients' norms, C their cosines): solve the
        # scale-free problem on C and map back, so that gradients 1e8 apart in size are
        # solved as accurately as equal ones.
        alpha = np.zeros(t)
        sub, ok = nash_weights(cos, eps=eps)
        if ok:
            alpha[live] = sub / norms[live]
            if self.normalize_gramian:
                alpha *= math.sqrt(float(np.linalg.norm(gram)))
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
