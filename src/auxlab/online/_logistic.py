"""A strong simple reference: online logistic regression with AdaGrad."""

from __future__ import annotations

import torch

from auxlab.online._balance import ClassBalance, resolve_class_weight
from auxlab.online._base import OnlineClassifier
from auxlab.online._ops import adagrad_step

__all__ = ["OnlineLogistic"]


class OnlineLogistic(OnlineClassifier):
    """Online (multinomial) logistic regression on z-scored features and availability flags.

    Input for feature ``j``: its online z-score (0 when missing) and an indicator that it is
    present, so the model can learn from *which* features are there. Weights start at 0;
    AdaGrad: ``G ← G + g²``, ``w ← w − η g / (√G + ε)``. Not from the haphazard-input
    papers: it is the reference row of our benchmarks, which the deep learners must beat.

    A feature never seen before gets two new weights (value and indicator) per class, at 0.

    Args:
        lr: AdaGrad step size η (0.1).
        eps: AdaGrad's ε (1e-8).
        n_classes: ``K``; with 2, labels are booleans (river's convention) or 0/1.
        seed: Unused (the model is deterministic); kept for a uniform interface.
        class_weight: ``"none"`` (default: the reference row stays plain logistic regression)
            or ``"balanced"``, the class-balanced loss of the deep learners' default mode
            (:class:`auxlab.online._balance.ClassBalance`), for a like-for-like comparison.

    Cost per instance: ``O(K·d)``.

    Example:
        >>> model = OnlineLogistic()
        >>> for _ in range(20):
        ...     model.learn_one({"a": 1.0}, True)
        ...     model.learn_one({"a": -1.0}, False)
        >>> model.predict_one({"a": 1.0}), model.predict_one({"a": -1.0})
        (True, False)
    """

    faithful = None

    def __init__(
        self,
        lr: float = 0.1,
        eps: float = 1e-8,
        n_classes: int = 2,
        seed: int = 0,
        class_weight: str = "none",
    ) -> None:
        self.lr = lr
        self.eps = eps
        self.n_classes = n_classes
        self.seed = seed
        self.class_weight = class_weight

    @property
    def _is_stochastic(self) -> bool:
        return False

    def _build(self, n_base: int) -> None:
        K = int(self.n_classes)
        self._W = torch.zeros(K, 0)
        self._b = torch.zeros(K)
        self._GW = torch.zeros(K, 0)
        self._Gb = torch.zeros(K)
        balanced = resolve_class_weight(self.class_weight, False, "OnlineLogistic")
        self._balance = ClassBalance(K) if balanced else None

    def _grow(self, n_new: int) -> int:
        K, n = int(self.n_classes), self._W.shape[1] // 2
        # Layout: [values of slots 0..n-1 | flags of slots 0..n-1].
        self._W = torch.cat(
            [self._W[:, :n], torch.zeros(K, n_new), self._W[:, n:], torch.zeros(K, n_new)], 1
        )
        self._GW = torch.cat(
            [self._GW[:, :n], torch.zeros(K, n_new), self._GW[:, n:], torch.zeros(K, n_new)], 1
        )
        return n_new

    def _step(
        self, xb: torch.Tensor, xa: torch.Tensor, ma: torch.Tensor, y: int | None
    ) -> torch.Tensor:
        x = torch.cat([xa, ma.to(xa.dtype)])
        z = torch.addmv(self._b, self._W, x)
        p = torch.softmax(z, 0)
        if y is None:
            return p
        g = p.clone()
        g[y] -= 1.0
        if self._balance is not None:
            g *= self._balance.observe(y)
        grads = [torch.outer(g, x), g]
        adagrad_step(
            [self._W, self._b], grads, [self._GW, self._Gb], float(self.lr), float(self.eps)
        )
        return p
