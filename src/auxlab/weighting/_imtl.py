"""Impartial gradient: equal projections on every task's unit gradient (IMTL-G)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from auxlab.weighting._base import Decision, Need, NoState, Signals, Strategy
from auxlab.weighting._gradient_common import _check_tasks, _gramian, _shared
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import _EPS64, normalized_gramian

__all__ = ["IMTL"]


@register("imtl")
class IMTL(Strategy):
    """Impartial gradient: equal projections on every task's unit gradient (IMTL-G).

    Rule (Liu et al., 2021, eq. 5, generalised to dependent gradients as in TorchJD): find
    ``d = Σᵢ αᵢ gᵢ`` with ``d·uᵢ`` equal for all tasks (``uᵢ = gᵢ/||gᵢ||``) and ``Σ αᵢ = 1``:
    ``v = G⁺ n`` with ``nᵢ = ||gᵢ||``, then ``α = v / Σv``. ``Jᵀv`` has projection 1 on
    every ``uᵢ``. The shared parameters get ``Σ αᵢ gᵢ``; heads their own gradients.
    Computed on unit gradients: ``v = D⁻¹ C⁺ 1`` with ``C = D⁻¹GD⁻¹`` the cosine matrix
    (``D = diag(nᵢ)``; the pseudo-inverse cuts eigenvalues of ``C`` below ``T·ε`` of the
    largest, ``ε`` the inputs' precision), which keeps a task whose gradient is ``10⁸``
    times smaller than another's. A zero gradient gets ``αᵢ = 0``.

    Deviation, documented: for three or more tasks ``Σv`` can be small or negative, and the
    published normalisation then makes ``d`` huge or points it against every task. We divide
    by ``max(Σv, Σ|v|/T)`` instead, which is the published rule whenever ``Σv >= Σ|v|/T``
    (always when ``v >= 0``, always for two tasks) and otherwise keeps ``d`` a positive
    multiple of ``Jᵀv`` with ``Σ|αᵢ| <= T``. If ``Jᵀv`` vanishes (e.g. ``g₂ = -g₁``, or all
    gradients zero) no direction has equal positive projections; the weights are ``1/T``.

    IMTL-L, the loss-scale half of IMTL (learnable ``e^{sᵢ} Lᵢ - sᵢ``), is not included: it
    is a loss-based strategy and can be combined with this one.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, one
    ``T x T`` eigendecomposition.

    Reaction to scaling one loss by ``k``: ``"invariant"``: the direction of the shared
    update is unchanged (its length changes, through ``Σv``) whenever the gradients are
    linearly independent (more generally, whenever equal projections are attainable).

    Reference: L. Liu, Y. Li, Z. Kuang, J.-H. Xue, Y. Chen, W. Yang, Q. Liao, W. Zhang,
    "Towards Impartial Multi-task Learning", ICLR 2021. Compared with TorchJD's
    ``IMTLGWeighting`` and LibMTL's ``IMTL``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = IMTL()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in d.shared_weights.items()}
        {'main': 0.75, 'aux': 0.25}
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant", "strongly_stationary"}
    )
    paper = "Liu et al., ICLR 2021"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "invariant"

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        _check_tasks(tasks, main)
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        gram, eps = _gramian(signals, "IMTL")
        t = gram.shape[0]
        coef = np.full(t, 1.0 / t)
        norms, live, cos = normalized_gramian(gram, eps)
        if live.any():
            # Gv = n in unit-gradient coordinates w = D v: C w = 1 (C the cosine matrix, unit
            # diagonal). Cutting C's eigenvalues at the inputs' precision keeps a task whose
            # gradient is 1e8 times smaller than another's; cutting G's would drop it.
            lam, vec = np.linalg.eigh(cos)
            keep = lam > max(t * eps, t * _EPS64) * float(lam.max())
            w = (vec[:, keep] / lam[keep]) @ (vec[:, keep].T @ np.ones(len(lam)))
            d_sq = float(w @ cos @ w)  # ||Jᵀv||², 0 when no direction has equal projections
            v = np.zeros(t)
            v[live] = w / norms[live]  # a zero gradient gets no weight
            total, mass = float(v.sum()), float(np.abs(v).sum())
            scale = float(np.abs(w).sum())
            if mass > 0 and math.isfinite(mass) and d_sq > 1e-12 * max(scale, 1.0) ** 2:
                coef = v / max(total, mass / t)
        return _shared(signals.tasks, coef), state
