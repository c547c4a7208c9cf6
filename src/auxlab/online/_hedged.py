"""Defaults shared by the hedged deep learners (HedgeBackprop, AuxNet, AuxDrop)."""

from __future__ import annotations

from typing import ClassVar

from auxlab.online._balance import resolve_class_weight
from auxlab.online._base import Faithful, OnlineClassifier

__all__ = ["HedgedClassifier"]


class HedgedClassifier(OnlineClassifier):
    """Defaults shared by the hedged deep learners (HedgeBackprop, AuxNet, AuxDrop).

    ``faithful=None`` is our mode; ``"paper"`` and ``"code"`` keep the papers' values. A
    learner sets ``_lr_defaults`` to its step sizes (ours, then the papers' modes) and
    ``_beta_default`` to its hedge discount in our mode. Our mode's defaults were chosen by
    leave-one-data-set-out over a pool of binary streams (``benchmarks/online_defaults.py``,
    docs/online.md).
    """

    faithful: Faithful
    lr: float | None
    beta: float | None
    class_weight: str | None
    #: Learning rate when ``lr`` is None: (our mode, the papers' modes).
    _lr_defaults: ClassVar[tuple[float, float]] = (0.05, 0.01)
    #: Hedge discount when ``beta`` is None in our mode (the papers' modes: 0.99).
    _beta_default: ClassVar[float] = 0.9

    @property
    def _ours(self) -> bool:
        return self.faithful is None

    @property
    def _balanced(self) -> bool:
        # The class-balanced loss: ``class_weight=None`` takes the mode's default (ours: on).
        return resolve_class_weight(self.class_weight, self._ours, type(self).__name__)

    @property
    def _lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return self._lr_defaults[0] if self._ours else self._lr_defaults[1]

    @property
    def _beta(self) -> float:
        # The hedge discount: the learner's own default in our mode, the papers' 0.99 otherwise.
        if self.beta is not None:
            return float(self.beta)
        return self._beta_default if self._ours else 0.99
