"""Progressive (test-then-train) evaluation, its metrics, and summaries over seeds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from auxlab._metrics import roc_auc
from auxlab.online._base import OnlineClassifier
from auxlab.online._inputs import label_indices

__all__ = [
    "ProgressiveResult",
    "classification_metrics",
    "prior_corrected",
    "progressive_evaluate",
    "summarise",
]


def _auprc(y: np.ndarray, score: np.ndarray) -> float:
    """``auc(recall, precision)`` over the precision-recall curve, as the review computes it."""
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each distinct threshold
    tp = np.cumsum(yy)[last]
    fp = (last + 1) - tp
    precision = np.r_[1.0, tp / (tp + fp)]
    recall = np.r_[0.0, tp / pos]
    return float(np.trapezoid(precision, recall))


def _check_predictions(who: str, y: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as class indices and probabilities as ``(n, K)`` float64, checked."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"{who}: proba must be (n, K) with K >= 2 classes, got shape {p.shape}")
    yy = np.asarray(y)
    if yy.shape != (p.shape[0],):
        raise ValueError(
            f"{who}: y must have one label per row of proba, ({p.shape[0]},), got {yy.shape}"
        )
    if p.shape[0] == 0:
        raise ValueError(f"{who}: no predictions (the stream is empty)")
    if not np.isfinite(p).all():
        t = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
        raise ValueError(f"{who}: proba has a non-finite value at row {t}: {p[t].tolist()}")
    return label_indices(who, yy, p.shape[1]), p


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Metrics of a sequence of online predictions (percentages where the papers use them).

    Args:
        y: ``(n,)`` true classes.
        proba: ``(n, K)`` predicted probabilities (before each label was revealed).

    Returns:
        ``errors`` (count), ``accuracy``, ``balanced_accuracy``, ``auroc`` and ``auprc``
        (binary, class 1 is positive) in percent; ``log_loss`` (mean ``−log p_y``);
        ``code_loss``, the mean of ``CrossEntropyLoss`` applied to the probabilities (a
        second softmax), which is the "average loss" the Aux-Drop code reports.
    """
    y, proba = _check_predictions("classification_metrics", y, proba)
    pred = proba.argmax(1)
    k = proba.shape[1]
    recalls = [float((pred[y == c] == c).mean()) for c in range(k) if (y == c).any()]
    p_true = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    soft = proba - proba.max(1, keepdims=True)
    code = -(soft[np.arange(len(y)), y] - np.log(np.exp(soft).sum(1)))
    out = {
        "errors": float((pred != y).sum()),
        "accuracy": 100.0 * float((pred == y).mean()),
        "balanced_accuracy": 100.0 * float(np.mean(recalls)),
        "log_loss": float(-np.log(p_true).mean()),
        "code_loss": float(code.mean()),
        "auroc": float("nan"),
        "auprc": float("nan"),
    }
    if k == 2:
        out["auroc"] = 100.0 * roc_auc(y, proba[:, 1])
        out["auprc"] = 100.0 * _auprc(y, proba[:, 1])
    return out


