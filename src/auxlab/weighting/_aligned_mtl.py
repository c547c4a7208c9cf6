"""Align the principal components of the task gradients (Aligned-MTL)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch

from auxlab.weighting._base import Decision, Need, Signals, Strategy
from auxlab.weighting._gradient_common import (
    Preference,
    _check_choice,
    _check_preference,
    _check_tasks,
    _gramian,
    _positional_preference,
    _resolve_preference,
    _shared,
)
from auxlab.weighting._registry import register

__all__ = ["AlignedMTL", "AlignedMTLState"]


class AlignedMTLState(NamedTuple):
    """State of :class:`AlignedMTL`.

    Attributes:
        pref: ``(T,)`` float64 task preferences ``w`` in task order.
    """

    pref: torch.Tensor


@register("aligned-mtl")
class AlignedMTL(Strategy):
    """Align the principal components of the task gradients (Aligned-MTL).

    Rule (Senushkin et al., 2023, Algorithm 1): with ``G = V Λ Vᵀ`` (eigenvalues above
    ``λ_max·T·ε`` kept, ``ε`` the inputs' precision), the balance transformation is
    ``B = √λ_s · V Λ^{-1/2} Vᵀ`` with ``λ_s`` the smallest kept eigenvalue; ``JᵀB`` has
    orthogonal rows of equal norm ``√λ_s`` (condition number one). The shared parameters
    get ``Σᵢ αᵢ gᵢ`` with ``α = B w``; heads their own gradients. A zero Gramian gives
    ``α = w``.

    Args:
        pref_vector: Task preferences ``w`` (the paper's task weights; its main-task-aware
            use): a dict ``{task: weight}`` covering every task, or a list in task order.
            Default: ones (the sum of the aligned gradients, as the authors' code via
            LibMTL; TorchJD defaults to ``1/T``).
        scale_mode: ``"min"`` (the paper: the smallest eigenvalue), ``"median"`` (the
            lower median of the kept eigenvalues: for an even count the smaller of the two
            middle ones, as ``torch.median`` in the authors' repository and TorchJD) or
            ``"rmse"`` (their mean, as in the authors' repository), as TorchJD offers.

    Cost: ``T`` backward passes through the shared parameters, ``T x T`` memory, one
    ``T x T`` eigendecomposition. Aligned-MTL-UB (on representation gradients) is not
    provided.

    Reaction to scaling one loss by ``k``: ``"none"``. Only when the gradients are
    orthogonal is the direction unchanged: in general the eigenvectors of ``G`` change with
    the scale of one row (checked numerically: a factor 10 on one of three random gradients
    turns the update by about 20 degrees).

    Reference: D. Senushkin, N. Patakin, A. Kuznetsov, A. Konushin, "Independent Component
    Alignment for Multi-Task Learning", CVPR 2023. Compared with TorchJD's
    ``AlignedMTLWeighting`` and LibMTL's ``Aligned_MTL``.

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # orthogonal: scaled to the smallest
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = AlignedMTL()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, gramian=g @ g.T)
        >>> d, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(c, 3) for t, c in d.shared_weights.items()}
        {'main': 1.0, 'aux': 0.5}
    """

    family = "gradient"
    #: Aggregator properties claimed (``auxlab.checks.check_properties``; docs/reliability.md).
    properties: ClassVar[frozenset[str]] = frozenset(
        {"expected_structure", "permutation_invariant", "strongly_stationary"}
    )
    paper = "Senushkin et al., CVPR 2023"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.GRAMIAN})
    scale_reaction: ClassVar[str] = "none"

    def __init__(
        self,
        pref_vector: Preference | None = None,
        scale_mode: Literal["min", "median", "rmse"] = "min",
    ) -> None:
        _check_choice("scale_mode", scale_mode, ("min", "median", "rmse"))
        self.pref_vector = _check_preference(pref_vector)
        if _positional_preference(self.pref_vector):
            # A list of unequal preferences goes by position, not by task.
            self.properties = self.properties - {"permutation_invariant"}  # type: ignore[misc]
        self.scale_mode = scale_mode

    def init(self, tasks: Sequence[str], main: str) -> AlignedMTLState:
        _check_tasks(tasks, main)
        return AlignedMTLState(_resolve_preference(self.pref_vector, tasks, default=1.0))

    def update(self, signals: Signals, state: AlignedMTLState) -> tuple[Decision, AlignedMTLState]:
        gram, eps = _gramian(signals, "AlignedMTL")
        t = gram.shape[0]
        w = state.pref.numpy()
        lam, vec = np.linalg.eigh(gram)
        top = float(lam.max()) if t else 0.0
        keep = lam > top * t * eps if top > 0 and math.isfinite(top) else np.zeros(t, dtype=bool)
        if not keep.any():
            return _shared(signals.tasks, w.copy()), state
        lam_k, vec_k = lam[keep], vec[:, keep]
        if self.scale_mode == "min":
            level = float(lam_k.min())
        elif self.scale_mode == "median":
            # torch.median's lower median, as the authors' code and TorchJD (NumPy's median
            # would average the two middle eigenvalues of an even count).
            level = float(np.sort(lam_k)[(len(lam_k) - 1) // 2])
        else:
            level = float(lam_k.mean())
        balance = math.sqrt(level) * (vec_k / np.sqrt(lam_k)) @ vec_k.T
        return _shared(signals.tasks, balance @ w), state
