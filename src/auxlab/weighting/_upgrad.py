"""Project every task gradient onto the dual cone of all of them, and combine (UPGrad)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gradient_common import (
    Preference,
    _check_preference,
    _check_tasks,
    _gramian,
    _positional_preference,
    _resolve_preference,
    _shared,
    _tie_rtol,
)
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import (
    SolverWarning,
    dual_cone_factor,
    dual_cone_weights,
    tie_identical,
)

__all__ = ["UPGrad", "UPGradState"]


class UPGradState(NamedTuple):
    """State of :class:`UPGrad`.

    Attributes:
        pref: ``(T,)`` float64 task preferences ``u`` in task order.
    """

    pref: torch.Tensor


@register("upgrad")
class UPGrad(Strategy):
    """Project every task gradient onto the dual cone of all of them, and combine (UPGrad).

    Rule (Quinton & Rey, 2024, eq. 5 and Proposition 1): for each task ``i``, project
    ``uᵢ·gᵢ`` onto the dual cone ``{x : gⱼ·x >= 0 for every j}``; the projection is
    ``Jᵀvᵢ`` with ``vᵢ = argmin vᵀGv`` subject to ``v >= uᵢ eᵢ``. The shared parameters get
    ``Σᵢ Jᵀvᵢ``, i.e. ``shared_weights = Σᵢ vᵢ``, which has a non-negative inner product with
    every task gradient; heads their own gradients. Each small QP is solved exactly as an
    NNLS problem (TorchJD uses quadprog on a slightly regularised Gramian); identical
    gradients share their weight equally.

    Numerics: the cone does not change when a gradient is rescaled, so the projections are
    solved on the unit gradients (the cosine matrix), which keeps a task whose gradient is
    ``10⁸`` times smaller than another's; eigenvalues of the cosine matrix under the
    precision of the inputs (float32's for float32 gradients) are dropped as rounding
    noise, so nearly dependent float32 gradients still get a non-conflicting update. A zero
    gradient constrains nothing.

    Args:
        pref_vector: Preferences ``u`` (TorchJD's ``pref_vector``, its only built-in
            priority hook): a dict ``{task: weight}`` covering every task, or a list in task
            order. Default ``1/T`` each (TorchJD's mean), so that without conflict the
            update is the mean gradient.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, ``T``
    NNLS solves on ``T`` variables.

    Reaction to scaling one loss by ``k``: ``"none"``. (Exactly: the dual cone does not
    depend on the gradients' lengths, so task ``k``'s projected gradient scales by ``k`` and
    the others are unchanged; nothing compensates the scale.)

    Reference: P. Quinton, V. Rey, "Jacobian Descent for Multi-Objective Optimization",
    arXiv:2406.16232, 2024. Compared with TorchJD's ``UPGradWeighting``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # no conflict: the mean
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = UPGrad()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> d.shared_weights
        {'main': 0.5, 'aux': 0.5}
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {
            "expected_structure",
            "linear_under_scaling",
            "non_conflicting",
            "permutation_invariant",
            "strongly_stationary",
        }
    )
    paper = "Quinton & Rey, arXiv 2024"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(self, pref_vector: Preference | None = None) -> None:
        self.pref_vector = _check_preference(pref_vector)
        if _positional_preference(self.pref_vector):
            # A list of unequal preferences goes by position, not by task.
            self.properties = self.properties - {"permutation_invariant"}  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> UPGradState:
        _check_tasks(tasks, main)
        return UPGradState(_resolve_preference(self.pref_vector, tasks, default=None))

    def update(self, signals: Signals, state: UPGradState) -> tuple[Decision, UPGradState]:
        gram, eps = _gramian(signals, "UPGrad")
        pref = state.pref.numpy()
        t = gram.shape[0]
        total = np.zeros(t)
        failed = False
        factor = dual_cone_factor(gram, eps)  # one factorisation for the T projections
        for i in range(t):
            u = np.zeros(t)
            u[i] = pref[i]
            v, ok = dual_cone_weights(gram, u, factor, eps)
            failed |= not ok
            total += v
        if failed:
            warnings.warn(
                "UPGrad's projection solver did not converge; using the preference-weighted "
                "sum of the raw gradients for this step.",
                SolverWarning,
                stacklevel=2,
            )
            total = pref.copy()
        return _shared(signals.tasks, tie_identical(gram, total, _tie_rtol(eps))), state