def prior_corrected(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Online predictions re-weighted by the inverse class frequencies seen so far.

    Row ``t`` becomes ``q_k ∝ p_k / π_k`` with ``π_k`` the frequency of class ``k`` among the
    labels before ``t`` (counts start at 1). Its argmax is the decision that maximises
    balanced accuracy when ``p`` is calibrated (the balanced-error Bayes rule; logit
    adjustment, Menon et al., ICLR 2021). It uses only labels already revealed, so it is a
    valid online prediction; our benchmarks report it beside the plain argmax, for every
    learner alike. Not from the haphazard-input papers. For a learner trained with the
    class-balanced loss (the deep learners' default mode, ``class_weight="balanced"``), whose
    probabilities already assume balanced classes, this corrects a second time and
    over-predicts the minority class: read the plain argmax for those.

    Example:
        >>> q = prior_corrected(np.array([1, 1, 0]), np.array([[0.4, 0.6]] * 3))
        >>> q[2].round(3).tolist()  # after two 1s, class 0 is rarer: its probability goes up
        [0.667, 0.333]
    """
    y, proba = _check_predictions("prior_corrected", y, proba)
    k = proba.shape[1]
    onehot = np.zeros((len(y), k))
    onehot[np.arange(len(y)), y] = 1.0
    counts = 1.0 + np.cumsum(onehot, 0) - onehot  # labels strictly before each row
    q = proba / counts
    return q / q.sum(1, keepdims=True)


@dataclass
class ProgressiveResult:
    """One progressive run: metrics, the majority-class reference, and the wall time.

    Attributes:
        metrics: See :func:`classification_metrics`.
        majority: The same metrics for always predicting the stream's majority class
            (errors = the minority count, balanced accuracy 50).
        seconds: Wall time of the run.
        n: Rows.
        extra: ``"prior_corrected"``: the metrics of the same predictions re-weighted by
            :func:`prior_corrected` (the balanced-accuracy decision).
    """

    metrics: dict[str, float]
    majority: dict[str, float]
    seconds: float
    n: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON), nested as the attributes are."""
        return asdict(self)

    def record(self, **keys: Any) -> dict[str, Any]:
        """One flat record of the run, for JSON: ``keys`` first, then the measures.

        The shape every ``--json`` of the online commands and benchmarks writes (a list of
        these): the identifying ``keys`` given (``dataset``, ``learner``, ``p``, ``seed``,
        ...), then ``balanced_accuracy``, ``auroc``, ``auprc``, ``accuracy`` (percent),
        ``errors``, ``log_loss``, ``code_loss``, ``balanced_accuracy_prior_corrected``,
        ``majority_errors``, ``seconds`` and ``n``.

        Example:
            >>> res = ProgressiveResult({"balanced_accuracy": 75.0}, {"errors": 3.0}, 0.5, 10)
            >>> res.record(seed=0)
            {'seed': 0, 'balanced_accuracy': 75.0, 'majority_errors': 3.0, 'seconds': 0.5, 'n': 10}
        """
        out = dict(keys)
        for name in _RECORD_METRICS:
            if name in self.metrics:
                out[name] = self.metrics[name]
        corrected = self.extra.get("prior_corrected", {})
        if "balanced_accuracy" in corrected:
            out["balanced_accuracy_prior_corrected"] = corrected["balanced_accuracy"]
        if "errors" in self.majority:
            out["majority_errors"] = self.majority["errors"]
        out["seconds"] = self.seconds
        out["n"] = self.n
        return out


#: The metrics a flat record carries, in this order (see ``classification_metrics``).
_RECORD_METRICS = (
    "balanced_accuracy",
    "auroc",
    "auprc",
    "accuracy",
    "errors",
    "log_loss",
    "code_loss",
)


def progressive_evaluate(
    learner: OnlineClassifier,
    X: np.ndarray,
    y: np.ndarray,
    mask: np.ndarray | None = None,
    feature_names: Sequence[Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ProgressiveResult:
    """Test-then-train a fresh clone of ``learner`` over the stream (the array path).

    Args:
        learner: The learner (it is cloned; the original stays untouched).
        X: ``(n, d)`` values.
        y: ``(n,)`` labels (booleans or 0/1 for two classes, else class indices); checked.
        mask: ``(n, d)`` availability (default ``~isnan(X)``).
        feature_names: Column names.
        progress: Called with the rows done.

    Returns:
        The run's :class:`ProgressiveResult`.
    """
    who = type(learner).__name__
    yy = np.asarray(y)
    if yy.ndim != 1 or len(yy) == 0:
        raise ValueError(
            f"progressive_evaluate: y must be one label per row of a non-empty stream, got "
            f"shape {yy.shape}"
        )
    # Checked before the run (as the array path checks them): 0.5 is no class.
    y = label_indices(who, yy, int(learner.n_classes))
    model = learner.clone()
    start = time.perf_counter()
    proba = model.learn_predict_stream(X, y, mask, feature_names, progress=progress)
    seconds = time.perf_counter() - start
    k = proba.shape[1]
    counts = np.bincount(y, minlength=k)
    maj = np.zeros_like(proba)
    maj[:, int(counts.argmax())] = 1.0
    return ProgressiveResult(
        classification_metrics(y, proba),
        classification_metrics(y, maj),
        seconds,
        len(y),
        {"prior_corrected": classification_metrics(y, prior_corrected(y, proba))},
    )


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value), ignoring NaN."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
