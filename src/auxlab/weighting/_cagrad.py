"""Conflict-averse gradient: the best worst-case improvement near the mean gradient."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from auxlab.weighting._base import Decision, Need, NoState, Signals, Strategy
from auxlab.weighting._cagrad_solver import cagrad_weights
from auxlab.weighting._gradient_common import (
    _check_choice,
    _check_tasks,
    _gramian,
    _shared,
    _tie_rtol,
)
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import SolverWarning

__all__ = ["CAGrad"]


@register("cagrad")
class CAGrad(Strategy):
    """Conflict-averse gradient: the best worst-case improvement near the mean gradient.

    Rule (Liu et al., 2021, eq. 3-4): ``max_d minᵢ gᵢ·d`` subject to
    ``||d - g₀|| <= c·||g₀||`` with ``g₀ = meanᵢ gᵢ``. Its dual is
    ``min_{w ∈ simplex} g_w·g₀ + c·||g₀||·||g_w||`` with ``g_w = Σ wᵢ gᵢ``, and
    ``d = g₀ + (c·||g₀|| / ||g_w||)·g_w``: a combination of the task gradients, returned as
    ``shared_weights`` (divided by ``1 + c²`` with ``rescale=1``, ``1 + c`` with
    ``rescale=2``); heads get their own gradients. The dual is solved exactly by a root
    search over a scalar whose every evaluation is an exact minimum-norm problem (the
    authors and LibMTL use SciPy's SLSQP). Where ``g₀ = 0``, ``d = 0``. A task with a zero
    gradient is indifferent to ``d``: it counts in ``g₀`` but not in the worst case (so a
    non-conflicting update is found where one exists, as LibMTL's regularised SLSQP does;
    the mean gradient, taken before, can conflict with a task). Where ``g_w = 0`` at the
    optimum (the gradients' hull holding the origin) the formula leaves ``d`` open and every
    point of the ball that conflicts with no task is optimal: ``d`` is then the projection
    of ``g₀`` onto ``{x : gᵢ·x >= 0 for every i}``, the nearest such point, when it lies in
    the ball.

    Not non-conflicting: with ``c < 1`` the ball may hold no update that conflicts with no
    task, and then ``d`` conflicts with one (TorchJD tests the property only for ``c >= 1``).

    Args:
        c: Radius ``c`` in ``[0, 1)`` of the ball around ``g₀``, in units of ``||g₀||`` (0
            gives the mean gradient; 0.5 by default, as LibMTL; the paper's convergence
            result needs ``c < 1``). The brief's ``√c·||g₀||`` is the paper's ``√φ`` with
            ``φ = c²||g₀||²``.
        rescale: 0 (none), 1 (divide by ``1 + c²``, default, as the authors' code) or 2
            (divide by ``1 + c``).

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, a few tens
    of ``T``-variable NNLS solves.

    Reaction to scaling one loss by ``k``: ``"none"`` (``g₀`` and the ball move).

    Reference: B. Liu, X. Liu, X. Jin, P. Stone, Q. Liu, "Conflict-Averse Gradient Descent
    for Multi-task Learning", NeurIPS 2021. Compared with the authors' ``Cranial-XIX/CAGrad``
    code via LibMTL's ``CAGrad``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [-0.5, 1.0]])
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = CAGrad(c=0.0)  # c = 0: the mean gradient
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> d.shared_weights
        {'main': 0.5, 'aux': 0.5}
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant", "strongly_stationary"}
    )
    paper = "Liu et al., NeurIPS 2021"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, c: float = 0.5, rescale: Literal[0, 1, 2] = 1) -> None:
        if not (math.isfinite(c) and 0.0 <= c < 1.0):
            raise ValueError(f"c must be in [0, 1), got {c!r}")
        _check_choice("rescale", rescale, (0, 1, 2))
        self.c = float(c)
        self.rescale = rescale

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        _check_tasks(tasks, main)
        return NoState()

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        gram, eps = _gramian(signals, "CAGrad")
        t = gram.shape[0]
        coef, ok = cagrad_weights(gram, self.c, _tie_rtol(eps), eps)
        if not ok:
            warnings.warn(
                "CAGrad's dual solver did not converge; using the mean gradient for this step.",
                SolverWarning,
                stacklevel=2,
            )
            coef = np.full(t, 1.0 / t)
        if self.rescale == 1:
            coef = coef / (1.0 + self.c**2)
        elif self.rescale == 2:
            coef = coef / (1.0 + self.c)
        return _shared(signals.tasks, coef), state
