"""The minimum-norm point of the convex hull of the task gradients (MGDA)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from auxlab.weighting._base import Decision, Need, NoState, Signals, Strategy
from auxlab.weighting._gradient_common import (
    _check_choice,
    _check_tasks,
    _gramian,
    _losses64,
    _shared,
    _tie_rtol,
)
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import Array, SolverWarning, min_norm_weights

__all__ = ["MGDA"]


Normalization = Literal["none", "l2", "loss", "loss+"]


class _MinNormBase(Strategy):
    """Shared machinery of :class:`MGDA` and :class:`MGDAUB`: normalise, solve, unscale."""

    scale_reaction: ClassVar[str] = "none"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md):
    #: not strongly stationary (a zero gradient stops the update), not linear under scaling.
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "non_conflicting", "permutation_invariant"}
    )
    #: The reaction with a scale-free normalisation ("l2" or "loss"), set per instance.
    _normalized_reaction: ClassVar[str] = "invariant"

    def __init__(self, normalization: Normalization = "none") -> None:
        _check_choice("normalization", normalization, ("none", "l2", "loss", "loss+"))
        self.normalization = normalization
        if normalization in ("l2", "loss"):
            self.scale_reaction = self._normalized_reaction  # type: ignore[misc]

    def init(self, tasks: Sequence[str], main: str) -> NoState:
        _check_tasks(tasks, main)
        return NoState()

    def _matrix(self, signals: Signals) -> tuple[Array, float]:
        return _gramian(signals, type(self).__name__)

    def _coefficients(self, signals: Signals) -> Array:
        gram, eps = self._matrix(signals)
        t = gram.shape[0]
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        if self.normalization == "none":
            scale = np.ones(t)
        elif self.normalization == "l2":
            scale = norms
        else:
            losses = _losses64(signals)
            bad = [task for task, v in zip(signals.tasks, losses, strict=True) if not v > 0]
            if bad:
                raise ValueError(
                    f"MGDA(normalization={self.normalization!r}) divides by the losses, which "
                    f"must be positive; tasks {bad} have losses "
                    f"{[float(signals.losses[b]) for b in bad]}."
                )
            scale = losses if self.normalization == "loss" else losses * norms
        live = scale > 0
        inv = np.where(live, 1.0 / np.where(live, scale, 1.0), 0.0)
        normed = gram * np.outer(inv, inv)
        alpha, ok = min_norm_weights(normed, _tie_rtol(eps), eps)
        if not ok:
            warnings.warn(
                "MGDA's minimum-norm solver did not converge; using equal weights 1/T on the "
                "normalised gradients for this step.",
                SolverWarning,
                stacklevel=3,
            )
            alpha = np.full(t, 1.0 / t)
        return alpha * inv


@register("mgda")
class MGDA(_MinNormBase):
    """The minimum-norm point of the convex hull of the task gradients (MGDA).

    Rule: with normalised gradients ``ĝᵢ = gᵢ/nᵢ``, find ``α`` on the simplex minimising
    ``||Σᵢ αᵢ ĝᵢ||`` (Désidéri's common descent direction); the shared parameters get
    ``Σᵢ αᵢ ĝᵢ``, i.e. ``shared_weights cᵢ = αᵢ/nᵢ``, and every head its own gradient
    (weight 1). Solved exactly: the closed form ``α₁ = clip(((g₂-g₁)·g₂)/||g₁-g₂||², 0, 1)``
    for two tasks, Lawson–Hanson NNLS otherwise (Sener & Koltun use Frank–Wolfe to a
    tolerance). Identical gradients share their weight equally.

    Normalisers ``nᵢ`` (Sener & Koltun's ``normalization_type``): ``"none"``: 1;
    ``"l2"``: ``||gᵢ||``; ``"loss"``: ``Lᵢ``; ``"loss+"``: ``Lᵢ·||gᵢ||``. A zero normalised
    gradient (``||gᵢ|| = 0``) stays zero: then the minimum norm is 0 and the shared update is
    zero (the point is Pareto-stationary). ``"loss"`` and ``"loss+"`` need positive losses.

    Heads and normalisation, compared: Sener & Koltun's code uses the ``α`` found on the
    normalised gradients as weights of the raw losses (``Σ αᵢ Lᵢ``, heads weighted too);
    LibMTL applies ``α`` to the normalised gradients on the shared parameters and leaves the
    heads unweighted. We follow LibMTL, so that with ``"l2"`` or ``"loss"`` the update is
    exactly invariant to the scale of each loss.

    Args:
        normalization: ``"none"`` (default, as LibMTL and TorchJD), ``"l2"``, ``"loss"`` or
            ``"loss+"``.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, and an NNLS
    on ``T`` variables (finite, ``O(T⁴)`` at worst).

    Reaction to scaling one loss by ``k``: ``"none"`` with ``"none"`` or ``"loss+"``
    normalisation; ``"invariant"`` with ``"l2"`` or ``"loss"`` (the normalised gradients, so
    the update itself, do not change). ``scale_reaction`` is set per instance accordingly.

    References: J.-A. Désidéri, "Multiple-gradient descent algorithm (MGDA) for
    multiobjective optimization", Comptes Rendus Mathématique, 2012; O. Sener, V. Koltun,
    "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018. Compared with
    LibMTL's ``MGDA`` and TorchJD's ``MGDAWeighting``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> s = MGDA()
        >>> decision, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in decision.shared_weights.items()}
        {'main': 0.8, 'aux': 0.2}
    """

    family = "gradient"
    paper = "Sener & Koltun, NeurIPS 2018"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.GRAMIAN})

    def update(self, signals: Signals, state: NoState) -> tuple[Decision, NoState]:
        return _shared(signals.tasks, self._coefficients(signals)), state
