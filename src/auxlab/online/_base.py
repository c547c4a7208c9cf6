"""The base class of auxlab's online learners: river's verbs on dicts, and the array path.

An online learner sees one instance at a time, as a dict ``{feature: value}``; a missing
feature is a missing key (or a ``None`` or NaN value). It predicts (``predict_proba_one``),
then learns from the label (``learn_one``). The same learner runs a whole stream given as
arrays (``learn_predict_stream``), and that path is the same computation as the dict path:
both call the learner's one ``_step``.

The pieces live one idea per module: value semantics and river's estimator hooks
(:mod:`auxlab.online._estimator`), the feature registry with base features and online
z-scores (:mod:`auxlab.online._features`), the array path
(:mod:`auxlab.online._array_path`), and the defaults of the hedged deep learners
(:mod:`auxlab.online._hedged`). ``auxlab.online`` registers the learners as virtual
subclasses of ``river.base.Classifier`` when river is installed, so they pass
``river.checks`` and run in ``river.evaluate.progressive_val_score``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from auxlab.online._array_path import learn_predict_stream
from auxlab.online._estimator import Estimator
from auxlab.online._features import FeatureSpace
from auxlab.online._inputs import check_arguments, label_index
from auxlab.online._ops import Diverged

__all__ = ["Faithful", "OnlineClassifier", "check_faithful"]

#: The three modes: ``"paper"`` (the papers' equations), ``"code"`` (what the authors' public
#: code does) and ``None`` (ours: the papers' equations plus the fixes described per learner).
Faithful = str | None

_MODES = (None, "paper", "code")


def check_faithful(value: Faithful, name: str) -> None:
    """Raise if ``value`` is not one of the modes."""
    if value not in _MODES:
        raise ValueError(f"{name}: faithful must be None (ours), 'paper' or 'code', got {value!r}")


class OnlineClassifier(Estimator, FeatureSpace):
    """Base of the online learners: dict verbs, a fast array path, and value semantics.

    Subclasses store every constructor argument under its own name, implement ``_build``
    (the network for ``n_base`` base inputs and no auxiliary slot), ``_grow`` (add auxiliary
    slots) and ``_step`` (one forward pass, and the update when a label is given), and set
    ``_uses_base`` if they have base features.
    """

    _supervised: ClassVar[bool] = True
    n_classes: int
    seed: int
    faithful: Faithful

    def _ensure(self) -> None:
        """Check the arguments and build the network, once, on first use."""
        if getattr(self, "_built", False):
            return
        check_faithful(self.faithful, type(self).__name__)
        check_arguments(type(self).__name__, self._get_params())
        self._init_features()
        self._build(self._n_base)
        self._park_generator()
        self._built = True

    # -- labels ------------------------------------------------------------------------------
    def _label_index(self, y: Any) -> int:
        # Checked, never bool(y): "no", "0", -1 and 2 are not the positive class (_inputs).
        return label_index(type(self).__name__, y, int(self.n_classes))

    def _labels(self) -> list[Any]:
        k = int(self.n_classes)
        return [False, True] if k == 2 else list(range(k))

    # -- river's verbs -----------------------------------------------------------------------
    def predict_proba_one(self, x: Mapping[Hashable, Any]) -> dict[Any, float]:
        """Class probabilities for ``x``; features never learned from are ignored.

        Pure: the learner does not change (a stochastic learner draws the randomness of its
        next learning step, the same that step will use).
        """
        self._ensure()
        raw = self._raw_from_values(self._values(x))
        xb, xa, ma = self._encode(*raw)
        with torch.inference_mode():
            proba = _as_proba(self._step(xb, xa, ma, None))
        if not np.isfinite(proba).all():
            raise Diverged(self._diverged_message())
        return dict(zip(self._labels(), proba.tolist(), strict=True))

    def predict_one(self, x: Mapping[Hashable, Any]) -> Any:
        """The most probable class for ``x``."""
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.__getitem__)

    def learn_one(self, x: Mapping[Hashable, Any], y: Any) -> None:
        """Update on one labelled instance. New features get slots (see the learner).

        The label and every value are checked first (see :mod:`auxlab.online._inputs`): a
        refused instance raises ``ValueError`` naming the label or the feature, and the
        learner is left as it was.
        """
        self._ensure()
        target = self._label_index(y)
        values = self._values(x)
        new = [k for k in values if not self._known(k)]
        if new:
            self._register(new)
        raw = self._raw_from_values(values)
        xb, xa, ma = self._encode(*raw)
        with torch.inference_mode():
            try:
                self._step(xb, xa, ma, target)
            except Diverged:
                raise Diverged(self._diverged_message()) from None
        self._after(*raw)

    def _diverged_message(self) -> str:
        mode = getattr(self, "faithful", None)
        fix = (
            "In the papers' modes the features enter unscaled and the steps are plain SGD: "
            "scale the features to about unit size, lower lr, or use the default mode "
            "(faithful=None), which z-scores them online"
            if mode is not None
            else "lower lr"
        )
        return (
            f"{type(self).__name__} (faithful={mode!r}) has diverged: its outputs are no longer "
            f"finite (its weights grew without bound), and every later instance would fail. "
            f"{fix}; then start again from clone()."
        )

    # -- the array path ----------------------------------------------------------------------
    def learn_predict_stream(
        self,
        X: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray | None = None,
        feature_names: Sequence[Hashable] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> np.ndarray:
        """Test-then-train over a whole stream: the probabilities predicted before each label.

        The same computation as ``predict_proba_one(x)`` then ``learn_one(x, y)`` for each row
        with ``x = {name: X[t, j] for j present}``; faster, since no dict is built.

        Args:
            X: ``(n, d)`` feature values; entries where ``mask`` is False are ignored (NaN
                entries count as missing). A present value must be a finite number of at
                most ``MAX_ABS_VALUE`` (1e15) in magnitude; the stream is checked before
                anything is learned, and the error names the column and the row.
            y: ``(n,)`` labels: booleans or 0/1 with two classes, else class indices in
                ``[0, n_classes)`` (anything else is refused, naming the row).
            mask: ``(n, d)`` availability, True where the feature is present; default
                ``~isnan(X)``.
            feature_names: Names of the ``d`` columns, as the dict path would see them
                (default ``0 .. d-1``).
            progress: Optional callable called with the number of rows done, every 256 rows
                and at the end.

        Returns:
            ``(n, n_classes)`` float64 probabilities.
        """
        return learn_predict_stream(self, X, y, mask, feature_names, progress)

    # -- to implement ------------------------------------------------------------------------
    def _build(self, n_base: int) -> None:
        raise NotImplementedError

    def _step(
        self, xb: torch.Tensor, xa: torch.Tensor, ma: torch.Tensor, y: int | None
    ) -> torch.Tensor:
        """Forward pass; update when ``y`` is given. Returns the ``(K,)`` prediction."""
        raise NotImplementedError


def _as_proba(p: torch.Tensor) -> np.ndarray:
    q = p.numpy().astype(np.float64)
    return q / q.sum()
