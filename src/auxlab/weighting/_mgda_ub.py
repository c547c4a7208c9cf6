"""MGDA on the gradients of a shared representation (MGDA-UB), one backward in all."""

from __future__ import annotations

from typing import ClassVar

from auxlab._linalg import gramian
from auxlab.weighting._base import Need, NoState, Signals, Weights
from auxlab.weighting._gradient_common import _finite
from auxlab.weighting._mgda import _MinNormBase
from auxlab.weighting._registry import register
from auxlab.weighting._solvers import Array, gramian64, input_eps

__all__ = ["MGDAUB"]


@register("mgda-ub")
class MGDAUB(_MinNormBase):
    """MGDA on the gradients of a shared representation (MGDA-UB), one backward in all.

    Rule: as :class:`MGDA`, on the ``(T, n)`` gradients of the losses with respect to the
    shared representation ``z`` (the ``representation=`` tensor given to
    ``Balancer.backward``), which bounds the MGDA objective from above (Sener & Koltun,
    Theorem 1). The weights ``αᵢ/nᵢ`` are returned as plain loss weights, as in Sener &
    Koltun's code (``Σ αᵢ Lᵢ``, heads weighted too): that keeps MGDA-UB's point, one
    backward through the encoder, whereas coefficients on shared parameters would cost
    another one. The Balancer needs no ``shared=`` for it.

    Args:
        normalization: As for :class:`MGDA` (norms are those of the representation
            gradients).

    Cost: ``T`` backward passes from the losses to ``z`` (heads only), one full backward,
    ``T x n`` memory.

    Reaction to scaling one loss by ``k``: ``"none"`` with ``"none"``/``"loss+"``;
    ``"inverse"`` with ``"l2"``/``"loss"``: that task's weight scales by exactly ``1/k`` and
    the others are unchanged, so every gradient, heads included, is unchanged.
    ``scale_reaction`` is set per instance accordingly.

    Reference: O. Sener, V. Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018 (MGDA-UB).

    Example:
        >>> import torch
        >>> from auxlab.weighting import Signals
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # gradients on the representation
        >>> losses = {"main": torch.tensor(1.0), "aux": torch.tensor(1.0)}
        >>> s = MGDAUB()
        >>> sig = Signals(0, ("main", "aux"), "main", losses, rep_grads=z)
        >>> w, _ = s.update(sig, s.init(["main", "aux"], "main"))
        >>> {t: round(v, 3) for t, v in w.items()}
        {'main': 0.8, 'aux': 0.2}
    """

    family = "gradient"
    paper = "Sener & Koltun, NeurIPS 2018"

    needs: ClassVar[frozenset[Need]] = frozenset({Need.LOSSES, Need.REP_GRADS})
    _normalized_reaction: ClassVar[str] = "inverse"

    def _matrix(self, signals: Signals) -> tuple[Array, float]:
        if signals.rep_grads is None:
            raise ValueError("MGDAUB needs the representation gradients (Need.REP_GRADS).")
        z = signals.rep_grads.reshape(len(signals.tasks), -1)
        return _finite(gramian64(gramian(z)), "MGDAUB", signals.step), input_eps(z)

    def update(self, signals: Signals, state: NoState) -> tuple[Weights, NoState]:
        coef = self._coefficients(signals)
        return {t: float(c) for t, c in zip(signals.tasks, coef, strict=True)}, state
