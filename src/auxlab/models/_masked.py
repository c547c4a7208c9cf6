"""Losses and metrics that skip missing targets, for multi-output data with gaps.

A target value that is NaN (or a negative class id for a ``"multiclass"`` target) is
*missing*: :func:`masked` losses average over the observed values only, and a task with no
observed value in a batch contributes a zero that is still part of the graph
(``0 · Σ outputs``), so it adds nothing to the gradient and never makes the total NaN.
:func:`masked_metric` does the same for metrics.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from auxlab._losses import (
    LossFn,
    LossInputError,
    MetricFn,
    check_binary_target,
    check_class_ids,
    check_probabilities,
    check_same_shape,
    resolve_loss,
)
from auxlab._metrics import roc_auc

__all__ = ["masked", "masked_metric", "multilabel_scores"]


def _missing(target: torch.Tensor, loss_name: str) -> torch.Tensor:
    """Boolean mask of missing entries: NaN, or a negative class id for ``ce``."""
    if target.dtype.is_floating_point:
        miss = torch.isnan(target)
        if loss_name == "ce":
            miss = miss | (target < 0)
        return miss
    if loss_name == "ce":
        return target < 0
    return torch.zeros_like(target, dtype=torch.bool)


def masked(loss: str | LossFn) -> LossFn:
    """A loss that skips missing targets (NaN, or a negative class id for ``"ce"``).

    The result averages the per-element loss over the observed targets. When no target in
    the batch is observed it returns ``0 · pred.sum()``: zero, finite, and part of the graph,
    so the task adds nothing to the gradient and ``backward`` still works.

    For ``"ce"`` a row is missing when its class id is; for the element-wise losses
    (``"mse"``, ``"mae"``, ``"huber"``, ``"bce_logits"``, ``"bce"``) each value is masked on
    its own, so a multi-label row may have some labels missing.

    The wrapper keeps the built-in loss's name (``masked("ce").__name__ == "ce"``), so an
    :class:`~auxlab.Objective` resolves metrics such as ``"accuracy"`` for it as for the
    plain loss.

    Args:
        loss: A built-in loss name (``"mse"``, ``"mae"``, ``"huber"``, ``"bce"``,
            ``"bce_logits"``, ``"ce"``, or a Keras alias).

    Example:
        >>> mse = masked("mse")
        >>> pred = torch.tensor([1.0, 2.0, 3.0])
        >>> mse(pred, torch.tensor([0.0, float("nan"), 1.0])).item()  # (1 + 4) / 2
        2.5
        >>> mse(pred, torch.full((3,), float("nan"))).item()
        0.0
    """
    if not isinstance(loss, str):
        raise TypeError(
            "masked() takes a built-in loss name; a custom loss must handle missing targets itself"
        )
    name, _ = resolve_loss(loss)
    elementwise = {
        "mse": lambda p, t: (p - t) ** 2,
        "mae": lambda p, t: (p - t).abs(),
        "huber": lambda p, t: F.huber_loss(p, t, reduction="none"),
        "bce_logits": lambda p, t: F.binary_cross_entropy_with_logits(p, t, reduction="none"),
        "bce": lambda p, t: F.binary_cross_entropy(p.clamp(1e-7, 1.0 - 1e-7), t, reduction="none"),
    }

    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_tensors(pred, target)
        zero = pred.sum() * 0.0
        if name == "ce":
            check_class_ids(pred, target, allow_missing=True)
            t = target.reshape(-1)
            miss = _missing(t, "ce")
            keep = ~miss
            if not bool(keep.any()):
                return zero
            ids = torch.where(keep, t, torch.zeros_like(t)).long()
            return F.cross_entropy(pred[keep], ids[keep]) + zero
        check_same_shape(pred, target, "target (NaN marks a missing value)")
        if name == "bce":
            check_probabilities(pred)
        if name in ("bce", "bce_logits"):
            check_binary_target(target, name)
        t = target.reshape(pred.shape).to(pred.dtype)
        keep = ~torch.isnan(t)
        if not bool(keep.any()):
            return zero
        filled = torch.where(keep, t, torch.zeros_like(t))
        per = elementwise[name](pred, filled)
        # Sum over kept entries only: a NaN-free fill keeps the masked entries' gradient zero.
        return torch.where(keep, per, torch.zeros_like(per)).sum() / keep.sum() + zero

    loss_fn.__name__ = name
    loss_fn.__qualname__ = f"masked({name})"
    return loss_fn


def _check_tensors(pred: torch.Tensor, target: torch.Tensor) -> None:
    for what, x in (("output", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise LossInputError(f"the {what} must be a tensor, got {type(x).__name__}")


def _observed(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_same_shape(pred, target, "target (NaN marks a missing value)")
    p = pred.reshape(-1).double()
    t = target.reshape(-1).double()
    keep = ~torch.isnan(t)
    return p[keep], t[keep]


#: The metrics :func:`masked_metric` computes over the observed targets.
_MASKED_METRICS = ("mae", "mse", "rmse", "r2", "accuracy", "auc")


def masked_metric(name: str, loss_name: str) -> MetricFn:
    """A metric over the observed targets only; NaN when a task has no observed target.

    Args:
        name: ``"mae"``, ``"mse"``, ``"rmse"``, ``"r2"`` (regression), ``"accuracy"``
            (classification: argmax for ``"ce"``, threshold 0 on logits for ``"bce_logits"``,
            0.5 on probabilities for ``"bce"``) or ``"auc"`` (binary targets: ROC AUC of the
            scores, logits or probabilities; NaN when the observed targets hold one class).
        loss_name: The task's loss, which says how to read its outputs.

    Example:
        >>> mae = masked_metric("mae", "mse")
        >>> mae(torch.tensor([1.0, 5.0, 3.0]), torch.tensor([2.0, float("nan"), 1.0]))
        1.5
    """

    def metric(pred: torch.Tensor, target: torch.Tensor) -> float:
        _check_tensors(pred, target)
        if name == "accuracy":
            if loss_name == "ce":
                check_class_ids(pred, target, allow_missing=True)
                t = target.reshape(-1)
                keep = ~_missing(t, "ce")
                if not bool(keep.any()):
                    return math.nan
                hits = pred.argmax(-1)[keep] == t[keep].long()
                return float(hits.double().mean())
            p, t = _observed(pred, target)
            if p.numel() == 0:
                return math.nan
            yes = p > (0.5 if loss_name == "bce" else 0.0)
            return float((yes == (t > 0.5)).double().mean())
        p, t = _observed(pred, target)
        if p.numel() == 0:
            return math.nan
        if name == "auc":
            return roc_auc(t.cpu().numpy(), p.cpu().numpy())
        if name == "mae":
            return float((p - t).abs().mean())
        if name in ("mse", "rmse"):
            mse = float(((p - t) ** 2).mean())
            return math.sqrt(mse) if name == "rmse" else mse
        if name == "r2":
            ss_tot = float(((t - t.mean()) ** 2).sum())
            return 1.0 - float(((p - t) ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan
        raise ValueError(f"unknown metric {name!r}; masked metrics: {', '.join(_MASKED_METRICS)}")

    if name not in _MASKED_METRICS:
        raise ValueError(f"unknown metric {name!r}; masked metrics: {', '.join(_MASKED_METRICS)}")
    if name == "auc" and loss_name not in ("bce", "bce_logits"):
        raise ValueError(
            f"the masked metric 'auc' scores binary targets (loss 'bce' or 'bce_logits'), but "
            f"this task's loss is {loss_name!r}; use 'accuracy' for it"
        )
    metric.__name__ = name
    return metric


def multilabel_scores(
    scores: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Multi-label metrics: Hamming loss, micro and macro F1, subset accuracy.

    Args:
        scores: ``(n, L)`` probabilities (or 0/1 predictions) of the ``L`` labels.
        targets: ``(n, L)`` 0/1 labels.
        threshold: A label is predicted when its score is above ``threshold``.

    Returns:
        ``hamming_loss`` (fraction of wrong labels), ``micro_f1`` (F1 of the pooled counts),
        ``macro_f1`` (mean of per-label F1, a label with no positives and no predicted
        positives counting as F1 0, as scikit-learn's ``zero_division=0``) and
        ``subset_accuracy`` (fraction of rows with every label right), as scikit-learn
        computes them.

    Example:
        >>> y = np.array([[1, 0], [1, 1]])
        >>> p = np.array([[0.9, 0.2], [0.8, 0.1]])
        >>> multilabel_scores(p, y)
        {'hamming_loss': 0.25, 'micro_f1': 0.8, 'macro_f1': 0.5, 'subset_accuracy': 0.5}
    """
    s = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    y = targets.detach().cpu().numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    if s.shape != y.shape or s.ndim != 2:
        raise ValueError(f"scores and targets must both be (n, L), got {s.shape} and {y.shape}")
    if s.shape[0] == 0:
        raise ValueError("scores and targets have no rows; multi-label scores need at least one")
    if not (np.issubdtype(s.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise TypeError(f"scores and targets must be numeric, got {s.dtype} and {y.dtype}")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or inf; pass finite probabilities (or 0/1 predictions)")
    pred = s > threshold
    true = y > 0.5
    tp = (pred & true).sum(0).astype(float)
    fp = (pred & ~true).sum(0).astype(float)
    fn = (~pred & true).sum(0).astype(float)
    denom = 2 * tp + fp + fn
    per_label = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    micro_denom = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "hamming_loss": float((pred != true).mean()),
        "micro_f1": float(2 * tp.sum() / micro_denom) if micro_denom > 0 else 0.0,
        "macro_f1": float(per_label.mean()),
        "subset_accuracy": float((pred == true).all(axis=1).mean()),
    }


# ---------------------------------------------------------------------------------------------
# The model.
