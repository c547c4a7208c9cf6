"""Losses and metrics by name: the ``"bce"``, ``"ce"``, ``"mse"``, ... of :class:`Objective`.

A loss maps ``(output, target)`` to a scalar tensor; a metric maps the whole set of
predictions and targets to a float. :mod:`auxlab.objective` re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from auxlab._metrics import roc_auc

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]

__all__ = ["HIGHER_IS_BETTER", "LOSSES", "METRICS", "LossFn", "MetricFn", "resolve_loss"]


def align_target(pred: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Reshape ``target`` to ``pred``'s shape when only singleton dimensions differ."""
    if target.shape == pred.shape:
        return target.to(pred.dtype)
    if target.numel() != pred.numel():
        raise ValueError(
            f"task '{task}': output has shape {tuple(pred.shape)} but its target has shape "
            f"{tuple(target.shape)}; they must hold the same number of values."
        )
    return target.reshape(pred.shape).to(pred.dtype)


def _bce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Probabilities are clipped to [1e-7, 1 - 1e-7], as Keras' binary_crossentropy does.
    p = pred.clamp(1e-7, 1.0 - 1e-7)
    return F.binary_cross_entropy(p, target)


def _ce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Integer class ids, or class probabilities of the same shape as the logits.
    if target.dtype.is_floating_point and target.shape == pred.shape:
        return F.cross_entropy(pred, target)
    return F.cross_entropy(pred, target.reshape(-1).long())


#: Built-in losses by name. ``bce`` takes probabilities, ``bce_logits`` and ``ce`` take logits.
LOSSES: dict[str, LossFn] = {
    "bce": _bce,
    "bce_logits": F.binary_cross_entropy_with_logits,
    "ce": _ce,
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.huber_loss,
}

#: Keras spellings accepted as aliases.
_ALIASES = {
    "binary_crossentropy": "bce",
    "sparse_categorical_crossentropy": "ce",
    "categorical_crossentropy": "ce",
    "cross_entropy": "ce",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "l1": "mae",
    "smooth_l1": "huber",
}

NEEDS_ALIGN = {"bce", "bce_logits", "mse", "mae", "huber"}


def resolve_loss(spec: str | LossFn) -> tuple[str, LossFn]:
    """Return ``(name, function)`` for a loss given by name or as a callable.

    Raises:
        ValueError: For an unknown name; the message lists the known names.
        TypeError: For anything that is neither a string nor a callable.
    """
    if isinstance(spec, str):
        name = _ALIASES.get(spec, spec)
        if name not in LOSSES:
            known = ", ".join(sorted(LOSSES)) + "; aliases: " + ", ".join(sorted(_ALIASES))
            raise ValueError(f"unknown loss '{spec}'. Known losses: {known}.")
        return name, LOSSES[name]
    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__), spec
    raise TypeError(f"a loss must be a name or a callable, got {type(spec).__name__}")


# ---------------------------------------------------------------------------------------------
# Metrics: functions of the whole set of predictions and targets, returning a float.


def _binary_scores(pred: torch.Tensor, loss_name: str) -> torch.Tensor:
    """Probability-like scores for binary accuracy; logits for ``bce_logits``."""
    return torch.sigmoid(pred) if loss_name == "bce_logits" else pred


def _accuracy(loss_name: str) -> MetricFn:
    def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
        if loss_name == "ce":
            if target.dtype.is_floating_point and target.shape == pred.shape:
                target = target.argmax(-1)  # class probabilities: categorical accuracy
            return (pred.argmax(-1) == target.reshape(-1).long()).double().mean().item()
        p = _binary_scores(pred, loss_name).reshape(-1)
        return ((p > 0.5).double() == (target.reshape(-1) > 0.5).double()).double().mean().item()

    return accuracy


def _auc(loss_name: str) -> MetricFn:
    def auc(pred: torch.Tensor, target: torch.Tensor) -> float:
        return roc_auc(target.reshape(-1).cpu().numpy(), pred.reshape(-1).double().cpu().numpy())

    return auc


def _regression(kind: str) -> Callable[[str], MetricFn]:
    def build(loss_name: str) -> MetricFn:
        def metric(pred: torch.Tensor, target: torch.Tensor) -> float:
            p = pred.reshape(-1).double()
            t = target.reshape(-1).double()
            if kind == "mse":
                return ((p - t) ** 2).mean().item()
            if kind == "mae":
                return (p - t).abs().mean().item()
            ss_res = ((p - t) ** 2).sum()
            ss_tot = ((t - t.mean()) ** 2).sum()
            return (1.0 - ss_res / ss_tot).item() if ss_tot > 0 else float("nan")

        metric.__name__ = kind
        return metric

    return build


#: Built-in metrics by name. Each is resolved per task from the task's loss (as Keras resolves
#: ``"accuracy"``): binary accuracy thresholds probabilities at 0.5 and logits at 0.
METRICS: dict[str, Callable[[str], MetricFn]] = {
    "accuracy": _accuracy,
    "auc": _auc,
    "mse": _regression("mse"),
    "mae": _regression("mae"),
    "r2": _regression("r2"),
}

#: Whether a larger value of the metric is better.
HIGHER_IS_BETTER = {"accuracy": True, "auc": True, "mse": False, "mae": False, "r2": True}
